"""STFT magnitudes, the authors' mel filterbank and log-mel spectrograms (SPEC §1), in torch.

Leading dimensions are batch dimensions; spectrograms are time-major: ``[..., frames, bins]``,
the layout the network reads. Everything runs on the device of its input tensor.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from engine.config import FeatureConfig
from engine.errors import ConfigError

DEFAULT_FEATURES = FeatureConfig()


def frame_count(n_samples: int, config: FeatureConfig = DEFAULT_FEATURES) -> int:
    """Frames of an uncentred STFT: floor((N - frame_length) / hop) + 1, or 0 if N is too short."""
    if n_samples < config.frame_length:
        return 0
    return (n_samples - config.frame_length) // config.hop_length + 1


def hz_to_mel(f_hz):
    """HTK mel formula: 1127 ln(1 + f/700)."""
    return 1127.0 * np.log1p(np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


def _mel_points_hz(config: FeatureConfig) -> np.ndarray:
    """n_mels + 2 frequencies evenly spaced in mel: each band's lower edge, peak and upper edge."""
    return mel_to_hz(np.linspace(hz_to_mel(config.fmin_hz), hz_to_mel(config.fmax_hz), config.n_mels + 2))


def mel_band_centres_hz(config: FeatureConfig) -> np.ndarray:
    """Centre frequency of each mel band (the peaks of the triangular filters), ``[n_mels]``."""
    return _mel_points_hz(config)[1:-1]


@functools.lru_cache(maxsize=8)
def _mel_filterbank_cached(config: FeatureConfig) -> np.ndarray:
    n_in = config.n_mel_input_bins
    bin_freqs_hz = np.arange(config.n_bins) * config.bin_hz
    points_hz = _mel_points_hz(config)
    # Snap each point to the first bin whose centre frequency is >= it.
    points_bin = np.searchsorted(bin_freqs_hz, points_hz, side="left")
    bank = np.zeros((config.n_bins, config.n_mels), dtype=np.float64)
    for b in range(config.n_mels):
        left_hz, _, right_hz = points_hz[b:b + 3]
        left, top, right = points_bin[b:b + 3]
        if not left < top < right:
            raise ConfigError(f"mel filter {b} is empty: bins {left}, {top}, {right} "
                              f"(too many mel bands for frame_length={config.frame_length})")
        # The authors' slopes: Hz distance from the unsnapped corner over the bin count.
        bank[left:top, b] = (bin_freqs_hz[left:top] - left_hz) / (top - left)
        bank[top:right, b] = (right_hz - bin_freqs_hz[top:right]) / (right - top)
        bank[:, b] /= bank[:, b].sum()
    bank = bank[:n_in]
    bank.setflags(write=False)
    return bank


def mel_filterbank(config: FeatureConfig = DEFAULT_FEATURES) -> np.ndarray:
    """The authors' triangular filterbank, snapped to bins and sum-normalized.

    Returns
    -------
    bank : np.ndarray [shape=(n_mel_input_bins, n_mels), dtype=float64], read-only
        Rows are linear bins 0..371 (<= 8 kHz); each column sums to 1.
    """
    return _mel_filterbank_cached(config)


def mel_filterbank_tensor(config: FeatureConfig, device: torch.device | str = "cpu",
                          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The filterbank as a tensor, made once per device and dtype: a copy to a GPU at every
    training step would wait for the GPU each time. Shared: never modify it in place."""
    return _filterbank_tensor_cached(config, torch.device(device), dtype)


@functools.lru_cache(maxsize=16)
def _filterbank_tensor_cached(config: FeatureConfig, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(mel_filterbank(config), dtype=dtype, device=device)


def stft_magnitudes(samples: torch.Tensor, config: FeatureConfig = DEFAULT_FEATURES) -> torch.Tensor:
    """Linear STFT magnitudes (not power) of an uncentred STFT with a symmetric Hann window.

    Parameters
    ----------
    samples : torch.Tensor [shape=(..., n_samples)]

    Returns
    -------
    magnitudes : torch.Tensor [shape=(..., frames, n_bins), dtype=float32]
        Frame i covers samples [hop*i, hop*i + frame_length).
    """
    samples = torch.as_tensor(samples)
    lead = samples.shape[:-1]
    n_frames = frame_count(samples.shape[-1], config)
    if n_frames == 0:
        return samples.new_zeros((*lead, 0, config.n_bins), dtype=torch.float32)
    flat = samples.reshape(-1, samples.shape[-1]).to(torch.float32)
    window = torch.hann_window(config.frame_length, periodic=False, dtype=torch.float32,
                               device=flat.device)
    spec = torch.stft(flat, n_fft=config.frame_length, hop_length=config.hop_length,
                      window=window, center=False, return_complex=True)
    return spec.abs().transpose(-1, -2).reshape(*lead, n_frames, config.n_bins)


def linear_to_mel(magnitudes: torch.Tensor, config: FeatureConfig = DEFAULT_FEATURES) -> torch.Tensor:
    """Apply the mel filterbank to linear magnitudes ``[..., frames, >= n_mel_input_bins]``."""
    bank = mel_filterbank_tensor(config, magnitudes.device, magnitudes.dtype)
    return magnitudes[..., :config.n_mel_input_bins] @ bank


def log_compress(values: torch.Tensor, config: FeatureConfig = DEFAULT_FEATURES) -> torch.Tensor:
    """ln(max(x, 1e-7))."""
    return torch.log(torch.clamp(values, min=config.log_floor))


def log_mel_spectrogram(samples, config: FeatureConfig = DEFAULT_FEATURES, *,
                        device: torch.device | str = "cpu", chunk_frames: int = 8192) -> torch.Tensor:
    """Log-mel spectrogram of a mono signal, computed in chunks so memory stays bounded.

    Returns
    -------
    log_mel : torch.Tensor [shape=(frames, n_mels), dtype=float32] on ``device``
    """
    return _chunked(samples, config, device, chunk_frames,
                    lambda lin: log_compress(linear_to_mel(lin, config), config))


def linear_spectrogram(samples, config: FeatureConfig = DEFAULT_FEATURES, *,
                       device: torch.device | str = "cpu", chunk_frames: int = 8192) -> torch.Tensor:
    """Linear magnitudes ``[frames, n_bins]`` of a mono signal, computed in chunks."""
    return _chunked(samples, config, device, chunk_frames, lambda lin: lin)


def _chunked(samples, config, device, chunk_frames, transform) -> torch.Tensor:
    if isinstance(samples, torch.Tensor):  # np.asarray would fail on a GPU tensor
        samples = samples.detach().to(torch.float32)
    else:
        samples = torch.as_tensor(np.asarray(samples, dtype=np.float32))
    if samples.ndim != 1:
        raise ValueError(f"expected a mono signal of shape (n_samples,), got {tuple(samples.shape)}")
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    n_frames = frame_count(samples.shape[-1], config)
    pieces = []
    for first in range(0, n_frames, chunk_frames):
        last = min(first + chunk_frames, n_frames)
        lo = first * config.hop_length
        hi = (last - 1) * config.hop_length + config.frame_length
        chunk = samples[lo:hi].to(device)
        pieces.append(transform(stft_magnitudes(chunk, config)))
    if not pieces:
        return transform(torch.zeros((0, config.n_bins), dtype=torch.float32, device=device))
    return torch.cat(pieces) if len(pieces) > 1 else pieces[0]
