"""AugmentConfig: validation with quoted values, the paper preset, parsing, source frames, round trip."""

import json
import math

import pytest

from engine.config import AugmentConfig, config_from_dict, config_to_dict
from engine.errors import ConfigError, EngineError


def test_defaults_switch_every_augmentation_off():
    config = AugmentConfig()
    assert not config.enabled
    assert config.describe() == "none"
    assert (config.filter_min_hz, config.filter_max_hz) == (150.0, 8000.0)
    assert (config.filter_min_semitones, config.filter_max_semitones) == (5.0, 7.0)
    assert config.mix_max_fraction == 0.5


@pytest.mark.parametrize("kwargs,message", [
    ({"max_stretch": 1.2}, "max_stretch must be in [0, 1), got 1.2"),
    ({"max_stretch": 1.0}, "max_stretch must be in [0, 1), got 1.0"),
    ({"max_pitch": -0.1}, "max_pitch must be in [0, 1), got -0.1"),
    ({"max_pitch": math.nan}, "max_pitch must be in [0, 1), got nan"),
    ({"dropout_probability": 1.5}, "dropout_probability must be in [0, 1), got 1.5"),
    ({"mix_probability": 1.01}, "mix_probability must be in [0, 1], got 1.01"),
    ({"max_loudness_db": -3}, "max_loudness_db must be in [0, 120], got -3"),
    ({"max_filter_db": math.inf}, "max_filter_db must be in [0, 120], got inf"),
    ({"noise_sigma": 500.0}, "noise_sigma must be in [0, 120], got 500.0"),
    ({"filter_min_hz": 9000.0}, "need 0 < filter_min_hz < filter_max_hz, got 9000.0, 8000.0"),
    ({"filter_min_semitones": 8.0}, "need 0 < filter_min_semitones <= filter_max_semitones, got 8.0, 7.0"),
    ({"mix_max_fraction": 2.0}, "mix_max_fraction must be in [0, 1], got 2.0"),
])
def test_bad_values_raise_config_errors_quoting_them(kwargs, message):
    with pytest.raises(ConfigError) as info:
        AugmentConfig(**kwargs)
    assert str(info.value) == message
    assert isinstance(info.value, EngineError) and isinstance(info.value, ValueError)


def test_limits_themselves_are_allowed():
    config = AugmentConfig(max_pitch=0.0, max_stretch=0.99, mix_probability=1.0, max_filter_db=120.0,
                           filter_min_semitones=6.0, filter_max_semitones=6.0, mix_max_fraction=1.0)
    assert config.enabled


def test_paper_preset_is_pitch_stretch_30_percent_and_filter_10_db():
    paper = AugmentConfig.paper()
    assert (paper.max_pitch, paper.max_stretch, paper.max_filter_db) == (0.3, 0.3, 10.0)
    assert (paper.max_loudness_db, paper.mix_probability, paper.dropout_probability, paper.noise_sigma) == (0, 0, 0, 0)
    for text in ("paper", "PAPER", "  Paper "):
        assert AugmentConfig.parse(text) == paper
    assert paper.describe() == "pitch ±30 %, stretch ±30 %, filter ±10 dB"


def test_parse_maps_the_short_names():
    config = AugmentConfig.parse("pitch=0.3,stretch=0.3,filter=10,loudness=6,mix=0.5,dropout=0.1,noise=0.2")
    assert config == AugmentConfig(max_pitch=0.3, max_stretch=0.3, max_filter_db=10.0, max_loudness_db=6.0,
                                   mix_probability=0.5, dropout_probability=0.1, noise_sigma=0.2)
    assert config.describe() == ("pitch ±30 %, stretch ±30 %, loudness ±6 dB, filter ±10 dB, mix p=0.5, "
                                 "dropout p=0.1, noise σ=0.2")
    assert set(AugmentConfig.SHORT_NAMES) == {"pitch", "stretch", "loudness", "filter", "mix", "dropout", "noise", "remix"}


def test_parse_accepts_field_names_spaces_and_the_off_words():
    assert AugmentConfig.parse(" Pitch = 0.2 , filter_min_hz=200") == AugmentConfig(max_pitch=0.2, filter_min_hz=200.0)
    assert AugmentConfig.parse("max_filter_db=3") == AugmentConfig(max_filter_db=3.0)
    for text in ("", "none", "off", "None"):
        assert AugmentConfig.parse(text) == AugmentConfig()


@pytest.mark.parametrize("text,needles", [
    ("bogus=1", ["'bogus=1'", "pitch, stretch, loudness, filter, mix, dropout, noise", "paper"]),
    ("pitch", ["'pitch'", "name=value"]),
    ("pitch=abc", ["'pitch=abc'", "'abc' is not a number"]),
    ("pitch=0.3,,filter=10", ["''"]),
    ("pitch=0.3,", ["''"]),
    ("pitch=1.5", ["max_pitch must be in [0, 1), got 1.5"]),
    ("stretch=1.2", ["max_stretch must be in [0, 1), got 1.2"]),
    ("mix=-1", ["mix_probability must be in [0, 1], got -1.0"]),
    ("SHORT_NAMES=1", ["'SHORT_NAMES=1'"]),
])
def test_parse_rejects_bad_items_with_a_clear_config_error(text, needles):
    with pytest.raises(ConfigError) as info:
        AugmentConfig.parse(text)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


@pytest.mark.parametrize("max_stretch,frames", [(0.0, 115), (0.3, 165), (0.1, 129), (0.5, 229), (0.2, 145)])
def test_source_frames_are_odd_and_cover_the_largest_stretch(max_stretch, frames):
    config = AugmentConfig(max_stretch=max_stretch)
    assert config.source_frames(115) == frames
    assert frames % 2 == 1
    # the slowest stretch (factor 1 - s) reads the outermost rows: they must lie inside the source
    reach = 57 / (1 - max_stretch)
    assert frames // 2 >= reach - 1e-9 and frames // 2 < reach + 1
    assert AugmentConfig(max_pitch=0.3).source_frames(115) == 115  # pitch alone needs no extra time
    assert AugmentConfig(max_stretch=0.3).source_frames(11) == 2 * math.ceil(5 / 0.7) + 1


def test_round_trip_through_dicts_and_json():
    for config in (AugmentConfig(), AugmentConfig.paper(),
                   AugmentConfig.parse("pitch=0.25,loudness=3,mix=0.5,dropout=0.1,noise=0.2,filter_max_hz=6000")):
        values = json.loads(json.dumps(config_to_dict(config)))
        assert config_from_dict(AugmentConfig, values) == config
    assert config_from_dict(AugmentConfig, {}) == AugmentConfig()
    assert config_from_dict(AugmentConfig, {"max_filter_db": 10}) == AugmentConfig(max_filter_db=10.0)


@pytest.mark.parametrize("values,needle", [
    ({"max_pitch": "0.3"}, "AugmentConfig.max_pitch must be a number, got '0.3'"),
    ({"max_pitch": True}, "AugmentConfig.max_pitch must be a number, got True"),
    ({"max_wobble": 1.0}, "unknown AugmentConfig field(s): max_wobble"),
    ({"max_stretch": 1.2}, "max_stretch must be in [0, 1), got 1.2"),
])
def test_config_from_dict_rejects_bad_values(values, needle):
    with pytest.raises(ConfigError, match=None) as info:
        config_from_dict(AugmentConfig, values)
    assert needle in str(info.value)


def test_describe_lists_only_the_enabled_augmentations():
    assert AugmentConfig(max_pitch=0.1).describe() == "pitch ±10 %"
    assert AugmentConfig(mix_probability=1.0, noise_sigma=0.05).describe() == "mix p=1, noise σ=0.05"
    assert AugmentConfig(max_loudness_db=2.5, dropout_probability=0.2).describe() == "loudness ±2.5 dB, dropout p=0.2"
    for name in AugmentConfig.SHORT_NAMES.values():
        assert AugmentConfig(**{name: 0.5}).enabled, name


def test_the_spec_table_names_every_strength_field_once_and_bounds_it():
    from engine.augment_specs import AUGMENT_SPECS
    strength_fields = {"max_pitch", "max_stretch", "max_loudness_db", "max_filter_db", "mix_probability",
                       "dropout_probability", "noise_sigma", "remix_probability"}
    assert [s.field for s in AUGMENT_SPECS] == list(AugmentConfig.SHORT_NAMES.values())
    assert set(AugmentConfig.SHORT_NAMES.values()) == strength_fields
    for spec in AUGMENT_SPECS:
        assert spec.check(spec.gui_maximum / spec.scale) is None  # the slider's end is allowed
        if spec.upper_open:
            with pytest.raises(ConfigError, match=rf"{spec.field} must be in \[0, 1\)"):
                AugmentConfig(**{spec.field: spec.upper})
        with pytest.raises(ConfigError, match=spec.field):
            AugmentConfig(**{spec.field: float("nan")})
