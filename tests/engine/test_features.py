"""engine.features: uncentred STFT, the authors' mel filterbank and log-mel, against numpy references."""

import math

import numpy as np
import pytest
import torch

from engine.config import FeatureConfig
from engine.errors import ConfigError
from engine.features import (
    frame_count,
    hz_to_mel,
    linear_spectrogram,
    linear_to_mel,
    log_compress,
    log_mel_spectrogram,
    mel_filterbank,
    mel_filterbank_tensor,
    mel_to_hz,
    stft_magnitudes,
)
from tests.synth import synth_song

CFG = FeatureConfig()
SR, N_FFT, HOP = 22050, 1024, 315


def _reference_stft(x):
    """numpy reference: symmetric Hann, frames [315 i, 315 i + 1024), |rfft|."""
    window = np.hanning(N_FFT)
    n_frames = (len(x) - N_FFT) // HOP + 1 if len(x) >= N_FFT else 0
    frames = np.stack([x[HOP * i: HOP * i + N_FFT] for i in range(n_frames)])
    return np.abs(np.fft.rfft(frames.astype(np.float64) * window, axis=-1))


def _expected_points_bin():
    """SPEC §1 from scratch: 82 HTK-mel points in [27.5, 8000] Hz, each snapped to the first
    bin k with k * 11025 / 512 >= the point."""
    def mel(f):
        return 1127.0 * math.log(1.0 + f / 700.0)

    lo, hi = mel(27.5), mel(8000.0)
    points_hz = [700.0 * (math.exp((lo + (hi - lo) * j / 81) / 1127.0) - 1.0) for j in range(82)]
    bins = []
    for p in points_hz:
        k = 0
        while k * 11025.0 / 512.0 < p - 1e-9:
            k += 1
        bins.append(k)
    return points_hz, bins


def _reference_filterbank():
    points_hz, bins = _expected_points_bin()
    bank = np.zeros((513, 80))
    for b in range(80):
        l, t, r = bins[b:b + 3]
        for k in range(l, t):
            bank[k, b] = (k * 11025 / 512 - points_hz[b]) / (t - l)
        for k in range(t, r):
            bank[k, b] = (points_hz[b + 2] - k * 11025 / 512) / (r - t)
        bank[:, b] /= bank[:, b].sum()
    return bank[:372]


# --- frame count and STFT --------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 1023, 1024, 1025, 1338, 1339, 1340, 22050, 100_000])
def test_frame_count_formula(n):
    expected = (n - 1024) // 315 + 1 if n >= 1024 else 0
    assert frame_count(n) == expected
    assert stft_magnitudes(torch.zeros(n)).shape == (expected, 513)


def test_frame_count_examples():
    assert frame_count(1023) == 0
    assert frame_count(1024) == 1
    assert frame_count(1024 + 314) == 1
    assert frame_count(1024 + 315) == 2
    assert frame_count(22050) == 67  # floor(21026 / 315) + 1


def test_stft_matches_numpy_reference():
    x = np.random.default_rng(0).standard_normal(1024 + 315 * 40 + 100).astype(np.float32)
    ours = stft_magnitudes(torch.from_numpy(x)).numpy()
    ref = _reference_stft(x)
    assert ours.shape == ref.shape == (41, 513)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_stft_frame_covers_its_own_samples_only():
    # An impulse at sample s shows up exactly in the frames i with 315 i <= s < 315 i + 1024.
    s = 3000
    x = torch.zeros(1024 + 315 * 20)
    x[s] = 1.0
    energy = stft_magnitudes(x).sum(dim=-1).numpy()
    expected = [(HOP * i <= s < HOP * i + N_FFT) for i in range(len(energy))]
    np.testing.assert_array_equal(energy > 1e-6, expected)


def test_stft_window_is_symmetric_hann():
    # A constant signal's DC bin is the window sum: sum(np.hanning(1024)) = 511.5 (symmetric).
    dc = stft_magnitudes(torch.ones(1024))[0, 0].item()
    assert dc == pytest.approx(np.hanning(1024).sum(), rel=1e-5)
    assert dc == pytest.approx(511.5, rel=1e-5)


def test_stft_keeps_linear_magnitudes():
    x = torch.from_numpy(np.random.default_rng(1).standard_normal(5000).astype(np.float32))
    np.testing.assert_allclose(stft_magnitudes(3 * x).numpy(), 3 * stft_magnitudes(x).numpy(),
                               rtol=1e-4, atol=1e-3)


def test_stft_is_batched_over_leading_dims():
    x = torch.from_numpy(np.random.default_rng(2).standard_normal((2, 3, 4000)).astype(np.float32))
    batched = stft_magnitudes(x)
    assert batched.shape == (2, 3, frame_count(4000), 513)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(batched[i, j].numpy(), stft_magnitudes(x[i, j]).numpy(),
                                       rtol=1e-5, atol=1e-5)


def test_stft_too_short_input_gives_zero_frames_with_batch_dims():
    out = stft_magnitudes(torch.zeros(4, 1000))
    assert out.shape == (4, 0, 513)
    assert out.dtype == torch.float32


def test_stft_accepts_numpy_and_float64():
    x = np.random.default_rng(3).standard_normal(3000)
    out = stft_magnitudes(x)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), _reference_stft(x), rtol=1e-4, atol=1e-3)


# --- mel scale and filterbank ------------------------------------------------------------------

def test_hz_to_mel_is_htk_and_inverts():
    assert hz_to_mel(700.0) == pytest.approx(1127.0 * math.log(2.0))
    assert hz_to_mel(0.0) == 0.0
    freqs = np.array([0.0, 27.5, 440.0, 1000.0, 8000.0, 11025.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(freqs)), freqs, rtol=1e-12, atol=1e-9)
    mels = np.linspace(0, 3000, 17)
    np.testing.assert_allclose(hz_to_mel(mel_to_hz(mels)), mels, rtol=1e-12, atol=1e-9)


def test_filterbank_shape_and_normalization():
    bank = mel_filterbank()
    assert bank.shape == (372, 80)
    assert bank.dtype == np.float64
    assert (bank >= 0).all()
    np.testing.assert_allclose(bank.sum(axis=0), 1.0, rtol=1e-12)
    assert ((bank > 0).sum(axis=0) >= 1).all()  # no empty filter
    assert not bank.flags.writeable


def test_filterbank_equals_spec_reference():
    np.testing.assert_allclose(mel_filterbank(), _reference_filterbank(), rtol=1e-10, atol=1e-12)


def test_filterbank_supports_follow_the_snapped_points():
    _, bins = _expected_points_bin()
    assert bins[0] == 2 and bins[-1] == 372  # 27.5 Hz -> bin 2 (43.07 Hz); 8 kHz -> bin 372
    bank = mel_filterbank()
    for b in range(80):
        nonzero = np.flatnonzero(bank[:, b])
        # Non-zero only inside [left, right); the top bin carries weight.
        assert nonzero.min() >= bins[b] and nonzero.max() < bins[b + 2], b
        assert bank[bins[b + 1], b] > 0, b
    first = np.flatnonzero(bank[:, 0])
    np.testing.assert_array_equal(first, [2, 3])
    assert bins[:3] == [2, 3, 4]


def test_lowest_filters_are_narrow_and_peaks_increase():
    bank = mel_filterbank()
    widths = (bank > 0).sum(axis=0)
    assert all(2 <= w <= 3 for w in widths[:5]), widths[:5]
    _, bins = _expected_points_bin()
    assert (np.diff(bins) > 0).all()  # the snapped tops (bins[1:81]) strictly increase
    peaks = bank.argmax(axis=0)
    assert (np.diff(peaks) >= 0).all()  # snapping can make neighbours share their largest bin
    centroids = np.arange(372) @ bank
    assert (np.diff(centroids) > 0).all()
    assert widths[-1] > 10  # the top filters span many bins


def test_filterbank_rejects_too_many_bands():
    with pytest.raises(ConfigError, match="empty"):
        mel_filterbank(FeatureConfig(n_mels=400))


def test_filterbank_tensor():
    t = mel_filterbank_tensor(CFG, "cpu", torch.float64)
    assert t.dtype == torch.float64 and t.shape == (372, 80)
    np.testing.assert_array_equal(t.numpy(), mel_filterbank())


@pytest.mark.parametrize("freq_hz", [300.0, 1000.0, 4000.0])
def test_sine_energy_lands_in_the_nearest_mel_band(freq_hz):
    x = (0.5 * np.sin(2 * np.pi * freq_hz * np.arange(SR) / SR)).astype(np.float32)
    mel = linear_to_mel(stft_magnitudes(torch.from_numpy(x))).numpy().mean(axis=0)
    points_hz, _ = _expected_points_bin()
    centres = np.array(points_hz[1:81])
    assert mel.argmax() == np.argmin(np.abs(centres - freq_hz))


def test_linear_to_mel_ignores_bins_above_8khz():
    mags = torch.zeros(3, 513)
    mags[:, 372:] = 100.0
    np.testing.assert_array_equal(linear_to_mel(mags).numpy(), 0.0)
    mags = torch.rand(2, 5, 513, dtype=torch.float64)
    expected = mags[..., :372].numpy() @ mel_filterbank()
    np.testing.assert_allclose(linear_to_mel(mags).numpy(), expected, rtol=1e-12)


# --- log and log-mel -------------------------------------------------------------------------

def test_log_floor():
    values = torch.tensor([0.0, 1e-9, 1e-7, 1.0, math.e])
    out = log_compress(values).numpy()
    floor = math.log(np.float32(1e-7))
    np.testing.assert_allclose(out, [floor, floor, floor, 0.0, 1.0], rtol=1e-6)


def test_silence_gives_the_log_floor_everywhere():
    out = log_mel_spectrogram(np.zeros(5000, np.float32))
    assert out.shape == (frame_count(5000), 80)
    np.testing.assert_allclose(out.numpy(), math.log(1e-7), rtol=1e-6)


def test_log_mel_matches_numpy_pipeline():
    x = synth_song(1.0, [(0.2, 0.7)], seed=5)
    ref = np.log(np.maximum(_reference_stft(x)[:, :372] @ _reference_filterbank(), 1e-7))
    out = log_mel_spectrogram(x).numpy()
    assert out.shape == ref.shape == (frame_count(len(x)), 80)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, atol=2e-4)


@pytest.mark.parametrize("chunk_frames", [1, 7, 20, 64])
def test_chunked_equals_unchunked(chunk_frames):
    x = synth_song(1.5, [(0.3, 1.0)], seed=7)
    whole = log_mel_spectrogram(x, chunk_frames=100_000)
    chunked = log_mel_spectrogram(x, chunk_frames=chunk_frames)
    assert chunked.shape == whole.shape == (frame_count(len(x)), 80)
    np.testing.assert_allclose(chunked.numpy(), whole.numpy(), atol=1e-5, rtol=0)
    lin_whole = linear_spectrogram(x, chunk_frames=100_000)
    lin_chunked = linear_spectrogram(x, chunk_frames=chunk_frames)
    assert lin_chunked.shape == (frame_count(len(x)), 513)
    np.testing.assert_allclose(lin_chunked.numpy(), lin_whole.numpy(), atol=1e-5, rtol=1e-5)


def test_log_mel_batched_equals_per_item():
    rng = np.random.default_rng(4)
    x = torch.from_numpy(rng.standard_normal((3, 6000)).astype(np.float32))
    batched = log_compress(linear_to_mel(stft_magnitudes(x)))
    assert batched.shape == (3, frame_count(6000), 80)
    for i in range(3):
        np.testing.assert_allclose(batched[i].numpy(), log_mel_spectrogram(x[i].numpy()).numpy(),
                                   atol=1e-5)


def test_log_mel_of_short_input_is_empty():
    assert log_mel_spectrogram(np.zeros(1000, np.float32)).shape == (0, 80)
    assert linear_spectrogram(np.zeros(10, np.float32)).shape == (0, 513)


def test_log_mel_accepts_a_tensor():
    x = synth_song(0.5, [], seed=2)
    np.testing.assert_array_equal(log_mel_spectrogram(torch.from_numpy(x)).numpy(),
                                  log_mel_spectrogram(x).numpy())


def test_log_mel_rejects_multichannel_input_and_bad_chunks():
    with pytest.raises(ValueError, match="mono"):
        log_mel_spectrogram(np.zeros((2, 5000), np.float32))
    with pytest.raises(ValueError, match="chunk_frames"):
        log_mel_spectrogram(np.zeros(5000, np.float32), chunk_frames=0)


def test_other_frame_lengths_and_hops():
    cfg = FeatureConfig(frame_length=512, hop_length=128, n_mels=40)
    x = np.random.default_rng(6).standard_normal(4000).astype(np.float32)
    mags = stft_magnitudes(torch.from_numpy(x), cfg)
    assert mags.shape == ((4000 - 512) // 128 + 1, 257)
    frames = np.stack([x[128 * i: 128 * i + 512] for i in range(mags.shape[0])])
    ref = np.abs(np.fft.rfft(frames * np.hanning(512), axis=-1))
    np.testing.assert_allclose(mags.numpy(), ref, rtol=1e-4, atol=1e-3)
    bank = mel_filterbank(cfg)
    assert bank.shape == (cfg.n_mel_input_bins, 40)
    np.testing.assert_allclose(bank.sum(axis=0), 1.0)
