"""Predict whole folders in the background and write one export per audio file.

The work is ``engine.batch_predict.predict_files`` (what ``svgui-engine predict`` runs) in a worker
thread with a private copy of the model: progress per file, Cancel between files, and a file that
cannot be read is listed with the reason while the others go on. A manifest
(``svgui-predictions.json``) describes the exports in every folder written to, merged with what it held.
Outputs are named song.pred.lab, song.pred.txt, ...: never a ground-truth label file's name. Before
starting, the window checks that every output folder can be written, and asks before replacing files
that no manifest records as predictions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.audio import AUDIO_EXTENSIONS
from engine.batch_predict import BatchDone, FileOutcome, find_audio_files, prepare_outputs
from engine.errors import EngineError
from engine.export import FORMATS, MANIFEST_NAME, prediction_suffix
from svgui.dialogs.export_dialog import FORMAT_NAMES
from svgui.dialogs.messages import ask_yes_no, show_error
from svgui.model_jobs import LogLine, run_batch_prediction
from svgui.widgets.precision_combo import PrecisionCombo
from svgui.widgets.tables import files_progress_bar, make_read_only
from svgui.workers import Worker, WorkerRegistry

ERROR_COLOR = QColor("#b00020")
MAX_FAILURES_LISTED = 8


class BatchPredictDialog(QDialog):
    """Inputs, format, destination, TTA; then a row per file as it is done."""

    batchFinished = Signal(object)  # BatchDone

    def __init__(self, parent: QWidget | None = None, *, workers: WorkerRegistry | None = None,
                 model_path: Callable[[], Path | None] = lambda: None, device: str | None = None,
                 precision: str = "auto"):
        super().__init__(parent)
        self.setWindowTitle("Predict Folders — svgui")
        self._workers = workers or WorkerRegistry(self)
        self._model_path = model_path
        self._device = device
        self._worker: Worker | None = None
        self.outcomes: list[FileOutcome] = []
        self.batch_done: BatchDone | None = None  # not "done": that is QDialog.done(), which close() calls
        self.summary_text = ""  # the summary as plain text

        self.model_label = QLabel()
        self.inputs = QListWidget()
        self.inputs.setMaximumHeight(90)
        self.inputs.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        add_folder = QPushButton("Add Folder…")
        add_folder.clicked.connect(self._add_folder_dialog)
        add_files = QPushButton("Add Files…")
        add_files.clicked.connect(self._add_files_dialog)
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: [self.inputs.takeItem(self.inputs.row(i)) for i in self.inputs.selectedItems()])
        input_buttons = QHBoxLayout()
        for button in (add_folder, add_files, remove):
            input_buttons.addWidget(button)
        input_buttons.addStretch(1)
        inputs = QWidget()
        inputs_layout = QVBoxLayout(inputs)
        inputs_layout.setContentsMargins(0, 0, 0, 0)
        inputs_layout.addWidget(self.inputs)
        inputs_layout.addLayout(input_buttons)

        self.format_combo = QComboBox()
        for key in FORMATS:
            self.format_combo.addItem(f"{FORMAT_NAMES.get(key, key)} ({prediction_suffix(key)})", key)
        self.format_combo.setCurrentIndex(self.format_combo.findData("lab"))
        self.beside_radio = QRadioButton("Beside each audio file")
        self.beside_radio.setChecked(True)
        self.folder_radio = QRadioButton("Into one folder:")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("output folder")
        self.out_edit.textEdited.connect(lambda _: self.folder_radio.setChecked(True))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._out_dialog)
        destination = QWidget()
        dest_layout = QHBoxLayout(destination)
        dest_layout.setContentsMargins(0, 0, 0, 0)
        dest_layout.addWidget(self.beside_radio)
        dest_layout.addWidget(self.folder_radio)
        dest_layout.addWidget(self.out_edit, 1)
        dest_layout.addWidget(browse)
        self.tta_check = QCheckBox("Test-time augmentation (average of 5 pitch shifts, about 5× slower)")
        self.precision_combo = PrecisionCombo(precision=precision)
        form = QFormLayout()
        form.addRow("Model", self.model_label)
        form.addRow("Audio", inputs)
        form.addRow("Format", self.format_combo)
        form.addRow("Write", destination)
        form.addRow("", self.tta_check)
        form.addRow("Precision", self.precision_combo)

        self.bar = files_progress_bar()
        self.status = QLabel("Add folders or files and press Start.")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["File", "Result", "Written to"])
        make_read_only(self.table)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.setColumnWidth(1, 300)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.hide()

        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after the file being predicted; the manifest lists the files done")
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Show Output Folder")
        self.open_button.clicked.connect(self._open_output)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        for button in (self.start_button, self.cancel_button, close):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)
        layout.addLayout(buttons)
        self._set_running(False)
        self.open_button.setEnabled(False)
        self.resize(900, 620)
        self.refresh_model()

    # ---- choices --------------------------------------------------------------------------------
    def refresh_model(self) -> None:
        path = self._model_path()
        self.model_label.setText(f"{Path(path).stem} (the active model: Model ▸ Models… to change it)" if path
                                 else "no model is active: load one first (Model ▸ Load Model…)")

    def add_input(self, path: str | os.PathLike) -> None:
        self.inputs.addItem(str(path))

    def input_paths(self) -> list[Path]:
        return [Path(self.inputs.item(i).text()) for i in range(self.inputs.count())]

    def set_format(self, fmt: str) -> None:
        self.format_combo.setCurrentIndex(self.format_combo.findData(fmt))

    def set_destination(self, folder: str | os.PathLike | None) -> None:
        """None: beside the audio files; else into ``folder``."""
        if folder is None:
            self.beside_radio.setChecked(True)
        else:
            self.out_edit.setText(str(folder))
            self.folder_radio.setChecked(True)

    def out_dir(self) -> Path | None:
        if self.beside_radio.isChecked():
            return None
        text = self.out_edit.text().strip()
        return Path(text).expanduser() if text else None

    # ---- running --------------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def start(self) -> bool:
        if self.is_running:
            return False
        self.refresh_model()
        model_path = self._model_path()
        problem = None
        if model_path is None:
            problem = "No model is active: load one first (Model ▸ Load Model…)."
        elif not self.input_paths():
            problem = "Add at least one folder or audio file."
        elif self.folder_radio.isChecked() and self.out_dir() is None:
            problem = "Choose the output folder, or write the exports beside the audio files."
        if problem:
            show_error(self, "Cannot start", problem)
            return False
        fmt = self.format_combo.currentData()
        try:  # before any decoding: the output folders can be written; which files are in the way
            files, _ = find_audio_files(self.input_paths())
            plan = prepare_outputs(files, fmt=fmt, out_dir=self.out_dir(), overwrite=True)
        except EngineError as exc:
            show_error(self, "Cannot start", exc)
            return False
        if plan.foreign and not ask_replace_files(self, plan.foreign):
            self.status.setText("Not started: nothing was replaced.")
            return False
        self.outcomes, self.batch_done = [], None
        self.table.setRowCount(0)
        self.summary.hide()
        self.bar.setRange(0, 0)  # busy until the files are listed
        worker = Worker(run_batch_prediction, Path(model_path), self.input_paths(), fmt=fmt, out_dir=self.out_dir(),
                        tta=self.tta_check.isChecked(), device=self._device, overwrite=bool(plan.foreign),
                        precision=self.precision_combo.precision())
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._worker = worker
        self._set_running(True)
        self.status.setText("Listing the audio files…")
        self._workers.start(worker)
        return True

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.status.setText("Cancelling after the current file…")

    @Slot(object)
    def _on_progress(self, item) -> None:
        if isinstance(item, LogLine):
            self.status.setText(item.text)
        elif isinstance(item, FileOutcome):
            self.outcomes.append(item)
            self.bar.setRange(0, item.total)
            self.bar.setValue(item.done)
            self._add_row(item)
            self.status.setText(f"{item.done} of {item.total} files: {item.source.name}")

    def _add_row(self, outcome: FileOutcome) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        name = QTableWidgetItem(outcome.source.name)
        name.setToolTip(str(outcome.source))
        if outcome.ok:
            result = QTableWidgetItem(f"{100 * outcome.voiced_fraction:.0f} % voice in {outcome.duration_s:.1f} s")
            written = QTableWidgetItem(str(outcome.output))
        else:
            reason = outcome.error.removeprefix(f"{outcome.source}: ")  # the row names the file already
            result = QTableWidgetItem(f"error: {reason}")
            result.setForeground(ERROR_COLOR)
            name.setForeground(ERROR_COLOR)
            written = QTableWidgetItem("")
        result.setToolTip(outcome.error or "")
        for column, item in enumerate((name, result, written)):
            self.table.setItem(row, column, item)
        self.table.scrollToBottom()

    @Slot(object)
    def _on_finished(self, done: BatchDone) -> None:
        self._worker = None
        self._set_running(False)
        self.batch_done = done
        self._summarize(done.outcomes, done.manifests)
        self.batchFinished.emit(done)

    @Slot(object)
    def _on_failed(self, exc) -> None:
        self._worker = None
        self._set_running(False)
        self.bar.setRange(0, 1)
        self.status.setText(f"Failed: {exc}")
        show_error(self, "Folder prediction failed", exc)

    @Slot()
    def _on_cancelled(self) -> None:
        self._worker = None
        self._set_running(False)
        self._summarize(tuple(self.outcomes), (), cancelled=True)

    def _summarize(self, outcomes, manifests, *, cancelled: bool = False) -> None:
        failures = [o for o in outcomes if not o.ok]
        total = outcomes[-1].total if outcomes else 0
        done = len(outcomes) - len(failures)
        if cancelled:
            head = f"Cancelled after {len(outcomes)} of {total} files: {done} predicted"
        else:
            head = f"{done} of {total} file(s) predicted"
        plain = [head + (f"; {len(failures)} failed:" if failures else ".")]
        failed = f"; <span style='color:#b00020'>{len(failures)} failed</span>:" if failures else "."
        html = [f"<b>{head}</b>{failed}"]
        for outcome in failures[:MAX_FAILURES_LISTED]:
            reason = outcome.error.removeprefix(f"{outcome.source}: ")
            plain.append(f"  • {outcome.source}: {reason}")
            html.append(f"&nbsp;&nbsp;• {_escape(outcome.source.name)}: {_escape(reason)}")
        extra = []
        if len(failures) > MAX_FAILURES_LISTED:
            extra.append(f"  … and {len(failures) - MAX_FAILURES_LISTED} more (see the table)")
        if manifests:
            extra.append("Manifest: " + ", ".join(str(m) for m in manifests))
        elif cancelled and outcomes:
            extra.append("The manifest lists the files done.")
        self.summary_text = "\n".join(plain + extra)
        self.summary.setText("<br>".join(html + [_escape(line) for line in extra]))
        self.summary.show()
        self.status.setText("Cancelled." if cancelled else "Done.")
        if not outcomes:
            self.bar.setRange(0, 1)
        self.open_button.setEnabled(any(o.ok for o in outcomes))

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def failures(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if not o.ok]

    # ---- small dialogs --------------------------------------------------------------------------
    def _add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of audio files")
        if folder:
            self.add_input(folder)

    def _add_files_dialog(self) -> None:
        pattern = "Audio files (" + " ".join(f"*{e}" for e in AUDIO_EXTENSIONS) + ")"
        paths, _ = QFileDialog.getOpenFileNames(self, "Audio files", "", pattern)
        for path in paths:
            self.add_input(path)

    def _out_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder")
        if folder:
            self.set_destination(folder)

    def _open_output(self) -> None:
        done = [o for o in self.outcomes if o.ok]
        if done:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(done[0].output.parent)))


def ask_replace_files(parent: QWidget | None, paths) -> bool:
    """Whether to replace files at the prediction names that no manifest records as ours; No is the default."""
    shown = [f"  • {p}" for p in paths[:MAX_FAILURES_LISTED]]
    if len(paths) > MAX_FAILURES_LISTED:
        shown.append(f"  … and {len(paths) - MAX_FAILURES_LISTED} more")
    text = f"{len(paths)} existing file(s) would be replaced by predictions:\n" + "\n".join(shown)
    informative = (f"They are not predictions recorded in {MANIFEST_NAME}: they may be your own files. "
                   "Replace them?")
    return ask_yes_no(parent, "replace_files", "Replace files?", text, informative, yes="Replace", no="Cancel",
                      default_answer=False, yes_is_default=False)


def _escape(text: str | None) -> str:
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
