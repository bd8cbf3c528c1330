"""The mel spectrogram the network sees, with its layers (truth, predicted, errors, cursor) and tools.

The image shows ``document.log_mel`` in dB, one column per frame (frame i covers [i/70, (i+1)/70) s,
the same convention as the label intervals) and one row per mel band. Long files stay smooth:
only a window of about three screen widths around the visible range is handed to the ImageItem,
which downsamples it to the screen, so a zoom never renders the whole file at full size.
Above the image are two lanes: predicted regions and errors (false positives solid, false
negatives hatched); ground-truth regions are editable full-height bands.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget

from engine.features import hz_to_mel, mel_to_hz
from svgui.document import Document
from svgui.widgets.colormaps import (
    COLORMAPS,  # noqa: F401 - part of this module's interface
    CURSOR_COLOR,
    FALSE_NEGATIVE_COLOR,
    FALSE_POSITIVE_COLOR,
    LANE_BACKGROUND_COLOR,
    LEFT_AXIS_WIDTH_PX,
    PREDICTED_COLOR,
    RIGHT_GUTTER_PX,
    SELECTION_COLOR,
    TRUTH_COLOR,
    get_colormap,
    with_alpha,
)
from svgui.widgets.region_layer import IntervalBand, RegionLayer
from svgui.widgets.time_axis import TimeAxisItem

DB_PER_NEPER = 20.0 / math.log(10.0)  # log_mel holds natural logs of magnitudes
DEFAULT_DB_SPAN = 80.0
LANE_HEIGHT = 6.0           # height of the predicted/error lanes, in mel-band rows
MIN_VISIBLE_S = 0.25        # deepest zoom
WHOLE_IMAGE_FRAMES = 16384  # files up to ~4 min are handed to the ImageItem in one piece
HZ_TICKS = ((100, "100"), (200, "200"), (500, "500"), (1000, "1k"), (2000, "2k"), (4000, "4k"))
HZ_MINOR_TICKS = (50, 300, 400, 700, 1500, 3000, 5000, 6000, 7000)
_TOOL_CURSORS = {"navigate": Qt.OpenHandCursor, "select": Qt.IBeamCursor, "draw": Qt.CrossCursor,
                 "erase": Qt.PointingHandCursor}


class ToolViewBox(pg.ViewBox):
    """A ViewBox whose left-button click and drag go to the active tool; wheel zoom and panning stay stock."""

    def __init__(self, on_click: Callable[[float], None], on_drag: Callable[[float, float, bool], None]):
        super().__init__(enableMenu=False)
        self.tool = "navigate"
        self._on_click, self._on_drag = on_click, on_drag

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.LeftButton:
            ev.accept()
            self._on_click(self.mapSceneToView(ev.scenePos()).x())
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis: int | None = None) -> None:
        if ev.button() != Qt.LeftButton or axis is not None or self.tool == "navigate":
            super().mouseDragEvent(ev, axis)  # pan (x only: y mouse is disabled)
            return
        ev.accept()
        if self.tool in ("select", "draw"):
            start_s = self.mapSceneToView(ev.buttonDownScenePos()).x()
            self._on_drag(start_s, self.mapSceneToView(ev.scenePos()).x(), ev.isFinish())


class SpectrogramView(QWidget):
    """Mel spectrogram with annotation layers; x in seconds (link other plots to ``plot``)."""

    hovered = Signal(float, float)
    timeClicked = Signal(float)
    selectionChanged = Signal(object)
    visibleRangeChanged = Signal(float, float)
    regionSelected = Signal(object)
    toolChanged = Signal(str)       # however it was changed (key, menu, toolbar, a caller)
    TOOLS = ("navigate", "select", "draw", "erase")
    LAYERS = ("truth", "predicted", "errors", "cursor")

    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self._document = document
        self._fps = document.frames_per_second
        self._n_mels = document.features.n_mels
        self._mel_low = float(hz_to_mel(document.features.fmin_hz))
        self._mel_step = (float(hz_to_mel(document.features.fmax_hz)) - self._mel_low) / (self._n_mels + 1)
        self._db = np.zeros((self._n_mels, 0), dtype=np.float32)  # [bands, frames], dB
        self._window: tuple[int, int] | None = None
        self._tool, self._colormap = "navigate", "magma"
        self._selection: tuple[float, float] | None = None
        self._selected: int | None = None
        self._selected_interval: tuple[float, float] | None = None
        self._layer_visible = dict.fromkeys(self.LAYERS, True)

        self.canvas = pg.GraphicsLayoutWidget()
        self._viewbox = ToolViewBox(self._on_click, self._on_drag)
        self.plot = pg.PlotItem(viewBox=self._viewbox, axisItems={"bottom": TimeAxisItem("bottom")})
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH_PX)
        self.plot.setLabel("left", "Hz")
        self._viewbox.setMouseEnabled(x=True, y=False)
        self._viewbox.disableAutoRange()
        self.canvas.addItem(self.plot, 0, 0)

        self.image = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.image.setZValue(-100)
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(-DEFAULT_DB_SPAN, 0.0), colorMap=get_colormap(self._colormap),
                                        label="dB", width=14, interactive=True, colorMapMenu=False)
        self.colorbar.setImageItem(self.image)
        self.colorbar.setFixedWidth(RIGHT_GUTTER_PX)
        self.canvas.addItem(self.colorbar, 0, 1)

        top = self._n_mels
        self._lane_truth = (top + 1.0, top + 1.0 + LANE_HEIGHT)
        self._lane_predicted = (top + 2.0 + LANE_HEIGHT, top + 2.0 + 2 * LANE_HEIGHT)
        self._lane_errors = (top + 3.0 + 2 * LANE_HEIGHT, top + 3.0 + 3 * LANE_HEIGHT)
        self._y_top = top + 3.5 + 3 * LANE_HEIGHT
        # truth regions cover the image only, leaving the lanes above it clear for comparison
        self._truth = RegionLayer(self.plot, TRUTH_COLOR, z_value=10, span=(0.0, top / self._y_top), parent=self)
        self._truth.regionEdited.connect(self._on_region_edited)
        self._lane_backgrounds = [IntervalBand(LANE_BACKGROUND_COLOR, *lane)
                                  for lane in (self._lane_truth, self._lane_predicted, self._lane_errors)]
        # a compact truth lane beside the predicted one: the two compare at a glance
        self._truth_lane = IntervalBand(TRUTH_COLOR, *self._lane_truth)
        self._predicted = IntervalBand(PREDICTED_COLOR, *self._lane_predicted)
        self._false_positives = IntervalBand(FALSE_POSITIVE_COLOR, *self._lane_errors)
        self._false_negatives = IntervalBand(FALSE_NEGATIVE_COLOR, *self._lane_errors, pattern=Qt.BDiagPattern)
        self._selection_item = pg.LinearRegionItem(brush=with_alpha(SELECTION_COLOR, 60), movable=False,
                                                   pen=pg.mkPen(with_alpha(SELECTION_COLOR, 220), width=1))
        self._draw_preview = pg.LinearRegionItem(brush=with_alpha(TRUTH_COLOR, 90), movable=False,
                                                 pen=pg.mkPen(TRUTH_COLOR, width=2, style=Qt.DashLine))
        self._cursor = pg.InfiniteLine(0.0, angle=90, movable=False, pen=pg.mkPen(CURSOR_COLOR, width=2))
        for item, z in ((self._lane_backgrounds[0], -50), (self._lane_backgrounds[1], -50),
                        (self._lane_backgrounds[2], -50), (self._truth_lane, 20), (self._selection_item, 15),
                        (self._predicted, 20), (self._false_positives, 20), (self._false_negatives, 21),
                        (self._draw_preview, 30), (self._cursor, 40)):
            item.setZValue(z)
            self.plot.addItem(item, ignoreBounds=True)
        self._selection_item.hide()
        self._draw_preview.hide()
        self._set_frequency_ticks()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)

        self._range_timer = QTimer(self, singleShot=True, interval=16)  # debounce visibleRangeChanged
        self._range_timer.timeout.connect(lambda: self.visibleRangeChanged.emit(*self.visible_range()))
        self._viewbox.sigXRangeChanged.connect(self._on_x_range_changed)
        self.canvas.scene().sigMouseMoved.connect(self._on_mouse_moved)
        document.loaded.connect(self._on_loaded)
        document.annotationsChanged.connect(self._on_annotations_changed)
        document.predictionsChanged.connect(self._on_predictions_changed)
        document.thresholdChanged.connect(self._on_predictions_changed)
        self.set_tool("navigate")
        self._on_loaded()
        self._on_annotations_changed()
        self._on_predictions_changed()

    # ---- display ------------------------------------------------------------------------
    def set_colormap(self, name: str) -> None:
        self.colorbar.setColorMap(get_colormap(name))
        self._colormap = name

    def colormap(self) -> str:
        return self._colormap

    def set_db_range(self, low_db: float, high_db: float) -> None:
        low_db, high_db = sorted((float(low_db), float(high_db)))
        self.colorbar.setLevels(values=(low_db, high_db))

    def db_range(self) -> tuple[float, float]:
        low_db, high_db = self.colorbar.levels()
        return float(low_db), float(high_db)

    def set_layer_visible(self, layer: str, visible: bool) -> None:
        if layer not in self.LAYERS:
            raise ValueError(f"Unknown layer {layer!r}; choose one of {', '.join(self.LAYERS)}")
        self._layer_visible[layer] = bool(visible)
        if layer == "truth":
            self._truth.set_visible(visible)
            self._truth_lane.setVisible(visible)
        elif layer == "predicted":
            self._predicted.setVisible(visible)
        elif layer == "errors":
            self._false_positives.setVisible(visible)
            self._false_negatives.setVisible(visible)
        else:
            self._cursor.setVisible(visible)

    def is_layer_visible(self, layer: str) -> bool:
        return self._layer_visible[layer]

    def set_cursor(self, time_s: float) -> None:
        self._cursor.setValue(time_s)

    def frequency_at(self, y: float) -> float:
        """Hz at height ``y`` (in mel-band rows; band i spans [i, i+1]); nan outside the image."""
        if not 0.0 <= y <= self._n_mels:
            return math.nan
        return float(mel_to_hz(self._mel_low + (y + 0.5) * self._mel_step))

    # ---- navigation ---------------------------------------------------------------------
    def visible_range(self) -> tuple[float, float]:
        start_s, end_s = self._viewbox.viewRange()[0]
        return float(start_s), float(end_s)

    def zoom_to(self, start_s: float, end_s: float) -> None:
        duration_s = self._duration_s()
        start_s, end_s = sorted((float(start_s), float(end_s)))
        width_s = min(max(end_s - start_s, min(MIN_VISIBLE_S, duration_s)), duration_s)
        centre_s = (start_s + end_s) / 2
        start_s = min(max(centre_s - width_s / 2, 0.0), duration_s - width_s)  # shift inside the file
        self._viewbox.setXRange(start_s, start_s + width_s, padding=0)

    def zoom(self, factor: float, centre_s: float | None = None) -> None:
        start_s, end_s = self.visible_range()
        centre_s = (start_s + end_s) / 2 if centre_s is None else centre_s
        self.zoom_to(centre_s - (centre_s - start_s) / factor, centre_s + (end_s - centre_s) / factor)

    def fit(self) -> None:
        self.zoom_to(0.0, self._duration_s())

    def scroll(self, fraction: float) -> None:
        start_s, end_s = self.visible_range()
        shift_s = fraction * (end_s - start_s)
        self.zoom_to(start_s + shift_s, end_s + shift_s)

    # ---- tools and selection --------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        if tool not in self.TOOLS:
            raise ValueError(f"Unknown tool {tool!r}; choose one of {', '.join(self.TOOLS)}")
        changed = tool != self._tool
        self._tool = self._viewbox.tool = tool
        # regions move under the navigate and draw tools; select drags a selection across them
        self._truth.set_movable(tool in ("navigate", "draw"))
        self.canvas.setCursor(_TOOL_CURSORS[tool])
        if changed:
            self.toolChanged.emit(tool)

    def tool(self) -> str:
        return self._tool

    def selection(self) -> tuple[float, float] | None:
        return self._selection

    def set_selection(self, span: tuple[float, float] | None) -> None:
        if span is not None:
            start_s, end_s = sorted(min(max(float(t), 0.0), self._duration_s()) for t in span)
            span = (start_s, end_s) if end_s > start_s else None
        self._show_selection(span)
        if span != self._selection:
            self._selection = span
            self.selectionChanged.emit(span)

    def selected_region(self) -> int | None:
        return self._selected

    def select_region(self, index: int | None) -> None:
        if index is not None and not 0 <= index < len(self._document.annotations):
            index = None
        self._selected_interval = None if index is None else self._document.annotations[index]
        self._truth.set_selected(index)
        if index != self._selected:
            self._selected = index
            self.regionSelected.emit(index)

    # ---- edits (each one undoable document call) ----------------------------------------------
    def delete_selected_region(self) -> bool:
        index = self._selected
        if index is None:
            return False
        self.select_region(None)
        self._document.remove_region(index)
        return True

    def add_region_from_selection(self) -> bool:
        if self._selection is None:
            return False
        before = list(self._document.annotations)
        self.draw_region(*self._selection)
        return self._document.annotations != before

    def draw_region(self, start_s: float, end_s: float) -> None:
        document = self._document
        start_s, end_s = sorted((document.snap(start_s), document.snap(end_s)))
        if end_s - start_s < 0.5 / self._fps:  # a click, not a drag
            return
        document.add_region(start_s, end_s)
        self.select_region(document.region_at((start_s + end_s) / 2))

    def drag_region(self, index: int, start_s: float, end_s: float) -> None:
        document = self._document
        start_s, end_s = sorted((document.snap(start_s, exclude=index), document.snap(end_s, exclude=index)))
        if end_s - start_s >= 0.5 / self._fps and 0 <= index < len(document.annotations):
            document.move_region(index, start_s, end_s)
            self.select_region(document.region_at((start_s + end_s) / 2))
        self._truth.set_intervals(document.annotations)  # a rejected or no-op drag puts the item back

    def erase_at(self, time_s: float) -> bool:
        index = self._document.region_at(time_s)
        if index is None:
            return False
        self.select_region(None)
        self._document.remove_region(index)
        return True

    # ---- mouse --------------------------------------------------------------------------
    def _on_click(self, time_s: float) -> None:
        if self._tool == "erase":
            self.erase_at(time_s)
            return
        self.select_region(self._document.region_at(time_s))
        if self._tool == "navigate":
            self.timeClicked.emit(time_s)
        elif self._tool == "select":
            self.set_selection(None)

    def _on_drag(self, start_s: float, now_s: float, finished: bool) -> None:
        duration_s = self._duration_s()
        span = tuple(sorted(min(max(t, 0.0), duration_s) for t in (start_s, now_s)))
        if self._tool == "select":
            self.set_selection(span) if finished else self._show_selection(span)
        elif self._tool == "draw":
            self._draw_preview.setRegion(span)
            self._draw_preview.setVisible(not finished)
            if finished:
                self.draw_region(*span)

    def _on_region_edited(self, index: int, start_s: float, end_s: float) -> None:
        # commit after the drag event returns: the edit may remove the very item being dragged
        QTimer.singleShot(0, lambda: self.drag_region(index, start_s, end_s))

    def _on_mouse_moved(self, scene_pos) -> None:
        if not self._viewbox.sceneBoundingRect().contains(scene_pos):
            self.hovered.emit(math.nan, math.nan)
            return
        point = self._viewbox.mapSceneToView(scene_pos)
        self.hovered.emit(float(point.x()), self.frequency_at(point.y()))

    def _show_selection(self, span: tuple[float, float] | None) -> None:
        if span is not None:
            self._selection_item.setRegion(span)
        self._selection_item.setVisible(span is not None)

    # ---- document -----------------------------------------------------------------------
    def _duration_s(self) -> float:
        return max(self._document.duration_s, 1.0 / self._fps)

    def _on_loaded(self) -> None:
        log_mel = self._document.log_mel
        self._db = np.empty((log_mel.shape[1], log_mel.shape[0]), dtype=np.float32)
        np.multiply(log_mel.T, DB_PER_NEPER, out=self._db)  # the one full copy, at load time
        duration_s = self._duration_s()
        self._viewbox.setLimits(xMin=0.0, xMax=duration_s, minXRange=min(MIN_VISIBLE_S, duration_s),
                                maxXRange=duration_s, yMin=0.0, yMax=self._y_top)
        self._viewbox.setYRange(0.0, self._y_top, padding=0)
        self._truth.set_bounds(0.0, duration_s)
        for background in self._lane_backgrounds:
            background.set_intervals([(0.0, duration_s)])
        self._selection = None
        self._show_selection(None)
        self.select_region(None)
        high_db = float(self._db.max()) if self._db.size else 0.0
        self.set_db_range(high_db - DEFAULT_DB_SPAN, high_db)
        self._window = None
        self.fit()
        self._update_image_window()

    def _on_annotations_changed(self) -> None:
        annotations = self._document.annotations
        self._truth.set_intervals(annotations)
        self._truth_lane.set_intervals(annotations)
        kept = self._selected_interval
        self.select_region(annotations.index(kept) if kept in annotations else None)
        self._update_errors()

    def _on_predictions_changed(self, *_) -> None:
        self._predicted.set_intervals(self._document.predicted_intervals())
        self._update_errors()

    def _update_errors(self) -> None:
        false_positives, false_negatives = self._document.error_intervals()
        self._false_positives.set_intervals(false_positives)
        self._false_negatives.set_intervals(false_negatives)

    def _on_x_range_changed(self, *_) -> None:
        self._update_image_window()
        self._truth.set_view_range(*self.visible_range())
        self._range_timer.start()

    def _update_image_window(self) -> None:
        """Hand the ImageItem the visible frames plus one screen width either side (views, no copy)."""
        n_frames = self._db.shape[1]
        if n_frames == 0:
            self.image.clear()
            self._window = None
            return
        start_s, end_s = self.visible_range()
        first = min(max(int(start_s * self._fps), 0), n_frames - 1)
        last = min(max(int(math.ceil(end_s * self._fps)) + 1, first + 1), n_frames)
        width = last - first
        if self._window is not None:
            lo, hi = self._window
            if lo <= first and last <= hi and (hi - lo <= 4 * width or hi - lo <= WHOLE_IMAGE_FRAMES):
                return
        if n_frames <= WHOLE_IMAGE_FRAMES:
            lo, hi = 0, n_frames
        else:
            lo, hi = max(first - width, 0), min(last + width, n_frames)
        self._window = (lo, hi)
        self.image.setImage(self._db[:, lo:hi], autoLevels=False, levels=self.db_range())
        self.image.setRect(QRectF(lo / self._fps, 0.0, (hi - lo) / self._fps, self._n_mels))

    def _set_frequency_ticks(self) -> None:
        def row_of(hz: float) -> float:  # inverse of frequency_at
            return (float(hz_to_mel(hz)) - self._mel_low) / self._mel_step - 0.5

        major = [(row_of(hz), text) for hz, text in HZ_TICKS if 0.5 <= row_of(hz) <= self._n_mels - 0.5]
        minor = [(row_of(hz), "") for hz in HZ_MINOR_TICKS if 0.5 <= row_of(hz) <= self._n_mels - 0.5]
        lanes = [(sum(self._lane_truth) / 2, "truth"), (sum(self._lane_predicted) / 2, "model"),
                 (sum(self._lane_errors) / 2, "errors")]
        self.plot.getAxis("left").setTicks([major + lanes, minor])
