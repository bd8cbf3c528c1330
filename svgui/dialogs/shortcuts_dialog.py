"""Help ▸ Keyboard Shortcuts: every action of the window with its menu, keys and description.

Built from the window's QActions, so it can never disagree with the menus. A filter box
searches all columns; clicking a column header sorts by it (initially: menu order).
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QSortFilterProxyModel, Qt
from PySide6.QtGui import QAction, QKeySequence, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTableView,
    QVBoxLayout,
    QWidget,
)

COLUMNS = ("Menu", "Action", "Shortcut", "Description")
MENU_SEPARATOR = " \u25b8 "


def _plain(text: str) -> str:
    """Menu text without mnemonics ('&&' stays a literal '&') or trailing tab accelerators."""
    return text.split("\t", 1)[0].replace("&&", "\0").replace("&", "").replace("\0", "&")


def action_menu_path(action: QAction) -> str:
    """'View ▸ Layers' for an action in the Layers submenu of View; '' when in no menu."""
    menus = [w for w in action.associatedObjects() if isinstance(w, QMenu)]
    if not menus:
        return ""
    titles, menu, seen = [], menus[0], set()
    while menu is not None and id(menu) not in seen:
        seen.add(id(menu))
        titles.append(_plain(menu.title()))
        parents = [w for w in menu.menuAction().associatedObjects() if isinstance(w, QMenu)]
        menu = parents[0] if parents else None
    return MENU_SEPARATOR.join(reversed([t for t in titles if t]))


def shortcut_text(action: QAction) -> str:
    """All of an action's shortcuts in the platform's notation (⌘ on macOS), comma-separated."""
    return ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts() if not s.isEmpty())


def action_rows(actions: Iterable[QAction | tuple[str, QAction]]) -> list[tuple[str, str, str, str]]:
    """(menu path, text, shortcut, description) per action; separators and submenu entries skipped.

    Items may be ``(menu_path, action)`` pairs for actions that live in no menu (toolbars, views).
    """
    rows, seen = [], set()
    for item in actions:
        menu_path, action = item if isinstance(item, tuple) else (None, item)
        if action is None or action.isSeparator() or action.menu() is not None or not action.text():
            continue
        if id(action) in seen:
            continue
        seen.add(id(action))
        text = _plain(action.text())
        tip = _plain(action.toolTip())
        description = tip if tip and tip != text else action.statusTip()
        rows.append((action_menu_path(action) if menu_path is None else menu_path, text, shortcut_text(action),
                     description))
    return rows


class ShortcutsDialog(QDialog):
    """A sortable, filterable table of the given actions."""

    def __init__(self, actions: Iterable[QAction | tuple[str, QAction]], parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard Shortcuts")
        self.resize(760, 520)
        self._model = QStandardItemModel(0, len(COLUMNS), self)
        self._model.setHorizontalHeaderLabels(list(COLUMNS))
        for order, row in enumerate(action_rows(actions)):
            items = [QStandardItem(value) for value in row]
            for item in items:
                item.setEditable(False)
                item.setToolTip(row[3] or row[1])
            # Sort keys: menu order for the Menu column; rows without a key last for Shortcut.
            items[0].setData(f"{order:06d}", Qt.ItemDataRole.UserRole)
            items[1].setData(row[1].casefold(), Qt.ItemDataRole.UserRole)
            items[2].setData(("0" if row[2] else "1") + row[2], Qt.ItemDataRole.UserRole)
            items[3].setData(row[3].casefold(), Qt.ItemDataRole.UserRole)
            self._model.appendRow(items)
        self._proxy = QSortFilterProxyModel(self)
        self._proxy.setSourceModel(self._model)
        self._proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self._proxy.setFilterKeyColumn(-1)
        self._proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

        self._filter = QLineEdit()
        self._filter.setPlaceholderText("Filter by action, menu, key or description\u2026")
        self._filter.setClearButtonEnabled(True)
        self._filter.setToolTip("Show only rows containing this text")
        self._filter.textChanged.connect(lambda text: self._proxy.setFilterFixedString(text.strip()))
        self._view = QTableView()
        self._view.setModel(self._proxy)
        self._view.setSortingEnabled(True)
        self._view.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # menu order (the sort key is the row order)
        self._view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._view.setAlternatingRowColors(True)
        self._view.verticalHeader().setVisible(False)
        self._view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self._view.setShowGrid(False)
        self._view.setWordWrap(False)
        header = self._view.horizontalHeader()
        for column in range(3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        hint = QLabel("Click a column header to sort by it.")
        hint.setStyleSheet("color: palette(placeholder-text);")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self._filter)
        layout.addWidget(self._view, 1)
        layout.addWidget(hint)
        layout.addWidget(buttons)

    def set_filter(self, text: str) -> None:
        self._filter.setText(text)

    def visible_rows(self) -> list[tuple[str, str, str, str]]:
        """The rows on show, in display order."""
        return [tuple(self._proxy.index(r, c).data() for c in range(len(COLUMNS)))
                for r in range(self._proxy.rowCount())]

    def sort_by(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self._view.sortByColumn(column, order)
