"""The models the user has: the bundled one and their own, with what each was trained on and how well
it did (the list that Model ▸ Models…, ``svgui.dialogs.models_dialog``, shows and edits).

User model paths are remembered in QSettings (``svgui.settings.user_model_paths``); metadata comes
from each file's header (``engine.checkpoint.read_header``), so listing never loads weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings

from engine.checkpoint import describe_recipe, read_header
from engine.errors import EngineError
from engine.evaluate import format_percent
from engine.finetune import lineage
from engine.resources import bundled_model_path, previous_bundled_models
from svgui import settings as prefs
from svgui.model_jobs import same_file

# ---- the remembered list (kept in svgui.settings) ---------------------------------------------------
user_model_paths = prefs.user_model_paths


def add_user_model(settings: QSettings, path: str | os.PathLike) -> list[str]:
    """Remember a model file (newest first); the bundled model is never added."""
    path = os.path.abspath(os.fspath(path))
    bundled = bundled_model_path()
    paths = user_model_paths(settings)
    if same_file(path, bundled) or any(same_file(path, p) for p in paths):
        return paths
    paths = [path] + paths
    prefs.set_user_model_paths(settings, paths)
    return paths


def remove_user_model(settings: QSettings, path: str | os.PathLike) -> list[str]:
    paths = [p for p in user_model_paths(settings) if not same_file(p, path)]
    prefs.set_user_model_paths(settings, paths)
    return paths


@dataclass(frozen=True)
class ModelEntry:
    """One row of the list: what the model file's header says."""

    path: Path
    source: str                     # "bundled", "previous bundled" or "yours"
    name: str = ""
    data: str = ""
    updates: int | None = None
    augment: str = ""
    valid_error: float | None = None
    created: str = ""
    threshold: float | None = None
    details: str = ""
    problem: str = ""               # why the file cannot be used
    lineage: tuple[str, ...] = ()   # model names, oldest ancestor first, this one last; () without a parent

    @property
    def ancestry(self) -> str:
        """'svgui-musdb7' or 'svgui-musdb7 → mine' (oldest first): what this model was fine-tuned from."""
        return " → ".join(self.lineage[:-1])


def model_entry(path: str | os.PathLike, source: str) -> ModelEntry:
    path = Path(path)
    try:
        header = read_header(path)
    except EngineError as exc:
        return ModelEntry(path, source, name=path.stem, problem=str(exc), details=str(exc))
    meta = header.get("metadata") or {}
    augment = meta.get("augment") or {}
    validation = meta.get("validation") or None
    return ModelEntry(path, source, name=meta.get("name") or path.stem, data=str(meta.get("data") or ""),
                      updates=meta.get("updates"), augment=str(augment.get("description") or "none"),
                      valid_error=validation.get("error") if isinstance(validation, dict) else None,
                      created=str(meta.get("created") or "")[:16].replace("T", " "),
                      threshold=header.get("threshold"), details=describe_entry(path, header),
                      lineage=tuple(lineage(meta)) if isinstance(meta.get("parent"), dict) else ())


def describe_entry(path: Path, header: dict) -> str:
    """The model's story in a few lines: data, schedule, augmentation, figures, software."""
    meta = header.get("metadata") or {}
    train = meta.get("train_config") or {}
    lines = [f"file: {path}", f"name: {meta.get('name') or path.stem}"]
    if meta.get("created"):
        lines.append(f"created: {meta['created']}")
    parent = meta.get("parent")
    if isinstance(parent, dict):
        lines.append(f"fine-tuned from: {parent.get('name')} ({parent.get('file')}, SHA-256 "
                     f"{str(parent.get('sha256'))[:16]}…)")
        lines.append("lineage: " + " → ".join(lineage(meta)))
    if meta.get("data"):
        lines.append(f"trained on: {meta['data']}")
    if meta.get("train_files") is not None:
        lines.append(f"files: {len(meta['train_files'])} for training, {len(meta.get('valid_files') or [])} "
                     "for validation")
    if meta.get("updates") is not None:
        optimizer = ("Adam" if train.get("optimizer") == "adam"
                     else f"Nesterov momentum {train.get('momentum')}")  # files from before Adam: SGD
        schedule = (f", batch {train.get('batch_size')}, learning rate {train.get('learning_rate')} × "
                    f"{train.get('lr_decay')} every {train.get('lr_decay_every')}, {optimizer}"
                    if train else "")
        lines.append(f"updates: {meta['updates']:,} (seed {meta.get('seed')}{schedule})")
    if meta.get("augment"):
        lines.append(f"augmentation: {meta['augment'].get('description', 'none')}")
    figures = meta.get("validation")
    if isinstance(figures, dict):
        lines.append(f"validation: error {format_percent(figures['error'])}, recall "
                     f"{format_percent(figures['recall'], 1)}, specificity "
                     f"{format_percent(figures['specificity'], 1)} ({figures['n_frames']:,} frames, "
                     f"update {figures['update']:,})")
    lines.append(f"threshold: {header.get('threshold', float('nan')):.4g}"
                 + (" (kept from the parent model)" if meta.get("threshold_source") == "parent"
                    else f" (chosen on the {meta['threshold_source']} data)" if meta.get("threshold_source") else ""))
    network = header.get("model") or {}
    if network:
        lines.append(f"network: conv {network.get('conv_channels')}, dense {network.get('dense_units')}")
    lines.append(f"recipe: {describe_recipe(header)}")
    if meta.get("device"):
        lines.append(f"trained on device {meta['device']} in {float(meta.get('elapsed_s', 0)) / 60:.1f} min")
    if meta.get("software"):
        lines.append("software: " + ", ".join(f"{k} {v}" for k, v in meta["software"].items()))
    return "\n".join(lines)


def model_entries(settings: QSettings) -> list[ModelEntry]:
    """The bundled model, the ones bundled before it, then the user's, each from its file's header
    (problems included)."""
    bundled = bundled_model_path()
    entries = [model_entry(bundled, "bundled")] if bundled is not None else []
    entries += [model_entry(p, "previous bundled") for p in previous_bundled_models()]
    return entries + [model_entry(p, "yours") for p in user_model_paths(settings)]


def known_models(settings: QSettings) -> list[tuple[str, Path]]:
    """(name, path) of the bundled model and of the user's models that can be read."""
    return [(e.name, e.path) for e in model_entries(settings) if not e.problem]
