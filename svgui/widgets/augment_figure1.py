"""The paper's Figure 1 views in the preview: the warp's crop borders and drawn filter responses.

Left (Figure 1a): the linear spectrogram around the excerpt, in dB, with the source regions the
pitch/stretch warp reads (``engine.augment.warp``): the crop at factor 1 (115 frames × 8 kHz),
this draw's crop (time ±57/stretch frames, frequency up to 372/pitch bins) and the extremes of the
range at the chosen strengths. Right (Figure 1h): 50 filter responses drawn by the training code
at the chosen strength on a log-frequency axis, this draw's response on top.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt

from engine.augment import filter_response_db
from engine.config import AugmentConfig, FeatureConfig
from engine.preview import Preview, cut_excerpt
from svgui.augment_sources import (
    EXCERPT_FRAMES,
    CropBorder,
    PreviewSource,
    crop_border,
    filter_frequencies_hz,
    filter_responses_db,
)
from svgui.widgets.augment_views import CENTRE_PEN, TITLE_SIZE
from svgui.widgets.colormaps import get_colormap

LOG_HZ_TICKS = ((50, "50"), (100, "100"), (200, "200"), (500, "500"), (1000, "1k"), (2000, "2k"),
                (4000, "4k"), (8000, "8k"))
DRAW_COLOR = "#E69F00"       # Okabe–Ito orange: the current draw
NEUTRAL_COLOR = "#FFFFFF"    # the crop at factor 1 (what the network sees without augmentation)
RANGE_COLOR = "#56B4E9"      # sky blue: the range of crops at the chosen strength
RESPONSE_COLOR = (0, 114, 178, 70)   # the drawn responses, translucent blue
N_FILTER_RESPONSES = 50
MIN_CONTEXT_STRETCH = 0.3    # show at least the source region of ±30 % stretch around the excerpt


class WarpFilterView(pg.GraphicsLayoutWidget):
    """Figure 1a (linear spectrogram and the warp's crop borders) and 1h (drawn filter responses)."""

    def __init__(self, features: FeatureConfig, *, colormap: str = "magma", parent=None):
        super().__init__(parent)
        self.features = features
        self.crop_plot = self.addPlot(0, 0)
        self.filter_plot = self.addPlot(0, 2)
        for plot in (self.crop_plot, self.filter_plot):
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.setMouseEnabled(x=False, y=False)
        self.crop_plot.setLabel("bottom", "time from the labelled frame (s)")
        self.crop_plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.crop_plot.getAxis("left").enableAutoSIPrefix(False)
        self.crop_plot.setLabel("left", "Hz")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.crop_plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(-80.0, 0.0), colorMap=get_colormap(colormap), width=12,
                                        label="dB", interactive=True, colorMapMenu=False)
        self.colorbar.setImageItem(self.image)
        self.addItem(self.colorbar, 0, 1)
        # below the plot, not over the picture; dark, so that the white dashed line shows
        legend = pg.LegendItem(labelTextColor="w", brush=pg.mkBrush(40, 40, 40), labelTextSize="8pt",
                               colCount=3)
        self.addItem(legend, 1, 0, colspan=3)
        self.neutral = pg.PlotDataItem(pen=pg.mkPen(NEUTRAL_COLOR, width=1.5, style=Qt.PenStyle.DashLine))
        self.range_outer = pg.PlotDataItem(pen=pg.mkPen(RANGE_COLOR, width=1.5, style=Qt.PenStyle.DotLine))
        self.range_inner = pg.PlotDataItem(pen=pg.mkPen(RANGE_COLOR, width=1.5, style=Qt.PenStyle.DotLine))
        self.drawn = pg.PlotDataItem(pen=pg.mkPen(DRAW_COLOR, width=2.5))
        for item in (self.neutral, self.range_outer, self.range_inner, self.drawn):
            self.crop_plot.addItem(item)
        # fixed entries: rebuilding the legend on every redraw would relayout the whole view
        legend.addItem(self.neutral, "crop at factor 1 (115 frames × 8 kHz)")
        legend.addItem(self.drawn, "this draw's crop")
        legend.addItem(self.range_outer, "crops at the ends of the range")
        self.legend = legend
        self.crop_plot.addItem(pg.InfiniteLine(0.0, angle=90, pen=CENTRE_PEN, movable=False))

        self.filter_plot.setLabel("bottom", "frequency (Hz, log scale)")
        self.filter_plot.setLabel("left", "gain (dB)")
        self.filter_plot.getAxis("bottom").setTicks([[(math.log10(f), t) for f, t in LOG_HZ_TICKS], []])
        self.filter_plot.showGrid(x=True, y=True, alpha=0.2)
        self.responses = pg.PlotDataItem(pen=pg.mkPen(RESPONSE_COLOR, width=1), connect="finite")
        self.response_drawn = pg.PlotDataItem(pen=pg.mkPen(DRAW_COLOR, width=2.5))
        self.bounds = [pg.InfiniteLine(0.0, angle=0, movable=False,
                                       pen=pg.mkPen((90, 90, 90), width=1, style=Qt.PenStyle.DashLine))
                       for _ in range(2)]
        for item in (self.responses, self.response_drawn, *self.bounds):
            self.filter_plot.addItem(item)
        self.ci.layout.setColumnStretchFactor(0, 3)
        self.ci.layout.setColumnStretchFactor(2, 2)

    def set_colormap(self, name: str) -> None:
        self.colorbar.setColorMap(get_colormap(name))

    # ---- Figure 1a --------------------------------------------------------------------------
    def show_source(self, linear: np.ndarray | None, *, reset_levels: bool) -> None:
        """The source excerpt's linear magnitudes ``[frames, n_bins]`` (centred on the label), in dB."""
        if linear is None:
            self.image.clear()
            return
        db = 20.0 * np.log10(np.maximum(np.asarray(linear, dtype=np.float32), 1e-7))
        fps, bin_hz = self.features.frames_per_second, self.features.bin_hz
        frames, bins = db.shape
        self.image.setImage(np.ascontiguousarray(db.T), autoLevels=False, levels=self.colorbar.levels())
        self.image.setRect(QRectF((-(frames // 2) - 0.5) / fps, -bin_hz / 2, frames / fps, bins * bin_hz))
        if reset_levels:
            high = float(db.max())
            self.colorbar.setLevels(values=(high - 80.0, high))

    def show_crops(self, *, neutral: CropBorder, drawn: CropBorder | None, outer: CropBorder | None,
                   inner: CropBorder | None, drawn_text: str, range_text: str, half_width_s: float) -> None:
        """Crop rectangles: the factor-1 crop, this draw's crop and the range at the chosen strength."""
        for item, border in ((self.neutral, neutral), (self.drawn, drawn), (self.range_outer, outer),
                             (self.range_inner, inner)):
            if border is None:
                item.setData([], [])
            else:
                w, top = border.half_width_s, border.top_hz
                item.setData([-w, -w, w, w, -w], [0.0, top, top, 0.0, 0.0])
        top = max(self.features.sample_rate / 2, *(b.top_hz for b in (neutral, drawn, outer) if b is not None))
        self.crop_plot.setRange(xRange=(-half_width_s, half_width_s), yRange=(0.0, 1.02 * top), padding=0)
        title = "linear spectrogram the warp reads" + (f" · {drawn_text} · {range_text}" if drawn is not None else
                                                       " (pitch and stretch are off)")
        self.crop_plot.setTitle(title, size=TITLE_SIZE)

    # ---- Figure 1h --------------------------------------------------------------------------
    def show_filters(self, freqs_hz: np.ndarray, responses_db: np.ndarray, drawn_db: np.ndarray | None,
                     max_db: float, title: str) -> None:
        """``responses_db`` [n, len(freqs_hz)] as thin lines, ``drawn_db`` (this draw's) on top."""
        x = np.log10(np.asarray(freqs_hz, dtype=np.float64))
        n = len(responses_db)
        xs = np.concatenate([np.append(x, np.nan)] * n) if n else np.zeros(0)
        ys = np.concatenate([np.append(r, np.nan) for r in responses_db]) if n else np.zeros(0)
        self.responses.setData(xs, ys)
        if drawn_db is None:
            self.response_drawn.setData([], [])
        else:
            self.response_drawn.setData(x, drawn_db)
        limit = max(float(max_db), 1.0)
        for line, value in zip(self.bounds, (max_db, -max_db)):
            line.setValue(value)
            line.setVisible(max_db > 0)
        self.filter_plot.setRange(xRange=(x[0], x[-1]), yRange=(-1.1 * limit, 1.1 * limit), padding=0)
        self.filter_plot.setTitle(title, size=TITLE_SIZE)

    # ---- composing both from a preview ------------------------------------------------------
    def show_preview(self, source: PreviewSource, centre: int, preview: Preview, config: AugmentConfig, *,
                     filter_strength_db: float, seed: int, reset_levels: bool) -> None:
        """Both views for the excerpt at ``centre`` and the draw of ``preview`` (made with ``config``)."""
        features, draw = source.features, preview.draw
        half = int(math.ceil((EXCERPT_FRAMES // 2 + 0.5) / (1.0 - max(config.max_stretch, MIN_CONTEXT_STRETCH)))) + 2
        self.show_source(cut_excerpt(source.linear, centre, 2 * half + 1).numpy(), reset_levels=reset_levels)
        pitch = float(draw.pitch_factor[0]) if config.max_pitch else 1.0
        stretch = float(draw.stretch_factor[0]) if config.max_stretch else 1.0
        warped = bool(config.max_pitch or config.max_stretch)
        p, s = config.max_pitch, config.max_stretch
        self.show_crops(
            neutral=crop_border(1.0, 1.0, features), drawn=crop_border(pitch, stretch, features) if warped else None,
            outer=crop_border(1 - p, 1 - s, features) if warped else None,
            inner=crop_border(1 + p, 1 + s, features) if warped else None,
            drawn_text=f"pitch ×{pitch:.2f}, stretch ×{stretch:.2f}",
            range_text=f"range ±{100 * p:g} % / ±{100 * s:g} %",
            half_width_s=(half + 0.5) / features.frames_per_second)
        self.show_drawn_filters(config, filter_strength_db=filter_strength_db, seed=seed, preview=preview)

    def show_drawn_filters(self, config: AugmentConfig, *, filter_strength_db: float, seed: int,
                           preview: Preview | None = None) -> None:
        """50 responses at the filter's strength (its chosen one when switched off), this draw's on top."""
        freqs = filter_frequencies_hz(self.features)
        strength = config.max_filter_db or filter_strength_db
        responses = filter_responses_db(strength, N_FILTER_RESPONSES, seed, self.features)
        drawn = None
        if preview is not None and config.max_filter_db:
            drawn = filter_response_db(preview.draw, freqs)[0].numpy()
        off = "" if config.max_filter_db else " (filter switched off)"
        self.show_filters(freqs.numpy(), responses, drawn, strength,
                          f"{N_FILTER_RESPONSES} filter responses at ±{strength:g} dB{off}")
