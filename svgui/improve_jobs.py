"""Model ▸ Improve Model with My Annotations…: the work, without Qt (run in a worker thread).

The files the user has corrected (``engine.annotation_state.file_status`` "edited" or "reviewed")
are split, seeded, into fine-tuning files and held-out files; the active model is fine-tuned on
the first (``engine.train.train(init_from=...)``) and both models are scored on the second: frame
error and the edits an annotator would still make (``engine.annotation_effort``). The held-out
files compare the models; on request, with at least ``MIN_THRESHOLD_FILES`` of them, they also
choose the new model's threshold (fine-tuning shifts the network's output scale, bench/annotation_effort.py), and
each file's figure for the new model is then taken at the threshold chosen on the *other* held-out
files, so that the table does not flatter it. Otherwise the new model keeps the parent's threshold.
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
from engine.evaluate import Counts, find_best_threshold
from engine.finetune import (
    DEFAULT_TUNE,
    FINETUNE_UPDATES,
    TuneOptions,
    check_finetune_count,
    check_finetune_data,
    finetune_config,
    parent_augment_for,
)
from engine.predict import predict_linear
from engine.train import TrainProgress, train
from svgui.model_jobs import BATCH_S, Loading, LogLine, TrainingSteps

CORRECTED = ("edited", "reviewed")
HOLDOUT_FRACTION = 0.25   # at least one file, at most all but one (engine.datasets.split_tracks)
MIN_THRESHOLD_FILES = 2   # held-out files needed to choose the new model's threshold (one scores, one chooses)


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
    tune: TuneOptions = DEFAULT_TUNE       # frozen layers, balanced sampling (engine.finetune)
    # On the held-out files when there are MIN_THRESHOLD_FILES; off by default: on musdb7 it helped
    # once and hurt once (README "Improving the model with your annotations").
    choose_threshold: bool = False


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
    threshold_note: str = ""   # where the new model's threshold comes from

    def pooled(self, which: str) -> tuple[Counts, float]:
        """Pooled frame counts and edits per minute over the held-out files, for "parent" or "child"."""
        counts, edits = pooled([getattr(r, which) for r in self.rows])
        return counts, edits.per_minute


def verdict(result: ImproveResult) -> tuple[str, str]:
    """("better" | "worse" | "mixed" | "same", one plain sentence) from the pooled held-out figures.

    Frame error decides; edits per minute break a tie or, against the error, make it "mixed".
    """
    (before, before_edits), (after, after_edits) = result.pooled("parent"), result.pooled("child")
    error = (after.error > before.error) - (after.error < before.error)
    edits = 0 if math.isnan(before_edits) or math.isnan(after_edits) else \
        (after_edits > before_edits) - (after_edits < before_edits)
    parent, n = result.parent_name, len(result.rows)
    if error > 0 and edits >= 0 or error == 0 and edits > 0:
        return "worse", (f"The new model is worse than {parent} on the {n} held-out file(s): keep using {parent}, "
                         "which stays the active model.")
    if error < 0 and edits <= 0 or error == 0 and edits < 0:
        return "better", f"The new model is better than {parent} on the {n} held-out file(s)."
    if error == 0:
        return "same", (f"The new model does no better than {parent} on the {n} held-out file(s): "
                        f"{parent} stays the active model.")
    return "mixed", (f"Mixed: the new model {'errs on fewer' if error < 0 else 'errs on more'} frames but needs "
                     f"{'more' if edits > 0 else 'fewer'} edits than {parent} on the {n} held-out file(s); "
                     f"{parent} stays the active model until you choose.")


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


def _scores(model, data: Sequence[TrackData], thresholds: Sequence[float] | None = None,
            probabilities: Sequence | None = None) -> list[FileEffort]:
    """Each file's effort at the model's threshold, or at its own entry of ``thresholds``."""
    probabilities = probabilities or [predict_linear(model, d.linear) for d in data]
    thresholds = thresholds or [model.threshold] * len(data)
    return [file_effort(d.track.name, p, d.targets, threshold=t, frames_per_second=model.features.frames_per_second,
                        eval_config=model.eval_config) for d, p, t in zip(data, probabilities, thresholds)]


def leave_one_out_thresholds(probabilities: Sequence, data: Sequence[TrackData], eval_config) -> list[float]:
    """For each file, the threshold chosen on all the other files (its score then owes nothing to itself)."""
    out = []
    for i in range(len(data)):
        others = [j for j in range(len(data)) if j != i]
        threshold, _ = find_best_threshold([probabilities[j] for j in others], [data[j].targets for j in others],
                                           config=eval_config)
        out.append(float(threshold))
    return out


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
    augment, note = parent_augment_for(request.parent_path, tune_tracks)
    if note:
        yield LogLine(f"note: {note}")
    yield LogLine(f"fine-tuning {parent.name}: {config.updates:,} updates from learning rate "
                  f"{config.learning_rate:g}, {request.tune.describe()}, augmentation {augment.describe()}, "
                  f"device {request.device}")
    choose = request.choose_threshold and len(held) >= MIN_THRESHOLD_FILES
    if choose:  # train() picks the final threshold on its validation files; no validation before the end
        config = finetune_config(request.parent_path, updates=request.updates, seed=request.seed, validate_every=0)
    request.out_path.parent.mkdir(parents=True, exist_ok=True)
    steps = train(train_data=tune, valid_data=held if choose else (), out_path=request.out_path, config=config,
                  features=parent.features, device=request.device, init_from=request.parent_path,
                  augment=augment, name=request.out_path.stem, tune=request.tune,
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
    if choose:
        probabilities = [predict_linear(child, d.linear) for d in held]
        after = _scores(child, held, leave_one_out_thresholds(probabilities, held, child.eval_config), probabilities)
        note = (f"threshold {child.threshold:.2f} chosen on the {len(held)} held-out files (the parent's: "
                f"{parent.threshold:.2f}); each file's figure for the new model uses the threshold chosen on the "
                f"other held-out files")
    else:
        after = _scores(child, held)
        note = (f"the parent's threshold {parent.threshold:.2f} kept (choosing one needs at least "
                f"{MIN_THRESHOLD_FILES} held-out files)" if request.choose_threshold else
                f"the parent's threshold {parent.threshold:.2f} kept")
    yield LogLine(note)
    rows = tuple(HeldOutRow(b.name, b, a) for b, a in zip(before, after))
    return ImproveResult(request.out_path, parent.name, child.name, tuple(d.track.name for d in tune), rows, last,
                         threshold_note=note)

