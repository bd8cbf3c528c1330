"""Persistent user preferences (QSettings): recent files, colour map, window layout, folders, model.

Settings live in an INI file: under ``$SVGUI_SETTINGS_DIR`` when that is set (tests point it at a
temporary folder), else in the platform's standard place for organization/application "svgui".
Every reader tolerates a missing or mistyped value and falls back to its default.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow, QWidget

ORGANIZATION = "svgui"
APPLICATION = "svgui"
SETTINGS_DIR_ENV = "SVGUI_SETTINGS_DIR"
DEFAULT_COLORMAP = "viridis"
RECENT_LIMIT = 10

_RECENT = "files/recent"
_LAST_FOLDER = "files/last_folder"
_COLORMAP = "view/colormap"
_GEOMETRY = "window/geometry"
_STATE = "window/state"
_MODEL = "model/active_path"
_PRECISION = "model/precision"
_TRAINING_SPEED = "training/seconds_per_update"  # + "/cpu", "/cuda", ...: measured per device type
_TRAINING_FOLDER = "training/last_output_folder"
_TRAINING_AUGMENT = "training/augment"  # the --augment spec of the last run started
_USER_MODELS = "models/user_paths"


def make_settings() -> QSettings:
    """The application's settings store (IniFormat)."""
    folder = os.environ.get(SETTINGS_DIR_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return QSettings(str(Path(folder) / f"{APPLICATION}.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def _string_list(value) -> list[str]:
    """QSettings hands back a str for one-element lists and None for empty ones in INI files."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


def _same_file(a: str, b: str) -> bool:
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


# ---- recent files ------------------------------------------------------------------------------
def recent_files(settings: QSettings) -> list[str]:
    """Most recent first."""
    return _string_list(settings.value(_RECENT))


def add_recent_file(settings: QSettings, path: str | os.PathLike, limit: int = RECENT_LIMIT) -> list[str]:
    """Put ``path`` first (removing an earlier mention of the same file); keep at most ``limit``."""
    path = os.path.abspath(os.fspath(path))
    files = [path] + [f for f in recent_files(settings) if not _same_file(f, path)]
    files = files[:max(0, limit)]
    settings.setValue(_RECENT, files)
    return files


def remove_recent_file(settings: QSettings, path: str | os.PathLike) -> list[str]:
    """Forget a file (e.g. one that no longer exists)."""
    files = [f for f in recent_files(settings) if not _same_file(f, os.fspath(path))]
    settings.setValue(_RECENT, files)
    return files


def clear_recent_files(settings: QSettings) -> None:
    settings.setValue(_RECENT, [])


# ---- view --------------------------------------------------------------------------------------
def colormap(settings: QSettings, default: str = DEFAULT_COLORMAP) -> str:
    value = settings.value(_COLORMAP, default)
    return value if isinstance(value, str) and value else default


def set_colormap(settings: QSettings, name: str) -> None:
    settings.setValue(_COLORMAP, str(name))


# ---- window layout -----------------------------------------------------------------------------
def save_window_state(settings: QSettings, window: QWidget) -> None:
    """Geometry, plus dock and toolbar layout for a QMainWindow."""
    settings.setValue(_GEOMETRY, window.saveGeometry())
    if isinstance(window, QMainWindow):
        settings.setValue(_STATE, window.saveState())


def restore_window_state(settings: QSettings, window: QWidget) -> bool:
    """Restore what ``save_window_state`` stored; False (and nothing changed) if there is none."""
    restored = False
    geometry = settings.value(_GEOMETRY)
    if isinstance(geometry, (QByteArray, bytes)) and len(geometry):
        restored = bool(window.restoreGeometry(QByteArray(geometry)))
    state = settings.value(_STATE)
    if isinstance(window, QMainWindow) and isinstance(state, (QByteArray, bytes)) and len(state):
        restored = bool(window.restoreState(QByteArray(state))) or restored
    return restored


# ---- folders and model -------------------------------------------------------------------------
def last_folder(settings: QSettings, default: str = "") -> str:
    """The folder a file dialog should open in (home when none was used yet)."""
    value = settings.value(_LAST_FOLDER)
    if isinstance(value, str) and value and Path(value).is_dir():
        return value
    return default or str(Path.home())


def set_last_folder(settings: QSettings, folder: str | os.PathLike) -> None:
    """Remember a folder (a file's folder when given a file)."""
    folder = Path(folder)
    settings.setValue(_LAST_FOLDER, str(folder.parent if folder.is_file() else folder))


def user_model_paths(settings: QSettings) -> list[str]:
    """The user's own model files as remembered (newest first; ``svgui.widgets.models_panel`` edits it)."""
    return _string_list(settings.value(_USER_MODELS))


def set_user_model_paths(settings: QSettings, paths: list[str]) -> None:
    settings.setValue(_USER_MODELS, list(paths))


def active_model_path(settings: QSettings) -> str | None:
    """The model file chosen last, or None (use the bundled model)."""
    value = settings.value(_MODEL)
    return value if isinstance(value, str) and value else None


def set_active_model_path(settings: QSettings, path: str | os.PathLike | None) -> None:
    if path is None:
        settings.remove(_MODEL)
    else:
        settings.setValue(_MODEL, os.fspath(path))


# ---- precision of the network (engine/precision.py) -----------------------------------------------
def precision(settings: QSettings) -> str:
    """auto | fp32 | bf16 | fp16 as chosen last; auto when unset or unknown."""
    from engine.config import PRECISIONS

    value = settings.value(_PRECISION)
    return value if isinstance(value, str) and value in PRECISIONS else "auto"


def set_precision(settings: QSettings, name: str) -> None:
    settings.setValue(_PRECISION, str(name))


# ---- training: the last output folder, the measured speed per device type ---------------------------
def training_folder(settings: QSettings) -> str:
    """The folder the last model was trained into, or ''."""
    value = settings.value(_TRAINING_FOLDER, "")
    return value if isinstance(value, str) else ""


def set_training_folder(settings: QSettings, folder: str | os.PathLike) -> None:
    settings.setValue(_TRAINING_FOLDER, os.fspath(folder))


def training_augment(settings: QSettings) -> str | None:
    """The augmentation (an --augment spec) of the last training started here, or None."""
    value = settings.value(_TRAINING_AUGMENT)
    return value if isinstance(value, str) and value.strip() else None


def set_training_augment(settings: QSettings, spec: str) -> None:
    settings.setValue(_TRAINING_AUGMENT, str(spec))


def seconds_per_update(settings: QSettings, device_type: str) -> float | None:
    """Seconds one update of the default network took on this device type, None when never measured."""
    try:
        value = float(settings.value(f"{_TRAINING_SPEED}/{device_type}", 0) or 0)
    except (TypeError, ValueError):
        return None
    return value if value > 0 and math.isfinite(value) else None


def set_seconds_per_update(settings: QSettings, device_type: str, seconds: float) -> None:
    settings.setValue(f"{_TRAINING_SPEED}/{device_type}", float(seconds))
