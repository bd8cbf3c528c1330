"""Model ▸ Improve Model with My Annotations…: fine-tune the active model on the files the user corrected.

The files of the open folder marked edited or reviewed (``engine.annotation_state``) are split,
seeded, into fine-tuning and held-out files; the work (``svgui.improve_jobs.run_improve``) runs in
a worker with the training window's progress view. At the end a table compares the parent and the
new model on the held-out files; "Use the Improved Model" makes it active (which re-predicts the
open file).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer, Signal, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.checkpoint import read_header
from engine.datasets import split_tracks
from engine.errors import EngineError
from engine.evaluate import format_percent
from engine.finetune import DEFAULT_TUNE, FINETUNE_UPDATES, MIN_FINETUNE_FILES, check_finetune_count, finetune_config
from svgui import settings as prefs
from svgui.dialogs.messages import show_error
from svgui.improve_jobs import (
    HOLDOUT_FRACTION,
    MIN_THRESHOLD_FILES,
    ImproveRequest,
    ImproveResult,
    corrected_files,
    default_output,
    verdict,
)
from svgui.model_jobs import Loading, LogLine, TrainingSteps, readable_training_error
from svgui.widgets.tables import make_read_only
from svgui.widgets.training_device import format_duration
from svgui.widgets.training_progress import REFRESH_MS, TrainingProgressView
from svgui.workers import Worker, WorkerRegistry

RESULT_COLUMNS = ("Held-out file", "Error before", "Error after", "Edits/min before", "Edits/min after")


def _edits(value: float) -> str:
    return "–" if value != value else f"{value:.1f}"


class ImproveDialog(QDialog):
    """What will be fine-tuned on what, the run's progress, then the before/after table."""

    modelTrained = Signal(object)       # Path of the new model
    useModelRequested = Signal(object)  # Path: make it active (re-predicts the open file)

    def __init__(self, parent: QWidget | None = None, *, workers: WorkerRegistry | None = None,
                 listed_files: Callable[[], list[Path]] = lambda: [],
                 folder: Callable[[], Path | None] = lambda: None,
                 model_path: Callable[[], Path | None] = lambda: None,
                 settings: QSettings | None = None, device: str = "cpu"):
        super().__init__(parent)
        self.setWindowTitle("Improve Model with My Annotations — svgui")
        self.setModal(False)
        self._workers = workers or WorkerRegistry(self)
        self._listed, self._folder, self._model_path = listed_files, folder, model_path
        self._settings, self._device = settings, device
        self._worker: Worker | None = None
        self.files: list[Path] = []
        self.result: ImproveResult | None = None
        self.verdict = ""   # after a run: better, worse, mixed or same (svgui.improve_jobs.verdict)

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.updates = QSpinBox(minimum=1, maximum=100_000, singleStep=100, value=FINETUNE_UPDATES)
        self.updates.setToolTip("Weight updates of the fine-tuning (the default is a quarter of the bundled "
                                "model's schedule)")
        self.holdout = QDoubleSpinBox(minimum=0.05, maximum=0.9, singleStep=0.05, decimals=2, value=HOLDOUT_FRACTION)
        self.holdout.setToolTip("Share of the corrected files kept out of the fine-tuning to compare the models on "
                                "(at least one file)")
        self.seed = QSpinBox(minimum=0, maximum=2**31 - 1, value=0)
        self.seed.setToolTip("Which files are held out, the batches and the augmentation draws")
        self.choose_threshold = QCheckBox("Choose the threshold on the held-out files")
        self.choose_threshold.setToolTip(
            f"With {MIN_THRESHOLD_FILES} or more held-out files, pick the new model's threshold on them instead of "
            "keeping the model's; each file's figure in the table then uses the threshold chosen on the others. "
            "Off by default: on the 7-second musdb7 clips it helped once and hurt once")
        self.choose_threshold.toggled.connect(self._update_summary)
        self.out_edit = QLineEdit()
        self.out_edit.setToolTip("The new model file (an existing file is never replaced)")
        for box in (self.holdout, self.seed, self.updates):
            box.valueChanged.connect(self._update_summary)
        form = QFormLayout()
        form.addRow("Fine-tuning updates:", self.updates)
        form.addRow("Hold out:", self.holdout)
        form.addRow("Seed:", self.seed)
        form.addRow("", self.choose_threshold)
        form.addRow("New model file:", self.out_edit)

        self.view = TrainingProgressView()
        self.view.status.setText("Press Improve to start.")
        # Room for the result table in a 1280 x 800 window: a shorter log, and the plots give way.
        self.view.log.setMinimumHeight(60)
        self.view.log.setMaximumHeight(130)
        self.view.plots.canvas.setMinimumHeight(200)
        # No validation curve here (the held-out files are compared at the end): loss and rate only.
        plots = self.view.plots
        plots.canvas.removeItem(plots.valid_plot)
        plots.rate_plot.getAxis("bottom").setStyle(showValues=True)
        plots.rate_plot.getAxis("bottom").setHeight(None)
        plots.rate_plot.setLabel("bottom", "updates")
        self.view.hint.setText("The main window stays usable meanwhile; closing this window keeps the run going "
                               "(Model ▸ Improve Model with My Annotations… shows it again).")
        self.table = QTableWidget(0, len(RESULT_COLUMNS))
        self.table.setHorizontalHeaderLabels(RESULT_COLUMNS)
        make_read_only(self.table)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(RESULT_COLUMNS)):
            self.table.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip("The held-out files took no part in the fine-tuning; from two of them on they choose "
                              "the new model's threshold, and each file's figure for it uses the threshold chosen "
                              "on the other held-out files. Error is the share of frames wrong after smoothing; "
                              "edits are the regions to insert or delete and boundaries to move by more than 50 ms, "
                              "per minute of audio")
        self.table.setMinimumHeight(110)
        self.table.hide()

        self.start_button = QPushButton("Improve")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the current update; a checkpoint is kept beside the new model file")
        self.use_button = QPushButton("Use the Improved Model")
        self.use_button.setToolTip("Make the new model the active one and predict the open file with it")
        self.close_button = QPushButton("Close")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.start_button, self.cancel_button, self.use_button, self.close_button):
            buttons.addWidget(button)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button.clicked.connect(self._use_model)
        self.close_button.clicked.connect(self.close)

        top = QHBoxLayout()
        top.addWidget(self.summary, 3)
        top.addLayout(form, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.view, 3)
        layout.addWidget(self.table, 2)
        layout.addLayout(buttons)
        self._timer = QTimer(self, interval=REFRESH_MS)
        self._timer.timeout.connect(lambda: self.view.refresh())
        self._set_running(False)
        self.resize(1100, 760)

    # ---- what will run ----------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def refresh(self) -> None:
        """Re-read the folder's corrected files and the active model (on show, when idle)."""
        if self.is_running:
            return
        self.files = corrected_files(self._listed())
        parent, folder = self._model_path(), self._folder()
        if parent is not None and (not self.out_edit.text() or Path(self.out_edit.text()).exists()):
            where = Path(prefs.training_folder(self._settings)) if self._settings and prefs.training_folder(
                self._settings) else (folder or Path.home())
            try:
                self.out_edit.setText(str(default_output(parent, where)))
            except EngineError:
                self.out_edit.setText("")
        self._update_summary()

    def _update_summary(self) -> None:
        parent, folder = self._model_path(), self._folder()
        if parent is None:
            self.summary.setText("No active model: load one first (Model ▸ Load Model…).")
            self.start_button.setEnabled(False)
            return
        try:
            name = (read_header(parent).get("metadata") or {}).get("name") or parent.stem
        except EngineError:
            name = parent.stem
        where = f"in {folder}" if folder else "(no folder open: File ▸ Open Folder…)"
        lines = [f"<b>Model:</b> {name} <span style='color:#666'>({parent.name})</span>",
                 f"<b>Your corrected files</b> {where}: {len(self.files)} marked edited or reviewed"]
        if len(self.files) >= MIN_FINETUNE_FILES:
            tune, held = split_tracks([_Named(p) for p in self.files], valid_fraction=self.holdout.value(),
                                      seed=self.seed.value())
            config = finetune_config(parent, updates=self.updates.value())
            lines.append(f"fine-tuning on {len(tune)}, comparing the models on {len(held)} held out: "
                         f"{', '.join(t.name for t in held)}")
            if not self.choose_threshold.isChecked():
                threshold = "the new model keeps the model's threshold"
            elif len(held) >= MIN_THRESHOLD_FILES:
                threshold = f"the new model's threshold is chosen on the {len(held)} held-out files"
            else:
                threshold = (f"the new model keeps the model's threshold (choosing one needs {MIN_THRESHOLD_FILES} "
                             "held-out files)")
            lines.append(f"{config.updates:,} updates from learning rate {config.learning_rate:g} (0.1 × the "
                         f"model's), {DEFAULT_TUNE.describe()}; {threshold}")
        else:
            lines.append(f"<span style='color:#a00'>Fine-tuning needs at least {MIN_FINETUNE_FILES} corrected files "
                         "with labels: correct and save the annotations of more files first.</span>")
        self.summary.setText("<br>".join(lines))
        if self.result is None:
            self.view.bar.setRange(0, self.updates.value())
            self.view.bar.setFormat(f"0 / {self.updates.value():,} updates")
        self.start_button.setEnabled(not self.is_running)

    def request(self) -> ImproveRequest:
        parent = self._model_path()
        if parent is None:
            raise EngineError("no active model to improve: load one first")
        if not self.out_edit.text().strip():
            raise EngineError("choose a file name for the new model")
        return ImproveRequest(Path(parent), tuple(self.files), Path(self.out_edit.text().strip()),
                              holdout_fraction=self.holdout.value(), seed=self.seed.value(),
                              updates=self.updates.value(), device=self._device,
                              choose_threshold=self.choose_threshold.isChecked())

    # ---- running -----------------------------------------------------------------------------------
    def start(self) -> bool:
        if self.is_running:
            return False
        self.refresh()
        try:
            check_finetune_count([p.name for p in self.files])
            request = self.request()
        except EngineError as exc:
            show_error(self, "Cannot improve the model", exc)
            return False
        from svgui.improve_jobs import run_improve

        self._request = request
        self.result = None
        self.table.hide()
        self.view.begin(request.updates, resumed_at=None)
        self.view.status.setText("Reading the corrected files…")
        worker = Worker(run_improve, request)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._worker = worker
        self._set_running(True)
        self._workers.start(worker)
        self._timer.start()
        return True

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.view.status.setText("Cancelling: saving a checkpoint…")

    @Slot(object)
    def _on_progress(self, item) -> None:
        if isinstance(item, TrainingSteps):
            for record in item.records:
                # The last record's figures are the fine-tuning files' at the parent's threshold, not a
                # validation: the comparison is the table on the held-out files.
                self.view.add(dataclasses.replace(record, validation=None) if record.finished else record)
            self.view.status.setText(f"Fine-tuning: update {item.last.update:,} of {item.last.total_updates:,}")
        elif isinstance(item, Loading):
            self.view.status.setText(f"Reading spectrograms: {item.done} of {item.total} files ({item.name})")
        elif isinstance(item, LogLine):
            self.view.log_line(item.text)

    @Slot(object)
    def _on_finished(self, result: ImproveResult) -> None:
        self._finish()
        self.result = result
        self._show_table(result)
        last = result.last
        before, after = result.pooled("parent"), result.pooled("child")
        kind, sentence = verdict(result)
        colour = {"better": "#070", "worse": "#a00"}.get(kind, "#850")
        self.view.show_result(
            f"<b>Finished</b>: {last.update:,} updates in {format_duration(last.elapsed_s)}; new model "
            f"<code>{result.out_path}</code><br>On the {len(result.rows)} held-out file(s): error "
            f"{format_percent(before[0].error)} → {format_percent(after[0].error)}, edits per minute "
            f"{_edits(before[1])} → {_edits(after[1])}<br><b style='color:{colour}'>{sentence}</b>")
        self.verdict = kind
        self.view.log_line(f"finished: {result.out_path}")
        self.view.status.setText("Finished. Press “Use the Improved Model” to make it the active model."
                                 if kind == "better" else f"Finished. {result.parent_name} stays the active model.")
        self.use_button.setVisible(True)
        self.use_button.setEnabled(True)
        # Enter (the default button) must not make a model active that the table says is no better
        self.use_button.setDefault(kind == "better")
        self.use_button.setText("Use the Improved Model" if kind == "better" else "Use It Anyway")
        if self._settings is not None:
            prefs.set_training_folder(self._settings, result.out_path.parent)
        self.modelTrained.emit(result.out_path)

    @Slot(object)
    def _on_failed(self, exc) -> None:
        self._finish()
        request = self._request
        text = readable_training_error(exc, device=request.device,
                                       checkpoint=request.out_path.with_name(
                                           f"{request.out_path.stem}.checkpoint{request.out_path.suffix}"))
        self.view.log_line(f"failed: {text}")
        self.view.status.setText(f"Failed. {text.splitlines()[0]}")
        self.show()
        show_error(self, "Improving the model failed", exc if not isinstance(exc, EngineError) else text)

    @Slot()
    def _on_cancelled(self) -> None:
        self._finish()
        self.view.log_line("cancelled")
        self.view.status.setText("Cancelled. The active model is unchanged.")

    def _finish(self) -> None:
        self._worker = None
        self._timer.stop()
        self.view.refresh(force=True)
        self._set_running(False)

    def _show_table(self, result: ImproveResult) -> None:
        rows = list(result.rows)
        self.table.setRowCount(len(rows) + 1)
        for row, r in enumerate(rows):
            cells = (r.name, format_percent(r.parent.counts.error), format_percent(r.child.counts.error),
                     _edits(r.parent.edits.per_minute), _edits(r.child.edits.per_minute))
            self._set_row(row, cells)
        before, after = result.pooled("parent"), result.pooled("child")
        self._set_row(len(rows), (f"All {len(rows)} held-out file(s)", format_percent(before[0].error),
                                  format_percent(after[0].error), _edits(before[1]), _edits(after[1])), bold=True)
        self.table.setHorizontalHeaderLabels([RESULT_COLUMNS[0], f"Error: {result.parent_name}",
                                              f"Error: {result.child_name}", f"Edits/min: {result.parent_name}",
                                              f"Edits/min: {result.child_name}"])
        self.table.show()

    def _set_row(self, row: int, cells, *, bold: bool = False) -> None:
        font = QFont()
        font.setBold(bold)
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setFont(font)
            self.table.setItem(row, column, item)

    def _use_model(self) -> None:
        if self.result is not None:
            self.useModelRequested.emit(self.result.out_path)
            self.use_button.setEnabled(False)
            self.use_button.setText("Active Model ✓")

    def _set_running(self, running: bool) -> None:
        for widget in (self.updates, self.holdout, self.seed, self.choose_threshold, self.out_edit):
            widget.setEnabled(not running)
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        finished = not running and self.result is not None
        self.use_button.setVisible(finished)
        self.use_button.setText("Use the Improved Model")

    def showEvent(self, event) -> None:
        self.refresh()
        super().showEvent(event)


class _Named:
    """A file name for ``split_tracks`` (which sorts by name and path): the same draw as the job's."""

    def __init__(self, path: Path):
        self.name, self.audio_path = path.stem, path
