"""engine.normalize: per-band mean/std over many spectrograms, silence, applying the statistics."""

import math

import numpy as np
import pytest
import torch

from engine.config import FeatureConfig
from engine.errors import ConfigError
from engine.normalize import Normalization, compute_normalization


def _random_spectrograms(seed=0, n_mels=80):
    rng = np.random.default_rng(seed)
    lengths = [1, 7, 300, 1234, 50]
    return [(rng.standard_normal((n, n_mels)) * rng.uniform(0.5, 3.0, n_mels)
             + rng.uniform(-16, 2, n_mels)).astype(np.float32) for n in lengths]


def test_equals_concatenated_mean_and_std_ddof1():
    specs = _random_spectrograms()
    norm = compute_normalization(specs)
    everything = np.concatenate(specs).astype(np.float64)
    assert norm.mean.dtype == np.float32 and norm.mean.shape == (80,)
    assert norm.std.dtype == np.float32 and norm.std.shape == (80,)
    np.testing.assert_allclose(norm.mean, everything.mean(axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm.std, everything.std(axis=0, ddof=1), rtol=1e-6, atol=1e-6)


def test_accepts_tensors_generators_and_skips_empty_spectrograms():
    specs = _random_spectrograms(seed=1, n_mels=5)
    expected = compute_normalization(specs)
    mixed = (torch.from_numpy(s) if i % 2 else s for i, s in enumerate(specs))
    got = compute_normalization(list(mixed) + [np.zeros((0, 5), np.float32)])
    np.testing.assert_allclose(got.mean, expected.mean, rtol=1e-7)
    np.testing.assert_allclose(got.std, expected.std, rtol=1e-7)


def test_accumulates_in_float64_for_large_offsets():
    # Values around 1e4 with unit spread: a float32 sum of squares would lose the variance.
    rng = np.random.default_rng(2)
    specs = [(1e4 + rng.standard_normal((2000, 3))).astype(np.float32) for _ in range(5)]
    everything = np.concatenate(specs).astype(np.float64)
    norm = compute_normalization(specs)
    np.testing.assert_allclose(norm.std, everything.std(axis=0, ddof=1), rtol=1e-5)


@pytest.mark.parametrize("value", [math.log(1e-7), 0.1, -3.7, 0.0])
def test_constant_band_does_not_divide_by_zero(value):
    rng = np.random.default_rng(3)
    specs = []
    for n in (1000, 37, 5):
        spec = rng.standard_normal((n, 3)).astype(np.float32)
        spec[:, 1] = value  # digital silence in band 1 throughout
        specs.append(spec)
    norm = compute_normalization(specs)
    assert norm.std[1] == 1.0  # not 0 and not the ~1e-15 that rounding leaves
    assert norm.mean[1] == pytest.approx(np.float32(value), abs=1e-6)
    out = norm.apply(torch.from_numpy(np.concatenate(specs)))
    assert torch.isfinite(out).all()
    assert out[:, 1].abs().max().item() < 1e-5


def test_needs_two_frames():
    with pytest.raises(ConfigError):
        compute_normalization([])
    with pytest.raises(ConfigError):
        compute_normalization([np.zeros((1, 80)), np.zeros((0, 80))])
    compute_normalization([np.zeros((1, 4)), np.ones((1, 4))])  # two frames from two files


def test_apply_standardizes_on_the_tensors_dtype():
    norm = Normalization(np.array([1.0, -2.0]), np.array([2.0, 0.5]))
    x = torch.tensor([[[3.0, -2.0], [1.0, -1.0]]], dtype=torch.float64)
    out = norm.apply(x)
    assert out.dtype == torch.float64 and out.shape == x.shape
    np.testing.assert_allclose(out.numpy(), [[[1.0, 0.0], [0.0, 2.0]]])


def test_apply_makes_training_data_zero_mean_unit_std():
    specs = _random_spectrograms(seed=4)
    norm = compute_normalization(specs)
    out = norm.apply(torch.from_numpy(np.concatenate(specs))).double()
    np.testing.assert_allclose(out.mean(dim=0).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(dim=0).numpy(), 1.0, atol=1e-4)


def test_silence():
    norm = Normalization(np.array([-10.0, 0.0]), np.array([2.0, 4.0]))
    floor = math.log(1e-7)
    silence = norm.silence(FeatureConfig())
    assert silence.dtype == np.float32
    np.testing.assert_allclose(silence, [(floor + 10) / 2, floor / 4], rtol=1e-6)
    # The same value the feature pipeline produces for digital silence, standardized.
    from engine.features import log_mel_spectrogram
    log_mel = log_mel_spectrogram(np.zeros(2048, np.float32), FeatureConfig(n_mels=2))
    np.testing.assert_allclose(norm.apply(log_mel).numpy()[0], silence, rtol=1e-6)


def test_identity():
    norm = Normalization.identity(4)
    np.testing.assert_array_equal(norm.mean, 0.0)
    np.testing.assert_array_equal(norm.std, 1.0)
    x = torch.randn(3, 4)
    assert torch.equal(norm.apply(x), x)


def test_casts_and_flattens():
    norm = Normalization([[1, 2, 3]], [1, 1, 2])
    assert norm.mean.dtype == np.float32 and norm.mean.shape == (3,)
    assert norm.std.dtype == np.float32 and norm.std.shape == (3,)


@pytest.mark.parametrize("mean,std", [
    ([0.0, np.nan], [1.0, 1.0]),
    ([0.0, 0.0], [1.0, np.nan]),
    ([np.inf, 0.0], [1.0, 1.0]),
    ([0.0, 0.0], [1.0, np.inf]),
    ([0.0, 0.0], [1.0, 0.0]),
    ([0.0, 0.0], [1.0, -1.0]),
])
def test_rejects_bad_statistics(mean, std):
    with pytest.raises(ConfigError, match="finite"):
        Normalization(np.array(mean), np.array(std))


def test_rejects_shape_mismatch():
    with pytest.raises(ConfigError, match="shapes differ"):
        Normalization(np.zeros(3), np.ones(4))


def test_equality_compares_values():
    a = Normalization(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert a == Normalization(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert a != Normalization(np.array([1.0, 2.5]), np.array([3.0, 4.0]))
    assert a != Normalization(np.array([1.0, 2.0, 0.0]), np.array([3.0, 4.0, 1.0]))
    assert a != "not a normalization"


def test_is_frozen():
    norm = Normalization.identity(2)
    with pytest.raises(AttributeError):
        norm.mean = np.ones(2)
