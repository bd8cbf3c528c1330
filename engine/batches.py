"""Training batches: excerpts and their soft targets, plain or augmented on the fly (SPEC §4–5).

Both kinds keep the whole training set in one tensor on the training device and gather
excerpts by index, so building a batch is a few tensor operations, never a Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

import numpy as np
import torch

from engine import frontend
from engine.augment import augment_excerpts, draw_augmentations
from engine.checkpoint import VoiceModel
from engine.config import AugmentConfig
from engine.datasets import TrackData
from engine.errors import DatasetError
from engine.remix import RemixPool


def _to_device(indices: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Sampler indices (on the CPU) to ``device``; to a GPU through pinned memory, without
    waiting for the GPU's queue (a plain copy from pageable memory would be a host sync per step)."""
    if device.type != "cuda":
        return indices.to(device)
    return indices.pin_memory().to(device, non_blocking=True)


def _too_short(model: VoiceModel) -> DatasetError:
    length = model.model_config.excerpt_frames
    return DatasetError(f"no training file is at least one excerpt long ({length} frames, "
                        f"{length / model.features.frames_per_second:.2f} s)")


class ExcerptBatches:
    """Standardized log-mel frames of all files in one tensor; no augmentation."""

    def __init__(self, tracks: Sequence[TrackData], model: VoiceModel, device: torch.device,
                 target_low: float, target_high: float):
        length = model.model_config.excerpt_frames
        frames, targets, starts, offset = [], [], [], 0
        for data in tracks:
            n = len(data.log_mel)
            if n >= length:  # SPEC §4: every position where the whole excerpt fits in its file
                starts.append(torch.arange(offset, offset + n - length + 1))
            # Whole files through the input normalization, as prediction sees them.
            frames.append(frontend.transform(torch.from_numpy(np.array(data.log_mel, dtype=np.float32)),
                                             model.model_config, model.features))
            targets.append(torch.as_tensor(np.asarray(data.targets), dtype=torch.bool))
            offset += n
        if not starts:
            raise _too_short(model)
        self.frames = model.normalization.apply(torch.cat(frames)).to(device)
        self.targets = torch.where(torch.cat(targets), target_high, target_low).to(device, torch.float32)
        self.starts = torch.cat(starts)
        self.offsets = torch.arange(length, device=device)
        self.centre = model.model_config.context_frames

    def batch(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        starts = _to_device(starts, self.frames.device)
        excerpts = self.frames[starts[:, None] + self.offsets[None, :]]   # [B, 115, n_mels]
        excerpts = excerpts.unsqueeze(1).contiguous(memory_format=torch.channels_last)
        return excerpts, self.targets[starts + self.centre]

    def centre_voiced(self) -> torch.Tensor:
        """Whether each excerpt position's central frame is voiced (for balanced sampling), on the CPU."""
        return (self.targets[_to_device(self.starts, self.targets.device) + self.centre] > 0.5).cpu()


class AugmentedBatches:
    """Linear spectrograms of all files in one tensor, augmented per batch on the device.

    Files are separated by zero frames as wide as the warp's extra context, so a source excerpt
    never reads into a neighbouring file: beyond a file's edge the warp sees zeros (SPEC §5).
    """

    def __init__(self, tracks: Sequence[TrackData], model: VoiceModel, device: torch.device,
                 target_low: float, target_high: float, *, augment: AugmentConfig, seed: int):
        self.model, self.augment = model, augment
        length = model.model_config.excerpt_frames
        context = model.model_config.context_frames
        # Instance normalization and PCEN see wider excerpts, transformed, then cropped.
        self.extra = frontend.augmentation_context_frames(model.model_config)
        source = augment.source_frames(length + 2 * self.extra)
        margin = source // 2 - context
        n_bins = model.features.n_bins
        pieces, targets, starts = [torch.zeros(margin, n_bins)], [torch.zeros(margin, dtype=torch.bool)], []
        offset, positions = margin, []
        for data in tracks:
            n = len(data.linear)
            positions.append(offset)
            if n >= length:
                starts.append(torch.arange(offset, offset + n - length + 1))
            pieces += [torch.from_numpy(np.array(data.linear, dtype=np.float32)), torch.zeros(margin, n_bins)]
            targets += [torch.as_tensor(np.asarray(data.targets), dtype=torch.bool), torch.zeros(margin, dtype=torch.bool)]
            offset += n + margin
        if not starts:
            raise _too_short(model)
        self.linear = torch.cat(pieces).to(device)
        voiced = torch.cat(targets)
        self.targets = torch.where(voiced, target_high, target_low).to(device, torch.float32)
        self.starts = torch.cat(starts)
        # Mixing partners: excerpt positions whose central frame is non-voice (SPEC §5).
        self.partners = self.starts[~voiced[self.starts + context]].to(device)
        if augment.mix_probability and len(self.partners) == 0:
            raise DatasetError("mixing needs training excerpts without voice at their centre; there are none")
        self.source_offsets = torch.arange(-(source // 2), source // 2 + 1, device=device)
        self.excerpt_offsets = torch.arange(length, device=device)
        self.wide_offsets = torch.arange(-self.extra, length + self.extra, device=device)
        self.context = context
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.remix = None
        if augment.remix_probability:  # decodes the stems once; see engine.remix
            self.remix = RemixPool(tracks, positions, n_frames=len(self.linear), margin=margin, context=context,
                                   features=model.features, device=device)

    def batch(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.linear.device
        centres = _to_device(starts, device) + self.context
        source = self.linear[centres[:, None] + self.source_offsets[None, :]]    # [B, 165, n_bins]
        mels = self.model.features.n_mels
        draw = draw_augmentations(self.augment, len(starts), generator=self.generator,
                                  n_partners=len(self.partners), frames=len(self.excerpt_offsets), n_mels=mels)
        if self.remix is not None:
            source = self.remix.apply(source, centres, draw, self.source_offsets)
        partners = None
        if self.augment.mix_probability:
            chosen = self.partners[draw.mix_partner.clamp(min=0).to(device)]
            partners = self.linear[chosen[:, None] + self.wide_offsets[None, :], :self.model.features.n_mel_input_bins]
        recipe = self.model.model_config
        crop = None if not self.extra else partial(frontend.crop_transform, config=recipe, features=self.model.features)
        excerpts = augment_excerpts(source, draw, config=self.augment, features=self.model.features,
                                    normalization=self.model.normalization,
                                    excerpt_frames=len(self.wide_offsets), partners=partners, input_transform=crop)
        excerpts = excerpts.unsqueeze(1).contiguous(memory_format=torch.channels_last)
        return excerpts, self.targets[centres]

    def centre_voiced(self) -> torch.Tensor:
        """Whether each excerpt position's central frame is voiced (for balanced sampling), on the CPU."""
        return (self.targets[_to_device(self.starts, self.targets.device) + self.context] > 0.5).cpu()

    def state(self) -> dict[str, torch.Tensor]:
        return {"augment_rng": self.generator.get_state()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        if "augment_rng" in state:
            self.generator.set_state(state["augment_rng"])


class BatchStream:
    """The training loop's batches in sampler order, optionally built one ahead in a thread.

    With ``prefetch`` the next batch is cut and augmented while the current one trains (measured
    faster on a 2-core CPU, see README). Either way ``state()`` is the sampler and augmentation
    RNG state from before the batch that trains next, which is what a checkpoint must store for
    a resumed run to draw the very same batches. ``close()`` ends the thread.
    """

    def __init__(self, data: "ExcerptBatches | AugmentedBatches", sampler, batch_size: int, *, prefetch: bool):
        self.data, self.sampler, self.batch_size = data, sampler, batch_size
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="svgui-batches") if prefetch else None
        self._ahead: tuple[dict[str, torch.Tensor], Future] | None = None

    def _live_state(self) -> dict[str, torch.Tensor]:
        state = dict(self.sampler.state())
        if isinstance(self.data, AugmentedBatches):
            state.update(self.data.state())
        return state

    def _start_next(self) -> None:
        before = self._live_state()
        starts = self.sampler.next_batch(self.batch_size)
        self._ahead = (before, self._pool.submit(self.data.batch, starts))

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._pool is None:
            return self.data.batch(self.sampler.next_batch(self.batch_size))
        if self._ahead is None:
            self._start_next()
        batch = self._ahead[1].result()
        self._start_next()
        return batch

    def state(self) -> dict[str, torch.Tensor]:
        if self._ahead is None:
            return self._live_state()
        self._ahead[1].exception()  # wait: nothing may touch the RNGs while a checkpoint reads them
        return self._ahead[0]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

