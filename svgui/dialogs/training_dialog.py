"""Train a model from the GUI: the settings form on the left, progress, live plots and a log on the right.

The dialog is non-modal: training runs in a worker thread (``svgui.model_jobs.run_training``
wrapping ``engine.train.train``) while the main window stays usable; closing the dialog hides it
and training goes on. Progress arrives once per update and goes to the progress view
(``svgui.widgets.training_progress``), which draws it rate-limited. Pause/Resume blocks the worker between updates; Cancel closes the training generator, which
saves a checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import torch
from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QDialog, QHBoxLayout, QMessageBox, QPushButton, QScrollArea, QVBoxLayout, QWidget

from engine.checkpoint import check_model_output, read_header
from engine.config import AugmentConfig, ModelConfig
from engine.errors import EngineError
from engine.evaluate import format_percent
from engine.train import TrainProgress, find_checkpoints
from svgui import settings as prefs
from svgui.augment_sources import augment_spec
from svgui.dialogs import messages
from svgui.dialogs.messages import show_error
from svgui.model_jobs import Loading, LogLine, TrainingRequest, TrainingSteps, readable_training_error, run_training
from svgui.widgets.training_device import format_duration
from svgui.widgets.training_progress import REFRESH_MS, TrainingProgressView
from svgui.widgets.training_settings import SETTINGS_WIDTH_PX, TrainingSettings
from svgui.workers import Worker, WorkerRegistry


def format_figures(validation, source: str = "validation") -> str:
    where = "Validation data" if source == "validation" else "Training data (no validation data)"
    return (f"{where}, {validation.n_frames:,} frames: error {format_percent(validation.error)} · recall "
            f"{format_percent(validation.recall, 1)} · specificity {format_percent(validation.specificity, 1)} "
            f"at threshold {validation.threshold:.3g}")


def ask_stop_training(parent: QWidget | None, summary: str) -> bool:
    """Whether to stop a running training to close the app (test hook: messages.answers['stop_training'])."""
    text = f"Training is still running ({summary})."
    informative = ("Stop it and quit? The last checkpoint is saved beside the model file, so the run can be "
                   "continued later from the training dialog.")
    return messages.ask_yes_no(parent, "stop_training", "Training is running", text, informative,
                               yes="Stop Training and Quit", no="Keep Training", default_answer=True)


class TrainingDialog(QDialog):
    """Settings on the left; progress, live plots and the log on the right."""

    modelTrained = Signal(object)       # Path of a finished model
    useModelRequested = Signal(object)  # Path: make it the active model
    runningChanged = Signal(bool)
    statusText = Signal(str)            # one line for the main window's status bar (rate-limited)

    def __init__(self, parent: QWidget | None = None, *, workers: WorkerRegistry | None = None,
                 listed_files: Callable[[], list[Path]] = lambda: [],
                 preview_config: Callable[[], AugmentConfig] | None = None, settings: QSettings | None = None,
                 model_config: ModelConfig = ModelConfig()):
        super().__init__(parent)
        self.setWindowTitle("Train a Model — svgui")
        self.setModal(False)
        self._workers = workers or WorkerRegistry(self)
        self._settings = settings
        self._worker: Worker | None = None
        self._request: TrainingRequest | None = None
        self.state = "idle"
        self.result: TrainProgress | None = None
        self._pending_augment: tuple[AugmentConfig, str] | None = None

        self.form = TrainingSettings(listed_files=listed_files, preview_config=preview_config, settings=settings,
                                     model_config=model_config)
        scroll = QScrollArea()
        scroll.setWidget(self.form)
        scroll.setWidgetResizable(True)
        # Room for the form and the vertical scroll bar: the form is taller than a small screen,
        # and without this the bar covers its right-hand column.
        scroll.setFixedWidth(max(SETTINGS_WIDTH_PX, self.form.minimumSizeHint().width()
                                 + scroll.verticalScrollBar().sizeHint().width() + 2 * scroll.frameWidth()))
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        self.view = TrainingProgressView()
        view = self.view  # its parts, by their names here too
        self.status, self.bar, self.times, self.plots, self.log, self.result_label = (
            view.status, view.bar, view.times, view.plots, view.log, view.result_label)

        self.defaults_button = QPushButton("Paper's Defaults")
        self.defaults_button.setToolTip("Reset the training settings and the augmentation to the paper's")
        self.start_button = QPushButton("Start Training")
        self.start_button.setDefault(True)
        self.pause_button = QPushButton("Pause")
        self.cancel_button = QPushButton("Cancel Training")
        self.cancel_button.setToolTip("Stop after the current update; a checkpoint is kept beside the model file")
        self.use_button = QPushButton("Use This Model")
        self.use_button.setToolTip("Make the new model the active one in the main window")
        self.close_button = QPushButton("Close")
        buttons = QHBoxLayout()
        buttons.addWidget(self.defaults_button)
        buttons.addStretch(1)
        for button in (self.start_button, self.pause_button, self.cancel_button, self.use_button, self.close_button):
            buttons.addWidget(button)
        self.defaults_button.clicked.connect(self.form.restore_defaults)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button.clicked.connect(self._use_model)
        self.close_button.clicked.connect(self.close)

        body = QHBoxLayout()
        body.addWidget(scroll)
        body.addWidget(self.view, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addLayout(buttons)

        self._timer = QTimer(self, interval=REFRESH_MS)
        self._timer.timeout.connect(self._refresh)
        self._set_state("idle")
        self.resize(1240, 860)

    @property
    def model_config(self) -> ModelConfig:
        return self.form.model_config

    @model_config.setter
    def model_config(self, config: ModelConfig) -> None:
        self.form.model_config = config

    def set_augment(self, config: AugmentConfig, *, source: str = "custom") -> None:
        """Show ``config`` as the augmentation of the next run (while one runs, once it has ended)."""
        if self.is_running:
            self._pending_augment = (config, source)
            self._log(f"augmentation {config.describe()} received; it applies to the next run")
            return
        self.form.set_augment(config, source=source)

    # ---- running --------------------------------------------------------------------------------
    @property
    def last_progress(self) -> TrainProgress | None:
        return self.view.last

    @property
    def progress_count(self) -> int:
        return self.view.count

    @property
    def is_running(self) -> bool:
        return self._worker is not None

    @property
    def is_paused(self) -> bool:
        return self.state == "paused"

    def progress_summary(self) -> str:
        p = self.last_progress
        if p is None:
            return "reading the training files"
        return f"update {p.update:,} of {p.total_updates:,}"

    def start(self) -> bool:
        if self.is_running:
            return False
        try:
            request = self.form.request()
            # A file that is not a model is never replaced, and the folder must take files: said at
            # once, not after reading the data (and the question below is only asked about a model).
            check_model_output(request.out_path, overwrite=True)
        except EngineError as exc:
            show_error(self, "Cannot start training", exc)
            return False
        if request.out_path.exists() and not request.resume and not self._confirm_overwrite(request.out_path):
            return False
        request = dataclasses.replace(request, overwrite=True)  # asked above (a resumed run finishes its model)
        self._request = request
        # a resumed run's curves go on from its checkpoint
        self.view.begin(request.config.updates, resumed_at=self._checkpoint_update(request) if request.resume else None)
        self.result = None
        self._log(f"training {request.out_path.name}: {request.config.updates:,} updates, batch "
                  f"{request.config.batch_size}, lr {request.config.learning_rate:g} × {request.config.lr_decay:g} "
                  f"every {request.config.lr_decay_every:,}, momentum {request.config.momentum:g}, seed "
                  f"{request.config.seed}; device {request.device}; augmentation {request.augment.describe()}")
        if self._settings is not None:
            prefs.set_training_folder(self._settings, request.out_path.parent)
            prefs.set_training_augment(self._settings, augment_spec(request.augment))  # the next window's default
        worker = Worker(run_training, request)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._worker = worker
        self._set_state("loading")
        self._workers.start(worker)
        self._timer.start()
        self.runningChanged.emit(True)
        return True

    @staticmethod
    def _checkpoint_update(request: TrainingRequest) -> int | None:
        try:
            return int((read_header(request.checkpoint_path).get("training") or {}).get("update"))
        except (EngineError, TypeError, ValueError):
            return None

    def toggle_pause(self) -> None:
        self.set_paused(not self.is_paused)

    def set_paused(self, paused: bool) -> None:
        if self._worker is None or self.state not in ("loading", "training", "paused"):
            return
        self._worker.set_paused(paused)
        self.view.set_paused(paused)
        if paused:
            self._set_state("paused")
            self._log(f"paused at {self.progress_summary()}")
        else:
            self._set_state("training" if self.last_progress is not None else "loading")
            self._log("resumed")
        self._refresh()

    def cancel(self) -> None:
        if self._worker is None:
            return
        self._worker.cancel()
        self.view.set_paused(False)  # the clock stops counting a pause
        self._set_state("cancelling")

    @Slot(object)
    def _on_progress(self, item) -> None:
        if isinstance(item, TrainingSteps):
            for record in item.records:
                self._on_record(record)
        elif isinstance(item, Loading):
            self.status.setText(f"Reading spectrograms: {item.done} of {item.total} files ({item.name})")
            if item.done == item.total:
                self.status.setText("Preparing the network and the batches…")
        elif isinstance(item, LogLine):
            self._log(item.text)

    def _on_record(self, item: TrainProgress) -> None:
        first = self.view.first is None
        self.view.add(item)
        if first and self.state == "loading":
            self._set_state("training")
        if item.note:
            self._log(f"note: {item.note}")  # e.g. another run's checkpoint is kept beside the model
        if item.validation is not None and not item.finished:
            v = item.validation
            self._log(f"update {item.update:,}: validation error {format_percent(v.error)}, recall "
                      f"{format_percent(v.recall, 1)}, specificity {format_percent(v.specificity, 1)} "
                      f"(threshold {v.threshold:.3g})")
        if item.checkpoint_path and not item.finished:
            self._log(f"update {item.update:,}: checkpoint saved ({Path(item.checkpoint_path).name})")

    @Slot(object)
    def _on_finished(self, result: TrainProgress | None) -> None:
        self._finish_run()
        if result is not None and result.finished:  # run_training returns train's last record
            self._show_result(result)

    @Slot(object)
    def _on_failed(self, exc) -> None:
        self._finish_run()
        request = self._request
        text = readable_training_error(exc, device=request.device, checkpoint=request.checkpoint_path)
        self._log(f"failed: {text}")
        self._set_state("idle", f"Training failed. {text.splitlines()[-1]}")
        unexpected = not isinstance(exc, (EngineError, MemoryError)) and "out of memory" not in text.lower()
        self.show()
        self.raise_()
        show_error(self, "Training failed", exc if unexpected else text)

    @Slot()
    def _on_cancelled(self) -> None:
        self._finish_run()
        last = self.last_progress
        if last is not None and last.finished:  # cancel clicked after the model was written
            self._show_result(last)
            return
        usual = self._request.checkpoint_path
        checkpoint = next(iter(find_checkpoints(self._request.out_path)), usual)  # this run's: the newest
        if checkpoint != usual:  # another run's checkpoint has the usual name and was kept
            where = (f"The checkpoint is kept at {checkpoint}. To continue it: svgui-engine train "
                     f"--resume {checkpoint} (with the same data and output file).")
        elif checkpoint.is_file():
            where = (f"The checkpoint is kept at {checkpoint}. To continue, keep this output file, tick "
                     f"“Continue from the checkpoint” and press Start Training.")
        else:
            where = "Nothing was written (cancelled before the first update)."
        self._log(f"cancelled at {self.progress_summary()}. {where}")
        self.form.output_changed()
        self._set_state("idle", f"Cancelled at {self.progress_summary()}. {where}")

    def _finish_run(self) -> None:
        self._worker = None
        if self._pending_augment is not None:
            self.form.set_augment(self._pending_augment[0], source=self._pending_augment[1])
            self._pending_augment = None
        self._timer.stop()
        self._refresh(force=True)
        self._remember_speed()
        self.runningChanged.emit(False)

    def _show_result(self, result: TrainProgress) -> None:
        self.result = result
        path = Path(result.checkpoint_path)
        source = "validation" if self._request and self._request.validation != "none" else "training"
        figures = format_figures(result.validation, source) if result.validation else ""
        self.view.show_result(f"<b>Finished</b>: {result.update:,} updates in {format_duration(result.elapsed_s)}; "
                              f"model written to <code>{path}</code><br>{figures}")
        self._log(f"finished: model written to {path}. {figures}")
        self.form.output_changed()
        self._set_state("finished", "Finished. Press “Use This Model” to make it the active model.")
        self.modelTrained.emit(path)

    def _use_model(self) -> None:
        if self.result is not None and self.result.checkpoint_path:
            self.useModelRequested.emit(Path(self.result.checkpoint_path))
            self.use_button.setEnabled(False)
            self.use_button.setText("Active Model ✓")

    # ---- drawing (rate-limited, by the progress view) -----------------------------------------------
    def seconds_per_update(self) -> float:
        """Measured over this run, pauses left out; nan before two updates."""
        return self.view.seconds_per_update()

    def _refresh(self, *, force: bool = False) -> None:
        """Every REFRESH_MS: the view draws what changed; the status lines follow the bar."""
        if self.view.refresh(force=force):
            p = self.last_progress
            if self.state in ("training",):
                self.status.setText(f"Training: {self.progress_summary()}")
            self.statusText.emit(f"training {p.update:,}/{p.total_updates:,}" +
                                 (" (paused)" if self.is_paused else ""))

    # ---- state and small helpers ------------------------------------------------------------------
    def _set_state(self, state: str, message: str | None = None) -> None:
        self.state = state
        running = state in ("loading", "training", "paused", "cancelling")
        self.form.setEnabled(not running)
        self.start_button.setEnabled(not running)
        self.defaults_button.setEnabled(not running)
        self.pause_button.setEnabled(state in ("loading", "training", "paused"))
        self.pause_button.setText("Resume" if state == "paused" else "Pause")
        self.cancel_button.setEnabled(state in ("loading", "training", "paused"))
        finished = state == "finished" and self.result is not None
        self.use_button.setVisible(finished)
        self.use_button.setEnabled(finished)
        self.use_button.setText("Use This Model")
        texts = {"loading": "Reading the training files…", "paused": f"Paused at {self.progress_summary()}. "
                 "Press Resume to continue.", "cancelling": "Cancelling: saving a checkpoint…"}
        if message is not None:
            self.status.setText(message)
        elif state in texts:
            self.status.setText(texts[state])
        if state in ("idle", "finished"):
            self.statusText.emit("")

    def _log(self, text: str) -> None:
        self.view.log_line(text)

    def _remember_speed(self) -> None:
        per_update = self.seconds_per_update()
        if (self._settings is None or self._request is None or not math.isfinite(per_update)
                or self.form.model_config != ModelConfig() or self.last_progress.update - self.view.first.update < 20):
            return
        prefs.set_seconds_per_update(self._settings, torch.device(self._request.device).type, per_update)

    def _confirm_overwrite(self, path: Path) -> bool:
        if messages.no_modal():
            return bool(messages.answers.get("overwrite_model", True))
        reply = QMessageBox.question(self, "Replace model?", f"{path.name} exists. Replace it with the new model?")
        return reply == QMessageBox.StandardButton.Yes

    def showEvent(self, event) -> None:
        self.form.update_data_note()
        super().showEvent(event)
