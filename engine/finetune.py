"""Fine-tuning: start a training run from a trained model (``train(init_from=...)``, ``train --init``).

The child keeps the parent's network shape, feature settings and normalization statistics (the
network's first layer expects inputs standardized with them), trains on the user's corrected
files with a short schedule at a lower learning rate, and records its parent in its metadata.

Default schedule, and why: the bundled model trained 4,000 updates at lr 0.01 × 0.85 every 200,
ending near 0.0005. Fine-tuning continues at that scale (0.1 × the parent's base rate, 0.001)
for 200 updates with the convolutional layers frozen and voiced/unvoiced excerpts balanced
(``DEFAULT_TUNE``): the recipe measured in bench/annotation_effort.py (about 80 s on a 2-core CPU).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint import read_header
from engine.config import AugmentConfig, FeatureConfig, TrainConfig, config_from_dict, config_to_dict
from engine.datasets import Track, TrackData, format_names
from engine.errors import ConfigError, DatasetError
from engine.fileio import file_sha256
from engine.stems import stems_of

FINETUNE_UPDATES = 200           # measured (bench/annotation_effort.py); more moved the model further off
FINETUNE_LR_FACTOR = 0.1          # of the parent's base learning rate
FINETUNE_DECAY_EVERY = 200        # lr × 0.85 every 200 updates (none in the default run)
FINETUNE_CHECK_EVERY = 100        # validation and checkpoints
MIN_FINETUNE_FILES = 2
LINEAGE_DEPTH = 8                 # ancestors kept in a child's metadata (each parent record nests its own)


FREEZE_CHOICES = ("none", "features")


@dataclass(frozen=True)
class TuneOptions:
    """What a fine-tuning run changes besides the schedule (``train(tune=...)``, ``train --freeze/--balance``).

    ``freeze="features"``: the convolutional layers (and the thesis network's batch norms before
    the dense layers) keep the parent's weights; only the dense layers learn, dropout as usual.
    ``balance``: excerpts whose central frame is voiced and unvoiced are drawn in equal shares,
    so a tuning set of mostly sung files does not move the model's prior towards voice.
    """

    freeze: str = "none"
    balance: bool = False

    def __post_init__(self) -> None:
        if self.freeze not in FREEZE_CHOICES:
            raise ConfigError(f"freeze must be one of {', '.join(FREEZE_CHOICES)}, got {self.freeze!r}")
        if not isinstance(self.balance, bool):
            raise ConfigError(f"balance must be true or false, got {self.balance!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"freeze": self.freeze, "balance": self.balance}

    @classmethod
    def from_dict(cls, values: Any) -> "TuneOptions":
        if not isinstance(values, dict):
            return cls()
        return cls(freeze=values.get("freeze", "none"), balance=values.get("balance", False))

    def describe(self) -> str:
        parts = ["convolutional layers frozen" if self.freeze == "features" else "all layers trained",
                 "voiced/unvoiced excerpts balanced" if self.balance else "excerpts drawn as they come"]
        return ", ".join(parts)


# The default recipe (README "Improving the model with your annotations", measured on musdb7):
# frozen convolutions keep the parent's features (a full fine-tune on 14 files of 7 s moved the
# network far enough that no threshold chosen on held-out files rescued it), 4-5x faster updates
# on a CPU; balancing guards against corrections that are mostly sung.
DEFAULT_TUNE = TuneOptions(freeze="features", balance=True)


def freeze_layers(network: torch.nn.Module, freeze: str) -> list[torch.nn.Module]:
    """Stop gradients into the frozen part of ``network``; returns the modules to keep in eval mode
    while training (batch norms of frozen layers: their running statistics stay the parent's)."""
    if freeze == "none":
        return []
    frozen_eval = []
    for name, module in network.named_children():
        if name.startswith("conv") or name == "input_bn":
            module.requires_grad_(False)
            if name == "input_bn":
                frozen_eval.append(module)
        elif name == "bn":  # thesis: per-layer batch norms; the convolutions' are part of the features
            for layer, bn in module.items():
                if layer.startswith("conv"):
                    bn.requires_grad_(False)
                    frozen_eval.append(bn)
    return frozen_eval


def parent_train_config(path: str | os.PathLike) -> TrainConfig:
    """The parent's recorded training settings (the paper's defaults where it recorded none)."""
    meta = read_header(path).get("metadata") or {}
    recorded = meta.get("train_config")
    if not isinstance(recorded, dict):
        return TrainConfig()
    try:
        return config_from_dict(TrainConfig, recorded)
    except ConfigError:  # written by another version: its base rate is all we need, and the default is fine
        return TrainConfig()


def finetune_config(parent_path: str | os.PathLike, *, updates: int | None = None,
                    learning_rate: float | None = None, **overrides: Any) -> TrainConfig:
    """A short schedule at a lower learning rate, from the parent's settings (batch, momentum, targets)."""
    parent = parent_train_config(parent_path)
    updates = FINETUNE_UPDATES if updates is None else updates
    values = {**config_to_dict(parent),
              "updates": updates,
              "learning_rate": parent.learning_rate * FINETUNE_LR_FACTOR if learning_rate is None else learning_rate,
              "lr_decay_every": FINETUNE_DECAY_EVERY,
              "validate_every": FINETUNE_CHECK_EVERY,
              "checkpoint_every": FINETUNE_CHECK_EVERY}
    values.update(overrides)
    return config_from_dict(TrainConfig, values)


def parent_augment(path: str | os.PathLike) -> AugmentConfig:
    """The augmentation the parent was trained with (none if it recorded none)."""
    recorded = dict((read_header(path).get("metadata") or {}).get("augment") or {})
    recorded.pop("description", None)
    try:
        return config_from_dict(AugmentConfig, recorded)
    except ConfigError:
        return AugmentConfig()


def parent_augment_for(path: str | os.PathLike, tracks: Sequence[Track]) -> tuple[AugmentConfig, str | None]:
    """The parent's augmentation fitted to these training files, and a note when it changed.

    Stem remixing needs stems beside the audio, which a user's own corrected files seldom have: the
    bundled model was trained with it, and fine-tuning it on plain files would fail. So without any
    stem file among ``tracks`` the inherited remixing is left out (an explicit ``--augment`` with
    ``remix`` still fails with the reason)."""
    augment = parent_augment(path)
    if augment.remix_probability and not any(stems_of(t.audio_path) is not None for t in tracks):
        note = (f"the parent was trained with stem remixing (p={augment.remix_probability:g}); none of the "
                f"training files has stems beside it, so fine-tuning leaves remixing out")
        return replace(augment, remix_probability=0.0), note
    return augment, None


def parent_record(path: str | os.PathLike) -> dict[str, Any]:
    """What a child's metadata says about its parent: file name, SHA-256, description, and its own parent."""
    path = Path(path)
    header = read_header(path)
    meta = header.get("metadata") or {}
    record = {"file": path.name, "sha256": file_sha256(path), "name": meta.get("name") or path.stem,
              "data": meta.get("data") or "", "updates": meta.get("updates"), "created": meta.get("created"),
              "threshold": header.get("threshold")}
    grandparent = meta.get("parent")
    if isinstance(grandparent, dict) and _depth(grandparent) < LINEAGE_DEPTH:
        record["parent"] = grandparent
    return record


def _depth(record: dict[str, Any]) -> int:
    depth = 0
    while isinstance(record, dict):
        depth, record = depth + 1, record.get("parent")
    return depth


def lineage(metadata: dict[str, Any]) -> list[str]:
    """Model names from the oldest recorded ancestor to this model: ['svgui-musdb7', 'mine-1', 'mine-2']."""
    names, record = [], metadata.get("parent")
    while isinstance(record, dict):
        names.append(str(record.get("name") or record.get("file") or "?"))
        record = record.get("parent")
    return names[::-1] + [str(metadata.get("name") or "this model")]


def check_features(parent_path: str | os.PathLike, parent: FeatureConfig, data: FeatureConfig) -> None:
    """Refuse data read with other feature settings than the parent's (its normalization would not fit)."""
    if parent == data:
        return
    differ = [f"{name} {getattr(data, name)} (model: {getattr(parent, name)})"
              for name in parent.__dataclass_fields__ if getattr(parent, name) != getattr(data, name)]
    raise ConfigError(f"{parent_path}: the data's features differ from the model's: {', '.join(differ)}; "
                      "fine-tuning reads the audio with the model's own feature settings")


def check_finetune_count(names: Sequence[str]) -> None:
    """At least MIN_FINETUNE_FILES labelled files in all (one to learn from, one to check on)."""
    if len(names) < MIN_FINETUNE_FILES:
        raise DatasetError(f"fine-tuning needs at least {MIN_FINETUNE_FILES} labelled files, got {len(names)}"
                           + (f" ({format_names(list(names))})" if names else ""))


def check_finetune_data(parent_path: str | os.PathLike, features: FeatureConfig, train_data: Sequence[TrackData],
                        valid_data: Sequence[TrackData] = ()) -> list[str]:
    """Clear errors for data a fine-tuning cannot use; returns notes (files taken as instrumentals).

    Needs at least two labelled files in all (one to learn from, one to check on), spectrograms of
    the model's shape, and both voice and no voice somewhere in the training files: a run on one
    class only would teach the model to always say it.
    """
    everything = [*train_data, *valid_data]
    unlabelled = [d.track.name for d in everything if d.targets is None]
    if unlabelled:
        raise DatasetError(f"fine-tuning needs labelled files; no labels for: {format_names(unlabelled)}")
    check_finetune_count([d.track.name for d in everything])
    if not train_data:
        raise DatasetError("fine-tuning needs training files; all of them are validation files")
    for d in everything:
        if d.log_mel.shape[1:] != (features.n_mels,) or d.linear.shape[1:] != (features.n_bins,):
            raise ConfigError(f"{d.track.audio_path}: spectrograms of {d.log_mel.shape[1]} mel bands and "
                              f"{d.linear.shape[1]} bins, the model {parent_path} expects {features.n_mels} and "
                              f"{features.n_bins}: read the audio with the model's features")
    silent = [d.track.name for d in train_data if not d.targets.any()]
    if len(silent) == len(train_data):
        raise DatasetError(f"none of the {len(train_data)} fine-tuning file(s) has voice in its labels "
                           f"({format_names(silent)}): label the sung parts of at least one file first")
    if all(d.targets.all() for d in train_data):
        # Measured (bench/annotation_effort.py, musdb7 mixes sung throughout): the model then calls
        # instrumentals voice (0 % -> 70-100 % error on their accompaniments), whatever the balancing.
        raise DatasetError(f"every frame of the {len(train_data)} fine-tuning file(s) is labelled voice "
                           f"({format_names([d.track.name for d in train_data])}): the model would learn to call "
                           "everything voice; add files or passages without singing (an instrumental, an intro)")
    return [f"no voice in the labels of {format_names(silent)}: used as instrumental (no-voice) examples"] \
        if silent else []
