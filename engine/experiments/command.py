"""`svgui-engine experiment PLAN.toml`: run a study and print its progress and results."""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from engine.experiments.plan import load_plan
from engine.experiments.runner import StudyEvent, report_study, run_study
from engine.experiments.store import StudyStore


def _percent(counts: dict) -> str:
    n = counts["tp"] + counts["fp"] + counts["tn"] + counts["fn"]
    return f"{100 * (counts['fp'] + counts['fn']) / n:.2f} %" if n else "n/a"


def describe_outcome(record: dict) -> str:
    if record.get("status") != "ok":
        return f"FAILED: {record.get('error', 'unknown error')}"
    figures = ", ".join(f"{mode} {_percent(e['test'])}" for mode, e in record["evaluations"].items())
    return f"test error {figures} ({record.get('elapsed_s', 0) / 60:.1f} min, {record.get('device', '')})"


def experiment_command(args) -> int:
    plan = load_plan(args.plan)
    if getattr(args, "precision", None):  # --precision overrides the plan's [train] precision
        plan = dataclasses.replace(plan, train=dataclasses.replace(plan.train, precision=args.precision))
    out = args.out or Path("studies") / args.plan.stem
    runs = plan.runs()
    print(f"study {plan.name!r}: {len(plan.variants)} variants x {plan.repetitions} repetitions"
          + (f" x {plan.data.n_folds} folds" if plan.data.n_folds > 1 else "")
          + f" = {len(runs)} runs of {plan.train.updates:,} updates; results in {out}", flush=True)
    if args.dry_run:
        store = StudyStore(out)
        for run in runs:
            record = store.record(run)
            state = ("finished" if store.is_finished(run, plan.fingerprint(run)) else
                     "failed" if record and record.get("status") == "failed" else
                     "stale (other settings)" if record else "to run")
            print(f"  {run.run_id:<40} seed {run.seed:<4} {state}")
        return 0
    if not args.report_only:
        started = time.perf_counter()

        def show(event: StudyEvent) -> None:
            where = f"[{event.done}/{event.total}]"
            if event.kind in ("started", "queued"):
                print(f"{where} {event.kind:<8} {event.run.run_id} ({event.run.variant.name}, seed {event.run.seed})",
                      flush=True)
            elif event.kind == "progress":
                p = event.progress
                step = max(1, p.total_updates // 10)
                if p.update % step == 0 and not p.finished:
                    rate = p.update / p.elapsed_s if p.elapsed_s > 0 else float("nan")
                    print(f"{where}   {event.run.run_id}: update {p.update:,}/{p.total_updates:,}, loss {p.loss:.4f}, "
                          f"{rate:.2f} updates/s", flush=True)
            elif event.kind == "skipped":
                print(f"{where} finished before: {event.run.run_id}", flush=True)
            else:
                print(f"{where} {event.kind} {event.run.run_id}: {describe_outcome(event.record)}", flush=True)

        result = run_study(plan, out, workers=args.workers, ray_address=args.ray_address, threads=args.threads,
                           device=args.device, on_event=show)
        print(f"{len(result.finished)} run(s) finished, {len(result.skipped)} skipped (finished before), "
              f"{len(result.failed)} failed in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        reports = result.reports
    else:
        reports = report_study(plan, out)
        result = None
    if reports:
        for table in ("results.md", "gains.md"):
            if table in reports:
                print(Path(reports[table]).read_text(encoding="utf-8"))
        for kind, path in reports.items():
            print(f"{kind}: {path}")
    else:
        print("no results yet: the baseline needs at least one finished run", file=sys.stderr)
    if result is not None and result.failed:
        print(f"failed runs (see their record.json; they run again next time): {', '.join(result.failed)}",
              file=sys.stderr)
        return 1
    return 0
