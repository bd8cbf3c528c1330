"""A study plan (TOML): data and split, variants, repetitions, training settings; and its runs.

A plan file looks like this (every key but ``data.path`` has a default)::

    name = "pitch study"
    repetitions = 5            # trainings per variant; repetition r uses seed + r - 1
    seed = 0
    tta = true                 # also evaluate every model with test-time augmentation
    grid_tta = true            # ... the [grid] variants too (a [[variant]] may say tta = false)
    threshold = "validation"   # figure reported: at the validation threshold, or "oracle"
    gains = [-18, -12, -6, 0, 6]  # also score every model's test files at these input gains (dB)

    [data]
    kind = "folder"            # "folder" (seeded train/valid/test), "jamendo" (official split), "kfold"
    path = "songs"             # relative to the plan file
    valid_fraction = 0.15
    test_fraction = 0.15
    split_seed = 0
    group = ' \\(accompaniment\\)$'   # regex cut from file names: files with the same rest stay together

    [train]                    # engine.config.TrainConfig fields (the paper's by default)
    updates = 2000

    [[variant]]                # baseline ("none") first unless listed
    name = "paper's combination"
    augment = "paper"

    [[variant]]                # network and training variants (README), alone or with an augmentation
    name = "zero-mean first convolution"
    first_conv = "zero-mean"   # also: architecture, input_norm, optimizer, learning_rate, precision

    [grid]                     # one variant per augmentation and strength
    pitch = [0.1, 0.2, 0.3]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import AugmentConfig, ModelConfig, TrainConfig, config_from_dict, config_to_dict
from engine.errors import ConfigError
from engine.optim import default_learning_rate

DATA_KINDS = ("folder", "jamendo", "kfold")
THRESHOLD_RULES = ("validation", "oracle")
BASELINE_KEY = "none"
PLAN_KEYS = {"name", "description", "repetitions", "seed", "tta", "grid_tta", "threshold", "gains", "data", "train",
             "model", "variant", "grid"}
MAX_GAIN_DB = 60.0  # beyond this a gain is a typo, not a recording level
DATA_KEYS = {"kind", "path", "extra_train", "valid_fraction", "test_fraction", "split_seed", "group", "folds",
             "fold_lists"}
# A variant's recipe: ModelConfig fields, then TrainConfig fields (engine.config; README "Network and
# training variants"); learning_rate defaults to the optimizer's own (0.001 for adam).
RECIPE_MODEL_KEYS = ("architecture", "input_norm", "first_conv")
RECIPE_TRAIN_KEYS = ("optimizer", "learning_rate", "precision")
VARIANT_KEYS = {"name", "key", "augment", "tta", *RECIPE_MODEL_KEYS, *RECIPE_TRAIN_KEYS}


@dataclass(frozen=True)
class DataSpec:
    """Where the audio is and how it is split into training, validation and test files."""

    kind: str
    path: Path
    extra_train: tuple[Path, ...] = ()
    valid_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int = 0
    group: str = ""  # regex removed from a file name to get its group
    folds: int = 5
    fold_lists: tuple[Path, ...] = ()  # kfold: one file of track names per fold (the paper's RWC split)

    @property
    def n_folds(self) -> int:
        if self.kind != "kfold":
            return 1
        return len(self.fold_lists) or self.folds


@dataclass(frozen=True)
class Variant:
    """One training configuration of the study."""

    key: str
    name: str
    augment: str  # an --augment spec: "none", "paper", "pitch=0.3,filter=10"
    tta: bool = True
    recipe: tuple[tuple[str, Any], ...] = ()  # (field, value) of RECIPE_MODEL_KEYS / RECIPE_TRAIN_KEYS set

    @property
    def augment_config(self) -> AugmentConfig:
        return AugmentConfig.parse(self.augment)

    @property
    def is_baseline(self) -> bool:
        return not self.augment_config.enabled and not self.recipe

    def model_config(self, base: ModelConfig) -> ModelConfig:
        """The plan's [model] with this variant's network recipe."""
        return dataclasses.replace(base, **{k: v for k, v in self.recipe if k in RECIPE_MODEL_KEYS})

    def train_config(self, base: TrainConfig) -> TrainConfig:
        """The plan's [train] with this variant's optimizer (and its own learning rate unless given)."""
        values = {k: v for k, v in self.recipe if k in RECIPE_TRAIN_KEYS}
        if "optimizer" in values and "learning_rate" not in values:
            values["learning_rate"] = default_learning_rate(values["optimizer"])
        return dataclasses.replace(base, **values)

    def describe_recipe(self) -> str:
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.recipe) or "paper"


@dataclass(frozen=True)
class RunSpec:
    """One training run: a variant, a repetition (1-based) and a fold (0-based)."""

    variant: Variant
    repetition: int
    fold: int
    seed: int
    n_folds: int = 1

    @property
    def run_id(self) -> str:
        fold = f"/fold{self.fold + 1}" if self.n_folds > 1 else ""
        return f"{self.variant.key}/rep{self.repetition}{fold}"


@dataclass(frozen=True)
class Plan:
    name: str
    data: DataSpec
    variants: tuple[Variant, ...]
    repetitions: int = 5
    seed: int = 0
    tta: bool = True
    threshold: str = "validation"
    train: TrainConfig = TrainConfig()
    model: ModelConfig = ModelConfig()
    description: str = ""
    gains_db: tuple[float, ...] = ()   # input gains each model's test files are also scored at
    source: Path | None = field(default=None, compare=False)

    @property
    def baseline(self) -> Variant:
        return next(v for v in self.variants if v.is_baseline)

    def test_modes(self, variant: Variant) -> tuple[str, ...]:
        return ("plain", "tta") if self.tta and variant.tta else ("plain",)

    def runs(self) -> list[RunSpec]:
        """Every run, repetition-major so an interrupted study has whole repetitions of all variants."""
        n_folds = self.data.n_folds
        return [RunSpec(variant, repetition, fold, self.seed + repetition - 1, n_folds)
                for repetition in range(1, self.repetitions + 1)
                for variant in self.variants
                for fold in range(n_folds)]

    def fingerprint(self, run: RunSpec) -> str:
        """What a run's result depends on: a finished run with another fingerprint is stale."""
        train = config_to_dict(run.variant.train_config(self.train))
        if train["precision"] == "auto":  # as before the field existed: finished studies stay finished
            del train["precision"]
        model = config_to_dict(run.variant.model_config(self.model))
        for values, config in ((train, TrainConfig), (model, ModelConfig)):  # likewise for the variant fields
            for key in (*RECIPE_MODEL_KEYS, *RECIPE_TRAIN_KEYS, "conv5_channels"):
                if key in values and key != "learning_rate" and values[key] == getattr(config, key):
                    del values[key]
        payload = {"data": {k: str(v) if isinstance(v, Path) else v for k, v in vars(self.data).items()},
                   "train": train, "model": model,
                   "augment": config_to_dict(run.variant.augment_config), "seed": run.seed, "fold": run.fold,
                   "test_modes": self.test_modes(run.variant)}
        if self.gains_db:  # only then: studies without gains keep their fingerprints
            payload["gains_db"] = list(self.gains_db)
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def slug(text: str) -> str:
    """A file-system-safe key: 'pitch ±30 %' → 'pitch-30'."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "variant"


def load_plan(path: str | os.PathLike) -> Plan:
    """Read and check a plan file; relative data paths are relative to the file."""
    path = Path(path)
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"plan file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read plan {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"plan {path} is not valid TOML: {exc}") from None
    try:
        plan = plan_from_dict(values, base=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"plan {path}: {exc}") from None
    return dataclasses.replace(plan, source=path.resolve())


def plan_from_dict(values: dict[str, Any], *, base: Path = Path(".")) -> Plan:
    _reject_unknown(values, PLAN_KEYS, "plan")
    repetitions = _integer(values.get("repetitions", 5), "repetitions", minimum=1)
    seed = _integer(values.get("seed", 0), "seed", minimum=0)
    threshold = values.get("threshold", "validation")
    if threshold not in THRESHOLD_RULES:
        raise ConfigError(f"threshold must be one of {', '.join(THRESHOLD_RULES)}, got {threshold!r}")
    tta = values.get("tta", True)
    if not isinstance(tta, bool):
        raise ConfigError(f"tta must be true or false, got {tta!r}")
    if "data" not in values:
        raise ConfigError("a [data] table with the path of the audio is required")
    data = _data_spec(values["data"], base)
    train = config_from_dict(TrainConfig, dict(values.get("train", {})))
    model = config_from_dict(ModelConfig, {k: tuple(v) if isinstance(v, list) else v
                                           for k, v in dict(values.get("model", {})).items()})
    grid_tta = values.get("grid_tta", True)
    if not isinstance(grid_tta, bool):
        raise ConfigError(f"grid_tta must be true or false, got {grid_tta!r}")
    variants = _variants(values.get("variant", []), values.get("grid", {}), grid_tta=grid_tta)
    return Plan(name=str(values.get("name", "study")), description=str(values.get("description", "")),
                data=data, variants=variants, repetitions=repetitions, seed=seed, tta=tta, threshold=threshold,
                train=train, model=model, gains_db=_gains(values.get("gains", [])))


def _gains(values: Any) -> tuple[float, ...]:
    """The plan's ``gains``: distinct numbers of dB within ±60, in the order given."""
    if not isinstance(values, list):
        raise ConfigError(f"gains must be a list of numbers of dB, e.g. [-18, -12, -6, 0, 6], got {values!r}")
    gains = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"gains: {value!r} is not a number of dB")
        if not abs(value) <= MAX_GAIN_DB:
            raise ConfigError(f"gains: {value:g} dB is out of range (±{MAX_GAIN_DB:g} dB)")
        if float(value) in gains:
            raise ConfigError(f"gains: {value:g} dB is listed twice")
        gains.append(float(value))
    return tuple(gains)


def _data_spec(values: Any, base: Path) -> DataSpec:
    if not isinstance(values, dict):
        raise ConfigError("[data] must be a table")
    _reject_unknown(values, DATA_KEYS, "[data]")
    kind = values.get("kind", "folder")
    if kind not in DATA_KINDS:
        raise ConfigError(f"data.kind must be one of {', '.join(DATA_KINDS)}, got {kind!r}")
    if "path" not in values:
        raise ConfigError("data.path (the folder of labelled audio or the Jamendo root) is required")

    def where(p: Any) -> Path:
        if not isinstance(p, str):
            raise ConfigError(f"paths in [data] must be strings, got {p!r}")
        p = Path(p).expanduser()
        return (p if p.is_absolute() else base / p).resolve()

    extra = values.get("extra_train", [])
    lists = values.get("fold_lists", [])
    if not isinstance(extra, list) or not isinstance(lists, list):
        raise ConfigError("data.extra_train and data.fold_lists must be lists of paths")
    spec = DataSpec(kind=kind, path=where(values["path"]), extra_train=tuple(map(where, extra)),
                    valid_fraction=_fraction(values.get("valid_fraction", 0.15), "data.valid_fraction"),
                    test_fraction=_fraction(values.get("test_fraction", 0.15), "data.test_fraction"),
                    split_seed=_integer(values.get("split_seed", 0), "data.split_seed", minimum=0),
                    group=str(values.get("group", "")),
                    folds=_integer(values.get("folds", 5), "data.folds", minimum=2),
                    fold_lists=tuple(map(where, lists)))
    try:
        re.compile(spec.group)
    except re.error as exc:
        raise ConfigError(f"data.group is not a regular expression: {exc}") from None
    if spec.kind == "folder" and spec.valid_fraction + spec.test_fraction >= 1:
        raise ConfigError("data.valid_fraction + data.test_fraction must leave files for training")
    if spec.kind != "jamendo" and spec.valid_fraction == 0:
        raise ConfigError("data.valid_fraction must be > 0: the threshold is chosen on validation files")
    if spec.kind == "kfold" and len(spec.fold_lists) == 1:
        raise ConfigError("data.fold_lists needs at least two lists")
    return spec


def _variants(listed: Any, grid: Any, *, grid_tta: bool = True) -> tuple[Variant, ...]:
    if not isinstance(listed, list) or not isinstance(grid, dict):
        raise ConfigError("[[variant]] must be an array of tables and [grid] a table")
    variants: list[Variant] = []
    for item in listed:
        if not isinstance(item, dict):
            raise ConfigError("each [[variant]] must be a table")
        _reject_unknown(item, VARIANT_KEYS, "[[variant]]")
        augment = str(item.get("augment", "none"))
        config = _parse_augment(augment)
        recipe = _recipe(item)
        plain = not config.enabled and not recipe
        parts = [", ".join(f"{k.replace('_', ' ')} {v}" for k, v in recipe), config.enabled and config.describe()]
        name = str(item.get("name") or ("no augmentation" if plain else ", ".join(filter(None, parts))))
        key = str(item.get("key") or (BASELINE_KEY if plain else slug(name)))
        tta = item.get("tta", True)
        if not isinstance(tta, bool):
            raise ConfigError(f"variant {name!r}: tta must be true or false")
        variants.append(Variant(key, name, augment, tta, recipe))
    for short, strengths in grid.items():
        if short not in AugmentConfig.SHORT_NAMES:
            raise ConfigError(f"[grid] {short!r} is not an augmentation; use {', '.join(AugmentConfig.SHORT_NAMES)}")
        if not isinstance(strengths, list) or not strengths:
            raise ConfigError(f"[grid] {short} must be a list of strengths, e.g. [0.1, 0.2, 0.3]")
        for strength in strengths:
            augment = f"{short}={strength}"
            config = _parse_augment(augment)
            if not config.enabled:
                raise ConfigError(f"[grid] {short}: strength 0 is the baseline, leave it out")
            variants.append(Variant(f"{short}-{float(strength):g}", config.describe(), augment, grid_tta))
    if not any(v.is_baseline for v in variants):
        variants.insert(0, Variant(BASELINE_KEY, "no augmentation", "none", True))
    baselines = [v for v in variants if v.is_baseline]
    if len(baselines) > 1:
        raise ConfigError(f"more than one variant without augmentation: {', '.join(v.name for v in baselines)}")
    keys = [v.key for v in variants]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ConfigError(f"variant keys must be unique; repeated: {', '.join(repeated)} (set key = \"...\")")
    return tuple(variants)


def _recipe(item: dict) -> tuple[tuple[str, Any], ...]:
    """A [[variant]]'s network and training fields, each checked by its config (unknown names listed)."""
    recipe = tuple((k, item[k]) for k in (*RECIPE_MODEL_KEYS, *RECIPE_TRAIN_KEYS) if k in item)
    where = f"variant {item.get('name') or item.get('key') or '?'!r}"
    try:
        config_from_dict(ModelConfig, {k: v for k, v in recipe if k in RECIPE_MODEL_KEYS})
        config_from_dict(TrainConfig, {k: v for k, v in recipe if k in RECIPE_TRAIN_KEYS})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return recipe


def _parse_augment(text: str) -> AugmentConfig:
    try:
        return AugmentConfig.parse(text)
    except ConfigError as exc:
        raise ConfigError(f"augment {text!r}: {exc}") from None


def _reject_unknown(values: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _integer(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(f"{name} must be in [0, 1), got {value!r}")
    return float(value)
