"""Every command of the main window as a QAction in a menu, with the shortcuts of UX.md."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

Shortcut = str | QKeySequence.StandardKey | list[str] | None


class ActionBuilder:
    """Creates actions into menus and remembers them by name (for tests and the shortcut reference)."""

    def __init__(self, window: QMainWindow):
        self.window = window
        self.actions: dict[str, QAction] = {}
        self.menu_of: dict[str, str] = {}

    def add(self, menu: QMenu, name: str, text: str, slot: Callable | None = None, shortcut: Shortcut = None, *,
            tip: str = "", checkable: bool = False, checked: bool = False, group: QActionGroup | None = None) -> QAction:
        action = QAction(text, self.window)
        if isinstance(shortcut, list):
            action.setShortcuts([QKeySequence(s) for s in shortcut])
        elif isinstance(shortcut, QKeySequence.StandardKey):
            action.setShortcuts(shortcut)
        elif shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(tip or text.replace("&", "").rstrip("…"))
        action.setStatusTip(action.toolTip())
        if checkable:
            action.setCheckable(True)
            action.setChecked(checked)
        if group is not None:
            group.addAction(action)
        if slot is not None:
            (action.toggled if checkable and group is None else action.triggered).connect(slot)
        menu.addAction(action)
        self.window.addAction(action)  # shortcuts work even when the menu bar is hidden
        self.actions[name] = action
        self.menu_of[name] = menu.title().replace("&", "")
        return action

    def __getitem__(self, name: str) -> QAction:
        return self.actions[name]
