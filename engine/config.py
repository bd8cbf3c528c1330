"""Frozen configuration dataclasses: every constant of SPEC.md lives here exactly once.

Each config validates itself on construction (ConfigError quoting the bad value) and converts
to and from plain dicts, so the model file can carry all of them as JSON.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, TypeVar

from engine.augment_specs import AUGMENT_SPECS
from engine.errors import ConfigError

C = TypeVar("C")


# Numeric precision of the network (engine/precision.py resolves "auto" per device).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# Network and training variants (README "Network and training variants"); the first of each is
# the paper's, and what a model file without the field means.
ARCHITECTURES = ("paper", "thesis")
INPUT_NORMS = ("fixed", "instance", "pcen")
FIRST_CONVS = ("plain", "zero-mean")
OPTIMIZERS = ("sgd-nesterov", "adam")
# Adam's own learning rate (Schlüter's thesis: 0.001 x 0.85 every 2000 updates, 40000 updates).
ADAM_LEARNING_RATE = 0.001


def _require_choice(what: str, value: object, choices: tuple[str, ...]) -> None:
    _require(value in choices, f"unknown {what} {value!r} (known: {', '.join(choices)})")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class FeatureConfig:
    """Audio decoding, STFT and mel filterbank (SPEC §1)."""

    sample_rate: int = 22050
    frame_length: int = 1024
    hop_length: int = 315
    n_mels: int = 80
    fmin_hz: float = 27.5
    fmax_hz: float = 8000.0
    log_floor: float = 1e-7

    def __post_init__(self) -> None:
        _require(self.sample_rate > 0, f"sample_rate must be positive, got {self.sample_rate}")
        _require(self.frame_length > 0 and self.frame_length % 2 == 0,
                 f"frame_length must be a positive even number, got {self.frame_length}")
        _require(0 < self.hop_length <= self.frame_length,
                 f"hop_length must be in (0, frame_length], got {self.hop_length}")
        _require(self.n_mels > 0, f"n_mels must be positive, got {self.n_mels}")
        _require(0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate / 2,
                 f"need 0 <= fmin_hz < fmax_hz <= sample_rate/2, got {self.fmin_hz}, {self.fmax_hz}")
        _require(self.log_floor > 0, f"log_floor must be positive, got {self.log_floor}")

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def n_bins(self) -> int:
        """Number of linear STFT bins kept (all of them: pitch shifting down reads high bins)."""
        return self.frame_length // 2 + 1

    @property
    def n_mel_input_bins(self) -> int:
        """Bins 0..k with centre frequency <= fmax_hz enter the filterbank (372 by default)."""
        return int(math.floor(self.fmax_hz * self.frame_length / self.sample_rate)) + 1

    @property
    def bin_hz(self) -> float:
        return self.sample_rate / self.frame_length


# The default frame rate (70 fps), for signatures that take frames_per_second without a FeatureConfig.
FRAMES_PER_SECOND = FeatureConfig().frames_per_second


@dataclass(frozen=True)
class ModelConfig:
    """The CNN of SPEC §3. Smaller widths are allowed for quick experiments and tests."""

    excerpt_frames: int = 115
    conv_channels: tuple[int, int, int, int] = (64, 32, 128, 64)
    kernel_size: int = 3
    pool_size: int = 3
    dense_units: tuple[int, int] = (256, 64)
    dropout: float = 0.5
    leak: float = 0.01
    architecture: str = "paper"     # paper | thesis (batch norm, a fifth convolution; engine/model.py)
    conv5_channels: int = 128       # the thesis network's fifth convolution
    input_norm: str = "fixed"       # fixed | instance | pcen (engine/frontend.py)
    first_conv: str = "plain"       # plain | zero-mean (each first-layer kernel sums to zero)

    def __post_init__(self) -> None:
        _require_choice("architecture", self.architecture, ARCHITECTURES)
        _require_choice("input normalization", self.input_norm, INPUT_NORMS)
        _require_choice("first convolution", self.first_conv, FIRST_CONVS)
        _require(isinstance(self.conv5_channels, int) and self.conv5_channels > 0,
                 f"conv5_channels must be a positive int, got {self.conv5_channels}")
        object.__setattr__(self, "conv_channels", tuple(int(c) for c in self.conv_channels))
        object.__setattr__(self, "dense_units", tuple(int(u) for u in self.dense_units))
        _require(len(self.conv_channels) == 4 and min(self.conv_channels) > 0,
                 f"conv_channels must be four positive ints, got {self.conv_channels}")
        _require(len(self.dense_units) == 2 and min(self.dense_units) > 0,
                 f"dense_units must be two positive ints, got {self.dense_units}")
        _require(self.excerpt_frames > 0 and self.excerpt_frames % 2 == 1,
                 f"excerpt_frames must be a positive odd number, got {self.excerpt_frames}")
        _require(self.kernel_size > 0, f"kernel_size must be positive, got {self.kernel_size}")
        _require(self.pool_size > 0, f"pool_size must be positive, got {self.pool_size}")
        _require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        _require(self.leak >= 0, f"leak must be >= 0, got {self.leak}")

    @property
    def context_frames(self) -> int:
        """Frames on each side of the central frame (57 by default)."""
        return self.excerpt_frames // 2

    def describe_recipe(self) -> str:
        """'paper network, fixed input normalization, plain first convolution'."""
        return (f"{self.architecture} network, {self.input_norm} input normalization, "
                f"{self.first_conv} first convolution")


@dataclass(frozen=True)
class TrainConfig:
    """Training protocol of SPEC §4; the paper's settings are the defaults."""

    updates: int = 40_000
    batch_size: int = 32
    learning_rate: float = 0.01
    lr_decay: float = 0.85
    lr_decay_every: int = 2000
    momentum: float = 0.95
    target_low: float = 0.02
    target_high: float = 0.98
    validate_every: int = 2000
    checkpoint_every: int = 500
    seed: int = 0
    precision: str = "auto"
    optimizer: str = "sgd-nesterov"  # sgd-nesterov (momentum 0.95) | adam (use ADAM_LEARNING_RATE)

    def __post_init__(self) -> None:
        _require_choice("optimizer", self.optimizer, OPTIMIZERS)
        _require(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        _require(self.updates > 0, f"updates must be positive, got {self.updates}")
        _require(self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}")
        _require(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        _require(0 < self.lr_decay <= 1, f"lr_decay must be in (0, 1], got {self.lr_decay}")
        _require(self.lr_decay_every > 0, f"lr_decay_every must be positive, got {self.lr_decay_every}")
        _require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        _require(0 <= self.target_low < self.target_high <= 1,
                 f"need 0 <= target_low < target_high <= 1, got {self.target_low}, {self.target_high}")
        _require(self.validate_every >= 0, f"validate_every must be >= 0, got {self.validate_every}")
        _require(self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every}")

    def learning_rate_at(self, update: int) -> float:
        """Learning rate for a 0-based update index: 0.01 * 0.85^(update // 2000)."""
        return self.learning_rate * self.lr_decay ** (update // self.lr_decay_every)


def _default_thresholds() -> tuple[float, ...]:
    hundredths = tuple(round(k / 100, 2) for k in range(1, 100))
    return (1e-5, 1e-4, 1e-3) + hundredths + (1 - 1e-3, 1 - 1e-4, 1 - 1e-5)


@dataclass(frozen=True)
class EvalConfig:
    """Smoothing, threshold search and scoring (SPEC §7)."""

    median_frames: int = 56
    thresholds: tuple[float, ...] = field(default_factory=_default_thresholds)
    collar_s: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        _require(self.median_frames >= 1, f"median_frames must be >= 1, got {self.median_frames}")
        _require(len(self.thresholds) > 0 and all(0 <= t <= 1 for t in self.thresholds),
                 f"thresholds must be a non-empty list of values in [0, 1], got {self.thresholds}")
        _require(self.collar_s >= 0, f"collar_s must be >= 0, got {self.collar_s}")


@dataclass(frozen=True)
class PredictConfig:
    """Whole-file prediction (SPEC §6)."""

    chunk_frames: int = 2048
    tta_pitch_factors: tuple[float, ...] = (0.8, 0.9, 1.0, 1.1, 1.2)
    precision: str = "auto"

    def __post_init__(self) -> None:
        _require(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        object.__setattr__(self, "tta_pitch_factors", tuple(float(f) for f in self.tta_pitch_factors))
        _require(self.chunk_frames >= 1, f"chunk_frames must be >= 1, got {self.chunk_frames}")
        _require(len(self.tta_pitch_factors) > 0 and all(f > 0 for f in self.tta_pitch_factors),
                 f"tta_pitch_factors must be positive, got {self.tta_pitch_factors}")

    def pitch_factors(self, tta: bool) -> tuple[float, ...]:
        """The pitch factors a prediction averages over: the TTA set, or the plain input alone."""
        return self.tta_pitch_factors if tta else (1.0,)


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each of the seven augmentations (SPEC §5) and of stem remixing; zero switches one off.

    Strengths: ``max_pitch`` and ``max_stretch`` are fractions (0.3 = factors in [0.7, 1.3]),
    ``max_loudness_db`` and ``max_filter_db`` are decibels, ``mix_probability`` and
    ``dropout_probability`` are probabilities, ``noise_sigma`` is a standard deviation in
    standardized log-mel units.
    """

    max_pitch: float = 0.0
    max_stretch: float = 0.0
    max_loudness_db: float = 0.0
    max_filter_db: float = 0.0
    mix_probability: float = 0.0
    dropout_probability: float = 0.0
    noise_sigma: float = 0.0
    filter_min_hz: float = 150.0
    filter_max_hz: float = 8000.0
    filter_min_semitones: float = 5.0
    filter_max_semitones: float = 7.0
    mix_max_fraction: float = 0.5
    # Stem remixing (engine.remix): vocals over another song's accompaniment at a vocal-to-accompaniment
    # energy ratio uniform in [min, max] dB and an overall gain uniform in ±remix_max_gain_db.
    remix_probability: float = 0.0
    remix_min_ratio_db: float = -12.0
    remix_max_ratio_db: float = 6.0
    remix_max_gain_db: float = 6.0

    # Short names of the command line (`--augment pitch=0.3,filter=10`) → fields.
    SHORT_NAMES = {spec.short: spec.field for spec in AUGMENT_SPECS}

    def __post_init__(self) -> None:
        for spec in AUGMENT_SPECS:
            problem = spec.check(getattr(self, spec.field))
            _require(problem is None, problem or "")
        _require(0 < self.filter_min_hz < self.filter_max_hz,
                 f"need 0 < filter_min_hz < filter_max_hz, got {self.filter_min_hz}, {self.filter_max_hz}")
        _require(0 < self.filter_min_semitones <= self.filter_max_semitones,
                 f"need 0 < filter_min_semitones <= filter_max_semitones, got "
                 f"{self.filter_min_semitones}, {self.filter_max_semitones}")
        _require(0 <= self.mix_max_fraction <= 1, f"mix_max_fraction must be in [0, 1], got {self.mix_max_fraction}")
        _require(-60 <= self.remix_min_ratio_db <= self.remix_max_ratio_db <= 60,
                 f"need -60 <= remix_min_ratio_db <= remix_max_ratio_db <= 60 dB, got "
                 f"{self.remix_min_ratio_db}, {self.remix_max_ratio_db}")
        _require(0 <= self.remix_max_gain_db <= 60, f"remix_max_gain_db must be in [0, 60] dB, got {self.remix_max_gain_db}")

    @classmethod
    def paper(cls) -> "AugmentConfig":
        """The paper's best combination: pitch ±30 %, stretch ±30 %, filter ±10 dB."""
        return cls(max_pitch=0.3, max_stretch=0.3, max_filter_db=10.0)

    @classmethod
    def parse(cls, text: str) -> "AugmentConfig":
        """'paper', 'none', or 'pitch=0.3,stretch=0.3,filter=10' (short names or field names)."""
        text = text.strip()
        if text.lower() == "paper":
            return cls.paper()
        if text.lower() in ("", "none", "off"):
            return cls()
        values: dict[str, float] = {}
        for item in text.split(","):
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            field_name = cls.SHORT_NAMES.get(key, key)
            if not sep or field_name not in {f.name for f in dataclasses.fields(cls)}:
                raise ConfigError(f"bad augmentation {item.strip()!r}: use name=value with a name among "
                                  f"{', '.join(cls.SHORT_NAMES)} (or 'paper')")
            try:
                values[field_name] = float(value)
            except ValueError:
                raise ConfigError(f"bad augmentation {item.strip()!r}: {value.strip()!r} is not a number") from None
        return cls(**values)

    @property
    def enabled(self) -> bool:
        return any(getattr(self, spec.field) for spec in AUGMENT_SPECS)

    def source_frames(self, excerpt_frames: int) -> int:
        """Frames of linear spectrogram the warp may read, an odd count centred on the label frame.

        2 * ceil(57 / (1 - max_stretch)) + 1: 165 for ±30 %, which is SPEC §5's
        ceil(115 / 0.7) = ceil(164.3) (the "164" printed there drops the fraction).
        """
        context = excerpt_frames // 2
        return 2 * int(math.ceil(context / (1.0 - self.max_stretch) - 1e-9)) + 1

    def describe(self) -> str:
        """'pitch ±30 %, stretch ±30 %, filter ±10 dB' or 'none'."""
        parts = [spec.describe(getattr(self, spec.field)) for spec in AUGMENT_SPECS if getattr(self, spec.field)]
        return ", ".join(parts) or "none"


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def config_from_dict(cls: type[C], values: dict[str, Any]) -> C:
    """Build a config from a dict, rejecting unknown keys with a clear ConfigError."""
    if not isinstance(values, dict):
        raise ConfigError(f"{cls.__name__} must be a mapping, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    for f in dataclasses.fields(cls):
        if f.name in values:
            _check_type(cls, f, values[f.name])
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:  # wrong types: "abc" > 0, int("abc"), int(None)
        raise ConfigError(f"bad {cls.__name__}: {exc}") from exc


def _check_type(cls: type, f: dataclasses.Field, value: Any) -> None:
    """Reject values of the wrong kind (from a hand-edited file) with a message quoting them."""
    if f.default is not dataclasses.MISSING:
        default = f.default
    elif f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        return
    is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = is_number and isinstance(value, numbers.Integral), "a whole number"
    elif isinstance(default, float):
        ok, kind = is_number, "a number"
    elif isinstance(default, tuple):
        ok, kind = isinstance(value, (list, tuple)), "a list"
    else:
        ok, kind = True, ""
    if not ok:
        raise ConfigError(f"{cls.__name__}.{f.name} must be {kind}, got {value!r}")
