"""The main window: composes the views, panels and menus around one Document (wiring only)."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QSplitter

from engine.audio import AUDIO_EXTENSIONS
from engine.checkpoint import VoiceModel, load_model
from engine.errors import EngineError, OutputWriteError, OverwriteRefused
from engine.resources import bundled_model_path
from svgui import settings as prefs
from svgui.actions import ActionBuilder
from svgui.dialogs.batch_predict_dialog import BatchPredictDialog
from svgui.dialogs.evaluate_dialog import EvaluateDialog
from svgui.dialogs.export_dialog import ExportDialog
from svgui.dialogs.messages import ask_recover_autosave, ask_save_changes, show_error
from svgui.dialogs.shortcuts_dialog import ShortcutsDialog
from svgui.dialogs.training_dialog import TrainingDialog, ask_stop_training
from svgui.document import Document
from svgui.playback import Player
from svgui.tasks import DecodedAudio, decode_and_analyse, predict_audio
from svgui.widgets.augment_preview import AugmentPreviewPanel
from svgui.widgets.file_panel import FilePanel
from svgui.widgets.metrics_panel import MetricsPanel
from svgui.widgets.models_panel import ModelsDialog, add_user_model, known_models
from svgui.widgets.probability_view import ProbabilityView
from svgui.widgets.spectrogram_view import COLORMAPS, SpectrogramView
from svgui.widgets.waveform_view import WaveformView
from svgui.workers import Worker, WorkerRegistry

AUTOSAVE_INTERVAL_MS = 30_000
AUDIO_FILTER = "Audio files (" + " ".join(f"*{e}" for e in AUDIO_EXTENSIONS) + ");;All files (*)"


class MainWindow(QMainWindow):
    """Spectrogram with layers, probability curve and waveform; file list and metrics in docks."""

    fileShown = Signal(object)        # Path, once spectrogram and annotations are on screen
    predictionsShown = Signal()       # once the probability curve and regions are on screen
    openFailed = Signal(str)          # the reason a file could not be opened
    busyChanged = Signal(bool)

    def __init__(self, settings: QSettings | None = None, *, model_path: Path | None = None):
        super().__init__()
        self.settings = settings or prefs.make_settings()
        self.workers = WorkerRegistry(self)
        self.document = Document(self)
        self.model: VoiceModel | None = None
        self._loading: Worker | None = None
        self._predicting: Worker | None = None
        self.training_dialog: TrainingDialog | None = None  # non-modal tool windows, made on first use
        self.batch_dialog: BatchPredictDialog | None = None
        self.evaluate_dialog: EvaluateDialog | None = None
        self.models_dialog: ModelsDialog | None = None
        self.player = Player(self)

        self.waveform = WaveformView(self.document)
        self.spectrogram = SpectrogramView(self.document)
        self.probability = ProbabilityView(self.document)
        self.probability.plot.setXLink(self.spectrogram.plot)
        splitter = QSplitter(Qt.Orientation.Vertical)
        for widget, stretch in ((self.waveform, 1), (self.spectrogram, 6), (self.probability, 2)):
            splitter.addWidget(widget)
            splitter.setStretchFactor(splitter.count() - 1, stretch)
        self.setCentralWidget(splitter)
        self.files = FilePanel()
        self.metrics = MetricsPanel(self.document)
        self._dock(self.files, "Files", Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock(self.metrics, "Metrics", Qt.DockWidgetArea.RightDockWidgetArea)
        self.augment_preview = AugmentPreviewPanel(self.document, workers=self.workers, model=lambda: self.model,
                                                   colormap=prefs.colormap(self.settings))
        self.augment_dock = self._dock(self.augment_preview, "Augmentation preview",
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.augment_dock.hide()
        self.status_position = QLabel()
        self.status_task = QLabel()
        self.statusBar().addWidget(self.status_position, 1)
        self.statusBar().addPermanentWidget(self.status_task)

        self.acts = ActionBuilder(self)
        self._build_menus()
        self._connect()
        self.autosave_timer = QTimer(self, interval=AUTOSAVE_INTERVAL_MS, timeout=self._autosave)
        self.autosave_timer.start()
        self._autosave_elsewhere_told: set[Path] = set()  # fallback autosaves the user was told about
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        prefs.restore_window_state(self.settings, self)
        self.spectrogram.set_colormap(prefs.colormap(self.settings))
        self._load_model(model_path or prefs.active_model_path(self.settings) or bundled_model_path(), quiet=True)
        self._update_title()

    # ---- construction ---------------------------------------------------------------------
    def _dock(self, widget, title: str, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_menus(self) -> None:
        a, bar, S = self.acts.add, self.menuBar(), QKeySequence.StandardKey
        m = bar.addMenu("&File")
        a(m, "open", "&Open…", self.open_dialog, S.Open)
        a(m, "open_folder", "Open &Folder…", self.open_folder_dialog, "Ctrl+Shift+O")
        self.recent_menu = m.addMenu("Open &Recent")
        m.addSeparator()
        a(m, "save", "&Save Annotations", self.save, S.Save)
        a(m, "save_as", "Save Annotations &As…", self.save_as, S.SaveAs)
        a(m, "import_labels", "&Import Labels…", self.import_labels_dialog, "Ctrl+L")
        a(m, "export", "&Export Predictions…", self.export_dialog, "Ctrl+Shift+E")
        m.addSeparator()
        a(m, "quit", "&Quit", self.close, S.Quit)
        m = bar.addMenu("&Edit")
        undo = self.document.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcuts(S.Undo)
        redo = self.document.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts(S.Redo)
        for name, action in (("undo", undo), ("redo", redo)):
            m.addAction(action)
            self.addAction(action)
            self.acts.actions[name], self.acts.menu_of[name] = action, "Edit"
        m.addSeparator()
        a(m, "add_region", "Add Region from &Selection", self.spectrogram.add_region_from_selection, "Ctrl+B")
        a(m, "delete", "&Delete Selected Region", self.spectrogram.delete_selected_region, ["Del", "Backspace"])
        a(m, "split", "S&plit Region at Cursor", self.split_at_cursor, "Ctrl+K")
        a(m, "merge", "&Merge with Next Region", self.merge_with_next, "Ctrl+J")
        a(m, "accept", "&Accept Predictions as Annotations", self.document.accept_predictions, "Ctrl+Shift+A")
        m = bar.addMenu("&View")
        a(m, "zoom_in", "Zoom &In", lambda: self.spectrogram.zoom(1.5), ["Up", "Ctrl+="])
        a(m, "zoom_out", "Zoom &Out", lambda: self.spectrogram.zoom(1 / 1.5), ["Down", "Ctrl+-"])
        a(m, "fit", "&Fit Whole File", self.spectrogram.fit, "F")
        a(m, "zoom_selection", "Zoom to &Selection", self.zoom_to_selection, "Ctrl+E")
        a(m, "scroll_left", "Scroll &Left", lambda: self.spectrogram.scroll(-0.25), "Left")
        a(m, "scroll_right", "Scroll &Right", lambda: self.spectrogram.scroll(0.25), "Right")
        a(m, "start", "Go to &Start", lambda: self._go_to(0.0), "Home")
        a(m, "end", "Go to &End", lambda: self._go_to(self.document.duration_s), "End")
        m.addSeparator()
        for i, (layer, text) in enumerate((("truth", "Ground Truth"), ("predicted", "Predicted Regions"),
                                           ("errors", "Error Shading"), ("cursor", "Playback Cursor")), start=1):
            a(m, f"layer_{layer}", f"Show {text}", lambda on, l=layer: self.spectrogram.set_layer_visible(l, on),
              f"Alt+{i}", checkable=True, checked=True)
        a(m, "layer_curve", "Show Probability Curve", self.probability.setVisible, "Alt+5", checkable=True, checked=True)
        preview = self.augment_dock.toggleViewAction()
        preview.setShortcut(QKeySequence("Ctrl+Shift+P"))
        m.addAction(preview)
        self.addAction(preview)
        self.acts.actions["augment_preview"], self.acts.menu_of["augment_preview"] = preview, "View"
        cmaps = m.addMenu("&Colour Map")
        group = QActionGroup(self)
        for name in COLORMAPS:
            a(cmaps, f"cmap_{name}", name, None, checkable=True,
              checked=name == prefs.colormap(self.settings), group=group)
            group.actions()[-1].toggled.connect(lambda on, n=name: on and self._set_colormap(n))
        m = bar.addMenu("&Tools")
        group = QActionGroup(self)
        for i, tool in enumerate(SpectrogramView.TOOLS, start=1):
            a(m, f"tool_{tool}", tool.capitalize(), None, str(i), checkable=True, checked=i == 1, group=group)
            group.actions()[-1].toggled.connect(lambda on, t=tool: on and self.spectrogram.set_tool(t))
        m = bar.addMenu("&Playback")
        tip = "" if self.player.available else self.player.unavailable_reason
        a(m, "play", "&Play / Stop", self.toggle_play, "Space", tip=tip)
        a(m, "play_selection", "Play &Selection", lambda: self.play_selection(False), "S", tip=tip)
        a(m, "loop", "&Loop Selection", lambda: self.play_selection(True), "L", tip=tip)
        speeds = m.addMenu("Sp&eed")
        group = QActionGroup(self)
        for rate in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
            a(speeds, f"speed_{rate}", f"{rate:g}×", None, checkable=True, checked=rate == 1.0, group=group, tip=tip)
            group.actions()[-1].toggled.connect(lambda on, r=rate: on and self.player.set_speed(r))
        for name in ("play", "play_selection", "loop"):
            self.acts[name].setEnabled(self.player.available)
        speeds.setEnabled(self.player.available)
        m = bar.addMenu("&Model")
        a(m, "load_model", "&Load Model…", self.load_model_dialog)
        a(m, "bundled_model", "Use &Bundled Model", lambda: self._load_model(bundled_model_path()))
        a(m, "predict", "&Predict Open File", self.predict, "Ctrl+R")
        a(m, "tta", "Test-Time &Augmentation", lambda on: self.predict(), checkable=True)
        self._precision_menu(m.addMenu("Pre&cision"))
        a(m, "reset_threshold", "&Reset Threshold to the Model's",
          lambda: self.model and self.document.set_threshold(self.model.threshold))
        m.addSeparator()
        a(m, "train", "&Train…", lambda: self.show_training_dialog(), "Ctrl+T")
        a(m, "predict_folders", "Predict &Folders…", lambda: self.show_batch_predict_dialog(), "Ctrl+Shift+R")
        a(m, "evaluate", "&Evaluate on Labelled Folder…", lambda: self.show_evaluate_dialog())
        a(m, "models", "&Models…", lambda: self.show_models_dialog(), "Ctrl+M")
        m = bar.addMenu("&Help")
        a(m, "shortcuts", "&Keyboard Shortcuts", self.show_shortcuts, S.HelpContents)
        self._refresh_recent()

    def _connect(self) -> None:
        d = self.document
        d.dirtyChanged.connect(lambda _: self._update_title())
        d.loaded.connect(self._update_title)
        self.spectrogram.hovered.connect(self._show_position)
        self.spectrogram.timeClicked.connect(self._go_to)
        self.spectrogram.timeClicked.connect(self.augment_preview.set_time)
        self.spectrogram.visibleRangeChanged.connect(self.waveform.set_visible_range)
        self.waveform.rangeRequested.connect(self.spectrogram.zoom_to)
        self.files.fileActivated.connect(self.open_file)
        self.augment_preview.settingsForTraining.connect(lambda config: self.show_training_dialog(augment=config))
        self.player.positionChanged.connect(self.spectrogram.set_cursor)
        self.player.error.connect(lambda text: self.statusBar().showMessage(text, 5000))

    # ---- files --------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open audio", prefs.last_folder(self.settings), AUDIO_FILTER)
        if path:
            self.open_file(Path(path))

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open folder", prefs.last_folder(self.settings))
        if folder:
            self.open_folder(Path(folder))

    def open_folder(self, folder: Path) -> None:
        self.files.set_folder(folder)
        prefs.set_last_folder(self.settings, folder)

    def open_file(self, path: Path) -> None:
        """Decode and analyse in a worker; the window stays usable meanwhile."""
        path = Path(path)
        if not self._confirm_discard():
            return
        if self._loading is not None:
            self._loading.cancel()
        self.status_task.setText(f"opening {path.name}…")
        self.busyChanged.emit(True)
        worker = Worker(decode_and_analyse, path, self.document.features)
        worker.finished.connect(self._file_decoded)
        worker.failed.connect(self._open_failed)  # bound methods, not lambdas: Qt runs them in the GUI thread
        self._loading = self.workers.start(worker)

    def _open_failed(self, exc: Exception) -> None:
        self.openFailed.emit(str(exc))
        self._task_failed("Cannot open file", exc)

    def _file_decoded(self, decoded: DecodedAudio) -> None:
        self._loading = None
        self.status_task.setText("")
        self.document.set_audio(decoded.path, decoded.samples, decoded.log_mel)
        if decoded.warnings:
            show_error(self, "Audio decoded in part", "\n".join(decoded.warnings))
        label = next((decoded.path.with_suffix(s) for s in (".lab", ".txt") if decoded.path.with_suffix(s).is_file()), None)
        if label is not None:
            self._load_labels(label)
        found = self.document.find_autosave()
        if found is not None and ask_recover_autosave(self, found, self.document.default_label_path().name):
            self.document.recover_autosave()
        self.files.mark_current(decoded.path)
        self.player.set_source(decoded.path)
        prefs.add_recent_file(self.settings, decoded.path)
        self._refresh_recent()
        self.spectrogram.fit()
        self.fileShown.emit(decoded.path)
        self.busyChanged.emit(False)
        self.predict()

    def _load_labels(self, path: Path) -> None:
        try:
            problems = self.document.load_annotations(path)
        except EngineError as exc:
            show_error(self, "Cannot read labels", f"{exc}\nSave will not write over this file (Save As can).")
            return
        if problems:
            self.statusBar().showMessage("; ".join(problems), 10_000)
        unparsed = self.document.label_file.unparsed
        if unparsed:  # lines we show nothing for: say so, they are easy to miss in the status bar
            more = f"\n({len(unparsed) - 1} more such lines.)" if len(unparsed) > 1 else ""
            show_error(self, "Label lines not understood", f"{unparsed[0]}{more}\nThese lines are kept as they "
                       "are and written back unchanged when you save.")

    def import_labels_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import labels", str(self.document.audio_path or ""),
                                              "Labels (*.lab *.txt);;All files (*)")
        if path:
            self._load_labels(Path(path))

    def save(self) -> bool:
        if not self.document.is_open:
            return False
        try:
            path = self.document.save()
        except OverwriteRefused as exc:
            show_error(self, "Not saved over", exc)
            return self.save_as()
        except OutputWriteError as exc:  # a read-only folder, a full disk: the edits need another place
            show_error(self, "Cannot save annotations", f"{exc}\nChoose another file to save them to.")
            return self.save_as()
        except EngineError as exc:
            show_error(self, "Cannot save annotations", exc)
            return False
        self.statusBar().showMessage(f"saved {path}", 5000)
        return True

    def save_as(self) -> bool:
        start = str(self.document.default_label_path() or "")
        path, _ = QFileDialog.getSaveFileName(self, "Save annotations", start,
                                              "Jamendo labels (*.lab);;Audacity labels (*.txt)")
        if not path:
            return False
        try:
            self.document.save(Path(path))
        except EngineError as exc:
            show_error(self, "Cannot save annotations", exc)
            return False
        return True

    def export_dialog(self) -> None:
        if self.document.probabilities is None:
            show_error(self, "Nothing to export", "There are no predictions for this file yet.")
            return
        ExportDialog(self.document, self).exec()

    def _autosave(self) -> None:
        try:
            path = self.document.autosave()
        except EngineError as exc:
            self.statusBar().showMessage(f"autosave failed: {exc}", 10_000)
            return
        if path is None or path == self.document.autosave_path():
            return
        self.statusBar().showMessage(f"the label folder is not writable: autosaved to {path}", 10_000)
        if path not in self._autosave_elsewhere_told:  # the message box once per file, the status bar each time
            self._autosave_elsewhere_told.add(path)
            show_error(self, "Autosave in your data folder",
                       f"The folder of {self.document.default_label_path()} is not writable, so unsaved edits are "
                       f"autosaved to\n{path}\nThey are offered for recovery when you open the file again.")

    def _confirm_discard(self) -> bool:
        if not self.document.is_dirty:
            return True
        answer = ask_save_changes(self, self.document.audio_path.name if self.document.audio_path else "file")
        if answer == "discard":
            # discarded edits are not offered for recovery later, nor autosaved again meanwhile
            self.document.discard_autosave()
            self.document.undo_stack.setClean()
            return True
        return answer == "save" and self.save()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for path in prefs.recent_files(self.settings):
            self.recent_menu.addAction(Path(path).name, lambda p=path: self.open_file(Path(p)))
        self.recent_menu.setEnabled(bool(self.recent_menu.actions()))

    # ---- model and predictions ------------------------------------------------------------
    def load_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", "svgui models (*.safetensors)")
        if path:
            self._load_model(Path(path))

    def _load_model(self, path: Path | None, quiet: bool = False) -> None:
        if path is None:
            self.model = None
            return
        try:
            self.model = load_model(path)
        except EngineError as exc:
            self.model = None
            if not quiet:
                show_error(self, "Cannot load model", exc)
            return
        prefs.set_active_model_path(self.settings, path if path != bundled_model_path() else None)
        if path != bundled_model_path():
            add_user_model(self.settings, path)
        self.statusBar().showMessage(f"model: {self.model.name}", 5000)
        if self.document.is_open:
            self.predict()

    def predict(self) -> None:
        if self.model is None or not self.document.is_open:
            return
        if self._predicting is not None:
            self._predicting.cancel()
        tta = self.acts["tta"].isChecked()
        factors = (0.8, 0.9, 1.0, 1.1, 1.2) if tta else (1.0,)
        self.status_task.setText("predicting…")
        worker = Worker(predict_audio, self.model, self.document.samples, pitch_factors=factors,
                        precision=prefs.precision(self.settings))
        path = self.document.audio_path
        worker.audio_path = path
        # Bound methods, not lambdas: a lambda connected to a worker's signal runs in the worker's thread.
        worker.progress.connect(self._prediction_progress)
        worker.finished.connect(self._prediction_finished)
        worker.failed.connect(self._prediction_failed)
        self._predicting = self.workers.start(worker)

    def _precision_menu(self, menu) -> None:
        """auto / fp32 / bf16 (/ fp16 with a GPU) for the network, kept in the settings; re-predicts."""
        from svgui.widgets.precision_combo import LABELS, TOOLTIP, available_precisions

        group = QActionGroup(self)
        menu.setToolTipsVisible(True)
        for name in available_precisions():
            self.acts.add(menu, f"precision_{name}", LABELS[name], None, tip=TOOLTIP, checkable=True,
                          checked=name == prefs.precision(self.settings), group=group)
            group.actions()[-1].toggled.connect(lambda on, n=name: on and self._set_precision(n))

    def _set_precision(self, name: str) -> None:
        prefs.set_precision(self.settings, name)
        self.predict()

    def _prediction_progress(self, done: float) -> None:
        self.status_task.setText(f"predicting… {100 * done:.0f} %")

    def _prediction_finished(self, result) -> None:
        self._predicted(self.sender().audio_path, result.probabilities)

    def _prediction_failed(self, exc: Exception) -> None:
        self._task_failed("Prediction failed", exc)

    def _predicted(self, path: Path, probabilities) -> None:
        self._predicting = None
        self.status_task.setText("")
        if path != self.document.audio_path:
            return  # a result for a file that is no longer open
        name = self.model.name + (" + TTA" if self.acts["tta"].isChecked() else "")
        self.document.set_predictions(probabilities, name, self.model.threshold)
        self.predictionsShown.emit()

    def _task_failed(self, title: str, exc: Exception) -> None:
        self._loading = self._predicting = None
        self.status_task.setText("")
        self.busyChanged.emit(False)
        show_error(self, title, exc)

    # ---- training, folder prediction, evaluation, models: non-modal windows, work in self.workers ----
    def _active_model_path(self) -> Path | None:
        return self.model.path if self.model is not None else None

    def _show(self, dialog):
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def show_training_dialog(self, augment=None) -> TrainingDialog:
        if self.training_dialog is None:
            dlg = self.training_dialog = TrainingDialog(
                self, workers=self.workers, listed_files=self.files.files, preview_config=self.augment_preview.config,
                settings=self.settings)
            dlg.modelTrained.connect(lambda path: add_user_model(self.settings, path))
            dlg.useModelRequested.connect(self._load_model)
            self.status_training = QLabel()
            self.statusBar().addPermanentWidget(self.status_training)
            dlg.statusText.connect(self.status_training.setText)
        if augment is not None:
            self.training_dialog.set_augment(augment, source="preview")
        return self._show(self.training_dialog)

    def show_batch_predict_dialog(self) -> BatchPredictDialog:
        if self.batch_dialog is None:
            self.batch_dialog = BatchPredictDialog(self, workers=self.workers, model_path=self._active_model_path,
                                                   precision=prefs.precision(self.settings))
            if self.files.folder is not None:
                self.batch_dialog.add_input(self.files.folder)
        self.batch_dialog.refresh_model()
        return self._show(self.batch_dialog)

    def show_evaluate_dialog(self) -> EvaluateDialog:
        if self.evaluate_dialog is None:
            self.evaluate_dialog = EvaluateDialog(self, workers=self.workers, active_path=self._active_model_path,
                                                  models=lambda: known_models(self.settings))
            self.evaluate_dialog.fileRequested.connect(self.open_file)
            if self.files.folder is not None:
                self.evaluate_dialog.set_folder(self.files.folder)
        self.evaluate_dialog.refresh_models()
        return self._show(self.evaluate_dialog)

    def show_models_dialog(self) -> ModelsDialog:
        if self.models_dialog is None:
            self.models_dialog = ModelsDialog(self, settings=self.settings, workers=self.workers,
                                              active_path=self._active_model_path, document=self.document)
            self.models_dialog.activateRequested.connect(self._load_model)
        self.models_dialog.refresh()
        return self._show(self.models_dialog)

    # ---- editing, view and playback helpers ------------------------------------------------
    def _cursor_s(self) -> float:
        return self.player.position_s() if self.player.available else self._cursor

    _cursor = 0.0

    def _go_to(self, time_s: float) -> None:
        self._cursor = min(max(time_s, 0.0), self.document.duration_s)
        self.spectrogram.set_cursor(self._cursor)
        start, end = self.spectrogram.visible_range()
        if not start <= self._cursor <= end:
            width = end - start
            self.spectrogram.zoom_to(self._cursor - width / 2, self._cursor + width / 2)

    def split_at_cursor(self) -> None:
        if not self.document.split_region(self._cursor):
            self.statusBar().showMessage("no region under the cursor to split", 4000)

    def merge_with_next(self) -> None:
        index = self.spectrogram.selected_region()
        if index is not None and index + 1 < len(self.document.annotations):
            self.document.merge_regions(index, index + 1)

    def zoom_to_selection(self) -> None:
        span = self.spectrogram.selection()
        if span:
            self.spectrogram.zoom_to(*span)

    def toggle_play(self) -> None:
        self.player.toggle() if self.player.available else None

    def play_selection(self, loop: bool) -> None:
        span = self.spectrogram.selection()
        if span and self.player.available:
            self.player.play_range(span[0], span[1], loop=loop)

    def _set_colormap(self, name: str) -> None:
        self.spectrogram.set_colormap(name)
        self.augment_preview.set_colormap(name)
        prefs.set_colormap(self.settings, name)

    def _show_position(self, time_s: float, freq_hz: float) -> None:
        if math.isnan(time_s):
            self.status_position.setText("")
            return
        label = "voice" if self.document.region_at(time_s) is not None else "no voice"
        text = self.document.label_text_at(time_s)
        label += f" ({text})" if text and text.lower() != "sing" else ""
        text = f"{time_s:8.3f} s   {freq_hz:7.0f} Hz   ground truth: {label}"
        if self.document.smoothed is not None:
            frame = min(int(time_s * self.document.frames_per_second), len(self.document.smoothed) - 1)
            text += f"   p(voice) {self.document.smoothed[max(frame, 0)]:.2f}"
        self.status_position.setText(text)

    def show_shortcuts(self) -> None:
        ShortcutsDialog(list(self.acts.actions.values()), self).exec()

    def _update_title(self) -> None:
        name = self.document.audio_path.name if self.document.audio_path else "no file"
        self.setWindowTitle(f"{name}[*] — svgui")
        self.setWindowModified(self.document.is_dirty)

    # ---- drag and drop: audio files open, label files import onto the open file ---------------
    def dragEnterEvent(self, event) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        self.open_paths(paths)
        event.acceptProposedAction()

    def open_paths(self, paths: list[Path]) -> None:
        """Folders go to the file panel, the first audio file opens, a label file is imported."""
        from engine.audio import is_audio_path
        for path in paths:
            if path.is_dir():
                self.open_folder(path)
        audio = [p for p in paths if p.is_file() and is_audio_path(p)]
        labels = [p for p in paths if p.suffix.lower() in (".lab", ".txt")]
        if audio:
            self.open_file(audio[0])
        elif labels and self.document.is_open:
            self._load_labels(labels[0])

    # ---- closing ------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        training = self.training_dialog
        training = training if training is not None and training.is_running else None
        if training is not None and not ask_stop_training(self, training.progress_summary()):
            event.ignore()
            return
        if not self._confirm_discard():
            event.ignore()
            return
        self.player.stop()
        # Training stops between updates, and a validation in progress is not interrupted: wait for it.
        self.workers.stop_all(timeout_ms=300_000 if training is not None else 10_000)
        prefs.save_window_state(self.settings, self)
        self.settings.sync()
        event.accept()
