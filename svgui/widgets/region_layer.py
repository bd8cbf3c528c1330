"""Interval layers on a time-axis plot: editable regions (ground truth) and static bands.

``RegionLayer`` keeps a pool of LinearRegionItems and only grows or shrinks it when the number
of intervals changes; otherwise it moves the existing items, with their signals blocked so a
programmatic update never looks like a user edit. ``IntervalBand`` draws hundreds of static
intervals (predictions, errors) as one item, at least one pixel wide so a single-frame error
stays visible on a zoomed-out hour-long file.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen

from svgui.widgets.colormaps import HIGHLIGHT_COLOR, with_alpha

Interval = tuple[float, float]


class RegionLayer(QObject):
    """Editable regions; emits ``regionEdited(index, start_s, end_s)`` when a drag ends.

    Items outside the visible time range are hidden: pyqtgraph recomputes every InfiniteLine's
    bounding box on each zoom step, which is what makes hundreds of regions slow.
    """

    regionEdited = Signal(int, float, float)
    regionChanging = Signal(int, float, float)

    def __init__(self, plot: pg.PlotItem, color: str, *, z_value: float = 10.0, span: tuple[float, float] = (0.0, 1.0),
                 parent: QObject | None = None):
        super().__init__(parent)
        self._plot, self._z, self._span = plot, z_value, span
        self._items: list[pg.LinearRegionItem] = []
        self._movable, self._visible = True, True
        self._bounds: tuple[float, float] | None = None
        self._view: tuple[float, float] | None = None
        self._selected: int | None = None
        self._styled: int | None = None  # the index currently drawn highlighted
        self._brush = QBrush(with_alpha(color, 60))
        self._hover_brush = QBrush(with_alpha(color, 100))
        self._pen = pg.mkPen(with_alpha(color, 255), width=1)  # thin: a zoomed-out song has hundreds of edges
        self._selected_brush = QBrush(with_alpha(color, 90))
        self._selected_pen = pg.mkPen(HIGHLIGHT_COLOR, width=2)
        self._hover_pen = pg.mkPen(HIGHLIGHT_COLOR, width=3)

    @property
    def items(self) -> list[pg.LinearRegionItem]:
        return list(self._items)

    def intervals(self) -> list[Interval]:
        return [tuple(item.getRegion()) for item in self._items]

    def set_intervals(self, intervals: list[Interval]) -> None:
        """Show ``intervals``, reusing the existing items."""
        while len(self._items) < len(intervals):
            self._items.append(self._make_item())
        while len(self._items) > len(intervals):
            self._plot.removeItem(self._items.pop())
        for item, (start_s, end_s) in zip(self._items, intervals):
            item.blockSignals(True)  # setRegion emits sigRegionChangeFinished: not a user edit
            item.setRegion((start_s, end_s))
            item.blockSignals(False)
        if self._styled is not None and self._styled >= len(self._items):
            self._styled = None
        self.set_selected(self._selected)
        self._update_visibility()

    def set_selected(self, index: int | None) -> None:
        self._selected = index if index is not None and 0 <= index < len(self._items) else None
        if self._styled != self._selected:
            if self._styled is not None:
                self._style(self._items[self._styled], False)
            if self._selected is not None:
                self._style(self._items[self._selected], True)
            self._styled = self._selected

    def set_movable(self, movable: bool) -> None:
        self._movable = movable
        for item in self._items:
            item.setMovable(movable)

    def set_visible(self, visible: bool) -> None:
        self._visible = visible
        self._update_visibility()

    def is_visible(self) -> bool:
        return self._visible

    def set_view_range(self, start_s: float, end_s: float) -> None:
        self._view = (start_s, end_s)
        self._update_visibility()

    def set_bounds(self, start_s: float, end_s: float) -> None:
        self._bounds = (start_s, end_s)
        for item in self._items:
            item.setBounds(self._bounds)

    def _update_visibility(self) -> None:
        if self._view is not None:
            margin_s = 0.5 * (self._view[1] - self._view[0])
            lo_s, hi_s = self._view[0] - margin_s, self._view[1] + margin_s
        for item in self._items:
            shown = self._visible
            if shown and self._view is not None:
                start_s, end_s = item.getRegion()
                shown = bool(end_s >= lo_s and start_s <= hi_s)
            if item.isVisible() != shown:
                item.setVisible(shown)

    def _make_item(self) -> pg.LinearRegionItem:
        item = pg.LinearRegionItem((0.0, 0.0), brush=self._brush, hoverBrush=self._hover_brush, pen=self._pen,
                                   hoverPen=self._hover_pen, movable=self._movable, bounds=self._bounds,
                                   span=self._span, swapMode="block")
        item.setZValue(self._z)
        item.sigRegionChanged.connect(self._on_changing)
        item.sigRegionChangeFinished.connect(self._on_finished)
        self._plot.addItem(item, ignoreBounds=True)
        return item

    def _style(self, item: pg.LinearRegionItem, selected: bool) -> None:
        item.setBrush(self._selected_brush if selected else self._brush)
        for line in item.lines:
            line.setPen(self._selected_pen if selected else self._pen)
        item.update()

    def _index_of(self, item: object) -> int | None:
        return next((i for i, candidate in enumerate(self._items) if candidate is item), None)

    def _on_changing(self, item: pg.LinearRegionItem) -> None:
        index = self._index_of(item)
        if index is not None:
            self.regionChanging.emit(index, *item.getRegion())

    def _on_finished(self, item: pg.LinearRegionItem) -> None:
        index = self._index_of(item)
        if index is not None:
            self.regionEdited.emit(index, *item.getRegion())


class IntervalBand(pg.GraphicsObject):
    """Static intervals drawn as rectangles from ``y0`` to ``y1`` (data units) in one paint call."""

    def __init__(self, color: QColor | str, y0: float, y1: float, *, pattern: Qt.BrushStyle = Qt.SolidPattern,
                 alpha: int = 255):
        super().__init__()
        qcolor = QColor(color)
        qcolor.setAlpha(alpha)
        self._brush = QBrush(qcolor, pattern)
        self._pattern = pattern
        self._y0, self._y1 = y0, y1
        self._starts = np.zeros(0)
        self._ends = np.zeros(0)
        self._ends_sorted = True

    def intervals(self) -> list[Interval]:
        return [(float(a), float(b)) for a, b in zip(self._starts, self._ends)]

    def set_intervals(self, intervals: list[Interval]) -> None:
        self.prepareGeometryChange()
        pairs = np.asarray(intervals, dtype=np.float64).reshape(-1, 2)
        order = np.argsort(pairs[:, 0], kind="stable")
        self._starts, self._ends = pairs[order, 0], pairs[order, 1]
        self._ends_sorted = bool(np.all(self._ends[1:] >= self._ends[:-1]))  # true unless intervals nest
        self.update()

    def set_span(self, y0: float, y1: float) -> None:
        self.prepareGeometryChange()
        self._y0, self._y1 = y0, y1
        self.update()

    def boundingRect(self) -> QRectF:
        if len(self._starts) == 0:
            return QRectF()
        left, right = float(self._starts[0]), float(self._ends.max())
        return QRectF(left, self._y0, right - left, self._y1 - self._y0)

    def paint(self, painter: QPainter, *args) -> None:
        if len(self._starts) == 0:
            return
        view = self.viewRect()  # only the visible intervals
        lo, hi = 0, len(self._starts)
        if view is not None:
            lo = int(np.searchsorted(self._ends, view.left(), side="left")) if self._ends_sorted else 0
            hi = int(np.searchsorted(self._starts, view.right(), side="right"))
        # Paint in device pixels: hatching stays undistorted, slivers get a 1 px minimum, and
        # intervals closer than a pixel merge, so a zoomed-out hour costs a few hundred rectangles.
        transform = painter.transform()  # scale and translation only (a plot's view transform)
        x0 = self._starts[lo:hi] * transform.m11() + transform.dx()
        x1 = self._ends[lo:hi] * transform.m11() + transform.dx()
        x0, x1 = np.minimum(x0, x1), np.maximum(x0, x1)
        x1 = np.maximum(x1, x0 + 1.0)
        x0, x1 = _merge_close(x0, x1, gap=0.5)
        top = self._y0 * transform.m22() + transform.dy()
        bottom = self._y1 * transform.m22() + transform.dy()
        y, height = min(top, bottom), abs(bottom - top)
        rects = [QRectF(a, y, b - a, height) for a, b in zip(x0.tolist(), x1.tolist())]
        painter.save()
        painter.resetTransform()
        painter.setPen(QPen(Qt.NoPen))
        if self._pattern != Qt.SolidPattern:  # hatched bands get a faint solid underlay to read as filled
            underlay = QColor(self._brush.color())
            underlay.setAlpha(underlay.alpha() // 3)
            painter.setBrush(underlay)
            painter.drawRects(rects)
        painter.setBrush(self._brush)
        painter.drawRects(rects)
        painter.restore()


def _merge_close(x0: np.ndarray, x1: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge sorted spans [x0, x1) whose gaps are below ``gap`` (pixels)."""
    if len(x0) < 2:
        return x0, x1
    reach = np.maximum.accumulate(x1)  # spans may overlap once widened to a pixel
    starts_new = np.concatenate([[True], x0[1:] - reach[:-1] >= gap])
    first = np.flatnonzero(starts_new)
    last = np.concatenate([first[1:], [len(x0)]]) - 1
    return x0[first], reach[last]
