"""Where the bundled resources (demo clips, models) live, in a checkout and when installed."""

from __future__ import annotations

import os
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


def bundled_model_path() -> Path | None:
    """The model shipped in ``resources/models/`` (the newest if there are several), or None."""
    root = resource_dir()
    if root is None or not (root / "models").is_dir():
        return None
    models = sorted((root / "models").glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
    models = [m for m in models if ".checkpoint." not in m.name]
    return models[-1] if models else None


def previous_bundled_models() -> list[Path]:
    """Models bundled before the current one (``resources/models/previous/``), kept loadable."""
    root = resource_dir()
    folder = None if root is None else root / "models" / "previous"
    return sorted(folder.glob("*.safetensors")) if folder is not None and folder.is_dir() else []
