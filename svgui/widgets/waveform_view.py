"""An overview of the whole file: the waveform's min/max envelope and a box marking the visible range.

Dragging the box (or clicking elsewhere, which centres the box there) emits ``rangeRequested``;
main_window forwards it to the spectrogram's ``zoom_to``. The ground-truth regions are shaded
faintly so sung passages can be found at a glance.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from svgui.document import Document
from svgui.widgets.colormaps import (
    CURSOR_COLOR,
    HIGHLIGHT_COLOR,
    LEFT_AXIS_WIDTH_PX,
    TRUTH_COLOR,
    add_right_gutter,
    with_alpha,
)
from svgui.widgets.region_layer import IntervalBand

ENVELOPE_POINTS = 4000


def minmax_envelope(samples: np.ndarray, n_points: int = ENVELOPE_POINTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin ``samples`` into ``n_points`` columns; returns (column start index, min, max)."""
    n = len(samples)
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    per_bin = max(1, n // n_points)
    n_bins = n // per_bin
    binned = samples[: n_bins * per_bin].reshape(n_bins, per_bin)  # drops < per_bin trailing samples
    return np.arange(n_bins) * per_bin, binned.min(axis=1), binned.max(axis=1)


class _ClickViewBox(pg.ViewBox):
    """Sends left clicks to a callback (x in seconds); no mouse pan or zoom: the overview is fixed."""

    def __init__(self, on_click: Callable[[float], None]):
        super().__init__(enableMenu=False)
        self._on_click = on_click
        self.setMouseEnabled(x=False, y=False)

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.LeftButton:
            ev.accept()
            self._on_click(self.mapSceneToView(ev.scenePos()).x())


class WaveformView(QWidget):
    """Whole-file waveform overview with the visible range as a draggable box."""

    rangeRequested = Signal(float, float)

    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self._document = document
        self.canvas = pg.GraphicsLayoutWidget()
        self.plot = pg.PlotItem(viewBox=_ClickViewBox(self._on_click))
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.hideAxis("bottom")
        left = self.plot.getAxis("left")
        left.setWidth(LEFT_AXIS_WIDTH_PX)
        left.setStyle(showValues=False)
        left.setTicks([[]])
        self.plot.disableAutoRange()
        self.canvas.addItem(self.plot, 0, 0)
        add_right_gutter(self.canvas.ci)

        self._truth = IntervalBand(TRUTH_COLOR, -1.0, 1.0, alpha=70)
        self._truth.setZValue(-10)
        self.plot.addItem(self._truth, ignoreBounds=True)
        self.envelope = pg.PlotDataItem(pen=pg.mkPen("#C8C8C8", width=1), connect="pairs")
        self.plot.addItem(self.envelope)
        self.range_box = pg.LinearRegionItem((0.0, 1.0), brush=with_alpha("#FFFFFF", 45),
                                             hoverBrush=with_alpha("#FFFFFF", 70),
                                             pen=pg.mkPen(HIGHLIGHT_COLOR, width=2), swapMode="block")
        self.range_box.setZValue(10)
        self.range_box.setToolTip("Visible range: drag to scroll, drag an edge to zoom")
        self.plot.addItem(self.range_box, ignoreBounds=True)
        self.range_box.sigRegionChanged.connect(self._on_box_moved)
        self._cursor = pg.InfiniteLine(0.0, angle=90, movable=False, pen=pg.mkPen(CURSOR_COLOR, width=1))
        self._cursor.setZValue(30)
        self.plot.addItem(self._cursor, ignoreBounds=True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
        document.loaded.connect(self._on_loaded)
        document.annotationsChanged.connect(self._on_annotations_changed)
        self._on_loaded()

    def sizeHint(self) -> QSize:
        return QSize(600, 70)

    def set_visible_range(self, start_s: float, end_s: float) -> None:
        self.range_box.blockSignals(True)  # not a user request: don't echo it back
        self.range_box.setRegion((start_s, end_s))
        self.range_box.blockSignals(False)

    def visible_range(self) -> tuple[float, float]:
        start_s, end_s = self.range_box.getRegion()
        return float(start_s), float(end_s)

    def set_cursor(self, time_s: float) -> None:
        """The playback position (as on the spectrogram)."""
        self._cursor.setValue(time_s)

    def _on_box_moved(self) -> None:
        self.rangeRequested.emit(*self.visible_range())

    def _on_click(self, time_s: float) -> None:
        start_s, end_s = self.visible_range()
        half_s = (end_s - start_s) / 2
        duration_s = self._duration_s()
        start_s = min(max(time_s - half_s, 0.0), max(duration_s - 2 * half_s, 0.0))
        self.rangeRequested.emit(start_s, start_s + 2 * half_s)

    def _duration_s(self) -> float:
        return max(self._document.duration_s, 1.0 / self._document.frames_per_second)

    def _on_loaded(self) -> None:
        document = self._document
        starts, lows, highs = minmax_envelope(document.samples)
        times_s = np.repeat(starts / document.features.sample_rate, 2)
        values = np.column_stack([lows, highs]).ravel()  # one vertical segment per column
        self.envelope.setData(times_s, values)
        peak = float(max(np.abs(values).max(), 1e-3)) if len(values) else 1.0
        duration_s = self._duration_s()
        self._truth.set_span(-peak * 1.05, peak * 1.05)
        self.plot.setXRange(0.0, duration_s, padding=0)
        self.plot.setYRange(-peak * 1.05, peak * 1.05, padding=0)
        self.range_box.setBounds((0.0, duration_s))
        self.set_visible_range(0.0, duration_s)

    def _on_annotations_changed(self) -> None:
        self._truth.set_intervals(self._document.annotations)
