"""The views' shared look: colour maps, colour-blind-safe layer colours, the time axis, gutters.

Layer colours are Okabe–Ito (safe for the common colour-vision deficiencies). The stacked views
(spectrogram, probability curve, waveform) share one left axis width and one right gutter (the
spectrogram's colour bar) so their time axes line up when main_window stacks them.
"""

from __future__ import annotations

import math

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


# Tick steps a person reads easily on a time ruler: decimal below a second, then 5 s, 15 s, minutes.
_TIME_STEPS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
                 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)


class TimeAxisItem(pg.AxisItem):
    """A time ruler in seconds, written m:ss once a file is longer than a minute (as in Audacity)."""

    def __init__(self, orientation: str = "bottom", **kwargs):
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:
        span = maxVal - minVal
        if span <= 0 or size <= 0:
            return super().tickSpacing(minVal, maxVal, size)
        wanted = span / max(size / 90.0, 1.0)  # about one label per 90 pixels
        index = next((i for i, step in enumerate(_TIME_STEPS_S) if step >= wanted), len(_TIME_STEPS_S) - 1)
        major = _TIME_STEPS_S[index]
        minor = _TIME_STEPS_S[max(index - 2, 0)] if index >= 2 else major / 5
        return [(major, 0.0), (minor, 0.0)]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        decimals = max(0, -math.floor(math.log10(spacing) + 1e-9)) if spacing > 0 else 0
        as_minutes = any(abs(v) >= 60 for v in values)
        return [format_time(v, decimals, as_minutes) for v in values]


def format_time(time_s: float, decimals: int = 2, as_minutes: bool = True) -> str:
    """'1:02.50' (m:ss) or '62.50' (seconds); used for ticks and status text."""
    if not as_minutes:
        return f"{time_s:.{decimals}f}"
    sign = "-" if time_s < 0 else ""
    minutes, seconds = divmod(abs(time_s), 60.0)
    width = 2 + (decimals + 1 if decimals else 0)
    text = f"{seconds:0{width}.{decimals}f}"
    if text.startswith("60"):  # rounding carried into the next minute
        minutes, text = minutes + 1, f"{0.0:0{width}.{decimals}f}"
    return f"{sign}{int(minutes)}:{text}"
