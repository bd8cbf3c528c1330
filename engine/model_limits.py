"""Bounds on a model file's settings, checked before anything is built or allocated.

A model file is untrusted input: its header decides the network's size, the smoothing filter's
length and the STFT, so a few bytes could ask for gigabytes (``dense_units=20000`` is 100 M
weights, ``median_frames=1e9`` a 7.5 GB filter). These limits are generous (the paper's network
has 1.4 M weights) and reject only what no real model uses.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from engine.config import EvalConfig, FeatureConfig, ModelConfig
from engine.errors import ModelFileError

MAX_PARAMETERS = 20_000_000       # 14 x the paper's network; 80 MB as float32
MAX_CONV_CHANNELS = 1024
MAX_DENSE_UNITS = 8192
MAX_KERNEL_SIZE = 15
MAX_POOL_SIZE = 8
MAX_EXCERPT_FRAMES = 1025
MAX_N_MELS = 512
MAX_FRAME_LENGTH = 16384
MIN_HOP_LENGTH = 16
MAX_SAMPLE_RATE = 192_000
MAX_MEDIAN_FRAMES = 10_000        # 143 s at 70 frames per second
MAX_THRESHOLDS = 10_000
MAX_COLLAR_S = 10.0
MAX_BATCH_SIZE = 65_536           # of a checkpoint's training settings (7 GB of excerpts on a GPU)


def _bound(path: Any, what: str, value: float, low: float, high: float) -> None:
    if not (low <= value <= high):
        raise ModelFileError(f"{path}: {what} = {value} is outside the supported range [{low:g}, {high:g}]")


def check_feature_bounds(path: Any, features: FeatureConfig) -> None:
    _bound(path, "features.sample_rate", features.sample_rate, 1000, MAX_SAMPLE_RATE)
    _bound(path, "features.frame_length", features.frame_length, 16, MAX_FRAME_LENGTH)
    _bound(path, "features.hop_length", features.hop_length, MIN_HOP_LENGTH, features.frame_length)
    _bound(path, "features.n_mels", features.n_mels, 1, MAX_N_MELS)
    if not all(math.isfinite(v) for v in (features.fmin_hz, features.fmax_hz, features.log_floor)):
        raise ModelFileError(f"{path}: features hold a non-finite frequency or log floor")


def check_eval_bounds(path: Any, eval_config: EvalConfig) -> None:
    _bound(path, "eval.median_frames", eval_config.median_frames, 1, MAX_MEDIAN_FRAMES)
    _bound(path, "the number of eval.thresholds", len(eval_config.thresholds), 1, MAX_THRESHOLDS)
    _bound(path, "eval.collar_s", eval_config.collar_s, 0, MAX_COLLAR_S)


def check_batch_size_bound(path: Any, batch_size: int) -> None:
    _bound(path, "the checkpoint's batch_size", batch_size, 1, MAX_BATCH_SIZE)


def expected_shapes(path: Any, model_config: ModelConfig, n_mels: int) -> dict[str, tuple[int, ...]]:
    """The weight shapes this config implies, checked against the size limits.

    The network is built on the "meta" device, which records shapes and allocates nothing.
    """
    from engine.model import SingingVoiceCNN

    for c in model_config.conv_channels:
        _bound(path, "model.conv_channels", c, 1, MAX_CONV_CHANNELS)
    _bound(path, "model.conv5_channels", model_config.conv5_channels, 1, MAX_CONV_CHANNELS)
    for u in model_config.dense_units:
        _bound(path, "model.dense_units", u, 1, MAX_DENSE_UNITS)
    _bound(path, "model.kernel_size", model_config.kernel_size, 1, MAX_KERNEL_SIZE)
    _bound(path, "model.pool_size", model_config.pool_size, 1, MAX_POOL_SIZE)
    _bound(path, "model.excerpt_frames", model_config.excerpt_frames, 1, MAX_EXCERPT_FRAMES)
    try:
        with torch.device("meta"):
            network = SingingVoiceCNN(model_config, n_mels=n_mels)
    except ValueError as exc:  # an excerpt too small for the layers
        raise ModelFileError(f"{path}: invalid model settings ({exc})") from None
    shapes = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    n_parameters = sum(math.prod(s) for s in shapes.values())
    if n_parameters > MAX_PARAMETERS:
        raise ModelFileError(f"{path}: the network would have {n_parameters:,} weights, more than the "
                             f"supported {MAX_PARAMETERS:,}")
    return shapes
