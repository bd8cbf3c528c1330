"""Excerpt positions drawn without replacement, reshuffled when exhausted, from a seeded generator."""

from __future__ import annotations

import torch

from engine.errors import DatasetError


class ExcerptSampler:
    """Yields batches of excerpt start indices; its whole state fits in a checkpoint."""

    def __init__(self, starts: torch.Tensor, *, seed: int):
        if len(starts) == 0:
            raise ValueError("no excerpt positions to sample from")
        self.starts = starts.long().cpu()
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(self.starts), generator=self.generator)
        self.position = 0
        self.epoch = 0

    def next_batch(self, batch_size: int) -> torch.Tensor:
        """The next ``batch_size`` start indices; a new permutation begins when one runs out."""
        picked = []
        needed = batch_size
        while needed:
            if self.position == len(self.order):
                self.order = torch.randperm(len(self.starts), generator=self.generator)
                self.position = 0
                self.epoch += 1
            take = min(needed, len(self.order) - self.position)
            picked.append(self.order[self.position:self.position + take])
            self.position += take
            needed -= take
        return self.starts[torch.cat(picked)]

    def state(self) -> dict[str, torch.Tensor]:
        return {"sampler_order": self.order.clone(), "sampler_rng": self.generator.get_state(),
                "sampler_position": torch.tensor([self.position, self.epoch], dtype=torch.int64)}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        order = state["sampler_order"].long()
        if len(order) != len(self.starts):
            raise DatasetError(f"the checkpoint was trained on {len(order)} excerpt positions, "
                             f"these data have {len(self.starts)}: resume with the same data")
        self.order = order
        self.generator.set_state(state["sampler_rng"])
        self.position, self.epoch = (int(v) for v in state["sampler_position"])
