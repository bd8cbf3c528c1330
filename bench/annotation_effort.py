"""Annotation effort: how many edits turn a model's predicted regions into the ground truth, per minute.

    python bench/annotation_effort.py --out bench/results/annotation_effort.json

A simulated annotator (``engine.annotation_effort.count_edits``) inserts missed regions, deletes
false ones and moves boundaries that are off by more than 50 ms. Compared, on each data set:

1. the bundled model;
2. the bundled model fine-tuned (``train(init_from=...)``, the app's Improve Model) on K labelled
   files of the set, scored against the parent on the other files of the set;
3. the review spans (``engine.review.review_spans`` with the default ReviewConfig, computed from
   the prediction alone, as an annotator sees it before correcting): the share of the needed edits
   that touch a span (recall) and the share of the audio the spans cover. Goal: >= 80 % of the edits
   inside spans covering <= 20 % of the audio.

The fine-tuning recipe is ``engine.finetune.DEFAULT_TUNE`` unless ``--freeze`` / ``--balance`` say
otherwise; ``--threshold-songs N`` lets N of the songs not tuned on choose a threshold for the
fine-tuned model (and for the parent, for comparison), scoring both on the remaining songs.

Data sets: the bundled model's held-out musdb7 files (its ``valid_files``: 14 songs, each as the
mix and as its accompaniment; the fine-tuning draw takes K whole songs, seeded) and the three
demo clips (leave one out; a fold whose training files have no voice cannot fine-tune and is
listed as skipped). The demo's two instrumentals were training files of the bundled model.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from engine.annotation_effort import edits_inside, file_effort, pooled
from engine.cache import SpectrogramCache
from engine.checkpoint import load_model
from engine.datasets import Track, find_tracks, load_tracks
from engine.evaluate import find_best_threshold
from engine.finetune import DEFAULT_TUNE, FREEZE_CHOICES, TuneOptions, finetune_config, parent_augment
from engine.predict import predict_linear
from engine.resources import bundled_model_path, resource_dir
from engine.review import ReviewConfig, coverage_s, review_spans
from engine.train import train

ROOT = Path(__file__).resolve().parents[1]
ACCOMPANIMENT = " (accompaniment)"


def song_of(track: Track) -> str:
    return track.name.replace(ACCOMPANIMENT, "")


def score(model, data, *, review: ReviewConfig, threshold: float | None = None) -> dict:
    """Edits, errors and review-span recall of ``model`` on ``data`` (each file predicted once), at its
    own threshold or at ``threshold``."""
    efforts, spans_s, inside, total_s = [], 0.0, 0, 0.0
    fps = model.features.frames_per_second
    threshold = model.threshold if threshold is None else threshold
    per_kind_inside = {"insert": 0, "delete": 0, "move": 0}
    for d in data:
        probabilities = predict_linear(model, d.linear)
        effort = file_effort(d.track.name, probabilities, d.targets, threshold=threshold,
                             frames_per_second=fps, eval_config=model.eval_config)
        spans = review_spans(probabilities, fps, threshold, config=review)
        windows = [(s.start_s, s.end_s) for s in spans]
        inside += edits_inside(effort.edits.edits, windows)
        for kind in per_kind_inside:
            per_kind_inside[kind] += edits_inside([e for e in effort.edits.edits if e.kind == kind], windows)
        spans_s += coverage_s(spans)
        total_s += effort.edits.duration_s
        efforts.append(effort)
    counts, edits = pooled(efforts)
    n_edits = edits.count()
    return {"files": len(data), "minutes": round(total_s / 60, 3), "error": round(counts.error, 4),
            **edits.to_dict(),
            "review": {"edits_inside": inside, "recall": round(inside / n_edits, 4) if n_edits else None,
                       "recall_by_kind": {k: (round(v / edits.count(k), 4) if edits.count(k) else None)
                                          for k, v in per_kind_inside.items()},
                       "coverage": round(spans_s / total_s, 4) if total_s else None},
            "per_file": [e.to_dict() for e in efforts]}


def finetune_and_score(parent_path: Path, tune, test, *, updates: int, seed: int, review: ReviewConfig,
                       label: str, learning_rate: float | None = None, options: TuneOptions = DEFAULT_TUNE,
                       threshold_data=()) -> dict:
    """Fine-tune the parent on ``tune`` (parent's threshold kept), score parent and child on ``test``.

    With ``threshold_data`` (the user's held-out files in the app's terms) the child is also scored
    at the threshold chosen on them (``child_rethresholded``).
    """
    parent = load_model(parent_path)
    config = finetune_config(parent_path, updates=updates, seed=seed, learning_rate=learning_rate,
                             validate_every=0, checkpoint_every=0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "child.safetensors"
        last = None
        for last in train(train_data=tune, valid_data=(), out_path=out, config=config, init_from=parent_path,
                          augment=parent_augment(parent_path), data_description=label, name="fine-tuned",
                          device="cpu", tune=options):
            if last.update % 50 == 0 and not last.finished:
                print(f"  {label}: update {last.update}/{updates} loss {last.loss:.4f} "
                      f"({last.elapsed_s:.0f} s)", file=sys.stderr, flush=True)
        child = load_model(out)
    train_s = time.perf_counter() - started
    result = {"fine_tune_files": [d.track.name for d in tune], "test_files": [d.track.name for d in test],
              "updates": updates, "learning_rate": config.learning_rate, "tune": options.to_dict(),
              "train_s": round(train_s, 1),
              "threshold_parent": parent.threshold, "threshold_child": round(child.threshold, 4),
              "parent": score(parent, test, review=review), "child": score(child, test, review=review)}
    if threshold_data:
        chosen, _ = find_best_threshold([predict_linear(child, d.linear) for d in threshold_data],
                                        [d.targets for d in threshold_data], config=child.eval_config)
        result["threshold_files"] = [d.track.name for d in threshold_data]
        result["threshold_rechosen"] = round(float(chosen), 4)
        result["child_rethresholded"] = score(child, test, review=review, threshold=float(chosen))
        # the same choice for the parent: what re-choosing alone would give, without fine-tuning
        chosen, _ = find_best_threshold([predict_linear(parent, d.linear) for d in threshold_data],
                                        [d.targets for d in threshold_data], config=parent.eval_config)
        result["parent_threshold_rechosen"] = round(float(chosen), 4)
        result["parent_rethresholded"] = score(parent, test, review=review, threshold=float(chosen))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="parent model (default: the bundled one)")
    parser.add_argument("--musdb", type=Path, default=ROOT.parent / "shared" / "data" / "musdb7-train")
    parser.add_argument("--demo", type=Path, default=(resource_dir() or ROOT / "resources") / "demo")
    parser.add_argument("--k-songs", default="3,7", help="musdb songs to fine-tune on (comma list)")
    parser.add_argument("--updates", type=int, default=300, help="fine-tuning updates per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, help="fine-tuning learning rate (default: engine.finetune's)")
    parser.add_argument("--sets", default="musdb7_validation,demo", help="which data sets (comma list)")
    parser.add_argument("--freeze", choices=FREEZE_CHOICES, default=DEFAULT_TUNE.freeze,
                        help=f"layers kept at the parent's weights (default {DEFAULT_TUNE.freeze})")
    parser.add_argument("--balance", action=argparse.BooleanOptionalAction, default=DEFAULT_TUNE.balance,
                        help="draw voiced and unvoiced excerpts in equal shares "
                             f"(default {'on' if DEFAULT_TUNE.balance else 'off'})")
    parser.add_argument("--threshold-songs", type=int, default=0, metavar="N",
                        help="musdb: of the songs not tuned on, N choose a threshold for the fine-tuned model "
                             "(as the app's held-out files would) and are not scored")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "annotation_effort.json")
    args = parser.parse_args()

    torch.set_num_threads(torch.get_num_threads())
    model_path = args.model or bundled_model_path()
    model = load_model(model_path)
    review = ReviewConfig()
    cache = SpectrogramCache()
    wanted = set(model.metadata.get("valid_files") or [])
    musdb_tracks = [t for t in find_tracks(args.musdb) if t.name in wanted]
    sets = {"musdb7_validation": load_tracks(musdb_tracks, config=model.features, cache=cache),
            "demo": load_tracks(find_tracks(args.demo), config=model.features, cache=cache)}
    report = {"model": model_path.name, "machine": f"{platform.processor() or platform.machine()}, "
                                                    f"{torch.get_num_threads()} torch threads",
              "review_config": {k: getattr(review, k) for k in review.__dataclass_fields__},
              "boundary_tolerance_s": 0.05, "sets": {}}
    report["learning_rate"] = args.learning_rate
    options = TuneOptions(freeze=args.freeze, balance=args.balance)
    report["tune"] = options.to_dict()
    report["threshold_songs"] = args.threshold_songs
    for name, data in sets.items():
        if name not in args.sets.split(","):
            continue
        print(f"{name}: {len(data)} files", file=sys.stderr, flush=True)
        entry = {"bundled": score(model, data, review=review), "fine_tuned": []}
        report["sets"][name] = entry
        if name == "musdb7_validation":
            songs = sorted({song_of(d.track) for d in data})
            order = np.random.default_rng(args.seed).permutation(songs).tolist()
            for k in (int(x) for x in args.k_songs.split(",") if x.strip()):
                chosen = set(order[:k])
                # The songs just after the tuning songs in the draw choose the threshold: each K's test
                # files are then the same whatever --threshold-songs (0 or N) a run used for the others.
                for_threshold = set(order[k:k + args.threshold_songs])
                tune = [d for d in data if song_of(d.track) in chosen]
                held = [d for d in data if song_of(d.track) in for_threshold]
                test = [d for d in data if song_of(d.track) not in chosen | for_threshold]
                entry["fine_tuned"].append({"k_songs": k, **finetune_and_score(
                    model_path, tune, test, updates=args.updates, seed=args.seed, review=review,
                    learning_rate=args.learning_rate, label=f"musdb7 K={k} songs", options=options,
                    threshold_data=held)})
                _save(args.out, report)
        else:
            for held in data:
                tune = [d for d in data if d is not held]
                if not any(d.targets.any() for d in tune):
                    entry.setdefault("skipped", []).append(
                        f"held out {held.track.name}: the other files have no voice to fine-tune on")
                    continue
                entry["fine_tuned"].append(finetune_and_score(
                    model_path, tune, [held], updates=args.updates, seed=args.seed, review=review,
                    learning_rate=args.learning_rate, label=f"demo without {held.track.name}", options=options))
                _save(args.out, report)
        _save(args.out, report)
    print(format_report(report))
    return 0


def _save(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def format_report(report: dict) -> str:
    lines = [f"model {report['model']} on {report['machine']}"]
    for name, entry in report["sets"].items():
        b = entry["bundled"]
        lines.append(f"\n{name}: {b['files']} files, {b['minutes']:.2f} min")
        lines.append(f"  bundled: {b['edits_per_minute']:.1f} edits/min ({b['insert']} insert, {b['delete']} delete, "
                     f"{b['move']} move), frame error {100 * b['error']:.1f} %")
        r = b["review"]
        if r["recall"] is not None:
            lines.append(f"  review spans: {100 * r['recall']:.0f} % of the edits inside spans covering "
                         f"{100 * r['coverage']:.0f} % of the audio")
        for run in entry["fine_tuned"]:
            p, c = run["parent"], run["child"]
            what = f"K={run['k_songs']} songs" if "k_songs" in run else f"tuned on {len(run['fine_tune_files'])}"
            lines.append(f"  fine-tuned ({what}, {run['updates']} updates, {run['train_s']:.0f} s) on "
                         f"{p['files']} other files: {p['edits_per_minute']:.1f} -> {c['edits_per_minute']:.1f} "
                         f"edits/min, error {100 * p['error']:.1f} -> {100 * c['error']:.1f} %")
            if "child_rethresholded" in run:
                r = run["child_rethresholded"]
                lines.append(f"    threshold {run['threshold_rechosen']:g} chosen on {len(run['threshold_files'])} "
                             f"other files: {r['edits_per_minute']:.1f} edits/min, error {100 * r['error']:.1f} %")
                r = run["parent_rethresholded"]
                lines.append(f"    (the parent at the threshold chosen there, {run['parent_threshold_rechosen']:g}: "
                             f"{r['edits_per_minute']:.1f} edits/min, error {100 * r['error']:.1f} %)")
        for note in entry.get("skipped", []):
            lines.append(f"  skipped: {note}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
