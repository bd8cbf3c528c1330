"""Figures written by the command line (matplotlib, no display needed)."""

from __future__ import annotations

import os

import numpy as np

from engine.config import FeatureConfig
from engine.features import mel_band_centres_hz
from engine.fileio import atomic_write_with


def save_excerpt_comparison(path: str | os.PathLike, original: np.ndarray, augmented: np.ndarray, *,
                            features: FeatureConfig, title: str, subtitle: str = "") -> None:
    """Original and augmented excerpts side by side at one colour scale, drawn values in the title."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.2), dpi=110, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    low = float(min(original.min(), augmented.min()))
    high = float(max(original.max(), augmented.max()))
    frames = original.shape[0]
    half_s = (frames // 2) / features.frames_per_second
    centres = mel_band_centres_hz(features)
    image = None
    for ax, data, name in ((axes[0], original, "original"), (axes[1], augmented, "augmented")):
        image = ax.imshow(data.T, origin="lower", aspect="auto", cmap="magma", vmin=low, vmax=high,
                          extent=(-half_s, half_s, -0.5, data.shape[1] - 0.5), interpolation="nearest")
        ax.axvline(0.0, color="white", lw=0.8, ls="--", alpha=0.7)
        ax.set_title(name)
        ax.set_xlabel("time from the labelled frame (s)")
    ticks = [b for b in range(0, len(centres), 10)]
    axes[0].set_yticks(ticks, [f"{centres[b]:.0f}" for b in ticks])
    axes[0].set_ylabel("mel band centre (Hz)")
    fig.colorbar(image, ax=axes, label="standardized log-mel")
    fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png"))
