"""Does torch.compile speed up a CPU training update? Eager against compiled, same batches.

    python bench/compile_training.py [--architecture paper|thesis] [--rounds 4]

Times one update (forward + backward + SGD step, batch 32, channels-last fp32) in the default
layout, in channels-last, and in channels-last under ``torch.compile`` (inductor; needs a C++
compiler), alternating the three over ``--rounds`` rounds and keeping the best of each, so that
load from other processes hits all alike. Prints the compile time too.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from input_pipeline import make_step, setup

from engine.bench import machine_description
from engine.checkpoint import VoiceModel
from engine.config import ModelConfig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architecture", default="paper", choices=("paper", "thesis"))
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    _, model, batches = setup()
    config = ModelConfig(architecture=args.architecture,
                         first_conv="zero-mean" if args.architecture == "thesis" else "plain")
    network = VoiceModel.create(model_config=config, normalization=model.normalization).network
    generator = torch.Generator().manual_seed(0)
    plan = [batches.batch(batches.starts[torch.randint(len(batches.starts), (32,), generator=generator)])
            for _ in range(4)]
    arms = {"default layout": make_step(copy.deepcopy(network), torch.contiguous_format),
            "channels-last": make_step(copy.deepcopy(network), torch.channels_last),
            "channels-last, compiled": make_step(copy.deepcopy(network), torch.channels_last, compiled=True)}
    start = time.perf_counter()
    arms["channels-last, compiled"](*plan[0])
    compile_s = time.perf_counter() - start
    for step in arms.values():
        step(*plan[0])
    best = {name: float("inf") for name in arms}
    for _ in range(args.rounds):
        for name, step in arms.items():
            start = time.perf_counter()
            for excerpts, targets in plan:
                step(excerpts, targets)
            best[name] = min(best[name], 1000 * (time.perf_counter() - start) / len(plan))
    m = machine_description()
    print(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)")
    print(f"{args.architecture} network, batch 32, fp32; compiling took {compile_s:.1f} s")
    for name, ms in best.items():
        print(f"  {name:24s} {ms:6.0f} ms per update ({best['default layout'] / ms:.2f}x the default layout)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
