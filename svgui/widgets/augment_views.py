"""The preview's excerpt pictures: grids of log-mel excerpts at one colour scale.

``ExcerptGrid`` shows standardized log-mel excerpts ``[frames, n_mels]`` (time from the labelled
frame in seconds across, mel bands up with Hz ticks at the band centres), all at one set of
levels with one colour bar.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QFont, QFontMetricsF
from PySide6.QtWidgets import QGraphicsSimpleTextItem, QSizePolicy

from engine.config import FeatureConfig, ModelConfig
from engine.features import mel_band_centres_hz
from svgui.widgets.colormaps import get_colormap

HZ_TICKS = ((100, "100"), (500, "500"), (1000, "1k"), (2000, "2k"), (4000, "4k"))
HZ_MINOR_TICKS = ((200, "200"),)  # labelled only where there is room
CENTRE_PEN = pg.mkPen((255, 255, 255, 150), width=1, style=Qt.PenStyle.DashLine)
TITLE_SIZE = "9pt"
TITLE_POINT_SIZE = 9.0
COLORBAR_WIDTH_PX = 64


def mel_hz_ticks(features: FeatureConfig) -> list[list[tuple[float, str]]]:
    """Left-axis ticks: Hz values placed by interpolating the mel band centres (band i spans [i, i+1])."""
    centres = mel_band_centres_hz(features)
    bands = np.arange(len(centres)) + 0.5
    def place(ticks):
        return [(float(np.interp(hz, centres, bands)), text) for hz, text in ticks if centres[0] <= hz <= centres[-1]]
    return [place(HZ_TICKS), place(HZ_MINOR_TICKS)]


class CellTitle(pg.GraphicsWidget):
    """A one-line title that never widens its column: too long, it is elided ("…") and the tooltip has it all."""

    def __init__(self, point_size: float = TITLE_POINT_SIZE):
        super().__init__()
        self._text = ""
        self._item = QGraphicsSimpleTextItem(self)
        font = QFont(self._item.font())
        font.setPointSizeF(point_size)
        self._item.setFont(font)
        self._item.setBrush(pg.mkBrush(pg.getConfigOption("foreground")))
        self._metrics = QFontMetricsF(font)
        height = self._metrics.height() + 6
        self.setMinimumSize(0, height)
        self.setMaximumHeight(height)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        self._text = text
        self._place()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._place()

    def _place(self) -> None:
        shown = self._metrics.elidedText(self._text, Qt.TextElideMode.ElideRight, max(self.size().width(), 0.0))
        self._item.setText(shown)
        self._item.setPos(max((self.size().width() - self._metrics.horizontalAdvance(shown)) / 2, 0.0), 3.0)
        self.setToolTip(self._text if shown != self._text else "")


class ExcerptGrid(pg.GraphicsLayoutWidget):
    """``rows × cols`` excerpt images sharing levels and a colour bar; titles above each."""

    def __init__(self, rows: int, cols: int, features: FeatureConfig, *, colormap: str = "magma",
                 excerpt_frames: int = ModelConfig.excerpt_frames, parent=None):
        super().__init__(parent)
        self.features = features
        self.rows, self.cols = rows, cols
        self.plots: list[pg.PlotItem] = []
        self.images: list[pg.ImageItem] = []
        self.titles: list[CellTitle] = []
        fps = features.frames_per_second
        half = excerpt_frames // 2
        self._rect = QRectF((-half - 0.5) / fps, 0.0, excerpt_frames / fps, features.n_mels)
        ticks = mel_hz_ticks(features)
        for r in range(rows):
            for c in range(cols):
                title = CellTitle()
                self.addItem(title, 2 * r, c)
                self.titles.append(title)
                plot = self.addPlot(2 * r + 1, c)
                plot.setMenuEnabled(False)
                plot.hideButtons()
                plot.setMouseEnabled(x=False, y=False)
                plot.setRange(xRange=(self._rect.left(), self._rect.right()), yRange=(0, features.n_mels), padding=0)
                plot.getAxis("left").setTicks(ticks)
                plot.getAxis("left").setWidth(38)  # the same in every column: equal cells
                plot.getAxis("left").setStyle(showValues=c == 0)
                plot.getAxis("bottom").setStyle(showValues=r == rows - 1)
                plot.getAxis("bottom").enableAutoSIPrefix(False)
                plot.getAxis("bottom").setHeight(None if r == rows - 1 else 6)
                if c == 0 and r == rows // 2:
                    plot.setLabel("left", "Hz")
                if r == rows - 1:  # a blank label elsewhere keeps the bottom row's plots equally tall
                    plot.setLabel("bottom", "time from the labelled frame (s)" if c == cols // 2 else " ")
                image = pg.ImageItem(axisOrder="row-major")
                image.setRect(self._rect)
                plot.addItem(image)
                plot.addItem(pg.InfiniteLine(0.0, angle=90, pen=CENTRE_PEN, movable=False))
                self.plots.append(plot)
                self.images.append(image)
        self.colorbar = pg.ColorBarItem(values=(-3.0, 3.0), colorMap=get_colormap(colormap), width=12,
                                        label="standardized log-mel", interactive=True, colorMapMenu=False)
        self.colorbar.setImageItem(self.images)
        self.colorbar.setFixedWidth(COLORBAR_WIDTH_PX)  # long titles must not squeeze it away
        self.addItem(self.colorbar, 0, cols, rowspan=2 * rows)
        for c in range(cols):
            self.ci.layout.setColumnStretchFactor(c, 1)
        self.ci.layout.setColumnStretchFactor(cols, 0)

    def set_colormap(self, name: str) -> None:
        self.colorbar.setColorMap(get_colormap(name))

    def set_levels(self, low: float, high: float) -> None:
        self.colorbar.setLevels(values=(float(low), float(high)))

    def levels(self) -> tuple[float, float]:
        low, high = self.colorbar.levels()
        return float(low), float(high)

    def show_excerpts(self, excerpts: list[np.ndarray | None], titles: list[str],
                      tooltips: list[str] | None = None) -> None:
        """One ``[frames, n_mels]`` array (or None for an empty cell) and title per cell, row by row."""
        levels = self.colorbar.levels()
        for i, (image, plot) in enumerate(zip(self.images, self.plots)):
            plot.setToolTip(tooltips[i] if tooltips and i < len(tooltips) else "")
            data = excerpts[i] if i < len(excerpts) else None
            if data is None:
                image.clear()
            else:
                image.setImage(np.ascontiguousarray(data.T), autoLevels=False, levels=levels)
                image.setRect(self._rect)
            self.titles[i].setText(titles[i] if i < len(titles) else "")

    def clear_excerpts(self) -> None:
        # not clear(): GraphicsLayoutWidget sets self.clear to its layout's, which deletes the items
        self.show_excerpts([], [])

