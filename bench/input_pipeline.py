"""Training input pipeline and memory layout: where the time of a step goes, on this machine.

    python bench/input_pipeline.py [--rounds 3] [--json]

1. Profiles building an augmented batch of 32 with the paper's combination (excerpt cutting,
   pitch/stretch warp, filter, mel projection, log and standardization), stage by stage, and
   compares it with one fp32 training update (forward + backward + SGD step).
2. Times N updates with the next batch built in a background thread (prefetch) against building
   it in line, same batches.
3. Times channels-last against the default layout for one prediction chunk and one update.
4. With ``--stems DIR`` (a folder with stems, e.g. ../shared/data/musdb7-train): a whole batch with
   the paper's combination against the same plus stem remixing (remix=0.5 and 1.0) on its files, and
   the remix step alone (``engine.remix.RemixPool.apply``).
Each comparison alternates its two sides over ``--rounds`` rounds and keeps the best, so that
load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from engine.augment import apply_gain_db, crop_centre, draw_augmentations, filter_response_db, warp
from engine.batches import AugmentedBatches
from engine.bench import machine_description
from engine.bench_train import _synthetic_tracks
from engine.checkpoint import VoiceModel
from engine.config import AugmentConfig, FeatureConfig
from engine.features import linear_to_mel, log_compress
from engine.model import fcn_logits
from engine.normalize import compute_normalization


def best_ms(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def setup():
    features = FeatureConfig()
    tracks = _synthetic_tracks(60.0, features)
    model = VoiceModel.create(normalization=compute_normalization(t.log_mel for t in tracks))
    batches = AugmentedBatches(tracks, model, torch.device("cpu"), 0.02, 0.98, augment=AugmentConfig.paper(), seed=1)
    return features, model, batches


def profile_stages(features, model, batches, repeats: int) -> dict:
    paper = batches.augment
    generator = torch.Generator().manual_seed(0)
    starts = batches.starts[torch.randint(len(batches.starts), (32,), generator=generator)]
    centres = starts + batches.context
    gather = lambda: batches.linear[centres[:, None] + batches.source_offsets[None, :]]
    source = gather()
    draw = draw_augmentations(paper, 32, generator=generator)
    warped = warp(source, draw.pitch_factor, draw.stretch_factor, out_frames=115, out_bins=features.n_mel_input_bins)
    freqs = torch.arange(features.n_mel_input_bins) * features.bin_hz
    filtered = apply_gain_db(warped, filter_response_db(draw, freqs))
    mel = linear_to_mel(filtered, features)
    stages = {
        "excerpt_cutting": best_ms(gather, repeats),
        "draw_random_values": best_ms(lambda: draw_augmentations(paper, 32, generator=generator), repeats),
        "warp_pitch_stretch": best_ms(lambda: warp(source, draw.pitch_factor, draw.stretch_factor, out_frames=115,
                                                   out_bins=features.n_mel_input_bins), repeats),
        "crop_without_warp": best_ms(lambda: crop_centre(source, out_frames=115,
                                                         out_bins=features.n_mel_input_bins), repeats),
        "filter": best_ms(lambda: apply_gain_db(warped, filter_response_db(draw, freqs)), repeats),
        "mel_projection": best_ms(lambda: linear_to_mel(filtered, features), repeats),
        "log_and_standardize": best_ms(lambda: model.normalization.apply(log_compress(mel, features)), repeats),
        "whole_batch": best_ms(lambda: batches.batch(starts), repeats),
    }
    return stages


def profile_remix(stems_dir, repeats: int) -> dict:
    """ms per batch of 32 on a stem folder's files: paper's combination without and with remixing."""
    import dataclasses

    from engine.cache import SpectrogramCache
    from engine.datasets import find_tracks, load_tracks

    features = FeatureConfig()
    tracks = load_tracks(find_tracks(stems_dir), config=features, cache=SpectrogramCache())
    model = VoiceModel.create(normalization=compute_normalization(t.log_mel for t in tracks))
    results = {}
    starts = None
    for name, remix in (("paper", 0.0), ("paper_remix_0.5", 0.5), ("paper_remix_1.0", 1.0)):
        augment = dataclasses.replace(AugmentConfig.paper(), remix_probability=remix)
        batches = AugmentedBatches(tracks, model, torch.device("cpu"), 0.02, 0.98, augment=augment, seed=1)
        if starts is None:
            generator = torch.Generator().manual_seed(0)
            starts = batches.starts[torch.randint(len(batches.starts), (32,), generator=generator)]
        results[f"whole_batch_{name}"] = best_ms(functools.partial(batches.batch, starts), repeats)
        if remix == 1.0:
            centres = starts + batches.context
            source = batches.linear[centres[:, None] + batches.source_offsets[None, :]]
            draw = draw_augmentations(augment, 32, generator=torch.Generator().manual_seed(0))
            results["remix_step_alone"] = best_ms(
                functools.partial(batches.remix.apply, source, centres, draw, batches.source_offsets), repeats)
    return results


def make_step(network, memory_format=torch.channels_last, *, compiled: bool = False):
    """One fp32 training update (forward + backward + SGD step) of ``network``, in ``memory_format``."""
    network = network.to(memory_format=memory_format).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.001, momentum=0.95, nesterov=True)
    forward = torch.compile(network) if compiled else network

    def step(excerpts, targets) -> None:
        loss = F.binary_cross_entropy_with_logits(forward(excerpts.contiguous(memory_format=memory_format)), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def _updates(model, batches, n: int, *, prefetch: bool, memory_format=torch.channels_last) -> float:
    """ms per update over ``n`` updates, batches built in line or one ahead in a thread."""
    step = make_step(model.network, memory_format)
    generator = torch.Generator().manual_seed(0)
    plan = [batches.starts[torch.randint(len(batches.starts), (32,), generator=generator)] for _ in range(n + 1)]
    step(*batches.batch(plan[0]))  # warm-up
    start = time.perf_counter()
    if prefetch:
        with ThreadPoolExecutor(1) as pool:
            upcoming = pool.submit(batches.batch, plan[1])
            for i in range(1, n + 1):
                excerpts, targets = upcoming.result()
                if i < n:
                    upcoming = pool.submit(batches.batch, plan[i + 1])
                step(excerpts, targets)
    else:
        for i in range(1, n + 1):
            step(*batches.batch(plan[i]))
    return 1000 * (time.perf_counter() - start) / n


def compare_layouts(model, batches, repeats: int) -> dict:
    network = model.network
    padded = torch.randn(1, 1, 2048 + 114, 80)
    results = {}
    for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
        network.to(memory_format=fmt).eval()
        # fcn_logits turns its input channels-last; for the default layout, undo that in the weights only
        results[f"fcn_chunk_ms_{name}"] = best_ms(lambda fmt=fmt: _fcn(network, padded, fmt), repeats)
        results[f"update_ms_{name}"] = _updates(model, batches, repeats, prefetch=False, memory_format=fmt)
    return results


def _fcn(network, padded, fmt):
    if fmt == torch.channels_last:
        return fcn_logits(network, padded)
    original = torch.Tensor.contiguous
    torch.Tensor.contiguous = lambda self, memory_format=None: original(self)  # keep the default layout
    try:
        return fcn_logits(network, padded)
    finally:
        torch.Tensor.contiguous = original


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--updates", type=int, default=8, help="updates per timing of the prefetch comparison")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--stems", metavar="DIR", help="also time stem remixing on this folder's files")
    args = parser.parse_args()
    features, model, batches = setup()
    report = {"machine": machine_description(), "rounds": args.rounds}
    stages, inline, ahead, layouts = [], [], [], []
    for _ in range(args.rounds):
        stages.append(profile_stages(features, model, batches, 5))
        inline.append(_updates(model, batches, args.updates, prefetch=False))
        ahead.append(_updates(model, batches, args.updates, prefetch=True))
        layouts.append(compare_layouts(model, batches, 3))
    report["stages_ms"] = {k: min(s[k] for s in stages) for k in stages[0]}
    report["update_ms_inline_batches"] = min(inline)
    report["update_ms_prefetched_batches"] = min(ahead)
    report["layouts"] = {k: min(r[k] for r in layouts) for k in layouts[0]}
    update_only = report["layouts"]["update_ms_channels_last"]
    report["batch_share_of_update"] = report["stages_ms"]["whole_batch"] / update_only
    if args.stems:
        remix = [profile_remix(args.stems, 5) for _ in range(args.rounds)]
        report["remix_ms"] = {k: min(r[k] for r in remix) for k in remix[0]}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    m = report["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)")
    print("augmented batch of 32, paper's combination (best of 5 per round):")
    for name, ms in report["stages_ms"].items():
        print(f"  {name:22s} {ms:7.2f} ms")
    print(f"  = {100 * report['batch_share_of_update']:.1f} % of a {update_only:.0f} ms fp32 update (forward+backward+SGD)")
    print(f"update incl. batch, built in line: {report['update_ms_inline_batches']:.0f} ms; "
          f"prefetched in a thread: {report['update_ms_prefetched_batches']:.0f} ms")
    for name, ms in report.get("remix_ms", {}).items():
        print(f"stems ({args.stems}): {name:22s} {ms:7.2f} ms")
    lay = report["layouts"]
    print(f"fcn chunk (2048 frames): default layout {lay['fcn_chunk_ms_contiguous']:.0f} ms, channels-last "
          f"{lay['fcn_chunk_ms_channels_last']:.0f} ms ({lay['fcn_chunk_ms_contiguous'] / lay['fcn_chunk_ms_channels_last']:.2f}x)")
    print(f"training update:         default layout {lay['update_ms_contiguous']:.0f} ms, channels-last "
          f"{lay['update_ms_channels_last']:.0f} ms ({lay['update_ms_contiguous'] / lay['update_ms_channels_last']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
