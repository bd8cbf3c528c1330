"""Predicting a folder tree of any size on Ray: one model per worker, files as tasks.

``predict_files_on_ray`` is ``engine.batch_predict.predict_files`` spread over a Ray cluster (or
a local Ray instance). The outputs get the same names (``prepare_outputs``), each is written by
the worker that predicted it (``predict_one``, the same function plain ``predict`` calls), and
the manifests end up the same apart from timestamps. On top of that it

- resumes: a file whose output exists and whose manifest entry records the same model (SHA-256),
  format and settings is skipped (``finished_files``);
- records progress as it goes: the manifest is rewritten as results arrive (atomically, and
  less often as it grows, so its writing costs at most ~10 % of the run), and once more on
  Ctrl+C or SIGTERM, which give the files in flight CANCEL_GRACE_S to finish and stop the workers;
- lists a file that fails, a worker that dies on it included, and goes on with the others.

Every node must see the audio and the output folder at the same paths (a shared filesystem);
the model file travels through Ray's object store, so it need not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.batch_predict import (
    BatchDone,
    FileOutcome,
    OutputPlan,
    _write_manifests,
    export_info,
    find_audio_files,
    predict_one,
    prepare_outputs,
)
from engine.config import PredictConfig
from engine.errors import ClusterError, ConfigError, EngineError, OverwriteRefused
from engine.export import ExportInfo, read_manifest
from engine.ray_cluster import ray_connection
from engine.signals import EXIT_TERMINATED, Terminated, sigterm_as_interrupt

MANIFEST_SHARE = 0.1  # at most this fraction of the run is spent rewriting manifests
CANCEL_GRACE_S = 2.0  # on an interrupt, how long the files in flight get to finish


@dataclass(frozen=True)
class ClusterStart:
    """The first record: what will run where."""

    total: int  # input files
    skipped: int  # already predicted with this model and these settings
    workers: int
    device: str  # "cpu" or "cuda"
    threads: int  # torch threads per worker
    cluster: str  # e.g. "2 CPUs, 0 GPUs"


class FilePredictor:
    """A Ray actor: loads the model once, then predicts files and writes their outputs."""

    def __init__(self, model_bytes: bytes, model_name: str, *, device: str, threads: int, fmt: str,
                 info: ExportInfo, config: PredictConfig):
        import torch

        from engine.checkpoint import load_model

        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory(prefix="svgui-model-") as folder:
            path = Path(folder) / model_name
            path.write_bytes(model_bytes)
            self.model = load_model(path, device=device)
        self.fmt, self.info, self.config = fmt, info, config

    def ready(self) -> str:
        return f"{os.uname().nodename} pid {os.getpid()}"

    def predict(self, source: Path, target: Path, replace: bool) -> tuple[FileOutcome, list[tuple[type, str]]]:
        """The outcome, and the warnings on the way (a truncated file...) for the driver to show."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outcome = predict_one(self.model, source, target, fmt=self.fmt, info=self.info, config=self.config,
                                  replace=replace)
        return outcome, [(w.category, str(w.message)) for w in caught]


def finished_files(plan: OutputPlan, *, fmt: str, info: ExportInfo) -> set[int]:
    """Indices of the inputs already predicted into their planned output with the same model,
    format and settings, per the output folder's manifest, and whose output file exists."""
    recorded: dict[Path, dict[str, dict]] = {}
    for folder in plan.folders:
        recorded[folder] = {Path(e["output"]).name: e for e in read_manifest(folder)["files"]
                            if isinstance(e.get("output"), str)}
    settings = info.to_dict()
    done = set()
    for index, (source, target) in enumerate(zip(plan.sources, plan.targets)):
        entry = recorded[target.parent].get(target.name)
        if (entry is not None and entry.get("error") is None and entry.get("source") == os.fspath(source)
                and entry.get("format") == fmt and entry.get("info") == settings and target.is_file()):
            done.add(index)
    return done


class _ManifestRecorder:
    """This run's outcomes, written into the manifests in input order as they arrive; a rewrite
    waits until the run has gone on 1 / MANIFEST_SHARE times as long as the previous one took."""

    def __init__(self, plan: OutputPlan, *, fmt: str, info: ExportInfo):
        self.plan, self.fmt, self.info = plan, fmt, info
        self.outcomes: dict[int, FileOutcome] = {}
        self.next_write_s = 0.0
        self.dirty = False

    def add(self, index: int, outcome: FileOutcome) -> None:
        self.outcomes[index] = outcome
        self.dirty = True
        if time.monotonic() >= self.next_write_s:
            self.write()

    def write(self) -> list[Path]:
        start = time.monotonic()
        ordered = [self.outcomes[i] for i in sorted(self.outcomes)]
        written = _write_manifests(ordered, self.plan, fmt=self.fmt, info=self.info) if ordered else []
        took = time.monotonic() - start
        self.next_write_s = time.monotonic() + took / MANIFEST_SHARE
        self.dirty = False
        return written


def _cluster_plan(ray, *, device: str, workers: int | None, threads: int | None) -> tuple[str, int, int, dict]:
    """Device, worker count, threads per worker and the actor's resource request."""
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError(f"on Ray the device is auto, cpu or cuda, got {device!r}")
    use_gpu = gpus > 0 and device != "cpu"
    if device.startswith("cuda") and not gpus:
        raise ConfigError(f"--device {device} asked for, but the Ray cluster has no GPUs ({cpus} CPUs)")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    # One thread per CPU worker: decoding is single-threaded, and a second torch thread per model
    # gained nothing in bench/ray_predict.py, so many one-thread models beat few wide ones.
    threads = threads or 1
    if threads > max(cpus, 1):
        raise ConfigError(f"--threads {threads} is more than the Ray cluster's {cpus} CPUs: no worker could start")
    if use_gpu:
        workers = workers or gpus
        request = {"num_gpus": 1, "num_cpus": threads}
    else:
        workers = workers or max(1, cpus // threads)
        request = {"num_gpus": 0, "num_cpus": threads}
    return ("cuda" if use_gpu else "cpu"), workers, threads, {"cpus": cpus, "gpus": gpus, **request}


@contextlib.contextmanager
def _sigterms_seen() -> Iterator[list[int]]:
    """Record SIGTERMs and pass them on to the handler in place (``sigterm_as_interrupt``'s).

    Ray turns an exception raised by a signal handler inside ``ray.wait`` into a plain
    KeyboardInterrupt; this tells that it was a SIGTERM, so the command can exit with 143.
    """
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    inner = signal.getsignal(signal.SIGTERM)

    def record(signum, frame):
        seen.append(signum)
        if callable(inner):
            inner(signum, frame)

    signal.signal(signal.SIGTERM, record)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGTERM, inner)


def _reason(exc: BaseException) -> str:
    """The worker's own error message, without Ray's traceback wrapping."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException) and str(cause):
        return f"{type(cause).__name__}: {cause}"
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__


def predict_files_on_ray(model_path: str | os.PathLike, files: Sequence[str | os.PathLike], *, fmt: str,
                         out_dir: str | os.PathLike | None, info: ExportInfo,
                         config: PredictConfig = PredictConfig(), overwrite: bool = False, address: str = "local",
                         workers: int | None = None, threads: int | None = None, device: str = "auto",
                         worker_class: type = FilePredictor) -> Iterator[ClusterStart | FileOutcome | BatchDone]:
    """Predict ``files`` on Ray; yields a ClusterStart, a FileOutcome per file predicted (in the
    order they finish), then a BatchDone with this run's outcomes in input order.

    ``address``: "local" (a new instance on this machine), "auto" or HOST:PORT. ``workers``:
    one model each (default: one per GPU of the cluster, else one per ``threads`` CPUs);
    ``threads``: torch threads per worker (default 1). Outputs and manifests are those of
    ``predict_files`` with the same arguments; files already done are skipped (see module).
    Closing the generator, Ctrl+C or SIGTERM give the files in flight CANCEL_GRACE_S to finish,
    record every finished file and stop the workers.
    ``worker_class``: the actor, FilePredictor or a subclass of it.
    """
    plan = prepare_outputs(files, fmt=fmt, out_dir=out_dir, overwrite=overwrite)
    skipped = finished_files(plan, fmt=fmt, info=info)
    todo = deque(i for i in range(len(plan.sources)) if i not in skipped)
    model_path = Path(model_path)
    with ray_connection(address) as ray, sigterm_as_interrupt(), _sigterms_seen() as sigterms:
        from ray.exceptions import RayActorError, RayTaskError

        device_kind, workers, threads, request = _cluster_plan(ray, device=device, workers=workers, threads=threads)
        workers = min(workers, max(1, len(todo)))
        yield ClusterStart(len(plan.sources), len(skipped), workers, device_kind, threads,
                           f"{request['cpus']} CPUs, {request['gpus']} GPUs")
        recorder = _ManifestRecorder(plan, fmt=fmt, info=info)
        if not todo:
            yield BatchDone((), tuple(recorder.write()), cancelled=False)
            return
        actor_class = ray.remote(worker_class).options(num_cpus=request["num_cpus"], num_gpus=request["num_gpus"],
                                                       max_restarts=0)
        model_ref = ray.put(model_path.read_bytes())

        def new_worker():
            return actor_class.remote(model_ref, model_path.name, device=device_kind, threads=threads,
                                      fmt=fmt, info=info, config=config)

        actors = [new_worker() for _ in range(workers)]
        pending = {actor.ready.remote(): (actor, None) for actor in actors}  # None: starting up
        replacements_left = 2 * workers  # a worker that dies on a file is replaced, up to this often
        completed = False
        try:
            # Until every file is done: a worker the cluster has no room for yet just never starts.
            while todo or any(index is not None for _, index in pending.values()):
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                actor, index = pending.pop(ref)
                error = None
                try:
                    result = ray.get(ref)
                except (RayTaskError, RayActorError) as exc:
                    if index is None:
                        raise ClusterError(f"a Ray worker could not start (is svgui installed on every node?): "
                                           f"{_reason(exc)}") from None
                    if isinstance(exc, RayTaskError):  # an unexpected error in our code: this file fails
                        error = f"{plan.sources[index]}: {_reason(exc)}"
                    else:  # the worker process died (out of memory, a crash, its node lost): replace it
                        error = f"{plan.sources[index]}: the worker died predicting it ({_reason(exc)})"
                        actors.remove(actor)
                        if replacements_left == 0:
                            raise ClusterError(f"Ray workers keep dying; the last one: {_reason(exc)}") from None
                        replacements_left -= 1
                        actor = new_worker()
                        actors.append(actor)
                if todo:  # keep the worker busy before the bookkeeping
                    nxt = todo.popleft()
                    target = plan.targets[nxt]
                    pending[actor.predict.remote(plan.sources[nxt], target,
                                                 plan.may_write(target, overwrite=overwrite))] = (actor, nxt)
                if index is not None:
                    if error is None:
                        outcome, notes = result
                        for category, message in notes:  # as plain predict would have warned
                            warnings.warn(message, category, stacklevel=2)
                    else:
                        outcome = FileOutcome(0, 0, plan.sources[index], error=error)
                    outcome = dataclasses.replace(outcome, done=len(recorder.outcomes) + 1,
                                                  total=len(plan.sources) - len(skipped))
                    recorder.add(index, outcome)
                    yield outcome
            completed = True
        except KeyboardInterrupt as exc:
            if sigterms and not isinstance(exc, Terminated):
                raise Terminated() from None  # Ray re-raised it as a plain KeyboardInterrupt
            raise
        finally:
            if not completed:
                _stop_in_flight(ray, pending, recorder, plan)
            for actor in actors:
                ray.kill(actor)
            manifests = recorder.write() if recorder.dirty or completed else []
        outcomes = tuple(recorder.outcomes[i] for i in sorted(recorder.outcomes))
        yield BatchDone(outcomes, tuple(manifests), cancelled=False)


def _stop_in_flight(ray, pending: dict, recorder: _ManifestRecorder, plan: OutputPlan) -> None:
    """Interrupted: give the files in flight CANCEL_GRACE_S to finish and record those that did
    (their outputs are written, and an unrecorded output would block the next run); the workers
    are killed after, and a killed write leaves only its hidden temporary file, removed here."""
    refs = [ref for ref, (_, index) in pending.items() if index is not None]
    finished, _ = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S) if refs else ([], [])
    for ref in finished:
        index = pending.pop(ref)[1]
        try:
            outcome, _ = ray.get(ref)  # its warnings are dropped: the run is being stopped
        except Exception:  # noqa: BLE001 - a failure in flight is simply not recorded
            continue
        recorder.outcomes[index] = dataclasses.replace(outcome, done=len(recorder.outcomes) + 1)
        recorder.dirty = True
    for _, index in pending.values():
        if index is not None:
            target = plan.targets[index]  # atomic_open's temporary: .STEM.<8 hex>.tmpSUFFIX
            for leftover in target.parent.glob(f".{glob.escape(target.stem)}.????????.tmp{glob.escape(target.suffix)}"):
                leftover.unlink(missing_ok=True)


# ---- the command line ----------------------------------------------------------------------------
def cluster_predict_command(args, model_path: Path) -> int:
    """`svgui-engine predict --ray-address ADDRESS ...`: as plain predict, on Ray, resumable."""
    from tqdm import tqdm

    from engine.checkpoint import load_model

    model = load_model(model_path)  # validated here once; the workers load it on their devices
    files, empty = find_audio_files(args.paths)
    for folder in empty:
        print(f"warning: no audio files in {folder}", file=sys.stderr)
    if not files:
        raise EngineError("no audio files to predict")
    info = export_info(model, threshold=args.threshold, tta=args.tta)
    config = PredictConfig(precision=args.precision)  # "auto" is resolved by each worker for its device
    run = predict_files_on_ray(model_path, files, fmt=args.format, out_dir=args.out, info=info, config=config,
                               overwrite=args.overwrite, address=args.ray_address, workers=args.workers,
                               threads=args.threads, device=args.device)
    start_s = time.monotonic()
    audio_s, first = 0.0, None  # first: (time, audio seconds) when the first file was done
    failures, predicted = 0, 0
    bar = None
    try:
        for record in run:
            if isinstance(record, ClusterStart):
                print(f"Ray: {record.cluster}; {record.workers} worker(s) on {record.device}, "
                      f"{record.threads} thread(s) each", file=sys.stderr)
                if record.skipped:
                    print(f"skipping {record.skipped} of {record.total} file(s) already predicted with this "
                          f"model and settings", file=sys.stderr)
                bar = tqdm(total=record.total - record.skipped, desc="predicting", unit="file", file=sys.stderr,
                           leave=False, dynamic_ncols=True)
                skipped, total = record.skipped, record.total
            elif isinstance(record, FileOutcome):
                bar.update(1)
                if record.ok:
                    predicted += 1
                    audio_s += record.duration_s
                    now = time.monotonic()
                    if first is None:  # the speed counts from the first file done: start-up excluded
                        first = (now, audio_s)
                    speed = (audio_s - first[1]) / (now - first[0]) if now > first[0] else 0.0
                    bar.set_postfix_str(f"{audio_s / 3600:.2f} h audio"
                                        + (f", {speed:.0f}x real time" if speed else ""), refresh=False)
                    tqdm.write(f"{record.source} -> {record.output} ({100 * record.voiced_fraction:.0f} % voice)",
                               file=sys.stderr)
                else:
                    failures += 1
                    tqdm.write(f"error: {record.error}", file=sys.stderr)
    except OverwriteRefused as exc:
        raise EngineError(f"{exc}; pass --overwrite to replace them, or choose another --out") from None
    except KeyboardInterrupt as exc:
        if bar is not None:
            bar.close()
        run.close()  # cancels the files in flight and records the finished ones
        print(f"interrupted: the finished files are recorded in {args.out}; run the same command again "
              f"to predict the rest", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else 130
    finally:
        if bar is not None:
            bar.close()
        run.close()
    elapsed_s = time.monotonic() - start_s
    print(f"{skipped + predicted} of {total} file(s) predicted into {args.out}"
          + (f" ({skipped} earlier)" if skipped else "") + (f"; {failures} failed" if failures else "")
          + (f"; {audio_s / 3600:.2f} h of audio in {elapsed_s:.0f} s" if predicted else ""))
    return 1 if failures else 0
