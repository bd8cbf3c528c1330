"""Quality benchmark: evaluate any model file on any labelled folder, with and without TTA.

    python bench/quality.py --model resources/models/svgui-musdb7-robust.safetensors \
        --data ../shared/data/musdb7-train --files valid [--json]

Prints pooled error, recall, specificity, precision and F1 at the model's threshold (chosen on
its validation data without TTA), next to two trivial rules (always voice, and the majority
class); then the same at the best threshold for the evaluated files themselves (optimistic,
but fair between configurations, as the paper's Figure 2); then per-file errors. ``--files valid|train`` keeps only the files the model file lists as its
validation or training files (by name), e.g. the held-out songs of the bundled model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from engine.cache import SpectrogramCache
from engine.checkpoint import load_model
from engine.config import PredictConfig
from engine.datasets import find_tracks, load_tracks
from engine.evaluate import count_errors, evaluate, find_best_threshold
from engine.predict import predict_linear


def evaluate_model(model_path: Path, folders: list[Path], *, files: str = "all") -> dict:
    model = load_model(model_path)
    tracks = [t for folder in folders for t in find_tracks(folder)]
    if files != "all":
        wanted = set(model.metadata.get(f"{files}_files") or [])
        tracks = [t for t in tracks if t.name in wanted]
        if not tracks:
            raise SystemExit(f"none of the model's {files} files are in {', '.join(map(str, folders))}")
    data = load_tracks(tracks, config=model.features, cache=SpectrogramCache())
    targets = [d.targets for d in data]
    names = [d.track.name for d in data]
    report = {"model": str(model_path), "data": [str(f) for f in folders], "files": files,
              "n_files": len(data), "threshold": model.threshold}
    for label, factors in (("plain", (1.0,)), ("tta", PredictConfig().tta_pitch_factors)):
        probabilities = [predict_linear(model, d.linear, pitch_factors=factors) for d in data]
        result = evaluate(probabilities, targets, names, threshold=model.threshold, config=model.eval_config)
        best, best_counts = find_best_threshold(probabilities, targets, config=model.eval_config)
        report[label] = {"pooled": result.pooled.to_dict(),
                         "best_threshold": best, "pooled_at_best_threshold": best_counts.to_dict(),
                         "per_file": {f.name: f.counts.error for f in result.per_file},
                         "voiced_fraction_predicted": {
                             f.name: (f.counts.tp + f.counts.fp) / max(f.counts.n_frames, 1) for f in result.per_file}}
    truth = np.concatenate(targets)
    report["always_voice"] = count_errors(np.ones_like(truth), truth).to_dict()
    report["majority_class_error"] = float(min(truth.mean(), 1 - truth.mean()))
    return report


def format_report(report: dict) -> str:
    def pct(v):
        return "  n/a" if v is None else f"{100 * v:5.1f}"
    lines = [f"model: {report['model']}  (threshold {report['threshold']:.3f})",
             f"data: {', '.join(report['data'])} — {report['files']} files ({report['n_files']})",
             "", "                     error  recall  spec.  prec.    F1"]
    for label, name in (("plain", "model"), ("tta", "model + TTA")):
        p = report[label]["pooled"]
        lines.append(f"{name:18s}  {pct(p['error'])}   {pct(p['recall'])}  {pct(p['specificity'])}  "
                     f"{pct(p['precision'])}  {pct(p['f1'])}")
    a = report["always_voice"]
    lines.append(f"{'always voice':18s}  {pct(a['error'])}   {pct(a['recall'])}  {pct(a['specificity'])}  "
                 f"{pct(a['precision'])}  {pct(a['f1'])}")
    lines.append(f"{'majority class':18s}  {pct(report['majority_class_error'])}")
    lines += ["", "at the best threshold for these files (optimistic, as the paper's Figure 2 comparisons):"]
    for label, name in (("plain", "model"), ("tta", "model + TTA")):
        p = report[label]["pooled_at_best_threshold"]
        lines.append(f"{name:18s}  {pct(p['error'])}   {pct(p['recall'])}  {pct(p['specificity'])}  "
                     f"{pct(p['precision'])}  {pct(p['f1'])}   (threshold {report[label]['best_threshold']:.3g})")
    lines += ["", "per-file error (model / model + TTA), predicted voice share:"]
    for name, error in sorted(report["plain"]["per_file"].items()):
        share = report["plain"]["voiced_fraction_predicted"][name]
        lines.append(f"  {pct(error)} / {pct(report['tta']['per_file'][name])}   voice {pct(share)} %   {name}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="labelled folder(s)")
    parser.add_argument("--files", choices=("all", "valid", "train"), default="all")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = evaluate_model(args.model, args.data, files=args.files)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
