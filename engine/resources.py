"""Where the bundled resources (demo clips, models) live, in a checkout and when installed."""

from __future__ import annotations

import os
import re
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def resource_dir() -> Path | None:
    """$SVGUI_RESOURCES, else ``resources/`` of a source checkout, else the installed copy."""
    candidates = [os.environ.get("SVGUI_RESOURCES"), _PACKAGE_ROOT / "resources",
                  _PACKAGE_ROOT / "svgui" / "resources"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


BUNDLED_MODEL_NAME = "svgui-musdb7-robust.safetensors"  # the current bundled model (card: resources/models/README.md)


def bundled_model_path() -> Path | None:
    """The model shipped in ``resources/models/``, or None.

    That is :data:`BUNDLED_MODEL_NAME`; where a build ships another model under another name, the
    newest of them (by mtime, then name). Checkpoints (``NAME.checkpoint.*``, ``NAME.checkpoint-RUNID.*``)
    left by a training into this folder are never taken: file times alone are no order after a checkout.
    """
    root = resource_dir()
    if root is None or not (root / "models").is_dir():
        return None
    folder = root / "models"
    if (folder / BUNDLED_MODEL_NAME).is_file():
        return folder / BUNDLED_MODEL_NAME
    models = [m for m in folder.glob("*.safetensors") if not _is_checkpoint_name(m.name)]
    return max(models, key=lambda p: (p.stat().st_mtime, p.name)) if models else None


def _is_checkpoint_name(name: str) -> bool:
    return re.search(r"\.checkpoint(-[0-9A-Za-z]+)?\.safetensors$", name) is not None


def previous_bundled_models() -> list[Path]:
    """Models bundled before the current one (``resources/models/previous/``), kept loadable."""
    root = resource_dir()
    folder = None if root is None else root / "models" / "previous"
    return sorted(folder.glob("*.safetensors")) if folder is not None and folder.is_dir() else []
