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


class BalancedSampler:
    """Half of each batch from excerpts whose central frame is voiced, half from unvoiced ones.

    Each class has its own ExcerptSampler (without replacement, reshuffled when exhausted), so
    the rarer class repeats more often; an odd batch's extra excerpt alternates between them.
    """

    def __init__(self, starts: torch.Tensor, voiced: torch.Tensor, *, seed: int):
        voiced = voiced.bool().cpu()
        if len(voiced) != len(starts):
            raise ValueError(f"{len(voiced)} voiced flags for {len(starts)} excerpt positions")
        if voiced.all() or not voiced.any():
            raise DatasetError("balancing voiced and unvoiced excerpts needs both; these data have only "
                               + ("voiced" if voiced.any() else "unvoiced") + " ones")
        self.voiced = ExcerptSampler(starts[voiced], seed=seed)
        self.unvoiced = ExcerptSampler(starts[~voiced], seed=seed + 1)
        self.odd = 0

    def next_batch(self, batch_size: int) -> torch.Tensor:
        n_voiced = batch_size // 2 + (batch_size % 2) * (1 - self.odd)
        self.odd ^= batch_size % 2
        return torch.cat([self.voiced.next_batch(n_voiced), self.unvoiced.next_batch(batch_size - n_voiced)])

    def state(self) -> dict[str, torch.Tensor]:
        return {**{f"voiced_{k}": v for k, v in self.voiced.state().items()},
                **{f"unvoiced_{k}": v for k, v in self.unvoiced.state().items()},
                "balanced_odd": torch.tensor([self.odd], dtype=torch.int64)}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        for prefix, sampler in (("voiced_", self.voiced), ("unvoiced_", self.unvoiced)):
            sampler.load_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        self.odd = int(state["balanced_odd"][0])
