"""Three ways to run a study's runs, all yielding (run, record, model bytes) as runs finish.

- ``run_sequentially``: one after the other in this process;
- ``run_in_processes``: N local worker processes (``concurrent.futures``, spawn);
- ``run_on_ray``: Ray tasks on a local instance or a cluster, one GPU per run where it has GPUs.

Each calls ``engine.experiments.run.run_safely``, so the same plan gives the same records in all
three (for the same number of torch threads per run).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from engine.errors import ConfigError
from engine.experiments.plan import Plan, RunSpec
from engine.experiments.run import failure_record, run_safely
from engine.ray_cluster import ray_connection
from engine.signals import sigterm_as_interrupt
from engine.train import TrainProgress

Outcome = tuple[RunSpec, dict, "bytes | None"]
# The study folder where a run keeps its checkpoint when interrupted (local runs; Ray nodes may not
# share the study folder, so Ray runs train in a temporary folder).
WorkDir = Callable[[RunSpec], str] | None
RAY_HINT = 'Ray is an optional extra: pip install ".[cluster]"'


def default_threads(workers: int) -> int:
    """Torch threads per run so that the runs together use the machine's cores once."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def run_sequentially(plan: Plan, runs: Sequence[RunSpec], fingerprint: Callable[[RunSpec], str], *,
                     device: str | None = None, threads: int | None = None,
                     on_start: Callable[[RunSpec], None] | None = None,
                     on_progress: Callable[[RunSpec, TrainProgress], None] | None = None,
                     work_dir: WorkDir = None) -> Iterator[Outcome]:
    for run in runs:
        if on_start is not None:
            on_start(run)
        progress = (lambda p, run=run: on_progress(run, p)) if on_progress is not None else None
        record, model = run_safely(plan, run, fingerprint=fingerprint(run), device=device, threads=threads,
                                   on_progress=progress, work_dir=work_dir(run) if work_dir else None)
        yield run, record, model


# In a worker process: where its runs send their progress (set by the pool's initializer, since a
# multiprocessing queue reaches a process only when it starts).
_PROGRESS_QUEUE = None
PROGRESS_POLL_S = 0.5  # how often the parent passes the workers' progress on


def _init_worker(progress_queue) -> None:
    global _PROGRESS_QUEUE
    _PROGRESS_QUEUE = progress_queue


def _run_reporting(plan: Plan, run: RunSpec, **options) -> tuple[dict, bytes | None]:
    """``run_safely`` in a worker, each TrainProgress sent to the parent as (run id, progress)."""
    queue = _PROGRESS_QUEUE
    on_progress = (lambda p: queue.put((run.run_id, p))) if queue is not None else None
    return run_safely(plan, run, on_progress=on_progress, **options)


def run_in_processes(plan: Plan, runs: Sequence[RunSpec], fingerprint: Callable[[RunSpec], str], *, workers: int,
                     device: str | None = None, threads: int | None = None,
                     on_start: Callable[[RunSpec], None] | None = None,
                     on_progress: Callable[[RunSpec, TrainProgress], None] | None = None,
                     work_dir: WorkDir = None) -> Iterator[Outcome]:
    """``workers`` spawned processes (fork would copy torch's thread pools); a worker that dies is recorded.

    ``on_progress`` gets every run's progress here in the parent, within PROGRESS_POLL_S.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    threads = threads or default_threads(workers)
    context = multiprocessing.get_context("spawn")
    queue = list(runs)
    by_id = {run.run_id: run for run in runs}
    # SimpleQueue: put() writes to the pipe at once (no feeder thread), so a run's progress is all
    # there before its result is.
    progress_queue = context.SimpleQueue() if on_progress is not None else None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(progress_queue,))
    pending = {}

    def submit_next() -> None:  # one run per free worker, so "started" is true and Ctrl+C drops the rest
        run = queue.pop(0)
        if on_start is not None:
            on_start(run)
        future = pool.submit(_run_reporting, plan, run, fingerprint=fingerprint(run), device=device,
                             threads=threads, work_dir=work_dir(run) if work_dir else None)
        pending[future] = run

    def pass_progress_on() -> None:
        while progress_queue is not None and not progress_queue.empty():
            run_id, progress = progress_queue.get()
            on_progress(by_id[run_id], progress)

    try:
        while queue and len(pending) < workers:
            submit_next()
        while pending:
            done, _ = wait(pending, timeout=PROGRESS_POLL_S if progress_queue is not None else None,
                           return_when=FIRST_COMPLETED)
            pass_progress_on()
            for future in done:
                run = pending.pop(future)
                try:
                    record, model = future.result()
                # The worker died (memory, a signal), or a SIGTERM sent to it alone interrupted its run:
                # recorded as failed; its checkpoint is kept and the next call continues it.
                except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001
                    record, model = failure_record(run, exc, fingerprint=fingerprint(run)), None
                yield run, record, model
                if queue:
                    submit_next()
    except BaseException:
        # Interrupted (Ctrl+C, or the caller stopped iterating): end the runs in progress now rather
        # than waiting hours for them; finished runs are already stored.
        for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public API in 3.11
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        if progress_queue is not None:
            progress_queue.close()
    pool.shutdown(wait=True)


def run_on_ray(plan: Plan, runs: Sequence[RunSpec], fingerprint: Callable[[RunSpec], str], *, address: str,
               device: str | None = None, threads: int | None = None,
               on_start: Callable[[RunSpec], None] | None = None) -> Iterator[Outcome]:
    """Ray tasks; ``address`` is "local" (a new instance on this machine), "auto" or HOST:PORT.

    The data folders and this package must exist at the same paths on every node; records and
    models come back to this process, which stores them. An address nobody answers at fails in
    seconds (``engine.ray_cluster.probe_address``), not after Ray's minute of retries.
    """
    with ray_connection(address) as ray, sigterm_as_interrupt():  # ray.init replaces SIGTERM's handler
        yield from _run_tasks(ray, plan, runs, fingerprint, device=device, threads=threads, on_start=on_start)


def _run_tasks(ray, plan: Plan, runs: Sequence[RunSpec], fingerprint: Callable[[RunSpec], str], *,
               device: str | None, threads: int | None,
               on_start: Callable[[RunSpec], None] | None) -> Iterator[Outcome]:
    """One Ray task per run, yielded as each finishes; an interruption cancels the rest."""
    pending = {}
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        cpus_per_run = threads or 1
        task = ray.remote(run_safely).options(num_cpus=cpus_per_run, num_gpus=1 if gpus else 0, max_retries=0)
        for run in runs:
            if on_start is not None:
                on_start(run)  # queued on the cluster; Ray starts it when a slot is free
            ref = task.remote(plan, run, fingerprint=fingerprint(run), device=device if not gpus else "cuda",
                              threads=cpus_per_run)
            pending[ref] = run
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                run = pending.pop(ref)
                try:
                    record, model = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a lost node or a killed worker
                    record, model = failure_record(run, exc, fingerprint=fingerprint(run)), None
                yield run, record, model
    except BaseException:
        for ref in pending:  # interrupted: free the cluster's slots now
            ray.cancel(ref, force=True)
        raise
