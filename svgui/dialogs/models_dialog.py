"""Model ▸ Models…: the models the user has, with what each was trained on and how well it did; make
one active, or compare two on the open file (both curves) or on a labelled folder.

The list lives in ``svgui.widgets.models_panel``; comparisons are
``svgui.widgets.model_compare.ModelComparison``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from svgui.dialogs.messages import show_error
from svgui.document import Document
from svgui.model_jobs import same_file
from svgui.widgets.model_compare import ModelComparison
from svgui.widgets.models_panel import ModelEntry, add_user_model, model_entries, remove_user_model
from svgui.widgets.tables import make_read_only
from svgui.workers import WorkerRegistry

COLUMNS = ("", "Name", "Source", "Trained on", "Updates", "Augmentation", "Valid. error", "Created", "Fine-tuned from")


def _percent(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f} %"


class ModelsDialog(QDialog):
    """The list with details, Make Active, and comparisons of two models."""

    activateRequested = Signal(object)  # Path
    compared = Signal(object)           # Curves or Comparison, once drawn

    def __init__(self, parent: QWidget | None = None, *, settings: QSettings, workers: WorkerRegistry | None = None,
                 active_path: Callable[[], Path | None] = lambda: None, document: Document | None = None):
        super().__init__(parent)
        self.setWindowTitle("Models — svgui")
        self._settings = settings
        self._workers = workers or WorkerRegistry(self)
        self._active_path = active_path
        self.entries: list[ModelEntry] = []

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        make_read_only(self.table)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._show_details)
        self.table.doubleClicked.connect(lambda _: self.make_active())
        self.details = QPlainTextEdit(readOnly=True)
        self.details.setPlaceholderText("Select a model to see how it was made.")

        add = QPushButton("Add Model File…")
        add.clicked.connect(self._add_dialog)
        self.remove_button = QPushButton("Remove from List")
        self.remove_button.clicked.connect(self.remove_selected)
        self.activate_button = QPushButton("Make Active")
        self.activate_button.setToolTip("Use the selected model in the main window (double-click does the same)")
        self.activate_button.clicked.connect(self.make_active)
        list_buttons = QHBoxLayout()
        for button in (add, self.remove_button):
            list_buttons.addWidget(button)
        list_buttons.addStretch(1)
        list_buttons.addWidget(self.activate_button)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.table, 1)
        top_layout.addLayout(list_buttons)
        top_layout.addWidget(self.details, 1)

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        self.compare = ModelComparison(workers=self._workers, document=document)
        self.compare.compared.connect(self.compared)
        self.compare.problem.connect(lambda title, what: show_error(self, title, what))
        splitter.addWidget(self.compare)
        splitter.setSizes([360, 420])
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addLayout(bottom)
        self.resize(1100, 820)
        self.refresh()

    # ---- the list -------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read every listed model file's header."""
        selected = self.selected_path()
        entries = self.entries = model_entries(self._settings)
        active = self._active_path()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(entries))
        bold = QFont()
        bold.setBold(True)
        for row, entry in enumerate(entries):
            is_active = same_file(entry.path, active)
            cells = ("● active" if is_active else "", entry.name, entry.source, entry.data,
                     "" if entry.updates is None else f"{entry.updates:,}", entry.augment,
                     _percent(entry.valid_error), entry.created, entry.ancestry)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text if not entry.problem or column in (1, 2) else "")
                item.setData(Qt.ItemDataRole.UserRole, str(entry.path))
                item.setToolTip(entry.problem or f"{text}\n{entry.path}")
                if is_active:
                    item.setFont(bold)
                if entry.problem:
                    item.setForeground(Qt.GlobalColor.darkRed)
                self.table.setItem(row, column, item)
            if entry.problem:
                self.table.item(row, 3).setText(f"cannot read: {entry.problem}")
        self.table.setColumnWidth(3, 240)
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)  # bundled first, then newest
        self.table.setSortingEnabled(True)
        self.compare.set_models([(f"{e.name} ({e.source})", e.path) for e in entries if not e.problem], active)
        if not (selected is not None and self.select(selected)) and not (active and self.select(active)) and entries:
            self.table.selectRow(0)
        self._show_details()

    def select(self, path: str | os.PathLike) -> bool:
        for row in range(self.table.rowCount()):
            if same_file(self.table.item(row, 0).data(Qt.ItemDataRole.UserRole), path):
                self.table.selectRow(row)
                return True
        return False

    def selected_path(self) -> Path | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        return Path(self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole))

    def entry_for(self, path: Path) -> ModelEntry | None:
        return next((e for e in self.entries if same_file(e.path, path)), None)

    def _show_details(self) -> None:
        path = self.selected_path()
        entry = self.entry_for(path) if path is not None else None
        self.details.setPlainText(entry.details if entry else "")
        self.activate_button.setEnabled(bool(entry and not entry.problem))
        self.remove_button.setEnabled(bool(entry and entry.source == "yours"))

    def add_model(self, path: str | os.PathLike) -> None:
        add_user_model(self._settings, path)
        self.refresh()
        self.select(path)

    def remove_selected(self) -> None:
        path = self.selected_path()
        entry = self.entry_for(path) if path else None
        if entry is None or entry.source != "yours":
            return
        remove_user_model(self._settings, path)  # the file itself stays
        self.refresh()

    def make_active(self) -> None:
        path = self.selected_path()
        entry = self.entry_for(path) if path else None
        if entry is None or entry.problem:
            return
        self.activateRequested.emit(entry.path)
        self.refresh()

    def _add_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add model", "", "svgui models (*.safetensors)")
        if path:
            self.add_model(path)
