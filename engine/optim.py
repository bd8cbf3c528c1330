"""The optimizer of ``TrainConfig.optimizer`` and its state in a checkpoint.

``sgd-nesterov`` (the paper): SGD with Nesterov momentum 0.95, learning rate 0.01 x 0.85 every
2000 updates; its checkpoint tensors keep their old names (``momentum.i``), so older checkpoints
resume as before. ``adam`` (Schlüter's thesis): Adam with torch's defaults (betas 0.9, 0.999,
eps 1e-8) at 0.001 x 0.85 every 2000 updates; the schedule is ``TrainConfig.learning_rate_at``
for both, only the rate differs (``default_learning_rate``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.config import ADAM_LEARNING_RATE, TrainConfig


def default_learning_rate(optimizer: str) -> float:
    """The initial learning rate of each optimizer's schedule."""
    return ADAM_LEARNING_RATE if optimizer == "adam" else TrainConfig.learning_rate


def make_optimizer(config: TrainConfig, parameters: Sequence[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=config.learning_rate)
    return torch.optim.SGD(parameters, lr=config.learning_rate, momentum=config.momentum, nesterov=True)


def optimizer_state(optimizer: torch.optim.Optimizer, config: TrainConfig,
                    parameters: Sequence[torch.nn.Parameter]) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state as named tensors (zeros before the first step)."""
    tensors = {}
    for i, param in enumerate(parameters):
        state = optimizer.state.get(param, {})
        if config.optimizer == "adam":
            tensors[f"adam_m.{i}"] = state.get("exp_avg", torch.zeros_like(param))
            tensors[f"adam_v.{i}"] = state.get("exp_avg_sq", torch.zeros_like(param))
            step = state.get("step", torch.zeros(()))
            tensors[f"adam_step.{i}"] = torch.as_tensor(step, dtype=torch.float32).reshape(())
        else:
            buffer = state.get("momentum_buffer")
            tensors[f"momentum.{i}"] = buffer if buffer is not None else torch.zeros_like(param)
    return tensors


def load_optimizer_state(optimizer: torch.optim.Optimizer, config: TrainConfig,
                         parameters: Sequence[torch.nn.Parameter], state: dict[str, torch.Tensor]) -> None:
    """Restore ``optimizer_state``; KeyError or ValueError when a tensor is missing or misshapen."""
    names = ("adam_m", "adam_v") if config.optimizer == "adam" else ("momentum",)
    for i, param in enumerate(parameters):
        loaded = {}
        for name in names:
            buffer = state[f"{name}.{i}"]
            if buffer.shape != param.shape:
                raise ValueError(f"{name} {i} has shape {tuple(buffer.shape)}, expected {tuple(param.shape)}")
            loaded[name] = buffer.to(param.device, param.dtype)
        if config.optimizer == "adam":
            step = float(state[f"adam_step.{i}"])
            if step > 0:  # Adam keeps no state for a parameter before its first step
                optimizer.state[param].update(exp_avg=loaded["adam_m"], exp_avg_sq=loaded["adam_v"],
                                              step=torch.tensor(step))
        else:
            optimizer.state[param]["momentum_buffer"] = loaded["momentum"]
