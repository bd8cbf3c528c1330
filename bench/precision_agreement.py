"""bf16 vs fp32 prediction: how many frame decisions agree, and the largest probability difference.

    python bench/precision_agreement.py [--model M] [--data ../shared/data/musdb7-train --files valid]
        [--precision bf16] [--json]

Runs the demo clips (resources/demo) and, with ``--data``, a labelled folder (``--files valid``
keeps the files the model lists as its validation files, as bench/quality.py). Decisions are
those the app and ``predict`` output: the median-smoothed probability above the model's
threshold; raw per-frame decisions (unsmoothed) are reported as well. Also prints the pooled
error of both precisions where labels exist. On a CPU without native bf16 the bf16 path is
emulated: same numbers as native bf16, only slower.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from engine.cache import SpectrogramCache
from engine.checkpoint import load_model
from engine.datasets import find_tracks, load_tracks
from engine.evaluate import count_errors, smooth_probabilities
from engine.precision import choose_precision, cpu_features, describe_cpu_features
from engine.predict import predict_linear
from engine.resources import bundled_model_path

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"


def compare(model, data, precision: str, on_file=None) -> dict:
    """Per-file and pooled agreement of ``precision`` with fp32 on loaded tracks."""
    median = model.eval_config.median_frames
    rows, totals = [], {"frames": 0, "smoothed_equal": 0, "raw_equal": 0}
    errors = {"fp32": [], precision: []}
    seconds = {"fp32": 0.0, precision: 0.0}
    for d in data:
        probs = {}
        for p in ("fp32", precision):
            start = time.perf_counter()
            probs[p] = predict_linear(model, d.linear, precision=p)
            seconds[p] += time.perf_counter() - start
        a, b = probs["fp32"], probs[precision]
        smoothed_a = smooth_probabilities(a, median_frames=median) > model.threshold
        smoothed_b = smooth_probabilities(b, median_frames=median) > model.threshold
        row = {"name": d.track.name, "frames": len(a), "max_abs_diff": float(np.abs(a - b).max()),
               "smoothed_equal": int((smoothed_a == smoothed_b).sum()),
               "raw_equal": int(((a > model.threshold) == (b > model.threshold)).sum())}
        rows.append(row)
        for key in totals:
            totals[key] += row[key]
        if d.targets is not None:
            errors["fp32"].append((smoothed_a, d.targets))
            errors[precision].append((smoothed_b, d.targets))
        if on_file:
            on_file(row)
    pooled = {}
    for p, pairs in errors.items():
        if pairs:
            pooled[p] = count_errors(np.concatenate([s for s, _ in pairs]),
                                     np.concatenate([t for _, t in pairs])).error
    return {"files": rows, "frames": totals["frames"],
            "smoothed_agreement": totals["smoothed_equal"] / max(totals["frames"], 1),
            "raw_agreement": totals["raw_equal"] / max(totals["frames"], 1),
            "max_abs_diff": max((r["max_abs_diff"] for r in rows), default=0.0),
            "pooled_error": pooled, "predict_s": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--data", type=Path, help="a labelled folder to compare on as well")
    parser.add_argument("--files", choices=("all", "valid", "train"), default="all")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp16"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = load_model(args.model or bundled_model_path())
    choice = choose_precision(args.precision, model.device)
    print(f"model {model.name}; {args.precision} vs fp32 on {model.device}: {choice.note}", file=sys.stderr)
    print(f"cpu: {cpu_features()['model']} ({describe_cpu_features()})", file=sys.stderr)
    cache = SpectrogramCache()
    sets = {"demo": find_tracks(DEMO)}
    if args.data:
        tracks = find_tracks(args.data)
        if args.files != "all":
            wanted = set(model.metadata.get(f"{args.files}_files") or [])
            tracks = [t for t in tracks if t.name in wanted]
        sets[f"{args.data.name} ({args.files})"] = tracks
    report = {"model": model.name, "precision": args.precision, "native": choice.native,
              "cpu": cpu_features(), "sets": {}}

    def show(row):
        print(f"  {row['name'][:60]:60s} {row['frames']:7d} frames  equal {100 * row['smoothed_equal'] / row['frames']:7.3f} %"
              f"  max |diff| {row['max_abs_diff']:.4f}", file=sys.stderr, flush=True)
    for label, tracks in sets.items():
        print(f"{label}: {len(tracks)} files", file=sys.stderr)
        data = load_tracks(tracks, config=model.features, cache=cache)
        report["sets"][label] = compare(model, data, args.precision, on_file=show)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for label, r in report["sets"].items():
        errors = ", ".join(f"{p} {100 * e:.2f} %" for p, e in r["pooled_error"].items())
        print(f"{label}: {len(r['files'])} files, {r['frames']:,} frames: smoothed decisions equal on "
              f"{100 * r['smoothed_agreement']:.3f} % (raw {100 * r['raw_agreement']:.3f} %), "
              f"max |probability difference| {r['max_abs_diff']:.4f}" + (f"; error {errors}" if errors else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
