"""Long work the GUI runs in worker threads: plain engine calls, no Qt."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio import load_audio
from engine.checkpoint import VoiceModel
from engine.config import FeatureConfig
from engine.features import frame_count, log_mel_spectrogram
from engine.errors import AudioLoadError
from engine.precision import choose_precision
from engine.predict import iter_predictions, samples_reader


@dataclass(frozen=True)
class DecodedAudio:
    path: Path
    samples: np.ndarray   # float32 mono at the feature sample rate
    log_mel: np.ndarray   # [frames, n_mels], natural log of mel magnitudes
    warnings: tuple[str, ...] = ()  # e.g. a truncated file decoded up to the damage


def decode_and_analyse(path: Path, features: FeatureConfig = FeatureConfig()) -> DecodedAudio:
    """Decode a file and compute the mel spectrogram the network sees."""
    problems: list[str] = []
    samples = load_audio(path, sample_rate=features.sample_rate, on_warning=problems.append)
    if frame_count(len(samples), features) == 0:
        raise AudioLoadError(path, f"too short to analyse ({len(samples)} samples, "
                                   f"less than one {features.frame_length}-sample frame)")
    log_mel = log_mel_spectrogram(samples, features).numpy()
    return DecodedAudio(Path(path), samples, log_mel, tuple(problems))


@dataclass(frozen=True)
class PredictionDone:
    probabilities: np.ndarray  # [frames]
    precision: str = "fp32"    # what the network ran in


def predict_audio(model: VoiceModel, samples: np.ndarray, *, pitch_factors=(1.0,),
                  precision: str = "auto") -> Iterator[float | PredictionDone]:
    """Per-frame voice probabilities, chunk by chunk: yields the fraction done, then the result.

    A generator, so that the worker can cancel between chunks (closing the app mid-prediction).
    ``precision`` auto is resolved here, in the worker (a first calibration must not block the GUI).
    """
    resolved = choose_precision(precision, model.device).precision
    n_frames, read = samples_reader(model, samples)
    out = np.empty(n_frames, dtype=np.float32)
    for first, stop, chunk in iter_predictions(model, n_frames, read, pitch_factors=pitch_factors,
                                               precision=resolved):
        out[first:stop] = chunk
        yield stop / n_frames
    yield PredictionDone(out, resolved)
