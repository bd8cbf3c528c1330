"""Where autosaves of unsaved annotations live: beside the label file, or in the user data folder.

The side file ``song.lab.svgui-autosave`` is found by anyone who looks at the folder. When the
label folder is not writable (a read-only dataset, a network share), the autosave goes to
``<user data folder>/autosave/song.lab.<hash of the label path>.svgui-autosave`` instead: the
user data folder is ``$SVGUI_AUTOSAVE_DIR`` when set, else ``$SVGUI_SETTINGS_DIR/autosave``
(tests), else Qt's AppDataLocation. Recovery looks in both places.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from PySide6.QtCore import QStandardPaths

from engine.errors import OutputWriteError
from engine.fileio import atomic_write_text
from svgui.settings import SETTINGS_DIR_ENV

AUTOSAVE_SUFFIX = ".svgui-autosave"
AUTOSAVE_DIR_ENV = "SVGUI_AUTOSAVE_DIR"


def side_path(label_path: Path) -> Path:
    return label_path.with_name(label_path.name + AUTOSAVE_SUFFIX)


def user_autosave_dir() -> Path:
    explicit = os.environ.get(AUTOSAVE_DIR_ENV)
    if explicit:
        return Path(explicit)
    settings = os.environ.get(SETTINGS_DIR_ENV)
    if settings:
        return Path(settings) / "autosave"
    location = QStandardPaths.StandardLocation.AppDataLocation
    return Path(QStandardPaths.writableLocation(location)) / "autosave"


def fallback_path(label_path: Path) -> Path:
    """The autosave in the user data folder; the hash keeps same-named files of different folders apart."""
    key = hashlib.sha1(os.path.abspath(label_path).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return user_autosave_dir() / f"{label_path.name}.{key}{AUTOSAVE_SUFFIX}"


def write_autosave(label_path: Path, text: str) -> Path:
    """Write beside the label file, else (OutputWriteError there) in the user data folder; returns where."""
    try:
        atomic_write_text(side_path(label_path), text)
        stale = fallback_path(label_path)
        with contextlib.suppress(OSError):
            stale.unlink(missing_ok=True)  # the folder became writable: one autosave, beside the file
        return side_path(label_path)
    except OutputWriteError:
        fallback = fallback_path(label_path)
        atomic_write_text(fallback, text)  # an OutputWriteError here names the fallback file
        return fallback


def find_autosave(label_path: Path) -> Path | None:
    """The autosave of ``label_path``, newest first if both places have one."""
    found = [p for p in (side_path(label_path), fallback_path(label_path)) if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def remove_autosaves(label_path: Path) -> None:
    for path in (side_path(label_path), fallback_path(label_path)):
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
