"""Live training curves against updates: loss (raw and smoothed), learning rate, validation error.

``append`` only stores numbers (called once per update from the progress signal); ``refresh``
draws, and the dialog calls it from a timer, so a fast network's hundreds of updates per second
cost the GUI thread one redraw per tick. Long runs are drawn by pyqtgraph's peak downsampling,
clipped to the view, so a redraw costs about one point pair per pixel however many updates there are.
Axis ranges move in "nice" steps (no autorange, no grid), so a redraw repaints the curves only:
repainting axes and grid lines was most of a redraw's cost.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from engine.train import TrainProgress
from svgui.widgets.colormaps import FALSE_POSITIVE_COLOR, LEFT_AXIS_WIDTH_PX, PREDICTED_COLOR, TRUTH_COLOR, with_alpha

LOSS_COLOR = TRUTH_COLOR
RATE_COLOR = PREDICTED_COLOR
VALID_COLOR = FALSE_POSITIVE_COLOR


def nice_ceiling(value: float, steps: tuple[float, ...] = (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10)) -> float:
    """The smallest step × 10^k at least ``value`` (1.0 for nothing to show)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    base = 10.0 ** math.floor(math.log10(value))
    return next(step * base for step in steps if step * base >= value * (1 - 1e-9))


def smoothing_window(n_updates: int) -> int:
    """Updates averaged into the smoothed loss: 2 % of the run so far, between 1 and 500."""
    return int(min(500, max(1, n_updates // 50)))


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values at each position (fewer at the start)."""
    if window <= 1 or len(values) == 0:
        return values.astype(np.float64)
    sums = np.cumsum(np.concatenate([[0.0], values.astype(np.float64)]))
    index = np.arange(1, len(values) + 1)
    lo = np.maximum(index - window, 0)
    return (sums[index] - sums[lo]) / (index - lo)


class TrainingPlots(QWidget):
    """Three stacked plots sharing the update axis."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setMinimumHeight(300)
        self.loss_plot = self._plot(0, "loss", "training loss")
        self.rate_plot = self._plot(1, "learning rate", "")
        self.valid_plot = self._plot(2, "valid. error %", "")
        self.valid_plot.setLabel("bottom", "updates")
        for plot in (self.rate_plot, self.valid_plot):
            plot.setXLink(self.loss_plot)
        for plot in (self.loss_plot, self.rate_plot):
            plot.getAxis("bottom").setStyle(showValues=False)  # one shared update axis, at the bottom
            plot.getAxis("bottom").setHeight(6)
        self.loss_raw = self.loss_plot.plot(pen=pg.mkPen(with_alpha(LOSS_COLOR, 70), width=1))
        self.loss_smooth = self.loss_plot.plot(pen=pg.mkPen(LOSS_COLOR, width=2))
        self.rate_curve = self.rate_plot.plot(pen=pg.mkPen(RATE_COLOR, width=2), stepMode=None)
        self.valid_curve = self.valid_plot.plot(pen=pg.mkPen(VALID_COLOR, width=2), symbol="o", symbolSize=6,
                                                symbolBrush=VALID_COLOR, symbolPen=None)
        for curve in (self.loss_raw, self.loss_smooth, self.rate_curve):
            curve.setDownsampling(auto=True, method="peak")  # min and max per pixel: no spike hidden
            curve.setClipToView(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        self.clear()

    def _plot(self, row: int, left: str, title: str) -> pg.PlotItem:
        plot = self.canvas.addPlot(row=row, col=0)
        plot.hideButtons()
        plot.setMenuEnabled(False)
        plot.disableAutoRange()
        plot.setMouseEnabled(x=False, y=False)
        plot.setLabel("left", left)
        plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH_PX)
        plot.getAxis("left").enableAutoSIPrefix(False)  # "loss (x0.001)" reads badly
        if title:
            plot.setTitle(title, size="9pt")
        return plot

    # ---- data ---------------------------------------------------------------------------------
    def clear(self) -> None:
        self._updates = np.zeros(1024, dtype=np.float64)
        self._losses = np.zeros(1024, dtype=np.float64)
        self._rates = np.zeros(1024, dtype=np.float64)
        self._n = 0
        self.valid_updates: list[int] = []
        self.valid_errors: list[float] = []  # percent
        self.total_updates = 0
        self._ranges: dict[str, tuple[float, float]] = {}
        self._titles: dict[str, str] = {}
        self._dirty = True
        self.redraw_count = 0
        self.refresh()

    def append(self, progress: TrainProgress) -> None:
        """Store one update's numbers (cheap; drawing waits for ``refresh``)."""
        if progress.finished:
            if progress.validation is not None and progress.validation.update not in self.valid_updates:
                self._add_validation(progress.validation.update, progress.validation.error)
            self._dirty = True
            return
        if self._n == len(self._updates):
            for name in ("_updates", "_losses", "_rates"):
                setattr(self, name, np.concatenate([getattr(self, name), np.zeros_like(getattr(self, name))]))
        self.total_updates = progress.total_updates
        self._updates[self._n] = progress.update
        self._losses[self._n] = progress.loss
        self._rates[self._n] = progress.learning_rate
        self._n += 1
        if progress.validation is not None:
            self._add_validation(progress.validation.update, progress.validation.error)
        self._dirty = True

    def _add_validation(self, update: int, error: float) -> None:
        self.valid_updates.append(int(update))
        self.valid_errors.append(100.0 * float(error))

    def truncate(self, last_update: int) -> None:
        """Forget what came after ``last_update`` (a run resumed from a checkpoint goes on from there)."""
        self._n = int(np.searchsorted(self._updates[:self._n], last_update, side="right"))
        keep = [i for i, u in enumerate(self.valid_updates) if u <= last_update]
        self.valid_updates = [self.valid_updates[i] for i in keep]
        self.valid_errors = [self.valid_errors[i] for i in keep]
        self._dirty = True

    @property
    def n_points(self) -> int:
        return self._n

    def losses(self) -> np.ndarray:
        return self._losses[:self._n].copy()

    # ---- drawing ------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Redraw if anything arrived since the last call; returns whether it drew."""
        if not self._dirty:
            return False
        self._dirty = False
        self.redraw_count += 1
        n = self._n
        x, loss, rate = self._updates[:n], self._losses[:n], self._rates[:n]
        window = smoothing_window(n)
        smoothed = trailing_mean(loss, window)
        self.loss_raw.setData(x, loss)
        self.loss_smooth.setData(x, smoothed)
        self.rate_curve.setData(x, rate)
        self.valid_curve.setData(np.asarray(self.valid_updates, dtype=np.float64),
                                 np.asarray(self.valid_errors, dtype=np.float64))
        last = float(x[-1]) if n else 0.0
        x_top = nice_ceiling(max(last * 1.02, 10.0), steps=(1, 2, 5, 10))
        self._set_range("x", self.loss_plot, 0.0, min(x_top, self.total_updates) if self.total_updates else x_top)
        self._set_range("loss", self.loss_plot, 0.0, nice_ceiling(1.15 * float(smoothed.max())) if n else 1.0)
        self._set_range("rate", self.rate_plot, 0.0, nice_ceiling(1.05 * float(rate.max())) if n else 0.01)
        self._set_range("valid", self.valid_plot, 0.0, nice_ceiling(max(1.2 * max(self.valid_errors, default=0), 1.0)))
        self._set_title("loss", self.loss_plot, f"training loss (line: mean of the last {window} updates)" if n
                        else "training loss")
        self._set_title("valid", self.valid_plot,
                        f"validation error at the best threshold: {self.valid_errors[-1]:.2f} % "
                        f"(update {self.valid_updates[-1]:,})" if self.valid_errors
                        else "validation error at the best threshold (at each validation)")
        return True

    def _set_range(self, key: str, plot: pg.PlotItem, low: float, high: float) -> None:
        """Change an axis range only when it has to (repainting an axis is the expensive part)."""
        if self._ranges.get(key) == (low, high):
            return
        self._ranges[key] = (low, high)
        if key == "x":
            plot.setXRange(low, high, padding=0.01)
        else:
            plot.setYRange(low, high, padding=0.02)

    def _set_title(self, key: str, plot: pg.PlotItem, text: str) -> None:
        if self._titles.get(key) != text:
            self._titles[key] = text
            plot.setTitle(text, size="9pt")
