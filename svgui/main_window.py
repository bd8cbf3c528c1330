"""The main window: composes the views, docks, menus and controllers around one Document.

Menus come from the action table (``svgui.actions``), files from ``FileController``, models and
predictions from ``PredictionController``; what is left here is the layout, the tool windows,
the editing, view and playback commands of the menus, the status bar, drag and drop and closing.
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QSplitter

from engine.resources import bundled_model_path
from svgui import settings as prefs
from svgui.actions import ActionBuilder, menu_table
from svgui.dialogs.batch_predict_dialog import BatchPredictDialog
from svgui.dialogs.evaluate_dialog import EvaluateDialog
from svgui.dialogs.improve_dialog import ImproveDialog
from svgui.dialogs.models_dialog import ModelsDialog
from svgui.dialogs.shortcuts_dialog import ShortcutsDialog
from svgui.dialogs.training_dialog import TrainingDialog, ask_stop_training
from svgui.document import Document
from svgui.file_controller import FileController
from svgui.playback import Player
from svgui.prediction_controller import PredictionController
from svgui.review_controller import ReviewController
from svgui.widgets.augment_preview import AugmentPreviewPanel
from svgui.widgets.file_panel import FilePanel
from svgui.widgets.fit_scroll_area import FitScrollArea
from svgui.widgets.icons import get_icon
from svgui.widgets.metrics_panel import MetricsPanel
from svgui.widgets.models_panel import add_user_model, known_models
from svgui.widgets.precision_combo import available_precisions
from svgui.widgets.probability_view import ProbabilityView
from svgui.widgets.review_panel import ReviewPanel
from svgui.widgets.spectrogram_view import SpectrogramView
from svgui.widgets.threshold_box import ThresholdBox
from svgui.widgets.waveform_view import WaveformView
from svgui.workers import WorkerRegistry

# The main views never get smaller than this (px): the spectrogram's lane labels and Hz ticks, and the
# curve's 0 / 0.5 / 1, stay readable; a tool window that does not fit below them goes beside them.
MIN_VIEW_HEIGHT_PX = {"waveform": 50, "spectrogram": 340, "probability": 140}
REVIEW_DOCK_WIDTH_PX = 290  # the review list's five columns without eliding "disagreement"
FILES_DOCK_WIDTH_PX = 320   # names, labels and states ('pre-annotated · 3/12') side by side
SIDE_DOCK_WIDTH_PX = 500  # the augmentation preview beside the views, laid out top to bottom


class MainWindow(QMainWindow):
    """Spectrogram with layers, probability curve and waveform; file list and metrics in docks."""

    fileShown = Signal(object)        # Path, once spectrogram and annotations are on screen
    predictionsShown = Signal()       # once the probability curve and regions are on screen
    predictionFailed = Signal(str)    # the reason a prediction of the open file failed
    openFailed = Signal(str)          # the reason a file could not be opened
    busyChanged = Signal(bool)

    def __init__(self, settings: QSettings | None = None, *, model_path: Path | None = None):
        super().__init__()
        self.settings = settings or prefs.make_settings()
        self.workers = WorkerRegistry(self)
        self.document = Document(self)
        self.files = FileController(self, self.document, self.settings, self.workers)
        self.predictions = PredictionController(self, self.document, self.settings, self.workers)
        self.training_dialog: TrainingDialog | None = None  # non-modal tool windows, made on first use
        self.batch_dialog: BatchPredictDialog | None = None
        self.evaluate_dialog: EvaluateDialog | None = None
        self.models_dialog: ModelsDialog | None = None
        self.improve_dialog: ImproveDialog | None = None
        self.player = Player(self)
        self.review = ReviewController(self, self.document, position_s=lambda: self._cursor_s())

        self.waveform = WaveformView(self.document)
        self.spectrogram = SpectrogramView(self.document)
        self.probability = ProbabilityView(self.document)
        self.probability.plot.setXLink(self.spectrogram.plot)
        splitter = QSplitter(Qt.Orientation.Vertical)
        for widget, stretch in ((self.waveform, 1), (self.spectrogram, 6), (self.probability, 2)):
            splitter.addWidget(widget)
            splitter.setStretchFactor(splitter.count() - 1, stretch)
        for name, height_px in MIN_VIEW_HEIGHT_PX.items():
            getattr(self, name).setMinimumHeight(height_px)
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)
        self.file_panel = FilePanel()
        self.metrics = MetricsPanel(self.document)
        self._dock(self.file_panel, "Files", Qt.DockWidgetArea.LeftDockWidgetArea)
        self.metrics_dock = self._dock(self.metrics, "Metrics", Qt.DockWidgetArea.RightDockWidgetArea)
        self.review_panel = ReviewPanel()
        self.review_dock = self._dock(self.review_panel, "Review spans", Qt.DockWidgetArea.RightDockWidgetArea)
        self.augment_preview = AugmentPreviewPanel(self.document, workers=self.workers,
                                                   model=lambda: self.predictions.model,
                                                   colormap=prefs.colormap(self.settings))
        # In a scroll area: a dock squeezed below its contents' minimum scrolls instead of growing the window.
        self._augment_scroll = FitScrollArea(self.augment_preview)
        self.augment_dock = self._dock(self._augment_scroll, "Augmentation preview",
                                       Qt.DockWidgetArea.BottomDockWidgetArea)
        self.augment_dock.hide()
        self._augment_moved_aside = False
        self.status_position = QLabel()
        self.status_task = QLabel()
        self.status_tool = QLabel()
        self.status_tool.setToolTip("The active editing tool (keys 1–4, the Tools menu or the toolbar)")
        self.statusBar().addWidget(self.status_position, 1)
        self.statusBar().addPermanentWidget(self.status_task)
        self.statusBar().addPermanentWidget(self.status_tool)

        checked = {f"cmap_{prefs.colormap(self.settings)}": True, f"precision_{prefs.precision(self.settings)}": True}
        self.acts = ActionBuilder(self, provide=self._provided_action, checked=checked,
                                  unavailable={"playback": self.player.unavailable_reason
                                               if not self.player.available else ""})
        self.acts.build(menu_table(available_precisions()))
        self.threshold_box = ThresholdBox(self.document)
        self.acts.toolbars["Model"].addWidget(self.threshold_box)
        self.files.set_recent_menu(self.acts.menus["recent"])
        self.review_panel.set_mark_action(self.acts["review_mark"])
        self._show_tool(self.spectrogram.tool())
        self._connect()
        self.setAcceptDrops(True)
        self.resize(1280, 800)
        # the metrics need a few lines, the review list all it can get (a saved layout wins)
        self.resizeDocks([self.metrics_dock, self.review_dock], [230, 470], Qt.Orientation.Vertical)
        self.resizeDocks([self.file_panel.parentWidget(), self.review_dock], [FILES_DOCK_WIDTH_PX, REVIEW_DOCK_WIDTH_PX],
                         Qt.Orientation.Horizontal)
        prefs.restore_window_state(self.settings, self)
        self._orient_augment_preview()
        self.spectrogram.set_colormap(prefs.colormap(self.settings))
        self.predictions.load_model(model_path or prefs.active_model_path(self.settings) or bundled_model_path(),
                                    quiet=True)
        self._update_title()

    # ---- construction ---------------------------------------------------------------------
    def _dock(self, widget, title: str, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _provided_action(self, name: str) -> QAction:
        """The actions Qt makes for us; the action table gives them their keys."""
        stack = self.document.undo_stack
        return {"undo": lambda: stack.createUndoAction(self, "&Undo"),
                "redo": lambda: stack.createRedoAction(self, "&Redo"),
                "augment_preview": self.augment_dock.toggleViewAction,
                "review_panel": self.review_dock.toggleViewAction}[name]()

    def _connect(self) -> None:
        d, files, predictions = self.document, self.files, self.predictions
        d.dirtyChanged.connect(lambda _: self._update_title())
        d.loaded.connect(self._update_title)
        files.opened.connect(self._file_opened)
        files.openFailed.connect(self.openFailed)
        files.folderOpened.connect(self.file_panel.set_folder)
        predictions.predictionsShown.connect(self.predictionsShown)
        predictions.predictionFailed.connect(self.predictionFailed)
        predictions.partialPredictions.connect(self.probability.show_partial)
        predictions.partialPredictions.connect(self.metrics.show_partial)
        for controller in (files, predictions):
            controller.busyChanged.connect(self.busyChanged)
            controller.taskText.connect(self.status_task.setText)
            controller.message.connect(self.statusBar().showMessage)
        self.spectrogram.hovered.connect(self._show_position)
        self.spectrogram.timeClicked.connect(self.go_to)
        self.spectrogram.timeClicked.connect(self.augment_preview.set_time)
        self.spectrogram.visibleRangeChanged.connect(self.waveform.set_visible_range)
        self.waveform.rangeRequested.connect(self.spectrogram.zoom_to)
        self.file_panel.fileActivated.connect(self.open_file)
        self.augment_preview.settingsForTraining.connect(lambda config: self.show_training_dialog(augment=config))
        self.player.positionChanged.connect(self.spectrogram.set_cursor)
        self.player.error.connect(lambda text: self.statusBar().showMessage(text, 5000))
        review = self.review
        review.spansChanged.connect(self._show_review_spans)
        review.currentChanged.connect(self.review_panel.set_current)
        review.spanChosen.connect(self.show_span)
        review.stateChanged.connect(self.file_panel.refresh_state)
        review.message.connect(self.statusBar().showMessage)
        self.review_panel.spanActivated.connect(review.choose)
        self.player.stateChanged.connect(self._show_playing)
        self.spectrogram.toolChanged.connect(self._show_tool)
        self.augment_dock.toggleViewAction().triggered.connect(self._place_augment_dock)
        self.augment_dock.dockLocationChanged.connect(self._orient_augment_preview)
        self.augment_dock.topLevelChanged.connect(self._orient_augment_preview)

    # ---- the augmentation preview's dock: below the views when there is room, else beside them --------
    def _bottom_room_px(self) -> int:
        """Height the preview's dock gets below the views before they reach their minimum (whether or not
        it is there now: Qt has already laid the window out for it when its action fires)."""
        central, bottom = self.centralWidget(), Qt.DockWidgetArea.BottomDockWidgetArea
        separator_px = self.style().pixelMetric(self.style().PixelMetric.PM_DockWidgetSeparatorExtent)
        column_px = self.statusBar().geometry().top() - central.geometry().top()  # views + bottom docks
        others_px = sum(d.height() + separator_px for d in self.findChildren(QDockWidget)
                        if d is not self.augment_dock and d.isVisible() and not d.isFloating()
                        and self.dockWidgetArea(d) == bottom)
        return column_px - central.minimumSizeHint().height() - separator_px - others_px

    def _place_augment_dock(self, shown: bool) -> None:
        """On opening: a preview that would squash the views goes beside them, a tab of the tallest side dock."""
        dock = self.augment_dock
        if not shown or dock.isFloating():
            return
        area = self.dockWidgetArea(dock)
        self.augment_preview.set_orientation(Qt.Orientation.Horizontal)
        title_px = dock.minimumSizeHint().height() - self._augment_scroll.minimumSizeHint().height()
        fits_below = self._bottom_room_px() >= self.augment_preview.minimumSizeHint().height() + title_px
        if area == Qt.DockWidgetArea.BottomDockWidgetArea and not fits_below:
            sides = (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea)
            beside = [d for d in self.findChildren(QDockWidget) if d is not dock and d.isVisible()
                      and not d.isFloating() and self.dockWidgetArea(d) in sides]
            tallest = max(beside, key=lambda d: d.height(), default=None)  # the preview needs the height
            self.addDockWidget(self.dockWidgetArea(tallest) if tallest else sides[1], dock)
            if tallest is not None:
                self.tabifyDockWidget(tallest, dock)
            self._augment_moved_aside = True
            dock.show()
            dock.raise_()
            QTimer.singleShot(0, self._size_side_dock)
        elif self._augment_moved_aside and fits_below:  # moved aside by us earlier; now the window is taller
            self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
            self._augment_moved_aside = False
            dock.show()
        if self.dockWidgetArea(dock) == Qt.DockWidgetArea.BottomDockWidgetArea and fits_below:
            # its whole minimum, and up to 40 % of the column when there is more room
            wanted_px = self.augment_preview.minimumSizeHint().height() + title_px
            column_px = self._bottom_room_px() + self.centralWidget().minimumSizeHint().height()
            height_px = min(max(wanted_px, int(0.4 * column_px)), self._bottom_room_px())
            QTimer.singleShot(0, lambda: self.resizeDocks([dock], [height_px], Qt.Orientation.Vertical))
        self._orient_augment_preview()

    def _size_side_dock(self) -> None:
        """The preview beside the views: its width, and all the height its tab group can take."""
        self.resizeDocks([self.augment_dock], [SIDE_DOCK_WIDTH_PX], Qt.Orientation.Horizontal)
        self.resizeDocks([self.augment_dock], [self.height()], Qt.Orientation.Vertical)

    def _orient_augment_preview(self, *_) -> None:
        """Controls beside the pictures in a wide dock (bottom, floating), above them in a tall one."""
        dock = self.augment_dock
        side = not dock.isFloating() and self.dockWidgetArea(dock) in (Qt.DockWidgetArea.LeftDockWidgetArea,
                                                                       Qt.DockWidgetArea.RightDockWidgetArea)
        self.augment_preview.set_orientation(Qt.Orientation.Vertical if side else Qt.Orientation.Horizontal)

    # ---- the active tool and playback state, shown however they change ---------------------------------
    def _show_tool(self, tool: str) -> None:
        action = self.acts[f"tool_{tool}"]
        action.setChecked(True)  # a no-op when the change came from this action
        self.status_tool.setText(f"Tool: {action.iconText()}")

    def _show_playing(self, playing: bool) -> None:
        self.acts["play"].setIcon(get_icon("SP_MediaPause" if playing else "SP_MediaPlay"))

    # ---- what scripts and the app call ----------------------------------------------------------
    @property
    def model(self):
        return self.predictions.model

    def open_file(self, path: Path) -> None:
        self.files.open_file(path)

    def open_folder(self, folder: Path) -> None:
        self.files.open_folder(folder)

    def open_paths(self, paths: list[Path]) -> None:
        self.files.open_paths(paths)

    def save(self) -> bool:
        return self.files.save()

    def _file_opened(self, path: Path) -> None:
        self.file_panel.mark_current(path)
        self.player.set_source(path)
        self.spectrogram.fit()
        self.fileShown.emit(path)
        self.predictions.predict()

    # ---- training, folder prediction, evaluation, models: non-modal windows, work in self.workers ----
    def _show(self, dialog):
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()
        return dialog

    def show_training_dialog(self, augment=None) -> TrainingDialog:
        if self.training_dialog is None:
            dlg = self.training_dialog = TrainingDialog(
                self, workers=self.workers, listed_files=self.file_panel.files,
                preview_config=self.augment_preview.config, settings=self.settings)
            dlg.modelTrained.connect(lambda path: add_user_model(self.settings, path))
            dlg.useModelRequested.connect(self.predictions.load_model)
            self.status_training = QLabel()
            self.statusBar().addPermanentWidget(self.status_training)
            dlg.statusText.connect(self.status_training.setText)
        if augment is not None:
            self.training_dialog.set_augment(augment, source="preview")
        return self._show(self.training_dialog)

    def show_batch_predict_dialog(self) -> BatchPredictDialog:
        if self.batch_dialog is None:
            self.batch_dialog = BatchPredictDialog(self, workers=self.workers,
                                                   model_path=lambda: self.predictions.model_path,
                                                   precision=prefs.precision(self.settings))
            if self.file_panel.folder is not None:
                self.batch_dialog.add_input(self.file_panel.folder)
        self.batch_dialog.refresh_model()
        return self._show(self.batch_dialog)

    def show_evaluate_dialog(self) -> EvaluateDialog:
        if self.evaluate_dialog is None:
            self.evaluate_dialog = EvaluateDialog(self, workers=self.workers,
                                                  active_path=lambda: self.predictions.model_path,
                                                  models=lambda: known_models(self.settings))
            self.evaluate_dialog.fileRequested.connect(self.open_file)
            if self.file_panel.folder is not None:
                self.evaluate_dialog.set_folder(self.file_panel.folder)
        self.evaluate_dialog.refresh_models()
        return self._show(self.evaluate_dialog)

    def show_improve_dialog(self) -> ImproveDialog:
        if self.improve_dialog is None:
            dlg = self.improve_dialog = ImproveDialog(
                self, workers=self.workers, listed_files=self.file_panel.files, folder=lambda: self.file_panel.folder,
                model_path=lambda: self.predictions.model_path, settings=self.settings)
            dlg.modelTrained.connect(lambda path: add_user_model(self.settings, path))
            dlg.useModelRequested.connect(self.predictions.load_model)  # loading re-predicts the open file
        return self._show(self.improve_dialog)

    def show_models_dialog(self) -> ModelsDialog:
        if self.models_dialog is None:
            self.models_dialog = ModelsDialog(self, settings=self.settings, workers=self.workers,
                                              active_path=lambda: self.predictions.model_path,
                                              document=self.document)
            self.models_dialog.activateRequested.connect(self.predictions.load_model)
        self.models_dialog.refresh()
        return self._show(self.models_dialog)

    def show_shortcuts(self) -> None:
        ShortcutsDialog(list(self.acts.actions.values()), self).exec()  # the table's actions, in menu order

    # ---- editing, view and playback commands --------------------------------------------------
    def _cursor_s(self) -> float:
        return self.player.position_s() if self.player.available else self._cursor

    _cursor = 0.0

    def go_to(self, time_s: float) -> None:
        self._cursor = min(max(time_s, 0.0), self.document.duration_s)
        self.spectrogram.set_cursor(self._cursor)
        start, end = self.spectrogram.visible_range()
        if not start <= self._cursor <= end:
            width = end - start
            self.spectrogram.zoom_to(self._cursor - width / 2, self._cursor + width / 2)

    def show_span(self, start_s: float, end_s: float) -> None:
        """Select [start_s, end_s), bring it into view (zoomed out to fit it, with context), and loop
        it if playback is on: a review span chosen with N or in the Review panel."""
        self.spectrogram.set_selection((start_s, end_s))
        view_start, view_end = self.spectrogram.visible_range()
        if not (view_start <= start_s and end_s <= view_end):
            width = max(view_end - view_start, 2 * (end_s - start_s))
            centre = (start_s + end_s) / 2
            self.spectrogram.zoom_to(centre - width / 2, centre + width / 2)
        self._cursor = start_s
        self.spectrogram.set_cursor(start_s)
        if self.player.available and self.player.is_playing:
            self.player.play_range(start_s, end_s, loop=True)

    def _show_review_spans(self) -> None:
        review = self.review
        if review.hint:
            self.review_panel.set_hint(review.hint)
        else:
            self.review_panel.set_spans(review.spans, review.done, duration_s=self.document.duration_s)
        self.review_panel.set_current(review.current)

    def go_to_end(self) -> None:
        self.go_to(self.document.duration_s)

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

    def set_colormap(self, name: str) -> None:
        self.spectrogram.set_colormap(name)
        self.augment_preview.set_colormap(name)
        prefs.set_colormap(self.settings, name)

    # ---- status bar and title -----------------------------------------------------------------
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

    def _update_title(self) -> None:
        name = self.document.audio_path.name if self.document.audio_path else "no file"
        self.setWindowTitle(f"{name}[*] — svgui")
        self.setWindowModified(self.document.is_dirty)

    # ---- drag and drop: audio files open, label files import onto the open file ---------------
    def dragEnterEvent(self, event) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        self.open_paths([Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()])
        event.acceptProposedAction()

    # ---- closing ------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        training = self.training_dialog
        training = training if training is not None and training.is_running else None
        if training is not None and not ask_stop_training(self, training.progress_summary()):
            event.ignore()
            return
        if not self.files.confirm_discard():
            event.ignore()
            return
        self.player.stop()
        # Training stops between updates, and a validation in progress is not interrupted: wait for it.
        self.workers.stop_all(timeout_ms=300_000 if training is not None else 10_000)
        prefs.save_window_state(self.settings, self)
        self.settings.sync()
        event.accept()
