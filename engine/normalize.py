"""Per-band standardization statistics over a training set (SPEC §1), carried by every model."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from engine.config import FeatureConfig
from engine.errors import ConfigError


@dataclass(frozen=True, eq=False)
class Normalization:
    """Mean and standard deviation per mel band of log-mel frames."""

    mean: np.ndarray  # [n_mels] float32
    std: np.ndarray   # [n_mels] float32

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1)
        if mean.shape != std.shape:
            raise ConfigError(f"mean and std shapes differ: {mean.shape} vs {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std <= 0).any():
            raise ConfigError("normalization statistics must be finite with std > 0")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ would compare arrays to an ambiguous truth value.
        if not isinstance(other, Normalization):
            return NotImplemented
        return np.array_equal(self.mean, other.mean) and np.array_equal(self.std, other.std)

    def apply(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Standardize ``[..., frames, n_mels]`` on the tensor's device."""
        mean, std = self._tensors(log_mel.device, log_mel.dtype)
        return (log_mel - mean) / std

    def _tensors(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and std as tensors, made once per device and dtype (a copy to a GPU at every
        training step would wait for the GPU each time)."""
        cache = self.__dict__.setdefault("_tensor_cache", {})
        key = (device, dtype)
        if key not in cache:
            cache[key] = (torch.as_tensor(self.mean, device=device, dtype=dtype),
                          torch.as_tensor(self.std, device=device, dtype=dtype))
        return cache[key]

    def silence(self, config: FeatureConfig) -> np.ndarray:
        """The standardized value of digital silence per band: (ln 1e-7 - mean) / std."""
        return ((np.log(np.float32(config.log_floor)) - self.mean) / self.std).astype(np.float32)

    @classmethod
    def identity(cls, n_mels: int) -> "Normalization":
        return cls(np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32))


def compute_normalization(spectrograms: Iterable[np.ndarray | torch.Tensor]) -> Normalization:
    """Mean and std (ddof=1) per band over all frames of all given log-mel spectrograms.

    Accumulates per-file means and squared deviations in float64 and combines them with
    Chan et al.'s parallel formula, which stays accurate where sum-of-squares would not.
    """
    count, mean, m2, lowest, highest = 0, None, None, None, None
    for spec in spectrograms:
        frames = np.asarray(spec.detach().cpu() if isinstance(spec, torch.Tensor) else spec,
                            dtype=np.float64)
        n = frames.shape[0]
        if n == 0:
            continue
        file_mean = frames.mean(axis=0)
        file_m2 = ((frames - file_mean) ** 2).sum(axis=0)
        if count == 0:
            count, mean, m2 = n, file_mean, file_m2
            lowest, highest = frames.min(axis=0), frames.max(axis=0)
            continue
        lowest = np.minimum(lowest, frames.min(axis=0))
        highest = np.maximum(highest, frames.max(axis=0))
        delta = file_mean - mean
        total = count + n
        mean = mean + delta * (n / total)
        m2 = m2 + file_m2 + delta ** 2 * (count * n / total)
        count = total
    if count < 2:
        raise ConfigError("need at least two spectrogram frames to compute normalization statistics")
    std = np.sqrt(m2 / (count - 1))
    # A constant band (e.g. digital silence) must not divide by zero, nor by the ~1e-15 that
    # rounding leaves in its float64 mean: recognise it exactly by its range.
    std[(std == 0) | (lowest == highest)] = 1.0
    return Normalization(mean.astype(np.float32), std.astype(np.float32))
