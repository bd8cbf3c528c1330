"""Frequency scaling of linear spectrograms (pitch shift with 0 Hz fixed), batched in torch."""

from __future__ import annotations

import torch


def scale_frequency(linear: torch.Tensor, factors: torch.Tensor | list[float], *, n_out_bins: int) -> torch.Tensor:
    """Move the content at bin k to bin k * factor, by linear interpolation, zeros past the top.

    Parameters
    ----------
    linear : torch.Tensor [shape=(frames, n_bins)] or [shape=(batch, frames, n_bins)]
        Linear magnitudes. With a batch dimension, example i gets ``factors[i]``.
    factors : [shape=(n_factors,)]
        Factor > 1 shifts pitch up. Without a batch dimension in ``linear`` every factor is
        applied to the same spectrogram.
    n_out_bins : int
        Output bins 0..n_out_bins-1 (the mel filterbank reads only those).

    Returns
    -------
    scaled : torch.Tensor [shape=(n_factors, frames, n_out_bins)]
    """
    factors = torch.as_tensor(factors, dtype=linear.dtype, device=linear.device).reshape(-1)
    n_bins = linear.shape[-1]
    target = torch.arange(n_out_bins, dtype=linear.dtype, device=linear.device)
    source = target[None, :] / factors[:, None]                 # [n_factors, n_out_bins]
    lower = source.floor()
    weight = source - lower
    # Taps beyond the top bin read zero, as grid_sample's zero padding does in training.
    low_inside = (lower <= n_bins - 1).to(linear.dtype)
    high_inside = (lower + 1 <= n_bins - 1).to(linear.dtype)
    lo = lower.clamp(max=n_bins - 1).long()
    hi = (lower + 1).clamp(max=n_bins - 1).long()
    if linear.dim() == 2:
        linear = linear.unsqueeze(0).expand(len(factors), -1, -1)
    frames = linear.shape[1]
    low_values = torch.gather(linear, 2, lo[:, None, :].expand(-1, frames, -1))
    high_values = torch.gather(linear, 2, hi[:, None, :].expand(-1, frames, -1))
    w_low = ((1 - weight) * low_inside)[:, None, :]
    w_high = (weight * high_inside)[:, None, :]
    return w_low * low_values + w_high * high_values
