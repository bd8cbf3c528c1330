"""Per-frame voice probabilities for whole files, fully convolutional, with test-time augmentation.

Every frame gets exactly one prediction, that of the excerpt centred on it: the standardized
spectrogram is padded with 57 frames of standardized silence on each side (SPEC §6). Long files
run in chunks of ``chunk_frames`` output frames (each reading 57 context frames on either side),
so memory stays bounded however long the file is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine import frontend
from engine.audio import load_audio
from engine.checkpoint import VoiceModel
from engine.config import PredictConfig
from engine.errors import AudioLoadError, EngineError
from engine.features import frame_count, linear_to_mel, log_compress, stft_magnitudes
from engine.model import excerpt_logits, fcn_logits
from engine.precision import autocast, choose_precision
from engine.warp import scale_frequency

LinearSource = Callable[[int, int], torch.Tensor]  # (first, stop) frame -> [stop-first, n_bins]


@dataclass(frozen=True)
class Prediction:
    """Raw per-frame probabilities of one file (frame i at i / frames_per_second seconds)."""

    probabilities: np.ndarray
    frames_per_second: float
    duration_s: float
    pitch_factors: tuple[float, ...] = (1.0,)
    precision: str = "fp32"  # what the network ran in (never "auto")

    @property
    def tta(self) -> bool:
        return self.pitch_factors != (1.0,)


def log_mel_of(model: VoiceModel, linear: torch.Tensor, pitch_factors: Sequence[float] = (1.0,)) -> torch.Tensor:
    """Linear magnitudes ``[frames, bins]`` → log-mel ``[n_factors, frames, n_mels]`` (before normalization)."""
    cfg = model.features
    if tuple(pitch_factors) == (1.0,):
        scaled = linear[None, :, :cfg.n_mel_input_bins]
    else:
        scaled = scale_frequency(linear, list(pitch_factors), n_out_bins=cfg.n_mel_input_bins)
    return log_compress(linear_to_mel(scaled, cfg), cfg)


def standardized_log_mel(model: VoiceModel, linear: torch.Tensor,
                         pitch_factors: Sequence[float] = (1.0,)) -> torch.Tensor:
    """Linear magnitudes ``[frames, bins]`` of a whole file → network input ``[n_factors, frames, n_mels]``."""
    log_mel = log_mel_of(model, linear, pitch_factors)
    return model.normalization.apply(frontend.transform(log_mel, model.model_config, model.features))


def padding_values(model: VoiceModel) -> np.ndarray:
    """The standardized frame prediction pads each side of a file with (engine.frontend.padding_frame)."""
    if model.model_config.input_norm == "fixed":
        return model.normalization.silence(model.features)
    return frontend.padding_frame(model.model_config, model.features, model.normalization)


def iter_predictions(model: VoiceModel, n_frames: int, read_linear: LinearSource, *,
                     pitch_factors: Sequence[float] = (1.0,),
                     chunk_frames: int = PredictConfig().chunk_frames,
                     excerptwise: bool = False, precision: str = "fp32") -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(first, stop, probabilities[first:stop])`` chunk by chunk (a caller may stop early).

    ``precision`` is a resolved one (fp32, bf16, fp16; see engine.precision.choose_precision): it
    covers the network only, features stay fp32. fp32 is the default, so exactness checks
    (fully convolutional = excerpt-wise) always compare fp32 numbers.
    Chunks give what the whole file would: instance normalization reads its windows' extra
    frames, PCEN carries its smoother's state from one chunk to the next.
    """
    network = model.network
    network.eval()
    if not network.conv2.weight.is_contiguous(memory_format=torch.channels_last):
        network.to(memory_format=torch.channels_last)  # weights in oneDNN's layout: ~1.5x faster
    device = model.device
    recipe = model.model_config
    context = recipe.context_frames
    extra = frontend.prediction_context_frames(recipe)
    silence = torch.as_tensor(padding_values(model), device=device)
    carried = None  # PCEN: the smoother's values at the frame before the next chunk's first read
    for first in range(0, n_frames, chunk_frames):
        stop = min(first + chunk_frames, n_frames)
        lo, hi = max(0, first - context), min(n_frames, stop + context)
        read_lo, read_hi = max(0, lo - extra), min(n_frames, hi + extra)
        with torch.inference_mode():
            log_mel = log_mel_of(model, read_linear(read_lo, read_hi).to(device), pitch_factors)
            if recipe.input_norm == "pcen":
                feats, smoothed = frontend.pcen(log_mel, model.features, state=carried if lo else None)
                next_lo = max(0, stop - context)
                carried = smoothed[:, next_lo - 1 - lo] if next_lo > 0 else None
            else:
                feats = frontend.transform(log_mel, recipe, model.features)[:, lo - read_lo:hi - read_lo]
            feats = model.normalization.apply(feats)
            left = silence.expand(feats.shape[0], context - (first - lo), -1)
            right = silence.expand(feats.shape[0], context - (hi - stop), -1)
            padded = torch.cat([left, feats, right], dim=1).unsqueeze(1)
            with autocast(precision, device):
                logits = excerpt_logits(network, padded) if excerptwise else fcn_logits(network, padded)
            chunk = torch.sigmoid(logits.float()).mean(0).cpu().numpy()
        yield first, stop, chunk


def predict_linear_source(model: VoiceModel, n_frames: int, read_linear: LinearSource, **kwargs) -> np.ndarray:
    """Probabilities ``[n_frames]`` (mean over ``pitch_factors``) from a chunked spectrogram reader."""
    out = np.empty(n_frames, dtype=np.float32)
    for first, stop, chunk in iter_predictions(model, n_frames, read_linear, **kwargs):
        out[first:stop] = chunk
    return out


def predict_linear(model: VoiceModel, linear: np.ndarray | torch.Tensor, **kwargs) -> np.ndarray:
    """Probabilities for a precomputed linear spectrogram ``[frames, n_bins]`` (e.g. the cache)."""
    def read(lo: int, hi: int) -> torch.Tensor:
        if isinstance(linear, torch.Tensor):
            return linear[lo:hi].to(torch.float32)
        return torch.from_numpy(np.array(linear[lo:hi], dtype=np.float32))
    return predict_linear_source(model, len(linear), read, **kwargs)


def samples_reader(model: VoiceModel, samples: np.ndarray) -> tuple[int, LinearSource]:
    """Frame count and a chunk reader that runs the STFT of a mono signal chunk by chunk."""
    cfg = model.features
    n_frames = frame_count(len(samples), cfg)
    if n_frames == 0:
        raise ValueError(f"audio of {len(samples)} samples is shorter than one STFT frame "
                         f"({cfg.frame_length} samples)")
    signal = torch.as_tensor(np.asarray(samples, dtype=np.float32))

    def read(lo: int, hi: int) -> torch.Tensor:
        segment = signal[lo * cfg.hop_length:(hi - 1) * cfg.hop_length + cfg.frame_length]
        return stft_magnitudes(segment.to(model.device), cfg)
    return n_frames, read


def predict_samples(model: VoiceModel, samples: np.ndarray, **kwargs) -> np.ndarray:
    """Probabilities for a mono signal at the model's sample rate; the STFT runs chunk by chunk."""
    n_frames, read = samples_reader(model, samples)
    return predict_linear_source(model, n_frames, read, **kwargs)


def predict_file(model: VoiceModel, path: str | os.PathLike, *, tta: bool = False,
                 config: PredictConfig = PredictConfig()) -> Prediction:
    """Decode a file and predict every frame; ``tta`` averages over the configured pitch shifts."""
    path = Path(path)
    samples = load_audio(path, sample_rate=model.features.sample_rate)
    factors = config.pitch_factors(tta)
    precision = choose_precision(config.precision, model.device).precision
    try:
        probabilities = predict_samples(model, samples, pitch_factors=factors,
                                        chunk_frames=config.chunk_frames, precision=precision)
    except ValueError as exc:
        raise AudioLoadError(path, f"too short to analyse: {exc}") from None
    if not np.isfinite(probabilities).all():
        raise EngineError(f"{path}: the model produced NaN probabilities (is the model damaged?)")
    return Prediction(probabilities, model.features.frames_per_second,
                      len(samples) / model.features.sample_rate, tuple(factors), precision)
