"""The augmentation preview: one excerpt through exactly the training code for a seed."""

import numpy as np
import pytest
import torch

from engine.augment import augment_excerpts, draw_augmentations
from engine.config import AugmentConfig, FeatureConfig
from engine.features import linear_spectrogram, linear_to_mel, log_compress
from engine.normalize import compute_normalization
from engine.preview import cut_excerpt, preview_excerpt
from tests.synth import synth_song

FEATURES = FeatureConfig()
FRAMES = 115
PAPER = AugmentConfig.paper()
EVERYTHING = AugmentConfig(max_pitch=0.3, max_stretch=0.3, max_loudness_db=6.0, max_filter_db=10.0,
                           mix_probability=1.0, dropout_probability=0.1, noise_sigma=0.2)


@pytest.fixture(scope="module")
def song():
    """A 6 s synthesized song: its linear spectrogram and the normalization of its log-mel."""
    linear = linear_spectrogram(synth_song(6.0, [(1.0, 3.0)], seed=5), FEATURES).numpy()
    log_mel = log_compress(linear_to_mel(torch.from_numpy(linear), FEATURES), FEATURES)
    return linear, compute_normalization([log_mel])


def preview(song, centre, config=PAPER, seed=0, **kwargs):
    linear, normalization = song
    return preview_excerpt(linear, centre, config=config, seed=seed, features=FEATURES,
                           normalization=normalization, **kwargs)


def standardized(linear, normalization):
    return normalization.apply(log_compress(linear_to_mel(torch.as_tensor(linear), FEATURES), FEATURES)).numpy()


def test_same_seed_same_pixels_different_seed_different(song):
    a, b, c = preview(song, 200, seed=4), preview(song, 200, seed=4), preview(song, 200, seed=5)
    assert a.augmented.shape == a.original.shape == (FRAMES, FEATURES.n_mels)
    assert a.augmented.dtype == np.float32
    np.testing.assert_array_equal(a.augmented, b.augmented)
    assert a.description == b.description
    assert np.abs(a.augmented - c.augmented).max() > 0.1
    assert a.description != c.description
    np.testing.assert_array_equal(a.original, c.original)  # the original does not depend on the seed


def test_zero_strength_gives_the_original(song):
    result = preview(song, 200, config=AugmentConfig(), seed=3)
    np.testing.assert_array_equal(result.augmented, result.original)
    assert result.description == "no augmentation"
    linear, normalization = song
    np.testing.assert_allclose(result.original, standardized(linear[143:258], normalization), atol=1e-5)


@pytest.mark.parametrize("config", [PAPER, AugmentConfig(max_loudness_db=6.0, dropout_probability=0.2, noise_sigma=0.1)])
def test_the_preview_is_what_the_training_code_returns_for_that_seed(song, config):
    linear, normalization = song
    seed, centre = 11, 250
    result = preview(song, centre, config=config, seed=seed)
    draw = draw_augmentations(config, 1, generator=torch.Generator().manual_seed(seed), frames=FRAMES,
                              n_mels=FEATURES.n_mels)
    source = cut_excerpt(linear, centre, config.source_frames(FRAMES))[None]
    expected = augment_excerpts(source, draw, config=config, features=FEATURES, normalization=normalization)
    np.testing.assert_array_equal(result.augmented, expected[0].numpy())
    for name in draw.__dataclass_fields__:
        assert torch.equal(getattr(result.draw, name), getattr(draw, name)), name
    assert result.centre_frame == centre and result.partner_frame is None


@pytest.mark.parametrize("where", ["first", "last"])
def test_excerpts_at_the_file_edges_are_zero_padded(song, where):
    linear, normalization = song
    centre = 0 if where == "first" else len(linear) - 1
    result = preview(song, centre, config=EVERYTHING, seed=2)
    assert np.isfinite(result.augmented).all()
    silence = normalization.silence(FEATURES)
    outside = result.original[:57] if where == "first" else result.original[58:]
    np.testing.assert_allclose(outside, np.broadcast_to(silence, outside.shape), atol=1e-5)
    inside = linear[:58] if where == "first" else linear[-58:]
    kept = result.original[57:] if where == "first" else result.original[:58]
    np.testing.assert_allclose(kept, standardized(inside, normalization), atol=1e-5)


def test_a_centre_outside_the_spectrogram_is_refused(song):
    linear, _ = song
    for centre in (-1, len(linear)):
        with pytest.raises(ValueError, match="outside the spectrogram"):
            preview(song, centre)


def test_the_description_names_the_drawn_values(song):
    result = preview(song, 200, config=PAPER, seed=7)
    draw = result.draw
    text = result.description
    for needle in ("pitch ×", "stretch ×", "filter", "dB", "Hz", "width", "st"):
        assert needle in text, (needle, text)
    assert f"pitch ×{float(draw.pitch_factor[0]):.2f}" in text
    assert f"stretch ×{float(draw.stretch_factor[0]):.2f}" in text
    assert f"filter {float(draw.filter_db[0]):+.1f} dB at {float(draw.filter_centre_hz[0]):.0f} Hz" in text


def test_mixing_in_the_preview_uses_a_partner_from_the_candidates(song):
    linear, normalization = song
    partner_linear = linear_spectrogram(synth_song(4.0, [], seed=6), FEATURES).numpy()
    candidates = np.arange(10, 200, 7)
    config = AugmentConfig(mix_probability=1.0)
    result = preview(song, 150, config=config, seed=1, partner_linear=partner_linear,
                     partner_centres=candidates, partner_name="partner.wav")
    assert result.partner_frame in set(candidates.tolist())
    assert int(result.draw.mix_partner[0]) >= 0
    assert result.partner_frame == candidates[int(result.draw.mix_partner[0])]
    fraction = float(result.draw.mix_fraction[0])
    assert 0 <= fraction <= 0.5
    a = cut_excerpt(linear, 150, FRAMES)
    b = cut_excerpt(partner_linear, result.partner_frame, FRAMES)
    np.testing.assert_allclose(result.augmented, standardized((1 - fraction) * a + fraction * b, normalization),
                               atol=1e-5)
    expected_name = f"partner.wav @ {result.partner_frame / FEATURES.frames_per_second:.1f} s"
    assert f"mix f={fraction:.2f} with {expected_name}" in result.description
    # without candidates mixing has no partner and leaves the excerpt alone
    alone = preview(song, 150, config=config, seed=1)
    np.testing.assert_array_equal(alone.augmented, alone.original)
    assert alone.partner_frame is None and "no mix" in alone.description


def test_cut_excerpt_pads_with_zeros_and_accepts_arrays_and_tensors():
    linear = np.arange(20 * 3, dtype=np.float64).reshape(20, 3)
    out = cut_excerpt(linear, 1, 7)
    assert out.shape == (7, 3) and out.dtype == torch.float32
    assert torch.equal(out[:2], torch.zeros(2, 3))
    assert torch.equal(out[2:], torch.from_numpy(linear[:5]).float())
    end = cut_excerpt(torch.from_numpy(linear), 19, 7)
    assert torch.equal(end[:4], torch.from_numpy(linear[16:]).float()) and torch.equal(end[4:], torch.zeros(3, 3))
    assert torch.equal(cut_excerpt(linear, 10, 5), torch.from_numpy(linear[8:13]).float())
    assert torch.equal(cut_excerpt(linear[:2], 30, 5), torch.zeros(5, 3))  # entirely outside: all zeros
