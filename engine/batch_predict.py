"""Many files at once, as generators: predict files into exports, or predict and score a labelled set.

Both yield one small record per file, so a caller can show progress and cancel between files
(the command line iterates; the GUI runs the same generators in a worker thread). A file that
cannot be read becomes a record with an ``error`` and the others go on.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio import is_audio_path
from engine.cache import SpectrogramCache
from engine.checkpoint import VoiceModel, file_sha256
from engine.config import PredictConfig
from engine.datasets import Track, TrackData, is_jamendo_layout, load_jamendo, load_track, resolve_dataset
from engine.errors import ConfigError, EngineError
from engine.evaluate import Evaluation, evaluate, predicted_intervals
from engine.export import ExportInfo, manifest_entry, output_path, write_manifest, write_prediction
from engine.predict import predict_file, predict_linear


# ---- predicting files into exports -------------------------------------------------------------
@dataclass(frozen=True)
class FileOutcome:
    """One input file done: its export, or why it failed."""

    done: int  # files finished so far, this one included
    total: int
    source: Path
    output: Path | None = None
    duration_s: float | None = None
    voiced_fraction: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def manifest_entry(self) -> dict:
        return manifest_entry(self.source, self.output, duration_s=self.duration_s,
                              voiced_fraction=self.voiced_fraction, error=self.error)


@dataclass(frozen=True)
class BatchDone:
    """The last record: every outcome, and the manifests written (one per output folder)."""

    outcomes: tuple[FileOutcome, ...]
    manifests: tuple[Path, ...]
    cancelled: bool = False

    @property
    def failures(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if not o.ok]


def find_audio_files(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """Audio files of the given files and folders (folders recursively, hidden files skipped).

    Returns the files, in the order given (each folder's files sorted), and the folders that held
    no audio file. A path that is neither is kept as a file: predicting it reports what is wrong.
    """
    files: list[Path] = []
    empty: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_audio_path(p)
                           and not p.name.startswith("."))
            if not found:
                empty.append(path)
            files.extend(found)
        else:
            files.append(path)
    return files, empty


def unique_output(out_dir: Path, source: Path, fmt: str, used: set[Path]) -> Path:
    """One output per input, named after it; same-named inputs from different folders get -2, -3."""
    target = output_path(out_dir, source, fmt)
    n = 2
    while target in used:
        target = output_path(out_dir, source.with_name(f"{source.stem}-{n}{source.suffix}"), fmt)
        n += 1
    used.add(target)
    return target


def export_info(model: VoiceModel, *, threshold: float | None = None, tta: bool = False) -> ExportInfo:
    """What every export of this batch records about its model (SHA-256 of the model file)."""
    threshold = model.threshold if threshold is None else float(threshold)
    if not 0.0 <= threshold <= 1.0:  # NaN fails too
        raise ConfigError(f"the threshold must be in [0, 1], got {threshold}")
    return ExportInfo(model_name=model.name, threshold=threshold, tta=tta,
                      frames_per_second=model.features.frames_per_second,
                      median_frames=model.eval_config.median_frames,
                      model_sha256=file_sha256(model.path) if model.path is not None else "")


def predict_files(model: VoiceModel, files: Sequence[str | os.PathLike], *, fmt: str,
                  out_dir: str | os.PathLike | None, info: ExportInfo,
                  config: PredictConfig = PredictConfig()) -> Iterator[FileOutcome | BatchDone]:
    """Predict each file and write its export; yields a FileOutcome per file, then a BatchDone.

    ``out_dir`` None writes every export beside its audio file (and a manifest into each such
    folder); otherwise all go into ``out_dir`` with one manifest. Closing the generator early
    still writes the manifests of the files done so far.
    """
    files = [Path(f) for f in files]
    outcomes: list[FileOutcome] = []
    used: set[Path] = set()
    completed = False
    try:
        for source in files:
            outcome = _predict_one(model, source, fmt=fmt, out_dir=out_dir, info=info, config=config, used=used,
                                   done=len(outcomes) + 1, total=len(files))
            outcomes.append(outcome)
            yield outcome
        completed = True
    finally:
        manifests = _write_manifests(outcomes, fmt=fmt, out_dir=out_dir, info=info)
    yield BatchDone(tuple(outcomes), tuple(manifests), cancelled=not completed)


def _predict_one(model: VoiceModel, source: Path, *, fmt: str, out_dir, info: ExportInfo, config: PredictConfig,
                 used: set[Path], done: int, total: int) -> FileOutcome:
    try:
        prediction = predict_file(model, source, tta=info.tta, config=config)
        intervals = predicted_intervals(prediction.probabilities, threshold=info.threshold,
                                        frames_per_second=prediction.frames_per_second,
                                        median_frames=info.median_frames)
        target = unique_output(Path(out_dir) if out_dir is not None else source.parent, source, fmt, used)
        write_prediction(target, fmt, intervals=intervals, probabilities=prediction.probabilities,
                         duration_s=prediction.duration_s, info=info, name=source.name)
    except (EngineError, OSError, MemoryError) as exc:
        text = str(exc) if isinstance(exc, EngineError) else f"{source}: {exc}"
        return FileOutcome(done, total, source, error=text)
    voiced_s = sum(b - a for a, b in intervals)
    return FileOutcome(done, total, source, target, prediction.duration_s,
                       voiced_s / max(prediction.duration_s, 1e-9))


def _write_manifests(outcomes: list[FileOutcome], *, fmt: str, out_dir, info: ExportInfo) -> list[Path]:
    groups: dict[Path, list[FileOutcome]] = {}
    if out_dir is not None:
        groups[Path(out_dir)] = outcomes
    else:
        for outcome in outcomes:
            groups.setdefault(outcome.output.parent if outcome.output else outcome.source.parent, []).append(outcome)
    written = []
    for folder, group in groups.items():
        try:
            written.append(write_manifest(folder, info=info, fmt=fmt, entries=[o.manifest_entry() for o in group]))
        except EngineError:
            if out_dir is not None:
                raise  # the one requested output folder cannot be written: say so
            # beside the audio: a read-only source folder has failed entries only; nothing to describe
    return written


# ---- scoring a labelled set ----------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreProgress:
    """One labelled file predicted."""

    done: int
    total: int
    name: str


@dataclass(frozen=True)
class ScoredSet:
    """The last record of ``score_tracks``: figures at one threshold, and the files behind them."""

    evaluation: Evaluation
    tracks: tuple[Track, ...]
    probabilities: tuple[np.ndarray, ...]
    description: str = ""
    tta: bool = False


def evaluation_tracks(path: str | os.PathLike, *, split: str = "test") -> tuple[list[Track], str]:
    """The labelled tracks to score: a Jamendo root's ``split``, else every labelled file of a folder."""
    path = Path(path)
    if is_jamendo_layout(path):
        return load_jamendo(path).splits[split], f"Jamendo {split} split at {path}"
    return resolve_dataset(path), f"folder {path}"


def score_tracks(model: VoiceModel, tracks: Sequence[Track], *, threshold: float | None = None,
                 tta: bool = False, collar_s: float = 0.0, cache: SpectrogramCache | None = None,
                 description: str = "") -> Iterator[ScoreProgress | ScoredSet]:
    """Predict each labelled track (through the spectrogram cache) and score them all.

    Yields a ScoreProgress per file, then a ScoredSet with ``engine.evaluate.evaluate``'s figures
    at ``threshold`` (the model's by default), smoothing and grid as the model was tuned with.
    """
    cache = cache or SpectrogramCache()
    eval_config = dataclasses.replace(model.eval_config, collar_s=collar_s)
    factors = PredictConfig().tta_pitch_factors if tta else (1.0,)
    data: list[TrackData] = []
    probabilities = []
    for done, track in enumerate(tracks, start=1):
        loaded = load_track(track, config=model.features, cache=cache)
        if loaded.targets is None:
            raise EngineError(f"{track.audio_path}: no label file to score against")
        data.append(loaded)
        probabilities.append(predict_linear(model, loaded.linear, pitch_factors=factors))
        yield ScoreProgress(done, len(tracks), track.name)
    result = evaluate(probabilities, [d.targets for d in data], [d.track.name for d in data],
                      threshold=model.threshold if threshold is None else threshold, config=eval_config,
                      frames_per_second=model.features.frames_per_second)
    yield ScoredSet(result, tuple(tracks), tuple(probabilities), description, tta)
