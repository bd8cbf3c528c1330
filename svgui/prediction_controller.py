"""Model ▸ the active model, the open file's prediction (TTA, precision) and its progress.

A QObject the main window composes: predictions run in a worker (yields are the progress with
the frames done so far, the return value is the result) and land on the Document if the file is
still the open one. A file's first prediction is drawn as it grows (``partialPredictions``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from engine.checkpoint import VoiceModel, load_model
from engine.config import PredictConfig
from engine.errors import EngineError
from engine.resources import bundled_model_path
from svgui import settings as prefs
from svgui.dialogs.messages import show_error
from svgui.document import Document
from svgui.tasks import PredictionDone, PredictionProgress, predict_audio
from svgui.widgets.models_panel import add_user_model
from svgui.workers import Worker, WorkerRegistry


class PredictionController(QObject):
    """Loads models and predicts the open file whenever the file, the model or a setting changes."""

    predictionsShown = Signal()     # once the probability curve and regions are on the document
    busyChanged = Signal(bool)      # False after a failed prediction
    predictionFailed = Signal(str)  # the reason, for a caller with nobody to read a message box
    taskText = Signal(str)          # for the status bar's task label ('' when done)
    # the probabilities of the frames done so far while the open file has none yet; None: withdrawn
    partialPredictions = Signal(object)
    message = Signal(str, int)      # a status bar message and how long it shows, in ms

    def __init__(self, window: QWidget, document: Document, settings: QSettings, workers: WorkerRegistry):
        super().__init__(window)
        self._window, self.document, self.settings, self.workers = window, document, settings, workers
        self.model: VoiceModel | None = None
        self.tta = False
        self._predicting: Worker | None = None

    # ---- the model ----------------------------------------------------------------------------
    @property
    def model_path(self) -> Path | None:
        return self.model.path if self.model is not None else None

    def load_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._window, "Load model", "", "svgui models (*.safetensors)")
        if path:
            self.load_model(Path(path))

    def use_bundled_model(self) -> None:
        self.load_model(bundled_model_path())

    def load_model(self, path: Path | None, quiet: bool = False) -> None:
        """Make ``path`` the active model (kept in the settings) and predict the open file with it."""
        if path is None:
            self.model = None
            return
        try:
            self.model = load_model(path)
        except EngineError as exc:
            self.model = None
            if not quiet:
                show_error(self._window, "Cannot load model", exc)
            return
        prefs.set_active_model_path(self.settings, path if path != bundled_model_path() else None)
        if path != bundled_model_path():
            add_user_model(self.settings, path)
        self.message.emit(f"model: {self.model.name}", 5000)
        if self.document.is_open:
            self.predict()

    def reset_threshold(self) -> None:
        if self.model is not None:
            self.document.set_threshold(self.model.threshold)

    # ---- settings that re-predict ---------------------------------------------------------------
    def set_tta(self, on: bool) -> None:
        self.tta = on
        self.predict()

    def set_precision(self, name: str) -> None:
        prefs.set_precision(self.settings, name)
        self.predict()

    # ---- predicting ---------------------------------------------------------------------------
    def predict(self) -> None:
        if self.model is None or not self.document.is_open:
            return
        if self._predicting is not None:
            self._predicting.cancel()
        self.taskText.emit("predicting…")
        worker = Worker(predict_audio, self.model, self.document.samples,
                        pitch_factors=PredictConfig().pitch_factors(self.tta), precision=prefs.precision(self.settings))
        worker.audio_path = self.document.audio_path
        worker.threshold = self.model.threshold
        # Bound methods, not lambdas: a lambda connected to a worker's signal runs in the worker's
        # thread (tests/svgui/test_workers.py shows it).
        worker.progress.connect(self._progress)
        worker.finished.connect(self._finished)
        worker.failed.connect(self._failed)
        self._predicting = self.workers.start(worker)

    def _progress(self, step: PredictionProgress) -> None:
        self.taskText.emit(f"predicting… {100 * step.fraction:.0f} %")
        # Only a file without predictions: a re-prediction (another model, TTA) keeps the old
        # curve and regions together until the new ones replace both.
        worker = self.sender()
        if worker.audio_path == self.document.audio_path and self.document.probabilities is None:
            self.document.set_threshold(worker.threshold)  # the line the growing curve is read against
            self.partialPredictions.emit(step.probabilities)

    def _finished(self, result: PredictionDone) -> None:
        self._predicting = None
        self.taskText.emit("")
        if self.sender().audio_path != self.document.audio_path:
            return  # a result for a file that is no longer open
        name = self.model.name + (" + TTA" if self.tta else "")
        self.document.set_predictions(result.probabilities, name, self.model.threshold)
        self.predictionsShown.emit()

    def _failed(self, exc: Exception) -> None:
        self._predicting = None
        self.taskText.emit("")
        self.partialPredictions.emit(None)
        self.busyChanged.emit(False)
        self.predictionFailed.emit(str(exc))
        show_error(self._window, "Prediction failed", exc)
