"""Long work the GUI runs in worker threads: plain engine calls, no Qt.

Generators here follow the worker contract of ``svgui.workers``: yields are progress, the
``return`` value is the result.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from engine.audio import load_audio
from engine.checkpoint import VoiceModel
from engine.config import FeatureConfig
from engine.errors import AudioLoadError
from engine.features import frame_count, log_mel_spectrogram
from engine.precision import choose_precision
from engine.predict import iter_predictions, samples_reader

R = TypeVar("R")


def result_of(records: Iterable[Any], result_type: type[R]) -> Generator[Any, None, R | None]:
    """Adapt an engine generator whose last record is its result (``predict_files`` ends with a
    BatchDone, ``score_tracks`` with a ScoredSet; the CLI reads them so) to the worker contract:
    the records before it are yielded as progress, the first ``result_type`` record is returned."""
    iterator = iter(records)
    try:
        for record in iterator:
            if isinstance(record, result_type):
                return record
            yield record
        return None
    finally:
        getattr(iterator, "close", lambda: None)()  # cancelled: the engine generator's finally runs now


def drain(generator: Generator[Any, None, R]) -> tuple[list[Any], R]:
    """Run a generator to its end here (tests, scripts): (the progress yielded, the returned result)."""
    progress: list[Any] = []
    while True:
        try:
            progress.append(next(generator))
        except StopIteration as stop:
            return progress, stop.value


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


@dataclass(frozen=True)
class PredictionProgress:
    """A step of ``predict_audio``: the fraction done and the probabilities of the frames done."""
    fraction: float
    probabilities: np.ndarray  # [frames done so far], final values, read-only


def predict_audio(model: VoiceModel, samples: np.ndarray, *, pitch_factors=(1.0,),
                  precision: str = "auto") -> Generator[PredictionProgress, None, PredictionDone]:
    """Per-frame voice probabilities, chunk by chunk: yields the progress, returns the result.

    A generator, so that the worker can cancel between chunks (closing the app mid-prediction).
    ``precision`` auto is resolved here, in the worker (a first calibration must not block the GUI).
    Chunks come in order and are never rewritten, so each step can hand out a view of the frames
    done so far: the app draws the curve as it grows.
    """
    resolved = choose_precision(precision, model.device).precision
    n_frames, read = samples_reader(model, samples)
    out = np.empty(n_frames, dtype=np.float32)
    for first, stop, chunk in iter_predictions(model, n_frames, read, pitch_factors=pitch_factors,
                                               precision=resolved):
        out[first:stop] = chunk
        done = out[:stop]
        done.flags.writeable = False  # the view only; the worker keeps writing beyond it
        yield PredictionProgress(stop / n_frames, done)
    return PredictionDone(out, resolved)
