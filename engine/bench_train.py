"""Training-side speed: one SGD update with and without the paper's augmentations, in fp32 and in the
precision ``auto`` picks (or the one asked for), in the same run."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.augment import augment_excerpts, draw_augmentations
from engine.batches import AugmentedBatches, ExcerptBatches
from engine.checkpoint import VoiceModel
from engine.config import AugmentConfig, FeatureConfig, ModelConfig, TrainConfig
from engine.datasets import Track, TrackData
from engine.devices import pick_device
from engine.features import linear_spectrogram, linear_to_mel, log_compress
from engine.normalize import compute_normalization
from engine.precision import autocast, choose_precision


def _synthetic_tracks(seconds: float, features: FeatureConfig) -> list[TrackData]:
    from engine.bench import synth_music

    linear = linear_spectrogram(synth_music(seconds, features.sample_rate), features).numpy()
    log_mel = log_compress(linear_to_mel(torch.from_numpy(linear), features), features).numpy()
    targets = (np.arange(len(linear)) // 200) % 2 == 0  # alternating voice / no voice
    return [TrackData(Track("bench", Path("bench.wav"), None), linear, log_mel, targets, seconds)]


def _time_updates(model: VoiceModel, batches, n_updates: int, precision: str = "fp32") -> float:
    network = model.network
    network.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.95, nesterov=True)
    generator = torch.Generator().manual_seed(0)

    def update() -> None:
        starts = batches.starts[torch.randint(len(batches.starts), (32,), generator=generator)]
        excerpts, targets = batches.batch(starts)
        with autocast(precision, excerpts.device):
            logits = network(excerpts)
        loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if loss.device.type == "cuda":
            torch.cuda.synchronize()
    update()  # warm-up
    start = time.perf_counter()
    for _ in range(n_updates):
        update()
    return (time.perf_counter() - start) / n_updates


def run_training_benchmark(*, n_updates: int = 10, device: str | None = None, precision: str | None = None,
                           rounds: int = 3, batch_repeats: int = 20, track_s: float = 60.0) -> dict:
    """Seconds per update without and with the paper's augmentation, and per augmented batch.

    ``ms_per_update_*`` include the paper's augmentation (what a real training step costs);
    ``*_auto`` is in ``precision`` (default: what ``auto`` picks for training here).
    """
    features = FeatureConfig()
    torch_device = pick_device(device)
    auto = choose_precision("auto", torch_device, workload="train").precision
    compared = choose_precision(precision or "auto", torch_device, workload="train").precision
    tracks = _synthetic_tracks(track_s, features)
    model = VoiceModel.create(normalization=compute_normalization(t.log_mel for t in tracks))
    model.network.to(torch_device)
    paper = AugmentConfig.paper()
    plain = ExcerptBatches(tracks, model, torch_device, 0.02, 0.98)
    augmented = AugmentedBatches(tracks, model, torch_device, 0.02, 0.98, augment=paper, seed=1)
    # Alternate the two kinds so that machine noise hits both alike; keep the best round.
    plain_s, augmented_s, compared_s = [], [], []
    for _ in range(rounds):
        plain_s.append(_time_updates(model, plain, n_updates))
        augmented_s.append(_time_updates(model, augmented, n_updates))
        if compared != "fp32":  # a second precision: a third of the updates suffice
            compared_s.append(_time_updates(model, augmented, max(2, n_updates // 3), compared))
    compared_s = compared_s or augmented_s
    batch = TrainConfig.batch_size
    source = augmented.linear[:paper.source_frames(ModelConfig.excerpt_frames)].expand(batch, -1, -1).contiguous()
    generator = torch.Generator(device=torch_device).manual_seed(0)

    def augment_batch() -> None:
        draw = draw_augmentations(paper, batch, generator=generator)
        augment_excerpts(source, draw, config=paper, features=features, normalization=model.normalization)
    augment_batch()
    start = time.perf_counter()
    for _ in range(batch_repeats):
        augment_batch()
    augment_s = (time.perf_counter() - start) / batch_repeats
    # A whole augmented batch as training builds it: gather, draw, warp, filter, mel, log, standardize.
    starts_generator = torch.Generator().manual_seed(0)

    def build_batch() -> None:
        augmented.batch(augmented.starts[torch.randint(len(augmented.starts), (batch,), generator=starts_generator)])
    build_batch()
    start = time.perf_counter()
    for _ in range(batch_repeats):
        build_batch()
    if torch_device.type == "cuda":
        torch.cuda.synchronize()
    batch_s = (time.perf_counter() - start) / batch_repeats
    return {"device": str(torch_device), "update_s_plain": min(plain_s), "update_s_paper_augmentation": min(augmented_s),
            "augmentation_overhead": min(augmented_s) / min(plain_s) - 1, "augment_batch32_s": augment_s,
            "updates_per_s_plain": 1 / min(plain_s), "updates_per_s_augmented": 1 / min(augmented_s),
            "precision_auto": auto, "precision_compared": compared,
            "ms_per_update_fp32": 1000 * min(augmented_s), "ms_per_update_auto": 1000 * min(compared_s),
            "augmentation_ms_per_batch": 1000 * batch_s,
            "augmentation_share_of_update_auto": batch_s / min(compared_s)}


def format_training_report(report: dict) -> str:
    return "\n".join([
        f"training update, batch 32, no augmentation:     {1000 * report['update_s_plain']:8.0f} ms "
        f"({report['updates_per_s_plain']:.2f} updates/s, {report['device']})",
        f"training update, paper's augmentation:          {1000 * report['update_s_paper_augmentation']:8.0f} ms "
        f"({report['updates_per_s_augmented']:.2f} updates/s)",
        f"augmentation cost per update:                   {100 * report['augmentation_overhead']:+8.1f} %",
        f"augmenting a batch of 32 (pitch, stretch, filter): {1000 * report['augment_batch32_s']:5.1f} ms",
        f"building an augmented batch of 32 (as training): {report['augmentation_ms_per_batch']:6.1f} ms "
        f"({100 * report['augmentation_share_of_update_auto']:.1f} % of an update in {report['precision_compared']})",
        f"training update incl. augmentation, fp32:       {report['ms_per_update_fp32']:8.0f} ms",
        f"training update incl. augmentation, {report['precision_compared']:>4}:       "
        f"{report['ms_per_update_auto']:8.0f} ms (auto picks {report['precision_auto']})",
    ])
