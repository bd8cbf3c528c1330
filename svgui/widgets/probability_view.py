"""The per-frame voice probability against time, with the decision threshold as a draggable line.

Dragging the threshold calls ``document.set_threshold`` on every move; the spectrogram listens to
``thresholdChanged``, so the predicted regions follow the line live. The ground truth is shaded
underneath so the curve can be read against it.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from engine.evaluate import extend_smoothed
from svgui.document import Document
from svgui.widgets.colormaps import (
    LEFT_AXIS_WIDTH_PX,
    PREDICTED_COLOR,
    THRESHOLD_COLOR,
    TRUTH_COLOR,
    add_right_gutter,
    with_alpha,
)
from svgui.widgets.region_layer import IntervalBand
from svgui.widgets.time_axis import TimeAxisItem

Y_MARGIN = 0.08  # room above 1 and below 0 so the curve's extremes and the line stay grabbable


class ProbabilityView(QWidget):
    """Smoothed (and optionally raw) probability curve; y in [0, 1]."""

    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self._document = document
        self.canvas = pg.GraphicsLayoutWidget()
        self.plot = pg.PlotItem(axisItems={"bottom": TimeAxisItem("bottom")})
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.disableAutoRange()
        self.plot.setYRange(-Y_MARGIN, 1 + Y_MARGIN, padding=0)
        left = self.plot.getAxis("left")
        left.setWidth(LEFT_AXIS_WIDTH_PX)
        left.setTicks([[(0.0, "0"), (0.5, "0.5"), (1.0, "1")], [(0.25, ""), (0.75, "")]])
        self.plot.setLabel("left", "p(voice)")
        self.plot.showGrid(y=True, alpha=0.15)
        self.canvas.addItem(self.plot, 0, 0)
        add_right_gutter(self.canvas.ci)

        self._truth = IntervalBand(TRUTH_COLOR, 0.0, 1.0, alpha=60)
        self._truth.setZValue(-10)
        self.plot.addItem(self._truth, ignoreBounds=True)
        self.raw_curve = pg.PlotDataItem(pen=pg.mkPen(with_alpha("#BBBBBB", 150), width=1))
        self.curve = pg.PlotDataItem(pen=pg.mkPen(PREDICTED_COLOR, width=2))
        # set on the plot, not the items: PlotItem.addItem overwrites the items' own settings.
        # Peak downsampling keeps short spikes visible when a whole song is on screen.
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.setClipToView(True)
        for item in (self.raw_curve, self.curve):
            self.plot.addItem(item)
        self.raw_curve.setVisible(False)

        self.threshold_line = pg.InfiniteLine(
            document.threshold, angle=0, movable=True, bounds=(0.0, 1.0),
            pen=pg.mkPen(THRESHOLD_COLOR, width=1.5, style=pg.QtCore.Qt.DashLine),
            hoverPen=pg.mkPen(THRESHOLD_COLOR, width=3),
            label="threshold {value:.2f}",
            labelOpts={"position": 0.98, "color": "#FFFFFF", "fill": with_alpha(THRESHOLD_COLOR, 200),
                       "anchors": [(1, 1), (1, 1)]})
        self.threshold_line.setToolTip("Decision threshold: drag to change the predicted regions")
        self.threshold_line.setZValue(20)
        self.plot.addItem(self.threshold_line, ignoreBounds=True)
        self.threshold_line.sigPositionChanged.connect(self._on_line_moved)
        # the spectrogram's white cursor would vanish on this white plot
        self._cursor = pg.InfiniteLine(0.0, angle=90, movable=False, pen=pg.mkPen(THRESHOLD_COLOR, width=1))
        self._cursor.setZValue(30)
        self.plot.addItem(self._cursor, ignoreBounds=True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

        document.loaded.connect(self._on_loaded)
        document.predictionsChanged.connect(self._on_predictions_changed)
        document.annotationsChanged.connect(self._on_annotations_changed)
        document.thresholdChanged.connect(self._on_threshold_changed)
        self._on_loaded()
        self._on_predictions_changed()
        self._on_annotations_changed()

    def set_raw_visible(self, visible: bool) -> None:
        self.raw_curve.setVisible(visible)

    def is_raw_visible(self) -> bool:
        return self.raw_curve.isVisible()

    def set_cursor(self, time_s: float) -> None:
        """The playback position (as on the spectrogram)."""
        self._cursor.setValue(time_s)

    def _on_line_moved(self) -> None:
        self._document.set_threshold(self.threshold_line.value())  # no-op when unchanged: no loop

    def _on_threshold_changed(self, threshold: float) -> None:
        if abs(self.threshold_line.value() - threshold) > 1e-9:
            self.threshold_line.setValue(threshold)

    def _on_loaded(self) -> None:
        duration_s = max(self._document.duration_s, 1.0 / self._document.frames_per_second)
        self.plot.setLimits(xMin=0.0, xMax=duration_s, maxXRange=duration_s)
        self.plot.setXRange(0.0, duration_s, padding=0)

    def _on_predictions_changed(self) -> None:
        document = self._document
        self._partial_smoothed = None
        self._show_curves(document.smoothed, document.probabilities)
        self._on_threshold_changed(document.threshold)

    def show_partial(self, probabilities: np.ndarray | None) -> None:
        """The curve of a prediction still running, over the frames done; None: the document's again.

        Smoothed as the final curve; only its last 0.4 s (half the median window) can still change,
        and only that is smoothed again at each step.
        """
        if probabilities is None or len(probabilities) == 0:
            self._on_predictions_changed()
            return
        self._partial_smoothed = extend_smoothed(self._partial_smoothed, probabilities,
                                                 median_frames=self._document.eval_config.median_frames)
        self._show_curves(self._partial_smoothed, probabilities)

    def _show_curves(self, smoothed: np.ndarray | None, raw: np.ndarray | None) -> None:
        for item, values in ((self.curve, smoothed), (self.raw_curve, raw)):
            if values is None:
                item.setData([], [])
            else:
                item.setData(np.arange(len(values)) / self._document.frames_per_second,
                             np.asarray(values, dtype=np.float64))

    def _on_annotations_changed(self) -> None:
        self._truth.set_intervals(self._document.annotations)
