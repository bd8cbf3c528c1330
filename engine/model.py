"""The CNN of SPEC §3 and its fully-convolutional prediction form (SPEC §6).

``SingingVoiceCNN.forward`` classifies excerpts ``[batch, 1, 115, 80]`` (training and the
excerpt-wise reference path). ``fcn_logits`` runs the same weights over a whole padded
spectrogram at once: pools after the first become stride 1 in time, so later layers see their
inputs with a time dilation of 3 (after pool 1) and 9 (after pool 2). Instead of dilated
convolutions it de-interleaves time into phases folded into the batch ("polyphase"), which
turns every layer into an ordinary dense convolution that CPU and GPU kernels run fastest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import FeatureConfig, ModelConfig


def _conv_out(size: int, kernel: int) -> int:
    return size - kernel + 1


class SingingVoiceCNN(nn.Module):
    """conv 64 → conv 32 → pool → conv 128 → conv 64 → pool → dense 256 → dense 64 → dense 1."""

    def __init__(self, config: ModelConfig = ModelConfig(), *, n_mels: int = FeatureConfig.n_mels):
        super().__init__()
        self.config = config
        self.n_mels = n_mels
        c1, c2, c3, c4 = config.conv_channels
        k = config.kernel_size
        self.conv1 = nn.Conv2d(1, c1, k)
        self.conv2 = nn.Conv2d(c1, c2, k)
        self.conv3 = nn.Conv2d(c2, c3, k)
        self.conv4 = nn.Conv2d(c3, c4, k)
        self.pooled_frames, self.pooled_bands = self._pooled_shape(config.excerpt_frames, n_mels)
        self.fc1 = nn.Linear(c4 * self.pooled_frames * self.pooled_bands, config.dense_units[0])
        self.fc2 = nn.Linear(config.dense_units[0], config.dense_units[1])
        self.fc3 = nn.Linear(config.dense_units[1], 1)
        self.dropout = nn.Dropout(config.dropout)

    def _pooled_shape(self, frames: int, bands: int) -> tuple[int, int]:
        k, p = self.config.kernel_size, self.config.pool_size
        sizes = []
        for size in (frames, bands):
            size = _conv_out(_conv_out(size, k), k) // p
            size = _conv_out(_conv_out(size, k), k) // p
            sizes.append(size)
        if min(sizes) < 1:
            raise ValueError(f"input {frames}x{bands} is too small for this network")
        return sizes[0], sizes[1]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Orthogonal weights (gain 1) and zero biases, as the paper (Saxe et al.)."""
        for layer in (self.conv1, self.conv2, self.conv3, self.conv4, self.fc1, self.fc2, self.fc3):
            nn.init.orthogonal_(layer.weight, gain=1.0, generator=generator)
            nn.init.zeros_(layer.bias)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.config.leak)

    def forward(self, excerpts: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch]`` for excerpts ``[batch, 1, frames, bands]`` (sigmoid gives probability)."""
        p = self.config.pool_size
        x = self._act(self.conv2(self._act(self.conv1(excerpts))))
        x = F.max_pool2d(x, p)
        x = self._act(self.conv4(self._act(self.conv3(x))))
        x = F.max_pool2d(x, p)
        x = self.dropout(x.flatten(1))
        x = self.dropout(self._act(self.fc1(x)))
        x = self.dropout(self._act(self.fc2(x)))
        return self.fc3(x).squeeze(1)


def _split_phases(x: torch.Tensor, phases: int) -> tuple[torch.Tensor, int]:
    """[B, C, T, F] → [B*phases, C, ceil(T/phases), F]: row p holds frames p, p+phases, ..."""
    b, c, t, f = x.shape
    padded = -(-t // phases) * phases
    if padded != t:
        x = F.pad(x, (0, 0, 0, padded - t))
    x = x.reshape(b, c, padded // phases, phases, f).permute(0, 3, 1, 2, 4)
    return x.reshape(b * phases, c, padded // phases, f), t


@torch.no_grad()
def fcn_logits(model: SingingVoiceCNN, padded: torch.Tensor) -> torch.Tensor:
    """Logits for every excerpt position of padded spectrograms, computed fully convolutionally.

    Parameters
    ----------
    padded : torch.Tensor [shape=(batch, 1, frames + excerpt_frames - 1, n_mels)]
        Standardized log-mel, already padded by ``excerpt_frames // 2`` on each side.

    Returns
    -------
    logits : torch.Tensor [shape=(batch, frames)]
        Identical (up to float rounding) to ``model(excerpt)`` for each excerpt, dropout off.
    """
    cfg = model.config
    p = cfg.pool_size
    batch = padded.shape[0]
    n_out = padded.shape[2] - cfg.excerpt_frames + 1
    if n_out < 1:
        raise ValueError(f"need at least {cfg.excerpt_frames} padded frames, got {padded.shape[2]}")
    act = model._act
    # channels_last lets oneDNN pick its fastest CPU kernels (about 1.5x here).
    padded = padded.contiguous(memory_format=torch.channels_last)
    x = act(model.conv2(act(model.conv1(padded))))
    x = F.max_pool2d(x, (p, p), stride=(1, p))         # stride 1 in time
    x, _ = _split_phases(x, p)                          # time dilation p → phases in the batch
    x = act(model.conv4(act(model.conv3(x))))
    x = F.max_pool2d(x, (p, p), stride=(1, p))
    x, _ = _split_phases(x, p)                          # dilation p*p → p*p phases
    # fc1 as a convolution over the pooled [frames x bands] block, then fc2/fc3 as 1x1 maps.
    c4 = cfg.conv_channels[3]
    w1 = model.fc1.weight.reshape(-1, c4, model.pooled_frames, model.pooled_bands)
    w1 = w1.contiguous(memory_format=torch.channels_last)
    x = act(F.conv2d(x, w1, model.fc1.bias))             # [B*p*p, d1, n, 1]
    x = x.squeeze(3).transpose(1, 2)                     # [B*p*p, n, d1]
    x = act(F.linear(x, model.fc2.weight, model.fc2.bias))
    x = F.linear(x, model.fc3.weight, model.fc3.bias).squeeze(2)   # [B*p*p, n]
    n = x.shape[1]
    # Row (p1, p2) at index m holds output frame p*p*m + p*p2 + p1 (see module docstring).
    x = x.reshape(batch, p, p, n).permute(0, 3, 2, 1).reshape(batch, n * p * p)
    return x[:, :n_out]


@torch.no_grad()
def excerpt_logits(model: SingingVoiceCNN, padded: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """The reference path: cut every excerpt and classify it alone (tests and benchmarks)."""
    cfg = model.config
    out = []
    for b in range(padded.shape[0]):
        excerpts = padded[b, 0].unfold(0, cfg.excerpt_frames, 1).transpose(1, 2)  # [n, 115, F]
        for i in range(0, excerpts.shape[0], batch_size):
            out.append(model(excerpts[i:i + batch_size].unsqueeze(1)))
    n = padded.shape[2] - cfg.excerpt_frames + 1
    return torch.cat(out).reshape(padded.shape[0], n)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
