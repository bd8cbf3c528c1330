"""Two models side by side: both probability curves on the open file, their figures on a folder, or
their error against input gain on a folder (robustness to level, issue 12).

The predictions and scores run in worker threads (``svgui.model_jobs.run_curve_comparison`` and
``run_folder_comparison``); the widget draws what comes back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.evaluate import count_errors
from engine.labels import intervals_to_targets
from svgui.document import Document
from svgui.model_jobs import (
    Comparison,
    Curves,
    GainComparison,
    ModelStep,
    run_curve_comparison,
    run_folder_comparison,
    run_gain_comparison,
    same_file,
)
from svgui.widgets.colormaps import LEFT_AXIS_WIDTH_PX, TRUTH_COLOR, light_legend, with_alpha
from svgui.widgets.region_layer import IntervalBand
from svgui.widgets.time_axis import TimeAxisItem
from svgui.workers import Worker, WorkerRegistry

COMPARE_COLORS = ("#D55E00", "#009E73")  # Okabe–Ito vermillion and bluish green


READY_TEXT = ("Compare the two models on the file open in the main window, on a labelled folder, or by their "
              "error against input gain on a labelled folder.")


def _percent(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f} %"


class ModelComparison(QGroupBox):
    """Two model choices, two buttons, a curve plot and a table of figures."""

    compared = Signal(object)  # Curves or Comparison, once drawn
    problem = Signal(str, object)  # (title, text or exception): the dialog holding it shows the message

    def __init__(self, parent: QWidget | None = None, *, workers: WorkerRegistry | None = None,
                 document: Document | None = None):
        super().__init__("Compare two models", parent)
        self._workers = workers or WorkerRegistry(self)
        self._document = document
        self._worker: Worker | None = None
        self.compare_a = QComboBox()
        self.compare_b = QComboBox()
        self.compare_file_button = QPushButton("On the Open File")
        self.compare_file_button.setToolTip("Both probability curves of the file open in the main window")
        self.compare_file_button.clicked.connect(self.compare_on_open_file)
        self.compare_folder_button = QPushButton("On a Folder…")
        self.compare_folder_button.setToolTip("Figures of both models on a labelled folder (a Jamendo root: its "
                                              "valid split), side by side")
        self.compare_folder_button.clicked.connect(self._compare_folder_dialog)
        self.compare_gains_button = QPushButton("Gains on a Folder…")
        self.compare_gains_button.setToolTip("Error of both models against input gain (−18 … +6 dB) on a labelled "
                                             "folder, each at its own threshold: which one is robust to level")
        self.compare_gains_button.clicked.connect(self._compare_gains_dialog)
        self.compare_status = QLabel(READY_TEXT)
        self.compare_status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(QLabel("Compare"))
        row.addWidget(self.compare_a, 1)
        row.addWidget(QLabel("with"))
        row.addWidget(self.compare_b, 1)
        row.addWidget(self.compare_file_button)
        row.addWidget(self.compare_folder_button)
        row.addWidget(self.compare_gains_button)

        self.curve_canvas = pg.GraphicsLayoutWidget()
        self.curve_plot = self.curve_canvas.addPlot(axisItems={"bottom": TimeAxisItem("bottom")})
        self.curve_plot.hideButtons()
        self.curve_plot.setMenuEnabled(False)
        self.curve_plot.setMouseEnabled(x=True, y=False)
        self.curve_plot.setYRange(-0.05, 1.32, padding=0)  # headroom for the legend
        self.curve_plot.getAxis("left").setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")],
                                                  [(0.25, ""), (0.75, "")]])
        self.curve_plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH_PX)
        self.curve_plot.setLabel("left", "p(voice)")
        self.curve_plot.showGrid(y=True, alpha=0.15)
        self.curve_legend = self.curve_plot.addLegend(offset=(8, 4), labelTextSize="8pt", colCount=2,
                                                      brush=pg.mkBrush(255, 255, 255, 220))
        self.curve_legend.hide()  # an empty legend is a bare white box: shown with the first curves
        self._truth = IntervalBand(TRUTH_COLOR, 0.0, 1.0, alpha=50)
        self._truth.setZValue(-10)
        self.curve_plot.addItem(self._truth, ignoreBounds=True)
        self.figures = QTableWidget(0, 2)
        self.figures.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.figures.verticalHeader().setDefaultSectionSize(22)
        self.figures.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        # Long model names end in "…" instead of being cut at both sides; the tool tip has them whole.
        self.figures.horizontalHeader().setTextElideMode(Qt.TextElideMode.ElideRight)
        self.figures.setMinimumWidth(320)
        self.gain_canvas = pg.PlotWidget()
        self.gain_canvas.setMenuEnabled(False)
        self.gain_canvas.setMouseEnabled(x=False, y=False)
        self.gain_canvas.setLabel("bottom", "input gain (dB)")
        self.gain_canvas.setLabel("left", "error (%)")
        self.gain_canvas.showGrid(x=True, y=True, alpha=0.2)
        self.gain_canvas.hide()  # in place of the curve plot while a gain comparison is shown
        results = QSplitter(Qt.Orientation.Horizontal)
        results.addWidget(self.curve_canvas)
        results.addWidget(self.gain_canvas)
        results.addWidget(self.figures)
        results.setStretchFactor(0, 3)
        results.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.compare_status)
        layout.addWidget(results, 1)
        for combo in (self.compare_a, self.compare_b):
            combo.currentIndexChanged.connect(self._name_empty_table)

    def set_models(self, models: list[tuple[str, Path]], active: Path | None) -> None:
        """The choices: (label, path) of every usable model; the active one first in a new pair."""
        usable = models
        for combo in (self.compare_a, self.compare_b):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            for label, path in usable:
                combo.addItem(label, str(path))
            if current is not None and combo.findData(current) >= 0:
                combo.setCurrentIndex(combo.findData(current))
            combo.blockSignals(False)
        if self.compare_a.count() >= 2 and self.compare_a.currentIndex() == self.compare_b.currentIndex():
            index_active = next((i for i, (_, path) in enumerate(usable) if same_file(path, active)), 0)
            self.compare_a.setCurrentIndex(index_active)
            self.compare_b.setCurrentIndex(1 if index_active == 0 else 0)
        enough = self.compare_a.count() >= 2
        self.compare_file_button.setEnabled(enough)
        self.compare_folder_button.setEnabled(enough)
        self.compare_gains_button.setEnabled(enough)
        if not enough:
            self.compare_status.setText("Comparing needs two models: train one (Model ▸ Train…) or add a file.")
        elif self._worker is None and self.figures.rowCount() == 0:
            self.compare_status.setText(READY_TEXT)
        self._name_empty_table()

    @Slot()
    def _name_empty_table(self) -> None:
        """Before any comparison the table's columns are the two models picked (not "1", "2"); a label is
        "NAME (SOURCE)", and a name may hold " (" itself."""
        if self.figures.rowCount() == 0:
            names = [combo.currentText().rsplit(" (", 1)[0] or "—" for combo in (self.compare_a, self.compare_b)]
            self.figures.setHorizontalHeaderLabels(names)

    def compare_paths(self) -> tuple[Path, Path]:
        return Path(self.compare_a.currentData()), Path(self.compare_b.currentData())

    def set_compare(self, a: str | os.PathLike, b: str | os.PathLike) -> None:
        for combo, path in ((self.compare_a, a), (self.compare_b, b)):
            index = next(i for i in range(combo.count()) if same_file(combo.itemData(i), path))
            combo.setCurrentIndex(index)

    def compare_on_open_file(self) -> bool:
        document = self._document
        if document is None or not document.is_open:
            self.problem.emit("Nothing to compare on", "Open a file in the main window first.")
            return False
        return self._start(Worker(run_curve_comparison, list(self.compare_paths()), document.samples),
                           f"predicting {document.audio_path.name} with both models…", self._draw_curves)

    def compare_on_folder(self, folder: str | os.PathLike) -> bool:
        return self._start(Worker(run_folder_comparison, list(self.compare_paths()), Path(folder)),
                           f"scoring both models on {folder}…", self._fill_folder_figures)

    def compare_gains_on_folder(self, folder: str | os.PathLike) -> bool:
        return self._start(Worker(run_gain_comparison, list(self.compare_paths()), Path(folder)),
                           f"scoring both models at each gain on {folder}…", self._draw_gain_curves)

    def _compare_gains_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Labelled folder to compare the gain curves on")
        if folder:
            self.compare_gains_on_folder(folder)

    def _compare_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Labelled folder to compare on")
        if folder:
            self.compare_on_folder(folder)

    def _start(self, worker: Worker, text: str, show: Callable[[Curves | Comparison], None]) -> bool:
        if self._worker is not None:
            return False
        a, b = self.compare_paths()
        if same_file(a, b):
            self.problem.emit("Pick two different models", "Both sides of the comparison are the same model.")
            return False
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_done)
        self._worker, self._show_result = worker, show
        for button in (self.compare_file_button, self.compare_folder_button, self.compare_gains_button):
            button.setEnabled(False)
        self.compare_status.setText(text)
        self._workers.start(worker)
        return True

    @Slot(object)
    def _on_progress(self, step: ModelStep) -> None:
        if step.inner is not None:
            self.compare_status.setText(f"model {step.model_index + 1} of {step.n_models}: file "
                                        f"{step.inner.done} of {step.inner.total}…")
        else:
            self.compare_status.setText(f"model {step.model_index} of {step.n_models} done…")

    @Slot(object)
    def _on_finished(self, result: Curves | Comparison) -> None:
        self._on_done()
        self._show_result(result)  # the drawing for the job that _start was given
        self.compared.emit(result)

    @Slot(object)
    def _on_failed(self, exc) -> None:
        self._on_done()
        self.compare_status.setText(f"Comparison failed: {exc}")
        self.problem.emit("Comparison failed", exc)

    @Slot()
    def _on_done(self) -> None:
        self._worker = None
        enough = self.compare_a.count() >= 2
        for button in (self.compare_file_button, self.compare_folder_button, self.compare_gains_button):
            button.setEnabled(enough)
        self.compare_status.setText("")

    def _show_canvas(self, gains: bool) -> None:
        self.gain_canvas.setVisible(gains)
        self.curve_canvas.setVisible(not gains)

    def _draw_gain_curves(self, comparison: GainComparison) -> None:
        plot = self.gain_canvas
        plot.clear()
        legend = light_legend(plot)
        for sweep, name, color in zip(comparison.sweeps, comparison.names, COMPARE_COLORS):
            gains = [f.level_db for f in sweep.levels]
            plot.plot(gains, [100 * f.counts.error for f in sweep.levels], pen=pg.mkPen(color, width=2.5),
                      symbol="o", symbolSize=7, symbolBrush=color, symbolPen=None,
                      name=f"{name}: spread {100 * sweep.spread:.1f} points")
        legend.setColumnCount(1)
        top = max(100 * max(s.errors) for s in comparison.sweeps)
        plot.setYRange(0, max(top * 1.5, 10.0), padding=0)  # headroom for the legend
        plot.getAxis("bottom").setTicks([[(f.level_db, f"{f.level_db:+g}".replace("+0", "0"))
                                          for f in comparison.sweeps[0].levels]])
        plot.setTitle("error against input gain, each model at its own threshold", size="9pt")
        self._show_canvas(True)
        first = comparison.sweeps[0]
        rows = [(f"error at {f.level_db:+g} dB".replace("+0 ", "0 "),
                 [_percent(s.levels[k].counts.error) for s in comparison.sweeps]) for k, f in enumerate(first.levels)]
        rows += [(f"recall at {first.levels[0].level_db:+g} dB", [_percent(s.levels[0].counts.recall)
                                                                  for s in comparison.sweeps]),
                 ("spread (worst − best)", [f"{100 * s.spread:.1f} points" for s in comparison.sweeps]),
                 ("threshold", [f"{s.threshold:.3g}" for s in comparison.sweeps])]
        self._fill_table(comparison.names, rows, comparison.description)
        self.compare_status.setText(f"{comparison.description}: error of both models at each input gain.")

    def _draw_curves(self, curves: Curves) -> None:
        self._show_canvas(False)
        plot, document = self.curve_plot, self._document
        for item in list(plot.listDataItems()) + [i for i in plot.items if isinstance(i, pg.InfiniteLine)]:
            plot.removeItem(item)
        self.curve_legend.clear()
        self.curve_legend.show()
        times = None
        for smoothed, name, threshold, color in zip(curves.smoothed, curves.names, curves.thresholds, COMPARE_COLORS):
            times = np.arange(len(smoothed)) / curves.frames_per_second
            plot.plot(times, smoothed, pen=pg.mkPen(color, width=2), name=f"{name} (threshold {threshold:.2f})")
            plot.addItem(pg.InfiniteLine(threshold, angle=0, pen=pg.mkPen(with_alpha(color, 160), width=1,
                                                                               style=Qt.PenStyle.DashLine)))
        self._truth.set_intervals(list(document.annotations) if document is not None else [])
        if times is not None and len(times):
            plot.setXRange(0, float(times[-1]), padding=0.01)
        name = document.audio_path.name if document is not None and document.audio_path else "the open file"
        labelled = document is not None and bool(document.annotations)
        self.compare_status.setText(f"{name}: smoothed probabilities of both models; dashed: their thresholds"
                                    + ("; blue: ground truth." if labelled else "."))
        rows = [("threshold", [f"{t:.3g}" for t in curves.thresholds]),
                ("voice predicted", [f"{100 * np.mean(s > t):.1f} %"
                                     for s, t in zip(curves.smoothed, curves.thresholds)])]
        if labelled:
            counts = [count_errors(s > t, intervals_to_targets(document.annotations, len(s), curves.frames_per_second))
                      for s, t in zip(curves.smoothed, curves.thresholds)]
            rows += [(label, [_percent(getattr(c, attr)) for c in counts])
                     for label, attr in (("error", "error"), ("recall", "recall"), ("specificity", "specificity"))]
        plot.setTitle(f"both models on {name}", size="9pt")
        self._fill_table(curves.names, rows, f"On {name}")

    def _fill_folder_figures(self, comparison: Comparison) -> None:
        self._show_canvas(False)
        pooled = [r.evaluation.pooled for r in comparison.results]
        first = comparison.results[0]
        rows = [("files", [str(len(r.evaluation.per_file)) for r in comparison.results]),
                ("frames", [f"{p.n_frames:,}" for p in pooled]),
                ("threshold", [f"{r.evaluation.threshold:.3g}" for r in comparison.results])]
        rows += [(label, [_percent(getattr(p, attr)) for p in pooled])
                 for label, attr in (("error", "error"), ("recall", "recall"), ("specificity", "specificity"),
                                     ("precision", "precision"), ("F1", "f1"))]
        self._fill_table(comparison.names, rows, first.description)
        errors = [p.error for p in pooled]
        best = int(np.nanargmin(errors)) if not all(math.isnan(e) for e in errors) else None
        if best is not None:
            row = [label for label, _ in rows].index("error")
            font = QFont()
            font.setBold(True)
            self.figures.item(row, best).setFont(font)
        self.compare_status.setText(f"{first.description}: pooled figures at each model's own threshold.")

    def _fill_table(self, names, rows, title: str) -> None:
        self.figures.clear()
        self.figures.setColumnCount(len(names))
        self.figures.setRowCount(len(rows))
        for column, name in enumerate(names):
            header = QTableWidgetItem(name)
            header.setToolTip(name)
            if column < len(COMPARE_COLORS):
                header.setForeground(QColor(COMPARE_COLORS[column]))
            self.figures.setHorizontalHeaderItem(column, header)
        self.figures.setVerticalHeaderLabels([label for label, _ in rows])
        for r, (_, values) in enumerate(rows):
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.figures.setItem(r, c, item)
        self.figures.setToolTip(title)

    def figures_table(self) -> dict[str, list[str]]:
        """{row label: [value per model]} of the comparison shown (tests)."""
        return {self.figures.verticalHeaderItem(r).text(): [self.figures.item(r, c).text()
                                                            for c in range(self.figures.columnCount())]
                for r in range(self.figures.rowCount())}
