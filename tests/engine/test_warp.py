"""Tests of frequency scaling (pitch shift with 0 Hz fixed) of linear spectrograms."""

import pytest
import torch

from engine.warp import scale_frequency

N_BINS = 513
N_OUT = 372


def peak(bin_index: int, frames: int = 4) -> torch.Tensor:
    spec = torch.zeros(frames, N_BINS)
    spec[:, bin_index] = 1.0
    return spec


def test_factor_one_is_identity_on_the_kept_bins():
    linear = torch.rand(20, N_BINS, generator=torch.Generator().manual_seed(0))
    scaled = scale_frequency(linear, [1.0], n_out_bins=N_OUT)
    assert scaled.shape == (1, 20, N_OUT)
    assert torch.equal(scaled[0], linear[:, :N_OUT])


def test_factor_two_moves_bin_50_to_bin_100():
    scaled = scale_frequency(peak(50), [2.0], n_out_bins=N_OUT)[0]
    assert torch.all(scaled.argmax(dim=1) == 100)
    assert torch.allclose(scaled[:, 100], torch.ones(4))
    # Bins 99 and 101 read halfway between bin 50 and its neighbours: linear interpolation.
    assert torch.allclose(scaled[:, 99], torch.full((4,), 0.5))
    assert torch.allclose(scaled[:, 101], torch.full((4,), 0.5))
    assert scaled[:, :99].abs().max() == 0 and scaled[:, 102:].abs().max() == 0
    # The source at bin 50 maps onto bins 98..102 only; nothing lands at bin 50 any more.
    assert scaled[:, 50].abs().max() == 0


def test_factor_half_moves_bin_100_to_bin_50():
    scaled = scale_frequency(peak(100), [0.5], n_out_bins=N_OUT)[0]
    assert torch.all(scaled.argmax(dim=1) == 50)
    assert torch.allclose(scaled[:, 50], torch.ones(4))
    assert float(scaled.sum()) == pytest.approx(4.0)  # bins 49 and 51 read source bins 98 and 102


def test_zero_fill_beyond_the_top_bin():
    ones = torch.ones(3, N_BINS)
    scaled = scale_frequency(ones, [0.5], n_out_bins=N_OUT)[0]
    # Output bin k reads source bin 2k: inside up to k = 256 (source 512), zeros above.
    assert torch.equal(scaled[:, :257], torch.ones(3, 257))
    assert torch.equal(scaled[:, 257:], torch.zeros(3, N_OUT - 257))


def test_fractional_factor_interpolates_linearly():
    # A ramp (value = bin index) scaled by f reads k / f at output bin k: exactly linear.
    ramp = torch.arange(N_BINS, dtype=torch.float64).expand(2, -1)
    for factor in (0.8, 0.9, 1.1, 1.2):
        scaled = scale_frequency(ramp, [factor], n_out_bins=N_OUT)[0]
        expected = torch.arange(N_OUT, dtype=torch.float64) / factor
        assert torch.allclose(scaled[0], expected, atol=1e-9), factor


def test_several_factors_on_one_spectrogram():
    linear = peak(60)
    scaled = scale_frequency(linear, [0.5, 1.0, 2.0], n_out_bins=N_OUT)
    assert scaled.shape == (3, 4, N_OUT)
    assert scaled[:, 0].argmax(dim=1).tolist() == [30, 60, 120]


def test_batched_input_applies_factor_i_to_example_i():
    generator = torch.Generator().manual_seed(1)
    batch = torch.rand(3, 10, N_BINS, generator=generator)
    factors = [1.0, 2.0, 0.5]
    scaled = scale_frequency(batch, torch.tensor(factors), n_out_bins=N_OUT)
    assert scaled.shape == (3, 10, N_OUT)
    for i, factor in enumerate(factors):
        alone = scale_frequency(batch[i], [factor], n_out_bins=N_OUT)[0]
        assert torch.equal(scaled[i], alone)
    assert torch.equal(scaled[0], batch[0, :, :N_OUT])
    # Example 1 (factor 2) at output bin 2k holds example 1's source bin k, not example 0's.
    assert torch.allclose(scaled[1, :, 200], batch[1, :, 100])
    assert not torch.allclose(scaled[1, :, 200], batch[0, :, 100])
