"""Run a study: skip finished runs, run the rest (here, in processes or on Ray), store, report."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.cache import SpectrogramCache
from engine.config import FeatureConfig
from engine.datasets import load_tracks
from engine.errors import ConfigError
from engine.experiments import executors
from engine.experiments.plan import Plan, RunSpec
from engine.experiments.report import write_report
from engine.experiments.splits import run_splits
from engine.experiments.store import StudyStore
from engine.train import TrainProgress


@dataclass(frozen=True)
class StudyEvent:
    """What the runner tells its caller: a run "skipped", "started" (or "queued" on Ray), "progress"
    (every update, when runs go one after the other here), "finished" or "failed"."""

    kind: str
    run: RunSpec
    record: dict | None
    done: int  # runs finished or failed so far, skipped ones included
    total: int
    progress: TrainProgress | None = None  # "progress" events (one run at a time in this process)


@dataclass(frozen=True)
class StudyResult:
    finished: list[str]  # run ids finished in this call
    skipped: list[str]   # already finished before
    failed: list[str]
    reports: dict[str, Path]  # file kind → path; empty when no run has finished yet


def warm_cache(plan: Plan) -> int:
    """Compute the spectrograms of every file of every fold once, before runs read them in parallel."""
    tracks = {}
    for fold in range(plan.data.n_folds):
        splits = run_splits(plan.data, fold)
        for track in splits.train + splits.valid + splits.test:
            tracks[track.audio_path] = track
    load_tracks(list(tracks.values()), config=FeatureConfig(), cache=SpectrogramCache())
    return len(tracks)


def run_study(plan: Plan, out_dir: str | os.PathLike, *, workers: int = 1, ray_address: str | None = None,
              device: str | None = None, threads: int | None = None, plan_text: str | None = None,
              on_event: Callable[[StudyEvent], None] | None = None) -> StudyResult:
    """Run every run of ``plan`` not finished in ``out_dir`` and write the tables and figure.

    ``workers`` > 1 runs them in that many local processes; ``ray_address`` ("local", "auto",
    HOST:PORT) on Ray instead. A failed run is recorded (with its error) and the others go on;
    the next call runs it again.
    """
    if ray_address and workers > 1:
        raise ConfigError("choose local worker processes or a Ray cluster, not both")
    if workers < 1 or (threads is not None and threads < 1):
        raise ConfigError(f"workers and threads must be at least 1, got {workers} and {threads}")
    store = StudyStore(out_dir)
    store.save_plan(plan.source, plan_text)
    runs = plan.runs()
    fingerprints = {run.run_id: plan.fingerprint(run) for run in runs}
    fingerprint = lambda run: fingerprints[run.run_id]  # noqa: E731
    total, done = len(runs), 0
    skipped, finished, failed = [], [], []

    def tell(kind: str, run: RunSpec, record: dict | None = None, progress: TrainProgress | None = None) -> None:
        if on_event is not None:
            on_event(StudyEvent(kind, run, record, done, total, progress))

    pending = []
    for run in runs:
        if store.is_finished(run, fingerprint(run)):
            skipped.append(run.run_id)
            done += 1
            tell("skipped", run, store.record(run))
        else:
            pending.append(run)
    if pending and ray_address in (None, "local"):
        warm_cache(plan)
    on_start = lambda run: tell("queued" if ray_address else "started", run)  # noqa: E731
    # An interrupted run (Ctrl+C, SIGTERM) keeps its checkpoint here, per settings, to go on next time.
    work_dir = lambda run: str(store.run_dir(run) / f"training-{fingerprint(run)}")  # noqa: E731
    if ray_address:
        outcomes = executors.run_on_ray(plan, pending, fingerprint, address=ray_address, device=device,
                                        threads=threads, on_start=on_start)
    elif workers > 1:
        outcomes = executors.run_in_processes(plan, pending, fingerprint, workers=workers, device=device,
                                              threads=threads, on_start=on_start, work_dir=work_dir,
                                              on_progress=lambda run, p: tell("progress", run, progress=p))
    else:
        outcomes = executors.run_sequentially(plan, pending, fingerprint, device=device, threads=threads,
                                              on_start=on_start, work_dir=work_dir,
                                              on_progress=lambda run, p: tell("progress", run, progress=p))
    for run, record, model in outcomes:
        store.save(record, model)
        done += 1
        (finished if record["status"] == "ok" else failed).append(run.run_id)
        tell("finished" if record["status"] == "ok" else "failed", run, record)
    return StudyResult(finished, skipped, failed, report_study(plan, out_dir))


def report_study(plan: Plan, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Tables and figure from the records on disk (all finished runs of the plan so far)."""
    store = StudyStore(out_dir)
    records = [r for run in plan.runs() if (r := store.record(run)) is not None and r.get("status") == "ok"
               and r.get("fingerprint") == plan.fingerprint(run)]
    if not records or not any(r.get("baseline") for r in records):
        return {}
    title = f"{plan.name}: {plan.train.updates:,} updates per run"
    return write_report(records, Path(out_dir), n_folds=plan.data.n_folds, threshold=plan.threshold, title=title,
                        planned=plan.runs())
