"""Evaluate a model on a labelled folder: pooled figures and a sortable per-file table.

The work is ``engine.batch_predict.score_tracks`` in a worker thread (predict each file through the
spectrogram cache, then ``engine.evaluate.evaluate`` at the model's threshold), the same figures as
``svgui-engine evaluate``. Clicking a file asks the main window to open it, where the error lanes
show what went wrong.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal, Slot
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.batch_predict import ScoredSet, ScoreProgress
from engine.errors import EngineError
from engine.evaluate import Counts
from engine.stems import parse_levels_db
from svgui.dialogs.messages import show_error
from svgui.model_jobs import run_evaluation, same_file
from svgui.widgets.colormaps import light_legend
from svgui.widgets.tables import files_progress_bar, make_read_only
from svgui.workers import Worker, WorkerRegistry

VALUE_ROLE = Qt.ItemDataRole.UserRole + 1   # the number behind a cell (ratios in [0, 1], None if undefined)
PATH_ROLE = Qt.ItemDataRole.UserRole + 2    # the audio file of a row
RATIOS = (("Error", "error"), ("Recall", "recall"), ("Specificity", "specificity"), ("Precision", "precision"),
          ("F1", "f1"))
COLUMNS = ("File",) + tuple(title for title, _ in RATIOS) + ("Frames", "Voice (truth)")


def _defined(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f} %"


def pooled_text(evaluation, *, threshold_source: str = "the model's") -> str:
    p = evaluation.pooled
    return (f"<b>Pooled over {len(evaluation.per_file)} files</b> ({p.n_frames:,} frames) at threshold "
            f"{evaluation.threshold:.3g} ({threshold_source}): <b>error {_percent(_defined(p.error))}</b> · "
            f"recall {_percent(_defined(p.recall))} · specificity {_percent(_defined(p.specificity))} · "
            f"precision {_percent(_defined(p.precision))} · F1 {_percent(_defined(p.f1))}")


class NumericSortProxy(QSortFilterProxyModel):
    """Sorts by VALUE_ROLE; undefined values (a file without voice has no recall) sort first."""

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:
        a, b = left.data(VALUE_ROLE), right.data(VALUE_ROLE)
        if isinstance(a, str) or isinstance(b, str):
            return str(a).casefold() < str(b).casefold()
        if a is None:
            return b is not None
        if b is None:
            return False
        return a < b


class EvaluateDialog(QDialog):
    """Model, labelled folder, options; then figures."""

    fileRequested = Signal(object)   # Path of an audio file to open in the main window
    evaluated = Signal(object)       # ScoredSet

    def __init__(self, parent: QWidget | None = None, *, workers: WorkerRegistry | None = None,
                 models: Callable[[], list[tuple[str, Path]]] = lambda: [],
                 active_path: Callable[[], Path | None] = lambda: None, device: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("Evaluate a Model — svgui")
        self._workers = workers or WorkerRegistry(self)
        self._models = models
        self._active_path = active_path
        self._device = device
        self._worker: Worker | None = None
        self.result: ScoredSet | None = None
        self._last_request: tuple = (None, -math.inf)

        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(380)
        browse_model = QPushButton("Browse…")
        browse_model.clicked.connect(self._model_dialog)
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder of audio with .lab/.txt labels, or a Jamendo root (test split)")
        browse_folder = QPushButton("Browse…")
        browse_folder.clicked.connect(self._folder_dialog)
        self.tta_check = QCheckBox("Test-time augmentation (5 pitch shifts, about 5× slower)")
        self.collar_spin = QDoubleSpinBox(minimum=0.0, maximum=5.0, value=0.0, decimals=2, singleStep=0.05)
        self.collar_spin.setSuffix(" s")
        self.collar_spin.setToolTip("Frames this close to a ground-truth boundary are not scored")
        form = QFormLayout()
        form.addRow("Model", self._row(self.model_combo, browse_model))
        form.addRow("Labelled data", self._row(self.folder_edit, browse_folder))
        form.addRow("", self.tta_check)
        form.addRow("Boundary collar", self.collar_spin)
        self.gains_check = QCheckBox("Robustness to level: also at input gains (dB)")
        self.gains_check.setToolTip("Scale each file by these gains before the features and score it at the same "
                                    "threshold (chosen at 0 dB), as Schlüter & Lehner (ISMIR 2018) did")
        self.gains_edit = QLineEdit("-18,-12,-6,0,6")
        self.gains_edit.setToolTip("Comma-separated gains in dB, each within ±60 dB")
        form.addRow("", self._row(self.gains_check, self.gains_edit))

        self.bar = files_progress_bar()
        self.status = QLabel("Choose a labelled folder and press Evaluate.")
        self.status.setWordWrap(True)
        self.pooled = QLabel()
        self.pooled.setWordWrap(True)
        self.pooled.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pooled.setStyleSheet("QLabel { background: #f3f3f3; border: 1px solid #ccc; padding: 6px; }")
        self.pooled.hide()

        self.model = QStandardItemModel(0, len(COLUMNS), self)
        self.model.setHorizontalHeaderLabels(COLUMNS)
        self.proxy = NumericSortProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(1, Qt.SortOrder.DescendingOrder)  # worst files first
        make_read_only(self.table)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.clicked.connect(self._row_clicked)
        self.table.activated.connect(self._row_clicked)
        hint = QLabel("Click a file to open it in the main window: its error lanes show the false positives and "
                      "negatives of the active model. Click a column header to sort.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #666;")

        self.evaluate_button = QPushButton("Evaluate")
        self.evaluate_button.setDefault(True)
        self.evaluate_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.evaluate_button, self.cancel_button, close):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addWidget(self.pooled)
        self.gain_plot = pg.PlotWidget(background="w")
        self.gain_plot.setMinimumHeight(190)
        self.gain_plot.setMenuEnabled(False)
        self.gain_plot.setMouseEnabled(x=False, y=False)
        self.gain_plot.setLabel("bottom", "input gain (dB)")
        self.gain_plot.setLabel("left", "%")
        self.gain_plot.showGrid(x=True, y=True, alpha=0.2)
        self.gain_plot.hide()
        results = QHBoxLayout()
        results.addWidget(self.table, 3)
        results.addWidget(self.gain_plot, 2)
        layout.addLayout(results, 1)
        layout.addWidget(hint)
        layout.addLayout(buttons)
        self._set_running(False)
        self.refresh_models()
        self.resize(980, 640)

    @staticmethod
    def _row(*widgets) -> QWidget:
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        for i, widget in enumerate(widgets):
            layout.addWidget(widget, 1 if i == 0 else 0)
        return row

    # ---- choices --------------------------------------------------------------------------------
    def refresh_models(self) -> None:
        """Fill the model choice: the active model first, then the others."""
        current = self.model_combo.currentData()
        active = self._active_path()
        self.model_combo.clear()
        for name, path in self._models():
            suffix = " (active)" if same_file(path, active) else ""
            if suffix:
                self.model_combo.insertItem(0, f"{name}{suffix} — {path}", str(path))
            else:
                self.model_combo.addItem(f"{name} — {path}", str(path))
        if current is not None and self.model_combo.findData(current) >= 0:
            self.model_combo.setCurrentIndex(self.model_combo.findData(current))
        else:
            self.model_combo.setCurrentIndex(0)

    def set_model(self, path: str | os.PathLike) -> None:
        index = next((i for i in range(self.model_combo.count()) if same_file(self.model_combo.itemData(i), path)), -1)
        if index < 0:
            self.model_combo.addItem(f"{Path(path).stem} — {path}", str(path))
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)

    def set_folder(self, folder: str | os.PathLike) -> None:
        self.folder_edit.setText(str(folder))

    def _model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model to evaluate", "", "svgui models (*.safetensors)")
        if path:
            self.set_model(path)

    def _folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Labelled folder")
        if folder:
            self.set_folder(folder)

    # ---- running --------------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def start(self) -> bool:
        if self.is_running:
            return False
        model_path = self.model_combo.currentData()
        folder = self.folder_edit.text().strip()
        if not model_path:
            show_error(self, "Cannot evaluate", "Choose a model file.")
            return False
        if not folder:
            show_error(self, "Cannot evaluate", "Choose a folder of labelled audio files.")
            return False
        gains: tuple[float, ...] = ()
        if self.gains_check.isChecked():
            try:
                gains = parse_levels_db(self.gains_edit.text(), what="gains")
            except EngineError as exc:
                show_error(self, "Cannot evaluate", exc)
                return False
        self.model.removeRows(0, self.model.rowCount())
        self.pooled.hide()
        self.gain_plot.hide()
        self.result = None
        worker = Worker(run_evaluation, Path(model_path), Path(folder).expanduser(), tta=self.tta_check.isChecked(),
                        collar_s=self.collar_spin.value(), device=self._device, gains_db=gains)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._worker = worker
        self._set_running(True)
        self.status.setText(f"Reading and predicting the files of {folder}…")
        self._workers.start(worker)
        return True

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    @Slot(object)
    def _on_progress(self, item: ScoreProgress) -> None:
        self.bar.setRange(0, item.total)
        self.bar.setValue(item.done)
        self.status.setText(f"Predicted {item.done} of {item.total} files ({item.name})")

    @Slot(object)
    def _on_finished(self, result: ScoredSet) -> None:
        self._worker = None
        self._set_running(False)
        self.show_result(result)
        self.evaluated.emit(result)

    @Slot(object)
    def _on_failed(self, exc) -> None:
        self._worker = None
        self._set_running(False)
        self.status.setText(f"Evaluation failed: {exc}")
        show_error(self, "Evaluation failed", exc)

    @Slot()
    def _on_cancelled(self) -> None:
        self._worker = None
        self._set_running(False)
        self.status.setText("Cancelled.")

    def _set_running(self, running: bool) -> None:
        self.evaluate_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    # ---- the figures ----------------------------------------------------------------------------
    def show_result(self, result: ScoredSet) -> None:
        self.result = result
        evaluation = result.evaluation
        self.pooled.setText(pooled_text(evaluation) + (" · with test-time augmentation" if result.tta else ""))
        self.pooled.show()
        self.status.setText(f"{result.description}: {len(evaluation.per_file)} files.")
        self.table.setSortingEnabled(False)
        self.model.removeRows(0, self.model.rowCount())
        for track, file_result in zip(result.tracks, evaluation.per_file):
            self.model.appendRow(self._row_items(track.audio_path, file_result.name, file_result.counts))
        self.table.setSortingEnabled(True)
        self.show_gain_sweep(result.gain_sweep)

    def show_gain_sweep(self, sweep) -> None:
        """Error (and recall, specificity) against input gain; hidden without a sweep."""
        self.gain_plot.clear()
        if sweep is None:
            self.gain_plot.hide()
            return
        gains = [f.level_db for f in sweep.levels]
        legend = light_legend(self.gain_plot)
        for attr, colour, width in (("error", "#D55E00", 3), ("recall", "#0072B2", 1.5),
                                    ("specificity", "#009E73", 1.5)):
            values = [100 * v if (v := _defined(getattr(f.counts, attr))) is not None else math.nan
                      for f in sweep.levels]
            self.gain_plot.plot(gains, values, pen=pg.mkPen(colour, width=width), symbol="o", symbolSize=6,
                                symbolBrush=colour, symbolPen=None, name=attr)
        legend.setColumnCount(3)
        self.gain_plot.setTitle(f"spread {100 * sweep.spread:.1f} points (worst − best error), "
                                f"threshold {sweep.threshold:.3g} from 0 dB", size="9pt")
        self.gain_plot.setYRange(0, 118, padding=0)  # headroom above 100 % for the legend
        self.gain_plot.getAxis("bottom").setTicks([[(g, f"{g:+g}".replace("+0", "0")) for g in gains]])
        self.gain_plot.getAxis("left").setTicks([[(v, f"{v}") for v in range(0, 101, 20)]])
        self.gain_plot.show()

    @staticmethod
    def _row_items(path: Path, name: str, counts: Counts) -> list[QStandardItem]:
        name_item = QStandardItem(name)
        name_item.setData(name, VALUE_ROLE)
        name_item.setData(str(path), PATH_ROLE)
        name_item.setToolTip(str(path))
        items = [name_item]
        voice = counts.tp + counts.fn
        values = [_defined(getattr(counts, attr)) for _, attr in RATIOS]
        values += [counts.n_frames, voice / counts.n_frames if counts.n_frames else None]
        for column, value in enumerate(values, start=1):
            text = f"{value:,}" if column == len(RATIOS) + 1 else _percent(value)
            item = QStandardItem(text)
            item.setData(value, VALUE_ROLE)
            item.setData(str(path), PATH_ROLE)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            items.append(item)
        return items

    def table_rows(self) -> list[dict]:
        """The table as shown (sorted): {column title: VALUE_ROLE value, 'path': Path} per row."""
        rows = []
        for r in range(self.proxy.rowCount()):
            row = {title: self.proxy.index(r, c).data(VALUE_ROLE) for c, title in enumerate(COLUMNS)}
            row["path"] = Path(self.proxy.index(r, 0).data(PATH_ROLE))
            rows.append(row)
        return rows

    def _row_clicked(self, index: QModelIndex) -> None:
        path = index.data(PATH_ROLE)
        if not path:
            return
        now = time.monotonic()
        last_path, last_time = self._last_request
        if path == last_path and now - last_time < 1.0:
            return  # a double-click is a click and an activation: open the file once
        self._last_request = (path, now)
        self.fileRequested.emit(Path(path))
