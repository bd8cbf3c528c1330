"""The CNN of SPEC §3 and its fully-convolutional prediction form (SPEC §6).

``SingingVoiceCNN.forward`` classifies excerpts ``[batch, 1, 115, 80]`` (training and the
excerpt-wise reference path). ``fcn_logits`` runs the same weights over a whole padded
spectrogram at once: pools after the first become stride 1 in time, so later layers see their
inputs with a time dilation of 3 (after pool 1) and 9 (after pool 2). Instead of dilated
convolutions it de-interleaves time into phases folded into the batch ("polyphase"), which
turns every layer into an ordinary dense convolution that CPU and GPU kernels run fastest.

Variants (``ModelConfig``): ``first_conv="zero-mean"`` subtracts each first-layer kernel's mean
in every forward pass, so a constant added to the whole input cancels exactly (Schlüter & Lehner,
ISMIR 2018). ``architecture="thesis"`` is the network of Schlüter's PhD thesis, checked against
f0k/ismir2015 branch phd_extra ``experiments/model.py``: a batch-norm layer over batch and time
standardizes each input band (no learned scale or shift); every convolution and hidden dense
layer loses its bias and gets batch normalization before its leaky ReLU; after conv 4 comes a
fifth convolution of 128 kernels 3 frames high and max-pooling 4 along frequency, in place of
the second 3x3 pooling. Deviations: that code's fifth kernel is 115 bins wide on a 372-bin
linear spectrogram (118 bins remain, 4 after it, pooled to 1); here it spans all remaining mel
bands but 3 (18 of 21) so the pooling by 4 again leaves one band; and its input is log1p, ours
the paper's log-mel. With the zero-mean first convolution, the input batch norm divides all
bands by one shared deviation, so an offset stays uniform across bands and still cancels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.config import FeatureConfig, ModelConfig


def _conv_out(size: int, kernel: int) -> int:
    return size - kernel + 1


class SingingVoiceCNN(nn.Module):
    """conv 64 → conv 32 → pool → conv 128 → conv 64 → pool → dense 256 → dense 64 → dense 1.

    The thesis variant: input batch norm, batch norm after every hidden layer, and
    conv 64 → conv 32 → pool → conv 128 → conv 64 → conv 128 (3 x bands-3) → pool 1x4 → dense ...
    """

    def __init__(self, config: ModelConfig = ModelConfig(), *, n_mels: int = FeatureConfig.n_mels):
        super().__init__()
        self.config = config
        self.n_mels = n_mels
        self.thesis = config.architecture == "thesis"
        c1, c2, c3, c4 = config.conv_channels
        k = config.kernel_size
        bias = not self.thesis  # batch norm's shift replaces the bias
        self.conv1 = nn.Conv2d(1, c1, k, bias=bias)
        self.conv2 = nn.Conv2d(c1, c2, k, bias=bias)
        self.conv3 = nn.Conv2d(c2, c3, k, bias=bias)
        self.conv4 = nn.Conv2d(c3, c4, k, bias=bias)
        if self.thesis:
            bands4 = _conv_out(_conv_out(_conv_out(_conv_out(n_mels, k), k) // config.pool_size, k), k)
            self.conv5_bands = bands4 - (THESIS_FREQ_POOL - 1)
            if self.conv5_bands < 1:
                raise ValueError(f"input {config.excerpt_frames}x{n_mels} is too small for the thesis network")
            self.conv5 = nn.Conv2d(c4, config.conv5_channels, (k, self.conv5_bands), bias=False)
        self.pooled_frames, self.pooled_bands = self._pooled_shape(config.excerpt_frames, n_mels)
        last_channels = config.conv5_channels if self.thesis else c4
        self.fc1 = nn.Linear(last_channels * self.pooled_frames * self.pooled_bands, config.dense_units[0], bias=bias)
        self.fc2 = nn.Linear(config.dense_units[0], config.dense_units[1], bias=bias)
        self.fc3 = nn.Linear(config.dense_units[1], 1)
        self.dropout = nn.Dropout(config.dropout)
        if self.thesis:
            self.input_bn = InputBatchNorm(n_mels, shared_scale=config.first_conv == "zero-mean")
            self.bn = nn.ModuleDict({name: nn.BatchNorm2d(n) if name.startswith("conv") else nn.BatchNorm1d(n)
                                     for name, n in (("conv1", c1), ("conv2", c2), ("conv3", c3), ("conv4", c4),
                                                     ("conv5", config.conv5_channels),
                                                     ("fc1", config.dense_units[0]), ("fc2", config.dense_units[1]))})

    @property
    def time_pools(self) -> int:
        """Poolings with stride in time: 2 in the paper's network, 1 in the thesis network."""
        return 1 if self.thesis else 2

    def _pooled_shape(self, frames: int, bands: int) -> tuple[int, int]:
        k, p = self.config.kernel_size, self.config.pool_size
        sizes = []
        for axis, size in enumerate((frames, bands)):
            size = _conv_out(_conv_out(size, k), k) // p
            size = _conv_out(_conv_out(size, k), k)
            if not self.thesis:
                size //= p
            elif axis == 0:
                size = _conv_out(size, k)
            else:
                size = _conv_out(size, self.conv5_bands) // THESIS_FREQ_POOL
            sizes.append(size)
        if min(sizes) < 1:
            raise ValueError(f"input {frames}x{bands} is too small for this network")
        return sizes[0], sizes[1]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Orthogonal weights (gain 1) and zero biases, as the paper (Saxe et al.)."""
        layers = [self.conv1, self.conv2, self.conv3, self.conv4, self.fc1, self.fc2, self.fc3]
        if self.thesis:
            layers.insert(4, self.conv5)
        for layer in layers:
            nn.init.orthogonal_(layer.weight, gain=1.0, generator=generator)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        # In place where no gradient is kept (prediction): x is always a fresh layer output.
        return F.leaky_relu(x, self.config.leak, inplace=not torch.is_grad_enabled())

    def _folds_batch_norm(self, x: torch.Tensor) -> bool:
        """fp32 evaluation of the thesis network folds each batch norm into its layer's weights.

        Not under autocast: the folded bias (about −mean · scale) would be rounded to bf16 before
        it cancels the layer's mean, which moved the demo song's probabilities by 0.026.
        """
        return self.thesis and not self.training and not torch.is_autocast_enabled(x.device.type)

    def _weights(self, name: str, weight: torch.Tensor | None = None, *,
                 fold: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight and bias of layer ``name`` as applied: zero-mean conv1, batch norm folded in."""
        module = getattr(self, name)
        weight = module.weight if weight is None else weight
        if name == "conv1" and self.config.first_conv == "zero-mean":
            weight = weight - weight.mean(dim=(1, 2, 3), keepdim=True)
        if fold:
            return _fold_batch_norm(self.bn[name], weight, module.bias)
        return weight, module.bias

    def layer(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Convolution ``name`` (conv1..conv5), its batch norm (thesis) and leaky ReLU."""
        fold = self._folds_batch_norm(x)
        if name == "conv1":
            x = self.first_conv(x, fold=fold)
        else:
            x = F.conv2d(x, *self._weights(name, fold=fold))  # every convolution here is valid, stride 1
        if self.thesis and not fold:
            x = _batch_norm(self.bn[name], x)
        return self._act(x)

    def dense(self, name: str, x: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden dense layer ``name`` on ``[N, features]``; ``weight`` replaces fc1's as a convolution."""
        fold = self._folds_batch_norm(x)
        w, b = self._weights(name, weight, fold=fold)
        x = F.conv2d(x, w, b) if weight is not None else F.linear(x, w, b)
        if self.thesis and not fold:
            x = _batch_norm(self.bn[name], x)
        return self._act(x)

    def first_conv(self, x: torch.Tensor, *, fold: bool = False) -> torch.Tensor:
        """conv1 (``fold``: with its batch norm); zero-mean: each kernel minus its own mean, so a
        constant added to x cancels.

        Under autocast (bf16, fp16) it is computed in fp32 and only its result is rounded: a
        kernel rounded to bf16 no longer sums to zero, so a gain's offset would leak through, and
        the input's offset leaves bf16's 8 bits little for the detail. With one input channel it
        is a small part of the network's work.
        """
        device_type = x.device.type
        if not torch.is_autocast_enabled(device_type):
            return self._first_conv(x, fold)
        with torch.autocast(device_type, enabled=False):
            return self._first_conv(x.float(), fold).to(torch.get_autocast_dtype(device_type))

    def _first_conv(self, x: torch.Tensor, fold: bool) -> torch.Tensor:
        if self.thesis:
            x = self.input_bn(x)
        return F.conv2d(x, *self._weights("conv1", fold=fold))

    def forward(self, excerpts: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch]`` for excerpts ``[batch, 1, frames, bands]`` (sigmoid gives probability)."""
        p = self.config.pool_size
        x = self.layer("conv2", self.layer("conv1", excerpts))
        x = F.max_pool2d(x, p)
        x = self.layer("conv4", self.layer("conv3", x))
        if self.thesis:
            x = F.max_pool2d(self.layer("conv5", x), (1, THESIS_FREQ_POOL))
        else:
            x = F.max_pool2d(x, p)
        x = self.dropout(x.flatten(1))
        x = self.dropout(self.dense("fc1", x))
        x = self.dropout(self.dense("fc2", x))
        return self.fc3(x).squeeze(1)


# The thesis network's pooling along frequency after its fifth convolution.
THESIS_FREQ_POOL = 4


def _fold_batch_norm(bn: nn.modules.batchnorm._BatchNorm, weight: torch.Tensor,
                     bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``bn(layer(x))`` in evaluation as one layer, saving a pass over each
    layer's output (with in-place activations, the bundled model predicts 1.15-1.4x faster)."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bias is not None:
        shift = shift + bias * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    # An elementwise product keeps the weight's memory layout (channels-last for oneDNN).
    return weight * scale.reshape(-1, *[1] * (weight.dim() - 1)), shift


def _batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """``bn`` on channel dimension 1 of any rank (fc1 runs as a 4-D convolution in fcn_logits)."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                        training=bn.training, momentum=bn.momentum, eps=bn.eps)


class InputBatchNorm(nn.Module):
    """Standardizes each band of ``[B, 1, frames, bands]`` by batch statistics over batch and time
    (running averages in eval mode), without learned scale or shift: the thesis's input layer.

    ``shared_scale``: one deviation for all bands (the mean of the bands' variances), so that an
    offset of the whole input stays uniform for a zero-mean first convolution to cancel.
    """

    def __init__(self, bands: int, *, shared_scale: bool = False, momentum: float = 0.1, eps: float = 1e-4):
        super().__init__()
        self.shared_scale, self.momentum, self.eps = shared_scale, momentum, eps
        self.register_buffer("running_mean", torch.zeros(bands))
        self.register_buffer("running_var", torch.ones(bands))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            flat = x.float().reshape(-1, x.shape[-1])
            mean, var = flat.mean(0), flat.var(0, unbiased=False)
            if self.shared_scale:
                var = var.mean().expand_as(var)
            with torch.no_grad():
                n = flat.shape[0]
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * n / max(n - 1, 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return ((x - mean.to(x.dtype)) * torch.rsqrt(var + self.eps).to(x.dtype)).to(x.dtype)


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
    # channels_last lets oneDNN pick its fastest CPU kernels (about 1.5x here).
    padded = padded.contiguous(memory_format=torch.channels_last)
    x = model.layer("conv2", model.layer("conv1", padded))
    x = F.max_pool2d(x, (p, p), stride=(1, p))         # stride 1 in time
    x, _ = _split_phases(x, p)                          # time dilation p → phases in the batch
    x = model.layer("conv4", model.layer("conv3", x))
    if model.thesis:                                    # pooling along frequency only: no new phases
        x = F.max_pool2d(model.layer("conv5", x), (1, THESIS_FREQ_POOL))
        last_channels = cfg.conv5_channels
    else:
        x = F.max_pool2d(x, (p, p), stride=(1, p))
        x, _ = _split_phases(x, p)                      # dilation p*p → p*p phases
        last_channels = cfg.conv_channels[3]
    # fc1 as a convolution over the pooled [frames x bands] block, then fc2/fc3 as 1x1 maps.
    w1 = model.fc1.weight.reshape(-1, last_channels, model.pooled_frames, model.pooled_bands)
    w1 = w1.contiguous(memory_format=torch.channels_last)
    x = model.dense("fc1", x, w1)                        # [B*phases, d1, n, 1]
    x = model.dense("fc2", x.squeeze(3).transpose(1, 2).flatten(0, 1))   # [B*phases*n, d2]
    x = F.linear(x, model.fc3.weight, model.fc3.bias)
    phases = p ** model.time_pools
    x = x.reshape(batch * phases, -1)                    # [B*phases, n]
    n = x.shape[1]
    # Row (p1, p2) at index m holds output frame p*p*m + p*p2 + p1 (see module docstring);
    # with one time pooling, row p1 at index m holds frame p*m + p1.
    if model.time_pools == 2:
        x = x.reshape(batch, p, p, n).permute(0, 3, 2, 1)
    else:
        x = x.reshape(batch, p, n).permute(0, 2, 1)
    return x.reshape(batch, n * phases)[:, :n_out]


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
