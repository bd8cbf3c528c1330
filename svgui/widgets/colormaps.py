"""The views' shared look: colour maps, colour-blind-safe layer colours, gutters (the time axis: time_axis.py).

Layer colours are Okabe–Ito (safe for the common colour-vision deficiencies). The stacked views
(spectrogram, probability curve, waveform) share one left axis width and one right gutter (the
spectrogram's colour bar) so their time axes line up when main_window stacks them.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor

COLORMAPS: tuple[str, ...] = ("magma", "inferno", "viridis", "cividis", "plasma", "gray")

TRUTH_COLOR = "#0072B2"           # Okabe–Ito blue
PREDICTED_COLOR = "#E69F00"       # orange
FALSE_POSITIVE_COLOR = "#D55E00"  # vermillion
FALSE_NEGATIVE_COLOR = "#56B4E9"  # sky blue (drawn hatched, so it differs by more than hue)
HIGHLIGHT_COLOR = "#F0E442"       # yellow: the selected region
THRESHOLD_COLOR = "#333333"       # dark grey: the threshold line on the white probability plot
CURSOR_COLOR = "#FFFFFF"
SELECTION_COLOR = "#BBBBBB"
LANE_BACKGROUND_COLOR = "#e4e4e4"  # the predicted/error lanes above the spectrogram

LEFT_AXIS_WIDTH_PX = 58   # every view's left axis, so the plots' left edges align
RIGHT_GUTTER_PX = 78      # the colour bar's width; the other views leave the same gap


def get_colormap(name: str) -> pg.ColorMap:
    """A pyqtgraph colour map by name (one of COLORMAPS)."""
    if name not in COLORMAPS:
        raise ValueError(f"Unknown colour map {name!r}; choose one of {', '.join(COLORMAPS)}")
    # "gray" is colorcet's perceptually linear black-to-white map (bundled with pyqtgraph as CET-L1)
    return pg.colormap.get("CET-L1" if name == "gray" else name)


def with_alpha(color: str, alpha: int) -> QColor:
    """``color`` (a '#rrggbb' string) with an alpha of 0–255."""
    out = QColor(color)
    out.setAlpha(alpha)
    return out


def add_right_gutter(layout: pg.GraphicsLayout, row: int = 0, col: int = 1) -> pg.GraphicsWidget:
    """An empty column as wide as the spectrogram's colour bar (keeps stacked time axes aligned)."""
    spacer = pg.GraphicsWidget()
    spacer.setFixedWidth(RIGHT_GUTTER_PX)
    layout.addItem(spacer, row, col)
    return spacer


def light_legend(plot: pg.PlotItem | pg.PlotWidget, *, offset: tuple[int, int] = (8, 2)) -> pg.LegendItem:
    """A legend on a near-white box with dark text, readable over the dark plots' curves."""
    return plot.addLegend(offset=offset, labelTextSize="8pt", brush=pg.mkBrush(255, 255, 255, 220),
                          labelTextColor=(20, 20, 20))
