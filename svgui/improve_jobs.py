"""Model ▸ Improve Model with My Annotations…: the work, without Qt (run in a worker thread).

The files the user has corrected (``engine.annotation_state.file_status`` "edited" or "reviewed")
are split, seeded, into fine-tuning files and held-out files; the active model is fine-tuned on
the first (``engine.train.train(init_from=...)``) and both models are scored on the second: frame
error and the edits an annotator would still make (``engine.annotation_effort``). The held-out
files choose nothing: the new model keeps the parent's threshold.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.annotation_effort import FileEffort, file_effort, pooled
from engine.cache import SpectrogramCache
from engine.checkpoint import MODEL_SUFFIX, check_model_output, load_model
from engine.datasets import Track, TrackData, format_names, label_file_for, load_track, split_tracks
from engine.errors import DatasetError
from engine.evaluate import Counts
from engine.finetune import FINETUNE_UPDATES, check_finetune_count, check_finetune_data, finetune_config, parent_augment
from engine.predict import predict_linear
from engine.train import TrainProgress, train
from svgui.model_jobs import BATCH_S, Loading, LogLine, TrainingSteps

CORRECTED = ("edited", "reviewed")
HOLDOUT_FRACTION = 0.25   # at least one file, at most all but one (engine.datasets.split_tracks)


def corrected_files(paths: Sequence[Path], status_of: Callable[[Path], str] | None = None) -> list[Path]:
    """The audio files whose annotation state is edited or reviewed (the user's corrections)."""
    if status_of is None:
        from engine.annotation_state import file_status as status_of
    return [p for p in paths if status_of(p) in CORRECTED]


def default_output(parent_path: Path, folder: Path) -> Path:
    """``<parent>-improved.safetensors`` in ``folder`` (-2, -3 ... if taken): never over an existing file."""
    stem = Path(parent_path).stem.split("-improved")[0]
    for n in range(1, 1000):
        candidate = folder / f"{stem}-improved{'' if n == 1 else f'-{n}'}{MODEL_SUFFIX}"
        if not (candidate.exists() or candidate.is_symlink()):
            return candidate
    raise DatasetError(f"no free model name like {stem}-improved-N{MODEL_SUFFIX} in {folder}")


@dataclass(frozen=True)
class ImproveRequest:
    parent_path: Path
    files: tuple[Path, ...]                # audio files marked edited/reviewed
    out_path: Path
    holdout_fraction: float = HOLDOUT_FRACTION
    seed: int = 0
    updates: int = FINETUNE_UPDATES
    device: str = "cpu"


@dataclass(frozen=True)
class HeldOutRow:
    """One held-out file: the parent's and the new model's error and edits."""

    name: str
    parent: FileEffort
    child: FileEffort


@dataclass(frozen=True)
class ImproveResult:
    out_path: Path
    parent_name: str
    child_name: str
    tuned_files: tuple[str, ...]
    rows: tuple[HeldOutRow, ...]
    last: TrainProgress

    def pooled(self, which: str) -> tuple[Counts, float]:
        """Pooled frame counts and edits per minute over the held-out files, for "parent" or "child"."""
        counts, edits = pooled([getattr(r, which) for r in self.rows])
        return counts, edits.per_minute


def _tracks(files: Sequence[Path]) -> list[Track]:
    tracks, unlabelled = [], []
    for path in files:
        label = label_file_for(Path(path))
        if label is None:
            unlabelled.append(Path(path).name)
        else:
            tracks.append(Track(Path(path).stem, Path(path), label))
    if unlabelled:
        raise DatasetError(f"no label file beside {format_names(unlabelled)}: save the annotations first")
    return tracks


def _scores(model, data: Sequence[TrackData]) -> list[FileEffort]:
    return [file_effort(d.track.name, predict_linear(model, d.linear), d.targets, threshold=model.threshold,
                        frames_per_second=model.features.frames_per_second, eval_config=model.eval_config)
            for d in data]


def run_improve(request: ImproveRequest, *, cache: SpectrogramCache | None = None
                ) -> Generator[LogLine | Loading | TrainingSteps, None, ImproveResult]:
    """Split, read, score the parent, fine-tune, score the child; returns the before/after table."""
    tracks = _tracks(request.files)
    check_finetune_count([t.name for t in tracks])
    check_model_output(request.out_path, overwrite=False)  # never over an existing file, said before any work
    tune_tracks, held_tracks = split_tracks(tracks, valid_fraction=request.holdout_fraction, seed=request.seed)
    yield LogLine(f"{len(tracks)} corrected file(s): fine-tuning on {len(tune_tracks)}, holding out "
                  f"{len(held_tracks)} (seed {request.seed}): {format_names([t.name for t in held_tracks])}")
    parent = load_model(request.parent_path)
    cache = cache or SpectrogramCache()
    loaded = []
    for done, track in enumerate(tune_tracks + held_tracks, start=1):
        loaded.append(load_track(track, config=parent.features, cache=cache))
        yield Loading(done, len(tracks), track.name)
    tune, held = loaded[:len(tune_tracks)], loaded[len(tune_tracks):]
    for note in check_finetune_data(request.parent_path, parent.features, tune, held):
        yield LogLine(f"note: {note}")
    before = _scores(parent, held)
    yield LogLine(f"{parent.name} on the held-out files: scored")
    config = finetune_config(request.parent_path, updates=request.updates, seed=request.seed)
    augment = parent_augment(request.parent_path)
    yield LogLine(f"fine-tuning {parent.name}: {config.updates:,} updates from learning rate "
                  f"{config.learning_rate:g}, augmentation {augment.describe()}, device {request.device}")
    request.out_path.parent.mkdir(parents=True, exist_ok=True)
    steps = train(train_data=tune, valid_data=(), out_path=request.out_path, config=config,
                  features=parent.features, device=request.device, init_from=request.parent_path,
                  augment=augment, name=request.out_path.stem,
                  data_description=f"{parent.name} fine-tuned on {len(tune)} corrected file(s) "
                                   f"({format_names([d.track.name for d in tune])})")
    batch: list[TrainProgress] = []
    sent_at, last = -math.inf, None
    try:
        for last in steps:
            batch.append(last)
            now = time.perf_counter()
            if now - sent_at >= BATCH_S or last.finished:
                yield TrainingSteps(tuple(batch))  # the worker pauses and cancels here
                batch, sent_at = [], now
    finally:
        steps.close()  # cancelled: train's finally keeps a checkpoint
    child = load_model(request.out_path)
    after = _scores(child, held)
    rows = tuple(HeldOutRow(b.name, b, a) for b, a in zip(before, after))
    return ImproveResult(request.out_path, parent.name, child.name, tuple(d.track.name for d in tune), rows, last)

