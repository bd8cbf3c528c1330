"""Prediction cost of each network and training variant against the paper's network (README figures).

Run: python bench/variant_speed.py [--seconds 60] [--repeats 3] [--threads N] [--device cpu|cuda]
    [--unfolded] [--json]
Times whole-file prediction (STFT, input normalization, fully-convolutional network; fp32, no
TTA) of a synthesized song with freshly initialised full-size networks, best of ``--repeats``
interleaved rounds, and prints each variant's time relative to the paper's. The target is at most 2x.
``--unfolded`` adds the paper's and the bundled network as they ran before evaluation folded the
batch norms into the weights and ran the leaky ReLUs in place (``SingingVoiceCNN._folds_batch_norm``),
in the same rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.checkpoint import VoiceModel  # noqa: E402
from engine.config import ModelConfig  # noqa: E402
from engine.model import SingingVoiceCNN  # noqa: E402
from engine.precision import cpu_features, describe_cpu_features  # noqa: E402
from engine.predict import predict_samples  # noqa: E402
from engine.timing import best_time_s  # noqa: E402
from tests.synth import synth_song  # noqa: E402

VARIANTS = [
    ("paper (baseline)", {}),
    ("zero-mean first conv", {"first_conv": "zero-mean"}),
    ("instance normalization", {"input_norm": "instance"}),
    ("PCEN", {"input_norm": "pcen"}),
    ("thesis network", {"architecture": "thesis"}),
    ("thesis + zero-mean (the bundled model)", {"architecture": "thesis", "first_conv": "zero-mean"}),
    ("thesis + zero-mean + instance", {"architecture": "thesis", "first_conv": "zero-mean", "input_norm": "instance"}),
    ("thesis + PCEN", {"architecture": "thesis", "input_norm": "pcen"}),
]


UNFOLDED = [
    ("paper, unfolded (before)", {}),
    ("bundled, unfolded (before)", {"architecture": "thesis", "first_conv": "zero-mean"}),
]


@contextlib.contextmanager
def unfolded():
    """Evaluation as before the fold: a batch-norm pass after each layer, leaky ReLUs out of place."""
    fold, act = SingingVoiceCNN._folds_batch_norm, SingingVoiceCNN._act
    SingingVoiceCNN._folds_batch_norm = lambda self, x: False
    SingingVoiceCNN._act = lambda self, x: torch.nn.functional.leaky_relu(x, self.config.leak)
    try:
        yield
    finally:
        SingingVoiceCNN._folds_batch_norm, SingingVoiceCNN._act = fold, act


def run(seconds: float, repeats: int, device: str, *, compare_unfolded: bool = False) -> dict:
    signal = synth_song(seconds, [(seconds * 0.2, seconds * 0.6)], seed=0)
    variants = VARIANTS + (UNFOLDED if compare_unfolded else [])
    models = []
    for name, recipe in variants:
        model = VoiceModel.create(model_config=ModelConfig(**recipe), seed=0)
        model.network.to(device).eval()
        context = unfolded if name in dict(UNFOLDED) else contextlib.nullcontext
        with context():
            predict_samples(model, signal[: 22050 * 5])  # warm-up: oneDNN primitives, caches
        models.append((model, context))
    # Rounds over all variants, best per variant: load from other work on a shared machine
    # drifts slowly, and interleaving spreads it over every variant alike.
    best = [float("inf")] * len(models)
    for _ in range(repeats):
        for i, (model, context) in enumerate(models):
            with context():
                best[i] = min(best[i], best_time_s(lambda model=model: predict_samples(model, signal), 1))
    rows = [{"variant": name, "recipe": recipe, "time_s": round(t, 4)} for (name, recipe), t in zip(variants, best)]
    base = rows[0]["time_s"]
    for row in rows:
        row["relative"] = round(row["time_s"] / base, 3)
        row["realtime_factor"] = round(seconds / row["time_s"], 1)
    return {"seconds": seconds, "repeats": repeats, "device": device, "threads": torch.get_num_threads(),
            "cpu": cpu_features()["model"] or platform.processor(), "cpu_features": describe_cpu_features(),
            "torch": torch.__version__, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio length to predict (default 60)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--unfolded", action="store_true",
                        help="also time the paper's and the bundled network without the batch-norm fold")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    np.random.seed(0)
    report = run(args.seconds, args.repeats, args.device, compare_unfolded=args.unfolded)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['cpu']} ({report['cpu_features']}), {report['threads']} threads, torch {report['torch']}, "
          f"{report['device']}; {args.seconds:g} s of audio, fp32, best of {args.repeats}")
    print(f"{'variant':<40} {'time':>8} {'x paper':>8} {'x real time':>12}")
    for row in report["rows"]:
        print(f"{row['variant']:<40} {row['time_s']:>7.3f}s {row['relative']:>8.2f} {row['realtime_factor']:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
