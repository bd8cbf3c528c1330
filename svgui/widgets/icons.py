"""Toolbar icons: Qt's standard pixmaps by name ("SP_MediaPlay"), or our SVGs in ``resources/icons``.

SVG icons scale cleanly on high-DPI screens; a name that is neither gives an empty icon (the button
then shows its text), so a missing resource folder never stops the window from opening.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QStyle

from engine.resources import resource_dir


def icon_path(name: str) -> Path | None:
    """``resources/icons/NAME.svg`` if it exists."""
    root = resource_dir()
    path = root / "icons" / f"{name}.svg" if root is not None else None
    return path if path is not None and path.is_file() else None


@cache
def _svg_icon(name: str) -> QIcon:
    path = icon_path(name)
    return QIcon(str(path)) if path is not None else QIcon()


def get_icon(name: str) -> QIcon:
    """A standard pixmap of the application's style when ``name`` starts with "SP_", else our SVG."""
    if name.startswith("SP_"):
        return QApplication.style().standardIcon(getattr(QStyle.StandardPixmap, name))
    return _svg_icon(name)
