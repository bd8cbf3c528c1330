"""Input normalization of the network (``ModelConfig.input_norm``), between log-mel and the network.

``fixed`` (the paper): per-band training-set statistics (``engine.normalize``) and nothing else.

``instance``: every frame is standardized per band by the mean and deviation of the
excerpt-length window centred on it (115 frames; clipped at the file's ends), computed for all
frames at once from cumulative sums. A per-excerpt standardization would differ for every
excerpt position and so could not share work across overlapping excerpts; this one is a fixed
transform of the spectrogram, so fully-convolutional prediction stays exact. A gain adds a
constant to a band's log-mel and leaves its deviation alone: the output is level invariant
(wherever the audio stays above the log floor).

``pcen``: per-channel energy normalization (Wang et al. 2017; Schlüter & Lehner 2018) of the
mel magnitudes ``exp(log_mel)``, frame-wise over the whole spectrogram:
``(E / (eps + M)^alpha + delta)^r - delta^r`` with ``M`` a first-order smoother of ``E``. The
smoother starts at the file's first frame with ``M = E`` there (its steady state); prediction
carries its state from chunk to chunk, so chunked prediction equals whole-file prediction.
Training excerpts cut with augmentation start the smoother ``context_frames`` (57) frames before
the excerpt, ``M = E`` there, and drop those frames (see ``augmentation_context_frames``): after
57 frames the start's weight is (1 - s)^57 = 13 % of a frame of the same level, a documented
deviation from prediction near level changes. Training without augmentation transforms whole files.

In every variant the stored per-band statistics (``Normalization``) are then applied, computed
on the transformed training features (for ``fixed``: the paper's log-mel statistics).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from engine.config import FeatureConfig, ModelConfig
from engine.normalize import Normalization, compute_normalization

# PCEN constants of Wang et al. (2017), as the 2018 paper used them; the time constant as librosa's.
PCEN_TIME_CONSTANT_S = 0.4
PCEN_ALPHA = 0.98
PCEN_DELTA = 2.0
PCEN_R = 0.5
PCEN_EPS = 1e-6
# Variance floor of the instance window (log units squared): a constant band (digital silence) gives 0.
INSTANCE_VAR_FLOOR = 1e-4
_SCAN_BLOCK_FRAMES = 64


def pcen_smoothing(features: FeatureConfig) -> float:
    """The smoother's coefficient s for PCEN_TIME_CONSTANT_S at the frame rate (librosa's formula)."""
    t_frames = PCEN_TIME_CONSTANT_S * features.frames_per_second
    return (math.sqrt(1 + 4 * t_frames ** 2) - 1) / (2 * t_frames ** 2)


def instance_standardize(log_mel: torch.Tensor, *, window_frames: int) -> torch.Tensor:
    """Each frame of ``[..., frames, bands]`` standardized per band over the centred window.

    The window holds ``window_frames`` (odd) frames, fewer at the array's ends. Sums run in
    float64 on values minus the array's own band means, so a constant offset cancels before any
    rounding that could tell it apart.
    """
    half = window_frames // 2
    n = log_mel.shape[-2]
    x = log_mel.double()
    x = x - x.mean(dim=-2, keepdim=True)
    zeros = torch.zeros_like(x[..., :1, :])
    sums = torch.cat([zeros, x.cumsum(-2)], dim=-2)
    squares = torch.cat([zeros, (x * x).cumsum(-2)], dim=-2)
    index = torch.arange(n, device=x.device)
    lo, hi = (index - half).clamp(min=0), (index + half + 1).clamp(max=n)
    count = (hi - lo).to(x.dtype)[:, None]
    mean = (sums[..., hi, :] - sums[..., lo, :]) / count
    var = ((squares[..., hi, :] - squares[..., lo, :]) / count - mean * mean).clamp(min=0)
    return ((x - mean) / torch.sqrt(var + INSTANCE_VAR_FLOOR)).to(log_mel.dtype)


def pcen_smoother(energy: torch.Tensor, s: float, state: torch.Tensor | None = None) -> torch.Tensor:
    """M[t] = (1 - s) M[t-1] + s E[t] along frames of ``[..., frames, bands]``; M[-1] = ``state``
    (default: E[0], so M[0] = E[0]). A scan in blocks of 64 frames, each one matrix product."""
    n = energy.shape[-2]
    if state is None:
        state = energy[..., 0, :]
    t = torch.arange(min(n, _SCAN_BLOCK_FRAMES), dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    weights = torch.where(lag >= 0, s * (1 - s) ** lag.clamp(min=0), torch.zeros(()))
    weights = weights.to(energy.device, energy.dtype)
    decay = ((1 - s) ** (t + 1)).to(energy.device, energy.dtype)[:, None]
    blocks = []
    for first in range(0, n, _SCAN_BLOCK_FRAMES):
        block = energy[..., first:first + _SCAN_BLOCK_FRAMES, :]
        k = block.shape[-2]
        smoothed = weights[:k, :k] @ block + decay[:k] * state[..., None, :]
        blocks.append(smoothed)
        state = smoothed[..., -1, :]
    return torch.cat(blocks, dim=-2)


def pcen(log_mel: torch.Tensor, features: FeatureConfig, *,
         state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """PCEN of the mel magnitudes behind ``log_mel`` ``[..., frames, bands]``; also the smoother's
    values (pass ``smoothed[..., i, :]`` as ``state`` to continue after frame i)."""
    energy = log_mel.exp()
    smoothed = pcen_smoother(energy, pcen_smoothing(features), state)
    gain = energy / (PCEN_EPS + smoothed) ** PCEN_ALPHA
    return (gain + PCEN_DELTA) ** PCEN_R - PCEN_DELTA ** PCEN_R, smoothed


def transform(log_mel: torch.Tensor, config: ModelConfig, features: FeatureConfig) -> torch.Tensor:
    """The input normalization of whole spectrograms ``[..., frames, bands]``, before the stored
    statistics (identity for ``fixed``)."""
    if config.input_norm == "instance":
        return instance_standardize(log_mel, window_frames=config.excerpt_frames)
    if config.input_norm == "pcen":
        return pcen(log_mel, features)[0]
    return log_mel


def prediction_context_frames(config: ModelConfig) -> int:
    """Extra frames a chunk must read on each side for its transform to equal the whole file's."""
    return config.context_frames if config.input_norm == "instance" else 0


def augmentation_context_frames(config: ModelConfig) -> int:
    """Extra frames each side of an augmented training excerpt, cut, transformed, then dropped."""
    return 0 if config.input_norm == "fixed" else config.context_frames


def crop_transform(wide_log_mel: torch.Tensor, config: ModelConfig, features: FeatureConfig) -> torch.Tensor:
    """Transform excerpts ``[B, excerpt + 2 * augmentation_context_frames, bands]``, keep the centre."""
    extra = augmentation_context_frames(config)
    out = transform(wide_log_mel, config, features)
    return out[:, extra:out.shape[1] - extra] if extra else out


def padding_frame(config: ModelConfig, features: FeatureConfig, normalization: Normalization) -> np.ndarray:
    """What prediction pads a file with on each side, per band, after normalization.

    Digital silence for ``fixed`` (the paper); for ``instance`` 0, a window's mean, which no
    gain moves; for ``pcen`` the PCEN of steady digital silence.
    """
    floor = np.full((1, features.n_mels), np.log(np.float32(features.log_floor)), np.float32)
    if config.input_norm == "instance":
        value = torch.zeros(1, features.n_mels)
    elif config.input_norm == "pcen":
        value = pcen(torch.from_numpy(floor), features)[0]
    else:
        value = torch.from_numpy(floor)
    return normalization.apply(value)[0].numpy().astype(np.float32)


def shares_scale(config: ModelConfig) -> bool:
    """Zero-mean first convolution on fixed statistics: one deviation for all bands, so a gain's
    offset (the same in every band of the log-mel) stays the same in every band and cancels."""
    return config.first_conv == "zero-mean" and config.input_norm == "fixed"


def training_normalization(log_mels: Iterable[np.ndarray], config: ModelConfig,
                           features: FeatureConfig) -> Normalization:
    """Per-band statistics of the transformed training spectrograms (one file at a time)."""
    def transformed():
        for log_mel in log_mels:
            if config.input_norm == "fixed":
                yield log_mel
            else:
                yield transform(torch.from_numpy(np.array(log_mel, np.float32)), config, features).numpy()
    stats = compute_normalization(transformed())
    if shares_scale(config):
        # One deviation: the root mean of the per-band variances (equal frame counts per band).
        std = np.full_like(stats.std, np.sqrt(np.mean(stats.std.astype(np.float64) ** 2)))
        stats = Normalization(stats.mean, std)
    return stats
