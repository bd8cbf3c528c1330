"""Many files at once, as generators: predict files into exports, or predict and score a labelled set.

Both yield one small record per file, so a caller can show progress and cancel between files
(the command line iterates; the GUI runs the same generators in a worker thread). A file that
cannot be read becomes a record with an ``error`` and the others go on.

Predictions are named song.pred.lab, song.pred.txt, ... (``engine.export.output_path``) and never
replace a file that the folder's manifest does not record as ours, unless asked to (``overwrite``).
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
from engine.datasets import (
    Track,
    TrackData,
    format_names,
    is_jamendo_layout,
    load_jamendo,
    load_track,
    musdb_tracks,
    resolve_dataset,
)
from engine.errors import ConfigError, EngineError, OverwriteRefused
from engine.evaluate import Evaluation, evaluate, predicted_intervals
from engine.export import (
    MANIFEST_NAME,
    ExportInfo,
    manifest_entry,
    manifest_is_ours,
    output_path,
    recorded_outputs,
    write_manifest,
    write_prediction,
)
from engine.fileio import ensure_writable_folder
from engine.predict import predict_file, predict_linear
from engine.stems import is_musdb_layout


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
    """One output per input, named by ``output_path`` (song.pred.lab); same-named inputs from
    different folders get song-2.pred.lab, song-3.pred.lab ... in input order."""
    target = output_path(out_dir, source, fmt)
    n = 2
    while target in used:
        target = output_path(out_dir, source.with_name(f"{source.stem}-{n}{source.suffix}"), fmt)
        n += 1
    used.add(target)
    return target


@dataclass(frozen=True)
class OutputPlan:
    """Where each input's prediction goes, decided before anything is decoded."""

    sources: tuple[Path, ...]
    targets: tuple[Path, ...]  # targets[i] is the output of sources[i]
    ours: frozenset[Path]  # existing targets that their folder's manifest records as our output
    foreign: tuple[Path, ...]  # existing targets it does not: replaced only when overwriting is asked for

    @property
    def folders(self) -> list[Path]:
        """The output folders, in input order."""
        return list(dict.fromkeys(t.parent for t in self.targets))

    def may_write(self, target: Path, *, overwrite: bool) -> bool:
        """Whether writing ``target`` replaces nothing but our own earlier output."""
        return overwrite or target in self.ours or not target.exists()


def plan_outputs(files: Sequence[str | os.PathLike], *, fmt: str,
                 out_dir: str | os.PathLike | None) -> OutputPlan:
    """Name every output (into ``out_dir``, or beside its audio file when None) and find the
    files already there that no manifest records as ours."""
    sources = tuple(Path(f) for f in files)
    used: set[Path] = set()
    targets = tuple(unique_output(Path(out_dir) if out_dir is not None else s.parent, s, fmt, used)
                    for s in sources)
    folders = list(dict.fromkeys(t.parent for t in targets))
    recorded = {folder: recorded_outputs(folder) for folder in folders}
    existing = [t for t in targets if t.exists()]
    ours = frozenset(t for t in existing if t.name in recorded[t.parent])
    # A manifest we cannot read may be someone else's file of that name: it is in the way too.
    foreign_manifests = [folder / MANIFEST_NAME for folder in folders if not manifest_is_ours(folder)]
    return OutputPlan(sources, targets, ours, tuple(t for t in existing if t not in ours) + tuple(foreign_manifests))


def prepare_outputs(files: Sequence[str | os.PathLike], *, fmt: str, out_dir: str | os.PathLike | None,
                    overwrite: bool = False) -> OutputPlan:
    """``plan_outputs``, then check before any decoding: every output folder can be created and
    written (else OutputWriteError naming it), and nothing foreign is in the way unless
    ``overwrite`` (else OverwriteRefused listing the files)."""
    plan = plan_outputs(files, fmt=fmt, out_dir=out_dir)
    for folder in plan.folders:
        ensure_writable_folder(folder)
    if plan.foreign and not overwrite:
        folders = ", ".join(str(f) for f in dict.fromkeys(t.parent for t in plan.foreign))
        raise OverwriteRefused(plan.foreign, (
            f"{len(plan.foreign)} file(s) exist where predictions or their {MANIFEST_NAME} would go and "
            f"are not outputs recorded there: {format_names([t.name for t in plan.foreign])} (in {folders}); "
            f"nothing was written"))
    return plan


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
                  out_dir: str | os.PathLike | None, info: ExportInfo, config: PredictConfig = PredictConfig(),
                  overwrite: bool = False) -> Iterator[FileOutcome | BatchDone]:
    """Predict each file and write its export; yields a FileOutcome per file, then a BatchDone.

    ``out_dir`` None writes every export beside its audio file (and a manifest into each such
    folder); otherwise all go into ``out_dir`` with one manifest. Before the first file is
    decoded, ``prepare_outputs`` checks the output folders and refuses to replace files that
    are not our earlier output unless ``overwrite``; one that appears during the run is a
    failed file. Manifests are merged with what they held. Closing the generator early still
    writes the manifests of the files done so far.
    """
    plan = prepare_outputs(files, fmt=fmt, out_dir=out_dir, overwrite=overwrite)
    outcomes: list[FileOutcome] = []
    completed = False
    try:
        for source, target in zip(plan.sources, plan.targets):
            outcome = predict_one(model, source, target, fmt=fmt, info=info, config=config,
                                  replace=plan.may_write(target, overwrite=overwrite),
                                  done=len(outcomes) + 1, total=len(plan.sources))
            outcomes.append(outcome)
            yield outcome
        completed = True
    finally:
        manifests = _write_manifests(outcomes, plan, fmt=fmt, info=info)
    yield BatchDone(tuple(outcomes), tuple(manifests), cancelled=not completed)


def predict_one(model: VoiceModel, source: Path, target: Path, *, fmt: str, info: ExportInfo,
                config: PredictConfig = PredictConfig(), replace: bool = False, done: int = 1,
                total: int = 1) -> FileOutcome:
    """Predict ``source`` and write ``target`` in ``fmt``; a failure becomes the outcome's error.

    An existing ``target`` is replaced only when ``replace`` (our earlier output, or overwriting
    asked for: ``OutputPlan.may_write``); otherwise it is refused before decoding.
    """
    source, target = Path(source), Path(target)
    if target.exists() and not replace:
        return FileOutcome(done, total, source, error=(
            f"{target}: exists and is not a prediction recorded in {MANIFEST_NAME}; not replaced"))
    try:
        prediction = predict_file(model, source, tta=info.tta, config=config)
        intervals = predicted_intervals(prediction.probabilities, threshold=info.threshold,
                                        frames_per_second=prediction.frames_per_second,
                                        median_frames=info.median_frames)
        write_prediction(target, fmt, intervals=intervals, probabilities=prediction.probabilities,
                         duration_s=prediction.duration_s, info=info, name=source.name)
    except (EngineError, OSError, MemoryError) as exc:
        text = str(exc) if isinstance(exc, EngineError) else f"{source}: {exc}"
        return FileOutcome(done, total, source, error=text)
    voiced_s = sum(b - a for a, b in intervals)
    return FileOutcome(done, total, source, target, prediction.duration_s,
                       voiced_s / max(prediction.duration_s, 1e-9))


def _write_manifests(outcomes: list[FileOutcome], plan: OutputPlan, *, fmt: str, info: ExportInfo) -> list[Path]:
    """Merge each output folder's entries into its manifest (a folder with no file done gets none)."""
    folder_of = {source: target.parent for source, target in zip(plan.sources, plan.targets)}
    groups: dict[Path, list[FileOutcome]] = {}
    for outcome in outcomes:
        groups.setdefault(folder_of[outcome.source], []).append(outcome)
    return [write_manifest(folder, info=info, fmt=fmt, entries=[o.manifest_entry() for o in group])
            for folder, group in groups.items()]


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
    gain_sweep: object = None  # engine.robustness.LevelSweep when asked for (the app's evaluation window)


def evaluation_tracks(path: str | os.PathLike, *, split: str = "test") -> tuple[list[Track], str]:
    """The labelled tracks to score: a Jamendo root's ``split``, else every labelled file of a folder."""
    path = Path(path)
    if is_jamendo_layout(path):
        return load_jamendo(path).splits[split], f"Jamendo {split} split at {path}"
    if is_musdb_layout(path):  # MUSDB18-HQ has no valid split: its test songs either way
        return musdb_tracks(path / "test"), f"MUSDB18-HQ test songs at {path}"
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
    factors = PredictConfig().pitch_factors(tta)
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
