"""Choosing the torch device: CUDA when torch sees one, else the CPU."""

from __future__ import annotations

import torch

from engine.errors import ConfigError


def pick_device(name: str | None = None) -> torch.device:
    """'auto'/None → cuda if available else cpu; 'cuda' without a GPU is a ConfigError."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but torch sees no CUDA GPU")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {name!r} (use auto, cpu, cuda or cuda:N)")
    return device


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"
