"""Long work of the training, folder-prediction, evaluation and model dialogs: engine calls, no Qt.

Each job is a generator that the dialogs run in a worker thread (``svgui.workers``): every yield
becomes a progress signal and a cancel point, and its ``return`` value is the result. They compose
engine functions only.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.batch_predict import (
    BatchDone,
    FileOutcome,
    ScoredSet,
    ScoreProgress,
    evaluation_tracks,
    export_info,
    find_audio_files,
    predict_files,
    score_tracks,
)
from engine.cache import SpectrogramCache
from engine.checkpoint import check_model_output, load_model, read_resume_settings
from engine.config import AugmentConfig, FeatureConfig, ModelConfig, PredictConfig, TrainConfig
from engine.datasets import (
    Track,
    TrackData,
    check_disjoint,
    is_jamendo_layout,
    load_jamendo,
    load_track,
    scan_folder,
    split_tracks,
)
from engine.devices import pick_device
from engine.errors import DatasetError, EngineError
from engine.evaluate import smooth_probabilities
from engine.precision import choose_precision
from engine.predict import predict_samples
from engine.robustness import LevelSweep, sweep_gains
from engine.train import TrainProgress, checkpoint_path_for, train
from svgui.tasks import result_of

VALIDATION_MODES = ("fraction", "folder", "official", "none")
BATCH_S = 0.1  # training progress goes to the GUI at most this often (and at each validation)


# ---- training -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingRequest:
    """Everything the training dialog asks for."""

    out_path: Path
    folders: tuple[Path, ...] = ()
    files: tuple[Track, ...] = ()          # labelled files listed in the app
    validation: str = "fraction"           # one of VALIDATION_MODES
    valid_fraction: float = 0.1
    valid_folder: Path | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    config: TrainConfig = field(default_factory=TrainConfig)
    model_config: ModelConfig = field(default_factory=ModelConfig)
    device: str = "cpu"
    resume: bool = False
    overwrite: bool = False                # replace an existing model at out_path (the dialog asked)

    @property
    def checkpoint_path(self) -> Path:
        return checkpoint_path_for(self.out_path)


@dataclass(frozen=True)
class LogLine:
    """A line for the dialog's log."""

    text: str


@dataclass(frozen=True)
class Loading:
    """One file's spectrograms read (from the cache or decoded)."""

    done: int
    total: int
    name: str


@dataclass(frozen=True)
class TrainingSteps:
    """Progress records of consecutive updates, sent to the GUI together."""

    records: tuple[TrainProgress, ...]

    @property
    def last(self) -> TrainProgress:
        return self.records[-1]


@dataclass(frozen=True)
class TrainingData:
    train: list[Track]
    valid: list[Track]
    description: str
    notes: tuple[str, ...] = ()


def gather_training_data(request: TrainingRequest) -> TrainingData:
    """Training and validation tracks from the request's folders and files (engine scanners only)."""
    train: list[Track] = []
    official: list[Track] = []
    parts: list[str] = []
    notes: list[str] = []
    for folder in request.folders:
        if is_jamendo_layout(folder):
            corpus = load_jamendo(folder)
            train += corpus.splits["train"]
            official += corpus.splits["valid"]
            parts.append(f"Jamendo corpus at {folder}: {len(corpus.splits['train'])} train")
        else:
            tracks, report = scan_folder(folder)
            if not tracks:
                raise DatasetError(f"no audio files with labels (.lab or .txt of the same name) in {folder}")
            if not report.is_clean:
                notes.append(report.summary())
            train += tracks
            parts.append(f"folder {folder}: {len(tracks)} files")
    if request.files:
        train += list(request.files)
        parts.append(f"{len(request.files)} files listed in the app")
    train = _unique(train)
    if not train:
        raise DatasetError("no training data: add a folder of labelled audio, or list labelled files in the app")

    mode = request.validation
    if mode == "official":
        if not official:
            raise DatasetError("the official validation split needs a Jamendo corpus folder among the training data")
        valid, what = _unique(official), "Jamendo official valid split"
    elif mode == "fraction":
        train, valid = split_tracks(train, valid_fraction=request.valid_fraction, seed=request.config.seed)
        what = (f"{len(valid)} file(s) held out ({100 * request.valid_fraction:g} %, seed {request.config.seed})"
                if valid else "none (too few files to hold one out)")
    elif mode == "folder":
        if request.valid_folder is None:
            raise DatasetError("choose a validation folder")
        valid = _folder_tracks(Path(request.valid_folder), split="valid")
        what = f"folder {request.valid_folder}: {len(valid)} files"
    else:
        valid, what = [], "none (the threshold is chosen on the training data)"
    check_disjoint(train, valid)
    description = "; ".join(parts) + f"; validation: {what}"
    return TrainingData(train, valid, description, tuple(notes))


def _folder_tracks(folder: Path, *, split: str) -> list[Track]:
    tracks, _ = evaluation_tracks(folder, split=split)
    return tracks


def _unique(tracks: Sequence[Track]) -> list[Track]:
    seen, out = set(), []
    for track in tracks:
        key = track.audio_path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(track)
    return out


def run_training(request: TrainingRequest, *,
                 cache: SpectrogramCache | None = None
                 ) -> Generator[LogLine | Loading | TrainingSteps, None, TrainProgress | None]:
    """Gather and read the data, then ``engine.train.train``: the training dialog's worker.

    Returns train's last record (``finished``, with the model written); it was also sent as progress."""
    check_model_output(request.out_path, overwrite=request.overwrite)  # before any data is read
    data = gather_training_data(request)
    yield LogLine(f"data: {data.description}")
    for note in data.notes:
        yield LogLine(f"skipped: {note}")
    cache = cache or SpectrogramCache()
    features = FeatureConfig()
    resume_from = None
    augment = request.augment
    if request.resume:
        resume_from = request.checkpoint_path
        settings = read_resume_settings(resume_from)
        features, augment = settings.features, settings.augment
        yield LogLine(f"continuing from {resume_from} (update {settings.update}) with its settings; "
                      f"augmentation: {augment.describe()}")
    tracks = data.train + data.valid
    loaded: list[TrackData] = []
    notes_shown = len(cache.notes)
    for done, track in enumerate(tracks, start=1):
        loaded.append(load_track(track, config=features, cache=cache))
        for note in cache.notes[notes_shown:]:  # a full disk, a repaired entry: said in the log
            yield LogLine(f"warning: {note}")
        notes_shown = len(cache.notes)
        yield Loading(done, len(tracks), track.name)
    train_data, valid_data = loaded[:len(data.train)], loaded[len(data.train):]
    yield LogLine(f"read {len(train_data)} training and {len(valid_data)} validation file(s): "
                  f"{sum(d.duration_s for d in train_data) / 60:.1f} + "
                  f"{sum(d.duration_s for d in valid_data) / 60:.1f} min of audio")
    request.out_path.parent.mkdir(parents=True, exist_ok=True)
    steps = train(train_data=train_data, valid_data=valid_data, out_path=request.out_path,
                  config=request.config, model_config=request.model_config, features=features,
                  device=request.device, resume_from=resume_from, data_description=data.description,
                  name=request.out_path.stem, augment=augment, overwrite=request.overwrite)
    # One record per update would wake the GUI thread (and take the GIL) hundreds of times a second on
    # a fast device: send them in batches, at most every BATCH_S, validations and the end at once.
    batch: list[TrainProgress] = []
    sent_at = -math.inf
    progress = None
    try:
        for progress in steps:
            batch.append(progress)
            now = time.perf_counter()
            if now - sent_at >= BATCH_S or progress.finished or progress.validation is not None:
                yield TrainingSteps(tuple(batch))  # the worker pauses and cancels here
                batch, sent_at = [], now
    finally:
        steps.close()  # cancelled: train's finally saves the checkpoint at the last update sent
    return progress


def readable_training_error(exc: BaseException, *, device: str, checkpoint: Path) -> str:
    """What went wrong, in words, and what is left on disk (never a traceback)."""
    kept = (f"The last checkpoint is kept at {checkpoint}." if checkpoint.is_file()
            else "No checkpoint was written yet.")
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MemoryError) or isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())) \
            or "out of memory" in text.lower():
        hint = "a smaller batch size" + (", or the CPU" if device.startswith("cuda") else ", or fewer/shorter files")
        return f"Training ran out of memory on {device}. Try {hint}. {kept}"
    if isinstance(exc, EngineError):
        return text if "checkpoint" in text else f"{text}\n{kept}"
    return f"{text}\n{kept}"


# ---- folder prediction --------------------------------------------------------------------------
def run_batch_prediction(model_path: Path, inputs: Sequence[Path], *, fmt: str, out_dir: Path | None,
                         tta: bool, device: str | None = None, overwrite: bool = False,
                         precision: str = "auto") -> Generator[LogLine | FileOutcome, None, BatchDone]:
    """Load a private copy of the model (the window's stays free), list the audio, predict each file;
    files in the way that are not our recorded output are replaced only with ``overwrite``."""
    model = load_model(model_path, device=pick_device(device))
    files, empty = find_audio_files(inputs)
    for folder in empty:
        yield LogLine(f"no audio files in {folder}")
    if not files:
        raise EngineError("no audio files to predict in the chosen folders")
    choice = choose_precision(precision, model.device)  # auto may calibrate once: here, in the worker
    yield LogLine(f"{len(files)} audio file(s) with {model.name}, precision {choice.note}")
    return (yield from result_of(
        predict_files(model, files, fmt=fmt, out_dir=out_dir, info=export_info(model, tta=tta),
                      overwrite=overwrite, config=PredictConfig(precision=choice.precision)), BatchDone))


# ---- evaluation and comparison ------------------------------------------------------------------
@dataclass(frozen=True)
class ModelStep:
    """Progress of one model of several (comparisons)."""

    model_index: int
    n_models: int
    inner: ScoreProgress | None = None


def run_evaluation(model_path: Path, folder: Path, *, tta: bool = False, collar_s: float = 0.0,
                   device: str | None = None,
                   gains_db: Sequence[float] = ()) -> Generator[ScoreProgress, None, ScoredSet]:
    """Score one model on a labelled folder (a Jamendo root: its test split); with ``gains_db``,
    also at each input gain, at the same threshold (``engine.robustness.sweep_gains``)."""
    model = load_model(model_path, device=pick_device(device))
    tracks, description = evaluation_tracks(folder)
    scored = yield from result_of(score_tracks(model, tracks, tta=tta, collar_s=collar_s, description=description),
                                  ScoredSet)
    if scored is None or not gains_db:
        return scored
    cache = SpectrogramCache()
    data = [load_track(t, config=model.features, cache=cache) for t in scored.tracks]
    sweep = yield from sweep_gains(model, data, gains_db, threshold=scored.evaluation.threshold,
                                   eval_config=dataclasses.replace(model.eval_config, collar_s=collar_s),
                                   pitch_factors=PredictConfig().pitch_factors(tta), at_zero=scored.probabilities)
    return dataclasses.replace(scored, gain_sweep=sweep)


@dataclass(frozen=True)
class Comparison:
    """Two or more models on one folder: a ScoredSet each, in the order asked."""

    paths: tuple[Path, ...]
    names: tuple[str, ...]
    results: tuple[ScoredSet, ...]


def run_folder_comparison(model_paths: Sequence[Path], folder: Path, *,
                          device: str | None = None) -> Generator[ModelStep, None, Comparison]:
    tracks, description = evaluation_tracks(folder, split="valid")
    cache = SpectrogramCache()
    results, names = [], []
    for index, path in enumerate(model_paths):
        model = load_model(path, device=pick_device(device))
        names.append(model.name)
        scores = result_of(score_tracks(model, tracks, cache=cache, description=description), ScoredSet)
        results.append((yield from _model_steps(scores, index, len(model_paths))))
    return Comparison(tuple(map(Path, model_paths)), distinct_names(names, model_paths), tuple(results))


@dataclass(frozen=True)
class GainComparison:
    """Two or more models' figures at each input gain on one folder (each at its own threshold)."""

    paths: tuple[Path, ...]
    names: tuple[str, ...]
    sweeps: tuple[LevelSweep, ...]
    description: str


DEFAULT_GAINS_DB = (-18.0, -12.0, -6.0, 0.0, 6.0)  # issue 12's robustness table


def run_gain_comparison(model_paths: Sequence[Path], folder: Path, *, gains_db: Sequence[float] = DEFAULT_GAINS_DB,
                        device: str | None = None) -> Generator[ModelStep, None, GainComparison]:
    """Each model's error, recall and specificity at every gain (``engine.robustness.sweep_gains``)."""
    tracks, description = evaluation_tracks(folder, split="valid")
    cache = SpectrogramCache()
    sweeps, names = [], []
    for index, path in enumerate(model_paths):
        model = load_model(path, device=pick_device(device))
        names.append(model.name)
        data = [load_track(t, config=model.features, cache=cache) for t in tracks]
        if any(d.targets is None for d in data):
            raise DatasetError(f"{folder}: every file needs labels to score against")
        sweep = sweep_gains(model, data, gains_db, threshold=model.threshold)
        sweeps.append((yield from _model_steps(sweep, index, len(model_paths))))
    return GainComparison(tuple(map(Path, model_paths)), distinct_names(names, model_paths), tuple(sweeps),
                          description)


@dataclass(frozen=True)
class Curves:
    """Several models' smoothed probabilities for one signal."""

    paths: tuple[Path, ...]
    names: tuple[str, ...]
    thresholds: tuple[float, ...]
    smoothed: tuple[np.ndarray, ...]
    frames_per_second: float


def run_curve_comparison(model_paths: Sequence[Path], samples: np.ndarray, *,
                         device: str | None = None) -> Generator[ModelStep, None, Curves]:
    names, thresholds, curves, fps = [], [], [], math.nan
    for index, path in enumerate(model_paths):
        model = load_model(path, device=pick_device(device))
        probabilities = predict_samples(model, samples)
        names.append(model.name)
        thresholds.append(model.threshold)
        curves.append(smooth_probabilities(probabilities, median_frames=model.eval_config.median_frames))
        fps = model.features.frames_per_second
        yield ModelStep(index + 1, len(model_paths))
    return Curves(tuple(map(Path, model_paths)), distinct_names(names, model_paths), tuple(thresholds), tuple(curves),
                 fps)


def _model_steps(scores: Generator[ScoreProgress, None, ScoredSet], index: int,
                 n_models: int) -> Generator[ModelStep, None, ScoredSet]:
    """One model's file progress as ModelSteps; returns its ScoredSet."""
    try:
        while True:
            try:
                progress = next(scores)
            except StopIteration as stop:
                return stop.value
            yield ModelStep(index, n_models, progress)
    finally:
        scores.close()


def distinct_names(names: Sequence[str], paths: Sequence[str | os.PathLike]) -> tuple[str, ...]:
    """Model names for legends and table headers; file names where two models share a name."""
    if len(set(names)) == len(names):
        return tuple(names)
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return tuple(stems)
    return tuple(f"{name} ({i + 1})" for i, name in enumerate(names))


def same_file(a: str | os.PathLike | None, b: str | os.PathLike | None) -> bool:
    if a is None or b is None:
        return False
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))
