"""engine.config: SPEC defaults, validation quoting the bad value, dict round trips."""

import dataclasses
import json

import numpy as np
import pytest

from engine.config import (
    EvalConfig,
    FeatureConfig,
    ModelConfig,
    PredictConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
)
from engine.errors import ConfigError, EngineError

ALL_CONFIGS = [FeatureConfig, ModelConfig, TrainConfig, EvalConfig, PredictConfig]


def test_feature_defaults_equal_spec():
    cfg = FeatureConfig()
    assert (cfg.sample_rate, cfg.frame_length, cfg.hop_length) == (22050, 1024, 315)
    assert (cfg.n_mels, cfg.fmin_hz, cfg.fmax_hz, cfg.log_floor) == (80, 27.5, 8000.0, 1e-7)
    assert cfg.frames_per_second == 70.0
    assert cfg.n_bins == 513
    assert cfg.n_mel_input_bins == 372
    assert cfg.bin_hz == pytest.approx(11025 / 512)


def test_model_defaults_equal_spec():
    cfg = ModelConfig()
    assert cfg.excerpt_frames == 115 and cfg.context_frames == 57
    assert cfg.conv_channels == (64, 32, 128, 64)
    assert cfg.dense_units == (256, 64)
    assert (cfg.kernel_size, cfg.pool_size, cfg.dropout, cfg.leak) == (3, 3, 0.5, 0.01)


def test_train_defaults_and_learning_rate_schedule():
    cfg = TrainConfig()
    assert (cfg.updates, cfg.batch_size, cfg.momentum) == (40_000, 32, 0.95)
    assert (cfg.target_low, cfg.target_high) == (0.02, 0.98)
    assert cfg.learning_rate_at(0) == 0.01
    assert cfg.learning_rate_at(1999) == 0.01
    assert cfg.learning_rate_at(2000) == pytest.approx(0.0085, rel=1e-12)
    assert cfg.learning_rate_at(4000) == pytest.approx(0.01 * 0.85 ** 2, rel=1e-12)
    assert cfg.learning_rate_at(39_999) == pytest.approx(0.01 * 0.85 ** 19, rel=1e-12)


def test_eval_defaults_threshold_grid():
    cfg = EvalConfig()
    assert cfg.median_frames == 56
    grid = cfg.thresholds
    assert len(grid) == 105
    assert grid[0] == 1e-5 and grid[1] == 1e-4 and grid[2] == 1e-3
    assert grid[3] == 0.01 and grid[101] == 0.99
    assert grid[-3] == 1 - 1e-3 and grid[-2] == 1 - 1e-4 and grid[-1] == 1 - 1e-5
    assert all(a < b for a, b in zip(grid, grid[1:]))
    assert 0.5 in grid  # exact hundredths, not 0.5000000001


def test_predict_defaults():
    cfg = PredictConfig()
    assert cfg.tta_pitch_factors == (0.8, 0.9, 1.0, 1.1, 1.2)
    assert cfg.chunk_frames >= 1
    assert cfg.pitch_factors(True) == cfg.tta_pitch_factors and cfg.pitch_factors(False) == (1.0,)


@pytest.mark.parametrize("cls", ALL_CONFIGS)
def test_frozen_and_hashable(cls):
    cfg = cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.__setattr__(dataclasses.fields(cls)[0].name, 1)
    assert hash(cfg) == hash(cls())
    assert cfg == cls()


@pytest.mark.parametrize("cls,kwargs,quoted", [
    (FeatureConfig, {"sample_rate": -5}, "-5"),
    (FeatureConfig, {"frame_length": 1023}, "1023"),
    (FeatureConfig, {"hop_length": 0}, "0"),
    (FeatureConfig, {"hop_length": 2048}, "2048"),
    (FeatureConfig, {"n_mels": 0}, "0"),
    (FeatureConfig, {"fmax_hz": 12000.0}, "12000.0"),
    (FeatureConfig, {"fmin_hz": 9000.0}, "9000.0"),
    (FeatureConfig, {"fmin_hz": float("nan")}, "nan"),
    (FeatureConfig, {"log_floor": 0.0}, "0.0"),
    (ModelConfig, {"excerpt_frames": 114}, "114"),
    (ModelConfig, {"excerpt_frames": -1}, "-1"),
    (ModelConfig, {"conv_channels": (64, 32, 0, 64)}, "(64, 32, 0, 64)"),
    (ModelConfig, {"conv_channels": (64, 32)}, "(64, 32)"),
    (ModelConfig, {"dense_units": (256,)}, "(256,)"),
    (ModelConfig, {"dropout": 1.0}, "1.0"),
    (ModelConfig, {"leak": -0.1}, "-0.1"),
    (ModelConfig, {"kernel_size": 0}, "0"),
    (ModelConfig, {"pool_size": -3}, "-3"),
    (TrainConfig, {"updates": 0}, "0"),
    (TrainConfig, {"batch_size": -32}, "-32"),
    (TrainConfig, {"learning_rate": float("nan")}, "nan"),
    (TrainConfig, {"lr_decay": 1.5}, "1.5"),
    (TrainConfig, {"lr_decay_every": 0}, "0"),
    (TrainConfig, {"momentum": 1.0}, "1.0"),
    (TrainConfig, {"target_low": 0.9, "target_high": 0.1}, "0.9"),
    (TrainConfig, {"validate_every": -1}, "-1"),
    (EvalConfig, {"median_frames": 0}, "0"),
    (EvalConfig, {"thresholds": (0.5, 1.5)}, "1.5"),
    (EvalConfig, {"thresholds": ()}, "()"),
    (EvalConfig, {"collar_s": -0.5}, "-0.5"),
    (PredictConfig, {"chunk_frames": 0}, "0"),
    (PredictConfig, {"tta_pitch_factors": (1.0, -0.9)}, "-0.9"),
])
def test_bad_values_raise_config_error_quoting_them(cls, kwargs, quoted):
    with pytest.raises(ConfigError) as info:
        cls(**kwargs)
    assert quoted in str(info.value)
    assert isinstance(info.value, EngineError) and isinstance(info.value, ValueError)


def test_fields_are_normalized():
    cfg = ModelConfig(conv_channels=[8, 4, 16, 8], dense_units=[32, 8])
    assert cfg.conv_channels == (8, 4, 16, 8) and cfg.dense_units == (32, 8)
    assert EvalConfig(thresholds=[0, 1]).thresholds == (0.0, 1.0)
    assert PredictConfig(tta_pitch_factors=[1]).tta_pitch_factors == (1.0,)


@pytest.mark.parametrize("cls", ALL_CONFIGS)
def test_dict_round_trip_through_json(cls):
    cfg = cls()
    as_dict = config_to_dict(cfg)
    assert set(as_dict) == {f.name for f in dataclasses.fields(cls)}
    assert not any(isinstance(v, tuple) for v in as_dict.values())
    assert config_from_dict(cls, json.loads(json.dumps(as_dict))) == cfg


def test_round_trip_of_non_default_values():
    cfg = TrainConfig(updates=123, learning_rate=0.5, seed=7)
    assert config_from_dict(TrainConfig, config_to_dict(cfg)) == cfg
    cfg = ModelConfig(excerpt_frames=31, conv_channels=(2, 3, 4, 5), dense_units=(6, 7))
    assert config_from_dict(ModelConfig, json.loads(json.dumps(config_to_dict(cfg)))) == cfg


def test_from_dict_partial_uses_defaults():
    assert config_from_dict(FeatureConfig, {"n_mels": 40}) == FeatureConfig(n_mels=40)
    assert config_from_dict(EvalConfig, {}) == EvalConfig()


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown FeatureConfig field.*n_fft.*window"):
        config_from_dict(FeatureConfig, {"n_mels": 80, "window": "hann", "n_fft": 1024})


def test_from_dict_rejects_non_mappings():
    with pytest.raises(ConfigError, match="mapping"):
        config_from_dict(TrainConfig, [("updates", 5)])


@pytest.mark.parametrize("cls,values,quoted", [
    (FeatureConfig, {"sample_rate": "22050"}, "'22050'"),
    (FeatureConfig, {"fmin_hz": True}, "True"),
    (TrainConfig, {"updates": None}, "None"),
    (TrainConfig, {"updates": 2.5}, "2.5"),
    (EvalConfig, {"thresholds": 0.5}, "0.5"),
    (ModelConfig, {"conv_channels": ["a", 1, 2, 3]}, "'a'"),
])
def test_from_dict_rejects_wrong_types_with_config_error(cls, values, quoted):
    with pytest.raises(ConfigError) as info:
        config_from_dict(cls, values)
    assert quoted in str(info.value)


def test_from_dict_accepts_ints_for_floats_and_numpy_scalars():
    assert config_from_dict(TrainConfig, {"learning_rate": 1}).learning_rate == 1
    assert config_from_dict(TrainConfig, {"updates": np.int64(10)}).updates == 10
    assert config_from_dict(FeatureConfig, {"fmax_hz": np.float64(7000.0)}).fmax_hz == 7000.0


def test_from_dict_validates_values():
    with pytest.raises(ConfigError, match="-1"):
        config_from_dict(TrainConfig, {"batch_size": -1})
