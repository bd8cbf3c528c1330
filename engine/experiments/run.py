"""One run of a study: train, choose the threshold on validation, evaluate on test (plain and TTA).

``execute_run`` is a plain function of picklable arguments, so the same code runs in this process,
in a local worker process and as a Ray task; it returns the record and the model file's bytes (the
caller stores both). It writes nothing outside a temporary folder, except, when given a
``work_dir`` in the study, the checkpoint of an interrupted run (Ctrl+C, SIGTERM), which the next
call resumes.
"""

from __future__ import annotations

import dataclasses
import shutil
import socket
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.cache import SpectrogramCache
from engine.checkpoint import load_model, load_training_state
from engine.config import FeatureConfig, PredictConfig
from engine.datasets import TrackData, load_tracks
from engine.devices import describe_device, pick_device
from engine.errors import DatasetError, ModelFileError
from engine.evaluate import evaluate, find_best_threshold
from engine.experiments.plan import Plan, RunSpec
from engine.experiments.splits import run_splits
from engine.predict import predict_linear
from engine.robustness import sweep_gains
from engine.signals import sigterm_as_interrupt
from engine.train import TrainProgress, checkpoint_path_for, software_versions, train

ProgressCallback = Callable[[TrainProgress], None]


@contextmanager
def torch_threads(n: int | None):
    """Run with ``n`` intra-op threads (results of a seed are reproducible for a given thread count)."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def score(model, valid: Sequence[TrackData], test: Sequence[TrackData], *, tta: bool) -> dict[str, Any]:
    """Threshold chosen on the validation files, applied to the test files; also the test's own best."""
    factors = PredictConfig().pitch_factors(tta)
    config, fps = model.eval_config, model.features.frames_per_second
    valid_p = [predict_linear(model, t.linear, pitch_factors=factors) for t in valid]
    threshold, valid_counts = find_best_threshold(valid_p, [t.targets for t in valid], config=config,
                                                  frames_per_second=fps)
    test_p = [predict_linear(model, t.linear, pitch_factors=factors) for t in test]
    targets, names = [t.targets for t in test], [t.track.name for t in test]
    result = evaluate(test_p, targets, names, threshold=threshold, config=config, frames_per_second=fps)
    oracle, oracle_counts = find_best_threshold(test_p, targets, config=config, frames_per_second=fps)
    return {"threshold": threshold, "valid": valid_counts.to_dict(), "test": result.pooled.to_dict(),
            "oracle_threshold": oracle, "test_oracle": oracle_counts.to_dict(),
            "per_file": {r.name: r.counts.to_dict() for r in result.per_file}}


def score_gains(model, test: Sequence[TrackData], gains_db: Sequence[float], *, threshold: float) -> dict | None:
    """The test files scored at each input gain (plain prediction), at the threshold chosen at 0 dB
    on validation, as Schlüter & Lehner (2018): engine.robustness.LevelSweep.to_dict()."""
    if not gains_db:
        return None
    steps = sweep_gains(model, test, gains_db, threshold=threshold)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value.to_dict()


@contextmanager
def training_folder(work_dir: str | None):
    """Where a run trains: ``work_dir`` (kept if the run fails or is interrupted, removed once it
    finished), or a temporary folder."""
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="svgui-run-") as tmp:
            yield Path(tmp)
        return
    folder = Path(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)  # finished: its model is in the caller's hands


def resumable_checkpoint(out: Path, updates: int) -> Path | None:
    """The checkpoint an interrupted earlier attempt left in the training folder, if it can go on."""
    checkpoint = checkpoint_path_for(out)
    if not checkpoint.is_file():
        return None
    try:
        if load_training_state(checkpoint)[1]["update"] < updates:
            return checkpoint
    except ModelFileError:
        pass
    checkpoint.unlink()  # damaged, or at the last update already: train again from the seed
    return None


def execute_run(plan: Plan, run: RunSpec, *, fingerprint: str, device: str | None = None,
                threads: int | None = None, on_progress: ProgressCallback | None = None,
                work_dir: str | None = None) -> tuple[dict, bytes]:
    """Train and evaluate one run; returns (record, model file bytes). Raises on failure.

    SIGTERM stops it like Ctrl+C (KeyboardInterrupt) and, with a ``work_dir``, keeps its checkpoint
    there; called again with the same ``work_dir``, the run continues from that checkpoint.
    """
    started = time.perf_counter()
    splits = run_splits(plan.data, run.fold)
    for role, tracks in (("training", splits.train), ("validation", splits.valid), ("test", splits.test)):
        if not tracks:
            raise DatasetError(f"{run.run_id}: no {role} files ({splits.description})")
    torch_device = pick_device(device)
    with sigterm_as_interrupt(), torch_threads(threads) as n_threads, training_folder(work_dir) as folder:
        cache, features = SpectrogramCache(), FeatureConfig()  # SPEC §1; a plan does not change them
        train_data, valid_data, test_data = (load_tracks(tracks, config=features, cache=cache)
                                             for tracks in (splits.train, splits.valid, splits.test))
        out = folder / "model.safetensors"
        config = dataclasses.replace(run.variant.train_config(plan.train), seed=run.seed)
        resume_from = resumable_checkpoint(out, config.updates)
        resumed_at = load_training_state(resume_from)[1]["update"] if resume_from else None
        steps = train(train_data=train_data, valid_data=valid_data, out_path=out, config=config,
                      model_config=run.variant.model_config(plan.model), features=features, device=str(torch_device),
                      augment=run.variant.augment_config, resume_from=resume_from, overwrite=True,
                      data_description=splits.description, name=f"{plan.name} {run.run_id}")
        try:
            for progress in steps:
                if on_progress is not None:
                    on_progress(progress)
        finally:
            steps.close()  # interrupted (Ctrl+C, SIGTERM): the checkpoint is saved here
        train_s = time.perf_counter() - started
        model = load_model(out, device=torch_device)
        evaluations = {mode: score(model, valid_data, test_data, tta=mode == "tta")
                       for mode in plan.test_modes(run.variant)}
        gains = score_gains(model, test_data, plan.gains_db, threshold=evaluations["plain"]["threshold"])
        model_bytes = out.read_bytes()
        device_text = describe_device(torch_device)
    record = {
        "run_id": run.run_id, "variant": run.variant.name, "variant_key": run.variant.key,
        "baseline": run.variant.is_baseline, "repetition": run.repetition, "fold": run.fold, "seed": run.seed,
        "augment": run.variant.augment, "augment_description": run.variant.augment_config.describe(),
        "recipe": dict(run.variant.recipe), "updates": plan.train.updates, "status": "ok", "fingerprint": fingerprint,
        "evaluations": evaluations, "data": splits.description, **({"gains": gains} if gains else {}),
        "files": {"train": [t.name for t in splits.train], "valid": [t.name for t in splits.valid],
                  "test": [t.name for t in splits.test]},
        "device": device_text, "precision": model.metadata.get("precision", "fp32"), "threads": n_threads,
        "host": socket.gethostname(),
        "train_s": round(train_s, 2), "elapsed_s": round(time.perf_counter() - started, 2),
        "software": software_versions(), "resumed_at_update": resumed_at,
    }
    return record, model_bytes


def run_safely(plan: Plan, run: RunSpec, *, fingerprint: str, device: str | None = None,
               threads: int | None = None, on_progress: ProgressCallback | None = None,
               work_dir: str | None = None) -> tuple[dict, bytes | None]:
    """``execute_run`` with any failure turned into a record (a failed run must not stop the study)."""
    started = time.perf_counter()
    try:
        return execute_run(plan, run, fingerprint=fingerprint, device=device, threads=threads,
                           on_progress=on_progress, work_dir=work_dir)
    except Exception as exc:  # noqa: BLE001 - recorded with its traceback, shown to the user
        return failure_record(run, exc, fingerprint=fingerprint, elapsed_s=time.perf_counter() - started,
                              trace=traceback.format_exc()), None


def failure_record(run: RunSpec, exc: BaseException, *, fingerprint: str, elapsed_s: float = float("nan"),
                   trace: str = "") -> dict:
    return {"run_id": run.run_id, "variant": run.variant.name, "variant_key": run.variant.key,
            "baseline": run.variant.is_baseline, "repetition": run.repetition, "fold": run.fold, "seed": run.seed,
            "augment": run.variant.augment, "status": "failed", "fingerprint": fingerprint,
            "error": f"{type(exc).__name__}: {exc}", "traceback": trace, "host": socket.gethostname(),
            "elapsed_s": None if np.isnan(elapsed_s) else round(elapsed_s, 2)}
