"""Shared set-up of the app's read-only result tables and per-file progress bars."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QProgressBar, QTableView

ROW_HEIGHT_PX = 24


def make_read_only(table: QTableView) -> QTableView:
    """Whole-row selection, no editing, no row numbers, compact rows (a QTableView or QTableWidget)."""
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT_PX)
    return table


def files_progress_bar() -> QProgressBar:
    """'3 / 12 files', empty until the first count is known."""
    bar = QProgressBar()
    bar.setFormat("%v / %m files")
    bar.setRange(0, 1)
    bar.setValue(0)
    return bar
