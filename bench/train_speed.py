"""Wall-clock speed of the real training loop, and the time the paper's 40,000 updates would take.

Run: python bench/train_speed.py [--device cuda] [--precision auto] [--updates 2000] [--budget-s 240]
        [--architecture paper|thesis] [--augment paper] [--json]

Trains on synthesized songs (no data needed: this runs on a bare GPU machine too) through
``engine.train.train`` itself, so the figure includes what a real run pays: building augmented
batches on the device, the optimizer, progress records and their batched host syncs. It stops after
``--updates`` or at ``--budget-s`` seconds, whichever comes first, times the updates after the
first 20 (warm-up: cuDNN autotuning, oneDNN primitives) and projects the 40,000-update schedule.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.bench import machine_description  # noqa: E402
from engine.cache import SpectrogramCache  # noqa: E402
from engine.config import AugmentConfig, FeatureConfig, ModelConfig, TrainConfig  # noqa: E402
from engine.datasets import find_tracks, load_tracks  # noqa: E402
from engine.devices import describe_device, pick_device  # noqa: E402
from engine.optim import default_learning_rate  # noqa: E402
from engine.precision import choose_precision  # noqa: E402
from engine.train import train  # noqa: E402
from tests.synth import random_voiced, write_song  # noqa: E402

WARM_UP_UPDATES = 20
PAPER_UPDATES = 40_000


def run(*, device: str, precision: str, updates: int, budget_s: float, architecture: str, augment: str,
        songs: int = 8, song_s: float = 30.0) -> dict:
    torch_device = pick_device(device)
    chosen = choose_precision(precision, torch_device, workload="train")
    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        for i in range(songs):
            write_song(Path(folder) / f"song{i}.flac", song_s, random_voiced(song_s, rng), seed=i)
        data = load_tracks(find_tracks(Path(folder)), config=FeatureConfig(), cache=SpectrogramCache(Path(folder)))
        optimizer = "adam" if architecture == "thesis" else "sgd-nesterov"  # each network's own recipe
        steps = train(train_data=data, out_path=Path(folder) / "m.safetensors", device=str(torch_device),
                      model_config=ModelConfig(architecture=architecture), augment=AugmentConfig.parse(augment), data_description="synthetic",
                      config=TrainConfig(updates=updates, validate_every=0, checkpoint_every=0, seed=0,
                                         optimizer=optimizer, learning_rate=default_learning_rate(optimizer),
                                         precision=chosen.precision))
        started = warm = None
        done = 0
        for progress in steps:
            now = time.perf_counter()
            if started is None:
                started = now
            if progress.update == WARM_UP_UPDATES:
                warm = now
            done = progress.update
            if now - started > budget_s or progress.finished:
                break
        steps.close()  # the budget ran out: stop there (its checkpoint lies in the temporary folder)
        end = time.perf_counter()
    timed = done - WARM_UP_UPDATES
    if warm is None or timed < 10:
        raise SystemExit(f"only {done} updates in {budget_s:g} s: give a larger --budget-s")
    ms = 1000 * (end - warm) / timed
    return {"machine": machine_description(), "device": describe_device(torch_device),
            "precision": chosen.precision, "precision_note": chosen.note, "architecture": architecture,
            "augment": augment, "batch_size": TrainConfig.batch_size, "updates_timed": timed,
            "ms_per_update": ms, "updates_per_s": 1000 / ms,
            "paper_schedule_minutes": PAPER_UPDATES * ms / 1000 / 60}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--budget-s", type=float, default=240.0)
    parser.add_argument("--architecture", default="paper", choices=("paper", "thesis"))
    parser.add_argument("--augment", default="paper")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(device=args.device, precision=args.precision, updates=args.updates, budget_s=args.budget_s,
                 architecture=args.architecture, augment=args.augment)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        m = report["machine"]
        print(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads), "
              f"{m['cpu_features']['torch_capability']}\ndevice: {report['device']}, {report['precision']} "
              f"({report['precision_note']})\n{report['architecture']} network, augment {report['augment']}, "
              f"batch {report['batch_size']}: {report['ms_per_update']:.1f} ms per update "
              f"({report['updates_per_s']:.1f}/s over {report['updates_timed']} updates)\n"
              f"the paper's {PAPER_UPDATES:,} updates: {report['paper_schedule_minutes']:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
