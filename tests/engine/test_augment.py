"""The seven augmentations (SPEC §5) as pure batched functions; warp against scipy; test-time augmentation."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from engine.augment import (
    AugmentDraw,
    apply_gain_db,
    apply_mix,
    augment_excerpts,
    crop_centre,
    describe_draw,
    draw_augmentations,
    filter_response_db,
    warp,
)
from engine.checkpoint import VoiceModel
from engine.config import AugmentConfig, FeatureConfig, ModelConfig, PredictConfig
from engine.features import (
    frame_count,
    linear_spectrogram,
    linear_to_mel,
    log_compress,
    log_mel_spectrogram,
    mel_filterbank,
)
from engine.normalize import Normalization, compute_normalization
from engine.predict import predict_samples
from engine.warp import scale_frequency
from tests.synth import synth_song

FEATURES = FeatureConfig()
N_BINS = FEATURES.n_bins              # 513
OUT_BINS = FEATURES.n_mel_input_bins  # 372
FRAMES = 115
N_MELS = FEATURES.n_mels
IDENTITY = Normalization.identity(N_MELS)
ALL_ON = AugmentConfig(max_pitch=0.3, max_stretch=0.3, max_loudness_db=6.0, max_filter_db=10.0,
                       mix_probability=0.5, dropout_probability=0.1, noise_sigma=0.2)
SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))


def gen(seed):
    return torch.Generator().manual_seed(seed)


def make_draw(batch=1, *, pitch=1.0, stretch=1.0, loudness=0.0, filter_db=0.0, centre_hz=1000.0, width=6.0,
              mix=0.0, partner=-1, dropout=None, noise=None, frames=FRAMES, n_mels=N_MELS):
    """A hand-built draw with chosen values (the range 'collapsed' to one value)."""
    def full(value, dtype=torch.float32):
        return torch.as_tensor(value, dtype=dtype).expand(batch).clone()
    return AugmentDraw(
        pitch_factor=full(pitch), stretch_factor=full(stretch), loudness_db=full(loudness),
        filter_db=full(filter_db), filter_centre_hz=full(centre_hz), filter_width_semitones=full(width),
        mix_fraction=full(mix), mix_partner=full(partner, torch.int64),
        dropout_mask=torch.zeros(batch, frames, n_mels, dtype=torch.bool) if dropout is None else dropout,
        noise=torch.zeros(batch, frames, n_mels) if noise is None else noise)


def plain_features(linear, normalization=IDENTITY):
    """crop (already cropped) + mel + log + standardize: what augmentation must reduce to."""
    return normalization.apply(log_compress(linear_to_mel(linear[..., :OUT_BINS], FEATURES), FEATURES))


def random_linear(batch, frames, seed=0, dtype=torch.float32, low=0.0):
    return (low + torch.rand(batch, frames, N_BINS, generator=gen(seed), dtype=torch.float64)).to(dtype)


@pytest.fixture(scope="module")
def normalization():
    g = gen(7)
    return Normalization(mean=-3 + torch.randn(N_MELS, generator=g).numpy(),
                         std=0.5 + torch.rand(N_MELS, generator=g).numpy())


# --- identity at zero strength ---------------------------------------------------------------------

def test_zero_strength_is_exactly_crop_mel_log_standardize(normalization):
    linear = random_linear(4, FRAMES, seed=1)
    config = AugmentConfig()
    assert not config.enabled and config.source_frames(FRAMES) == FRAMES
    draw = draw_augmentations(config, 4, generator=gen(3))
    out = augment_excerpts(linear, draw, config=config, features=FEATURES, normalization=normalization)
    assert torch.equal(out, plain_features(linear, normalization))
    # drawn values collapse to the neutral ones
    assert torch.equal(draw.pitch_factor, torch.ones(4)) and torch.equal(draw.stretch_factor, torch.ones(4))
    assert not draw.loudness_db.any() and not draw.filter_db.any() and not draw.mix_fraction.any()
    assert (draw.mix_partner == -1).all() and not draw.dropout_mask.any() and not draw.noise.any()


def test_zero_strength_with_a_longer_source_keeps_the_central_rows_exactly(normalization):
    linear = random_linear(2, 165, seed=2)
    out = augment_excerpts(linear, make_draw(2), config=AugmentConfig(), features=FEATURES,
                           normalization=normalization)
    assert torch.equal(out, plain_features(linear[:, 25:140], normalization))
    assert torch.equal(crop_centre(linear, out_frames=FRAMES, out_bins=OUT_BINS), linear[:, 25:140, :OUT_BINS])


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_warp_at_factor_one_is_the_centre_crop(dtype, atol):
    linear = random_linear(2, 165, seed=3, dtype=dtype)
    warped = warp(linear, torch.ones(2), torch.ones(2), out_frames=FRAMES, out_bins=OUT_BINS)
    assert warped.dtype == dtype
    torch.testing.assert_close(warped, crop_centre(linear, out_frames=FRAMES, out_bins=OUT_BINS),
                               atol=atol, rtol=0)


@pytest.mark.parametrize("name", list(AugmentConfig.SHORT_NAMES))
def test_each_augmentation_switched_on_but_at_its_neutral_value_changes_nothing(name, normalization):
    strengths = {"pitch": 0.3, "stretch": 0.3, "loudness": 6, "filter": 10, "mix": 1.0, "dropout": 0.2, "noise": 0.2,
                 "remix": 1.0}  # remix: applied by engine.remix before augment_excerpts, a no-op here
    config = AugmentConfig(**{AugmentConfig.SHORT_NAMES[name]: strengths[name]})
    source = config.source_frames(FRAMES)
    linear = random_linear(3, source, seed=4, low=0.01)
    partners = random_linear(3, FRAMES, seed=5)
    draw = make_draw(3, partner=0 if name == "mix" else -1)  # mix fraction 0 with a partner
    out = augment_excerpts(linear, draw, config=config, features=FEATURES, normalization=normalization,
                           partners=partners)
    expected = plain_features(crop_centre(linear, out_frames=FRAMES, out_bins=N_BINS), normalization)
    # the warp interpolates at float32 grid coordinates: factor 1 is the crop up to rounding
    atol = 5e-4 if name in ("pitch", "stretch") else 1e-5
    torch.testing.assert_close(out, expected, atol=atol, rtol=1e-5)


# --- exact effects with the range collapsed ----------------------------------------------------------

@pytest.mark.parametrize("factor", [0.7, 0.83, 1.0, 1.17, 1.3])
def test_pitch_moves_a_sinusoid_peak_from_bin_k_to_round_k_times_factor_with_0_hz_fixed(factor):
    k = 101
    linear = torch.zeros(1, FRAMES, N_BINS)
    linear[:, :, k] = 1.0
    linear[:, :, 0] = 0.5  # 0 Hz content stays at 0 Hz
    warped = warp(linear, torch.tensor([factor]), torch.ones(1), out_frames=FRAMES, out_bins=OUT_BINS)[0]
    assert warped.shape == (FRAMES, OUT_BINS)
    assert torch.all(warped[:, 1:].argmax(dim=1) + 1 == round(k * factor))
    torch.testing.assert_close(warped[:, 0], torch.full((FRAMES,), 0.5))
    # bilinear: the peak bin holds 1 - |j / factor - k|, the same in every frame
    j = round(k * factor)
    expected_peak = 1 - abs(j / factor - k)
    torch.testing.assert_close(warped[:, j], torch.full((FRAMES,), expected_peak), atol=1e-4, rtol=0)


@pytest.mark.parametrize("factor", [0.7, 0.8, 1.0, 1.2, 1.3])
def test_stretch_keeps_the_centre_frame_and_scales_a_click_train_spacing(factor):
    source = AugmentConfig(max_stretch=0.3).source_frames(FRAMES)
    assert source == 165
    centre = source // 2
    linear = torch.zeros(1, source, N_BINS)
    clicks = [t for t in range(source) if (t - centre) % 10 == 0]
    linear[:, clicks, :] = 1.0
    warped = warp(linear, torch.ones(1), torch.tensor([factor]), out_frames=FRAMES, out_bins=OUT_BINS)[0]
    rows = warped.mean(dim=1)
    assert rows[FRAMES // 2] == pytest.approx(1.0, abs=1e-5)  # the labelled frame stays where it was
    bright = [int(t) for t in torch.nonzero(rows > 0.999).flatten()]
    spacing = round(10 * factor)
    expected = [t for t in range(FRAMES) if (t - FRAMES // 2) % spacing == 0]
    assert bright == expected
    assert set(np.diff(bright)) == {spacing}


@pytest.mark.parametrize("gain_db", [-6.0, -1.5, 2.5, 6.0])
def test_loudness_adds_exactly_g_ln10_over_20_to_the_log_mel(gain_db):
    config = AugmentConfig(max_loudness_db=6.0)
    linear = random_linear(2, FRAMES, seed=6, low=0.5)  # far above the 1e-7 floor
    base = augment_excerpts(linear, make_draw(2), config=config, features=FEATURES, normalization=IDENTITY)
    out = augment_excerpts(linear, make_draw(2, loudness=gain_db), config=config, features=FEATURES,
                           normalization=IDENTITY)
    torch.testing.assert_close(out - base, torch.full_like(base, gain_db * math.log(10) / 20), atol=2e-6, rtol=0)


@pytest.mark.parametrize("gain_db,width", [(7.5, 6.0), (-10.0, 5.0), (3.0, 7.0)])
def test_filter_response_is_the_gaussian_bell_with_its_peak_at_the_centre_bin(gain_db, width):
    freqs = torch.arange(OUT_BINS, dtype=torch.float64) * FEATURES.bin_hz
    centre_bin = 100
    mu = centre_bin * FEATURES.bin_hz
    draw = make_draw(1, filter_db=gain_db, centre_hz=mu, width=width)
    response = filter_response_db(draw, freqs)[0]
    assert response.shape == (OUT_BINS,)
    extreme = response.argmax() if gain_db > 0 else response.argmin()
    assert int(extreme) == centre_bin
    assert float(response[centre_bin]) == pytest.approx(gain_db, rel=1e-6)
    sigma_hz = mu * (2 ** (width / 12) - 1)
    f = freqs.numpy()
    expected = gain_db * np.exp(-0.5 * ((f - mu) / sigma_hz) ** 2)
    np.testing.assert_allclose(response.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_the_filter_is_applied_as_an_amplitude_factor_on_the_linear_bins():
    config = AugmentConfig(max_filter_db=10.0)
    level = 0.3
    linear = torch.full((1, FRAMES, N_BINS), level)
    draw = make_draw(1, filter_db=-8.0, centre_hz=2000.0, width=5.5)
    out = augment_excerpts(linear, draw, config=config, features=FEATURES, normalization=IDENTITY)[0]
    freqs = np.arange(OUT_BINS) * FEATURES.bin_hz
    sigma_hz = 2000.0 * (2 ** (5.5 / 12) - 1)
    gains = 10 ** (-8.0 * np.exp(-0.5 * ((freqs - 2000.0) / sigma_hz) ** 2) / 20)
    expected = np.log(mel_filterbank(FEATURES).T.astype(np.float64) @ (level * gains))  # [n_mels]
    np.testing.assert_allclose(out.numpy(), np.broadcast_to(expected, (FRAMES, N_MELS)), atol=1e-5)
    # apply_gain_db with a per-bin gain multiplies every frame the same way
    scaled = apply_gain_db(torch.ones(2, 3, 4), torch.tensor([[0.0, 20.0, -20.0, 6.0]] * 2))
    torch.testing.assert_close(scaled[1, 2], torch.tensor([1.0, 10.0, 0.1, 10 ** 0.3]))


def test_mixing_with_fraction_zero_is_identity_and_one_half_is_the_average(normalization):
    a, b = random_linear(2, FRAMES, seed=8), random_linear(2, FRAMES, seed=9)
    assert torch.equal(apply_mix(a, b, torch.zeros(2)), a)
    torch.testing.assert_close(apply_mix(a, b, torch.full((2,), 0.5)), (a + b) / 2)
    config = AugmentConfig(mix_probability=1.0)
    out = augment_excerpts(a, make_draw(2, mix=0.5, partner=0), config=config, features=FEATURES,
                           normalization=normalization, partners=b)
    torch.testing.assert_close(out, plain_features((a + b) / 2, normalization))
    # f = 0.25 on example 0 only; example 1 is not mixed
    draw = make_draw(2, partner=0)
    draw = AugmentDraw(**{**draw.__dict__, "mix_fraction": torch.tensor([0.25, 0.0]),
                          "mix_partner": torch.tensor([3, -1])})
    out = augment_excerpts(a, draw, config=config, features=FEATURES, normalization=normalization, partners=b)
    torch.testing.assert_close(out[0], plain_features(0.75 * a[0] + 0.25 * b[0], normalization))
    torch.testing.assert_close(out[1], plain_features(a[1], normalization))


def test_mixing_without_partners_leaves_the_excerpt_alone(normalization):
    a = random_linear(2, FRAMES, seed=10)
    config = AugmentConfig(mix_probability=1.0)
    draw = draw_augmentations(config, 2, generator=gen(0), n_partners=0)
    assert (draw.mix_partner == -1).all() and not draw.mix_fraction.any()
    out = augment_excerpts(a, draw, config=config, features=FEATURES, normalization=normalization)
    assert torch.equal(out, plain_features(a, normalization))


def test_dropout_zeroes_the_expected_fraction_and_nothing_else(normalization):
    config = AugmentConfig(dropout_probability=0.3)
    linear = random_linear(32, FRAMES, seed=11, low=0.01)
    draw = draw_augmentations(config, 32, generator=gen(12))
    assert draw.dropout_mask.shape == (32, FRAMES, N_MELS) and draw.dropout_mask.dtype == torch.bool
    out = augment_excerpts(linear, draw, config=config, features=FEATURES, normalization=normalization)
    base = plain_features(linear, normalization)
    zeroed = float((out == 0).float().mean())
    assert abs(zeroed - 0.3) < 0.01
    assert torch.equal(out == 0, draw.dropout_mask)
    assert torch.equal(out[~draw.dropout_mask], base[~draw.dropout_mask])


def test_noise_has_the_drawn_sigma_and_is_added_after_standardization(normalization):
    config = AugmentConfig(noise_sigma=0.2)
    linear = random_linear(32, FRAMES, seed=13, low=0.01)
    draw = draw_augmentations(config, 32, generator=gen(14))
    assert float(draw.noise.std()) == pytest.approx(0.2, rel=0.01)
    assert abs(float(draw.noise.mean())) < 0.005
    out = augment_excerpts(linear, draw, config=config, features=FEATURES, normalization=normalization)
    torch.testing.assert_close(out - plain_features(linear, normalization), draw.noise, atol=1e-5, rtol=0)
    assert describe_draw(draw, config) == "noise σ=0.2"


# --- draws: reproducible, per example, in range, independent ----------------------------------------

def test_same_seed_same_draw_and_output_different_seed_different(normalization):
    linear = random_linear(4, ALL_ON.source_frames(FRAMES), seed=15, low=0.01)
    partners = random_linear(4, FRAMES, seed=16)

    def run(seed):
        draw = draw_augmentations(ALL_ON, 4, generator=gen(seed), n_partners=10)
        return draw, augment_excerpts(linear, draw, config=ALL_ON, features=FEATURES,
                                      normalization=normalization, partners=partners)
    (d1, out1), (d2, out2), (d3, out3) = run(5), run(5), run(6)
    for name in d1.__dataclass_fields__:
        first, second = getattr(d1, name), getattr(d2, name)
        assert (first is None and second is None) or torch.equal(first, second), name  # None: remix not drawn
    assert torch.equal(out1, out2)
    assert not torch.equal(d1.pitch_factor, d3.pitch_factor)
    assert (out1 - out3).abs().max() > 0.1


def test_each_example_of_a_batch_gets_its_own_values():
    draw = draw_augmentations(ALL_ON, 8, generator=gen(0), n_partners=1000)
    for name in ("pitch_factor", "stretch_factor", "loudness_db", "filter_db", "filter_centre_hz",
                 "filter_width_semitones"):
        assert len(set(getattr(draw, name).tolist())) == 8, name
    assert not torch.equal(draw.dropout_mask[0], draw.dropout_mask[1])
    assert not torch.equal(draw.noise[0], draw.noise[1])
    assert len(draw) == 8 and len(draw.select(3)) == 1
    assert float(draw.select(3).pitch_factor) == float(draw.pitch_factor[3])


def test_drawn_values_lie_in_their_configured_ranges():
    n = 4000
    draw = draw_augmentations(ALL_ON, n, generator=gen(1), n_partners=17)
    ranges = {"pitch_factor": (0.7, 1.3), "stretch_factor": (0.7, 1.3), "loudness_db": (-6, 6),
              "filter_db": (-10, 10), "filter_centre_hz": (150, 8000), "filter_width_semitones": (5, 7)}
    for name, (low, high) in ranges.items():
        values = getattr(draw, name)
        assert values.dtype == torch.float32
        assert float(values.min()) >= low - 1e-4 and float(values.max()) <= high + 1e-3, name
        span = high - low  # spread over the whole range, not a corner of it
        assert float(values.min()) < low + 0.02 * span and float(values.max()) > high - 0.02 * span, name
        if name != "filter_centre_hz":
            assert float(values.mean()) == pytest.approx((low + high) / 2, abs=0.03 * span), name
    # centre log-uniform: the median of the log-centres is the log-midpoint, quartiles at 1/4 and 3/4
    logs = draw.filter_centre_hz.double().log()
    lo, hi = math.log(150), math.log(8000)
    quartiles = torch.quantile(logs, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    np.testing.assert_allclose(quartiles.numpy(), [lo + (hi - lo) * q for q in (0.25, 0.5, 0.75)], atol=0.1)
    # mixing: probability 0.5, fraction uniform in [0, 0.5], partner index in the pool
    mixed = draw.mix_partner >= 0
    assert float(mixed.float().mean()) == pytest.approx(0.5, abs=0.03)
    assert int(draw.mix_partner[mixed].max()) == 16 and int(draw.mix_partner[mixed].min()) == 0
    assert not draw.mix_fraction[~mixed].any()
    assert 0 <= float(draw.mix_fraction[mixed].min()) and float(draw.mix_fraction[mixed].max()) <= 0.5
    assert float(draw.mix_fraction[mixed].mean()) == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize("switched_off", list(AugmentConfig.SHORT_NAMES))
def test_switching_one_augmentation_off_keeps_the_others_draws(switched_off):
    field = AugmentConfig.SHORT_NAMES[switched_off]
    all_on = AugmentConfig(**{**ALL_ON.__dict__, "remix_probability": 0.5})
    reduced = AugmentConfig(**{**all_on.__dict__, field: 0.0})
    full = draw_augmentations(all_on, 16, generator=gen(9), n_partners=50)
    part = draw_augmentations(reduced, 16, generator=gen(9), n_partners=50)
    affected = {"pitch": {"pitch_factor"}, "stretch": {"stretch_factor"}, "loudness": {"loudness_db"},
                "filter": {"filter_db"}, "mix": {"mix_fraction", "mix_partner"}, "dropout": {"dropout_mask"},
                "noise": {"noise"},
                # remixing off draws nothing (seeds keep their pre-remix batches): its values are all neutral
                "remix": {"remixed", "remix_ratio_db", "remix_gain_db", "remix_song_u", "remix_frame_u"}}[switched_off]
    for name in full.__dataclass_fields__:
        same = torch.equal(getattr(full, name), getattr(part, name))
        assert same != (name in affected), name
    neutral = {"pitch_factor": 1.0, "stretch_factor": 1.0, "loudness_db": 0.0, "filter_db": 0.0,
               "mix_fraction": 0.0, "mix_partner": -1, "dropout_mask": False, "noise": 0.0, "remixed": False,
               "remix_ratio_db": 0.0, "remix_gain_db": 0.0, "remix_song_u": 0.0, "remix_frame_u": 0.0}
    for name in affected:
        assert (getattr(part, name) == neutral[name]).all(), name


def test_shapes_and_dtypes_are_preserved(normalization):
    source = ALL_ON.source_frames(FRAMES)
    for dtype in (torch.float32, torch.float64):
        linear = random_linear(3, source, seed=17, dtype=dtype, low=0.01)
        draw = draw_augmentations(ALL_ON, 3, generator=gen(2), n_partners=4)
        warped = warp(linear, draw.pitch_factor, draw.stretch_factor, out_frames=FRAMES, out_bins=OUT_BINS)
        assert warped.shape == (3, FRAMES, OUT_BINS) and warped.dtype == dtype
        out = augment_excerpts(linear, draw, config=ALL_ON, features=FEATURES, normalization=normalization,
                               partners=random_linear(3, FRAMES, seed=18, dtype=dtype))
        assert out.shape == (3, FRAMES, N_MELS) and out.dtype == dtype
        assert torch.isfinite(out).all()


def test_warp_equals_scipy_bilinear_interpolation_with_zeros_outside_on_float64():
    n_src, out_frames = 121, FRAMES  # stretch < 1 reads beyond the source rows: zeros there
    linear = random_linear(5, n_src, seed=19, dtype=torch.float64)
    pitch = torch.tensor([0.7, 0.72, 1.0, 1.13, 1.3], dtype=torch.float64)
    stretch = torch.tensor([0.7, 1.3, 0.95, 1.0, 1.17], dtype=torch.float64)
    warped = warp(linear, pitch, stretch, out_frames=out_frames, out_bins=OUT_BINS)
    assert warped.dtype == torch.float64
    t_out, k_out = np.meshgrid(np.arange(out_frames, dtype=np.float64), np.arange(OUT_BINS, dtype=np.float64),
                               indexing="ij")
    for b in range(5):
        s, p = float(stretch[b]), float(pitch[b])
        source_time = (n_src - 1) / 2 + (t_out - (out_frames - 1) / 2) / s
        source_bin = k_out / p
        reference = ndimage.map_coordinates(linear[b].numpy(), [source_time, source_bin], order=1,
                                            mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(warped[b].numpy(), reference, atol=1e-9, rtol=0, err_msg=f"example {b}")
    # the reference really exercised the zero fill at the edges
    assert float(warped[0, 0].abs().max()) < float(linear[0].abs().max())


def test_warp_float32_stays_close_to_float64():
    linear = random_linear(2, 165, seed=20, dtype=torch.float64)
    pitch, stretch = torch.tensor([0.77, 1.21]), torch.tensor([1.24, 0.73])
    a = warp(linear, pitch, stretch, out_frames=FRAMES, out_bins=OUT_BINS)
    b = warp(linear.float(), pitch, stretch, out_frames=FRAMES, out_bins=OUT_BINS)
    assert b.dtype == torch.float32
    torch.testing.assert_close(b.double(), a, atol=2e-4, rtol=0)


def test_describe_draw_names_the_values_in_users_words():
    draw = make_draw(1, pitch=1.234, stretch=0.81, loudness=-3.25, filter_db=4.5, centre_hz=1234.0, width=6.1,
                     mix=0.3, partner=2)
    text = describe_draw(draw, ALL_ON, partner_name="b.wav")
    for part in ("pitch ×1.23", "stretch ×0.81", "loudness -3.2 dB", "filter +4.5 dB at 1234 Hz, width 6.1 st",
                 "mix f=0.30 with b.wav", "dropout 0.0 % zeroed", "noise σ=0.2"):
        assert part in text, (part, text)
    assert describe_draw(draw, AugmentConfig()) == "no augmentation"
    assert describe_draw(make_draw(1), AugmentConfig(mix_probability=0.5)) == "no mix"


# --- test-time augmentation (SPEC §6) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def tta_model_and_song():
    samples = synth_song(3.0, [(0.8, 2.2)], seed=3)
    normalization = compute_normalization([log_mel_spectrogram(samples, FEATURES)])
    model = VoiceModel.create(model_config=SMALL, normalization=normalization, seed=1)
    return model, samples


def test_tta_with_factor_one_is_plain_prediction(tta_model_and_song):
    model, samples = tta_model_and_song
    plain = predict_samples(model, samples)
    np.testing.assert_array_equal(predict_samples(model, samples, pitch_factors=(1.0,)), plain)
    assert plain.shape == (frame_count(len(samples), FEATURES),)


def test_tta_is_the_mean_of_the_single_factor_predictions(tta_model_and_song):
    model, samples = tta_model_and_song
    factors = PredictConfig().tta_pitch_factors
    assert factors == (0.8, 0.9, 1.0, 1.1, 1.2)
    singles = [predict_samples(model, samples, pitch_factors=(f,), chunk_frames=100) for f in factors]
    # the shifts change the prediction (so the mean below is not trivially equal)
    assert max(np.abs(s - singles[2]).max() for s in singles) > 1e-4
    tta = predict_samples(model, samples, pitch_factors=factors, chunk_frames=100)
    np.testing.assert_allclose(tta, np.mean(singles, axis=0), atol=1e-6, rtol=0)
    np.testing.assert_allclose(predict_samples(model, samples, pitch_factors=factors), tta, atol=1e-6)


@pytest.mark.parametrize("factor", [0.8, 0.9, 1.0, 1.1, 1.2, 0.77, 1.3])
def test_tta_frequency_scaling_agrees_with_the_training_warp_at_stretch_one(factor):
    linear64 = linear_spectrogram(synth_song(2.0, [(0.5, 1.5)], seed=4), FEATURES).double()
    frames = linear64.shape[0]
    for linear, atol in ((linear64, 1e-9), (linear64.float(), 1e-5)):
        tta = scale_frequency(linear, [factor], n_out_bins=OUT_BINS)
        trained = warp(linear[None], torch.tensor([factor], dtype=torch.float64), torch.ones(1),
                       out_frames=frames, out_bins=OUT_BINS)
        assert tta.shape == trained.shape == (1, frames, OUT_BINS)
        scale = float(linear.abs().max())
        torch.testing.assert_close(trained / scale, tta / scale, atol=atol, rtol=0)


def test_a_draw_without_remixing_consumes_the_generator_as_before_remixing_existed():
    # Seeded trainings without remix must give the batches (and models) they gave before it was added:
    # the draw then consumes exactly the seven augmentations' random numbers, in their order.
    batch, frames, n_mels = 4, ModelConfig.excerpt_frames, FeatureConfig.n_mels
    drawn, replayed = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    draw_augmentations(AugmentConfig.paper(), batch, generator=drawn, n_partners=3)
    for _ in range(6):
        torch.rand(batch, generator=replayed, dtype=torch.float64)
    torch.rand(batch, generator=replayed)
    torch.rand(batch, generator=replayed, dtype=torch.float64)
    torch.randint(3, (batch,), generator=replayed)
    torch.rand(batch, frames, n_mels, generator=replayed)
    torch.randn(batch, frames, n_mels, generator=replayed)
    assert torch.equal(drawn.get_state(), replayed.get_state())
    with_remix = torch.Generator().manual_seed(5)
    draw_augmentations(AugmentConfig(max_pitch=0.3, remix_probability=0.5), batch, generator=with_remix, n_partners=3)
    assert not torch.equal(with_remix.get_state(), replayed.get_state())
