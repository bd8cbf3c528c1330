"""The models the user has: the bundled one and their own, with what each was trained on and how well
it did; make one active, or compare two on the open file (both curves) or on a labelled folder.

User model paths are remembered in QSettings (``models/user_paths``); metadata comes from each file's
header (``engine.checkpoint.read_header``), so listing never loads weights. Comparisons are
``svgui.widgets.model_compare.ModelComparison``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QFileDialog, QHBoxLayout, QHeaderView, QPlainTextEdit,
                               QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from engine.checkpoint import read_header
from engine.errors import EngineError
from engine.evaluate import format_percent
from engine.resources import bundled_model_path
from svgui.document import Document
from svgui.model_jobs import same_file
from svgui.widgets.model_compare import ModelComparison
from svgui.widgets.tables import make_read_only
from svgui.workers import WorkerRegistry

_USER_MODELS = "models/user_paths"
COLUMNS = ("", "Name", "Source", "Trained on", "Updates", "Augmentation", "Valid. error", "Created")


# ---- the remembered list ---------------------------------------------------------------------------
def user_model_paths(settings: QSettings) -> list[str]:
    value = settings.value(_USER_MODELS)  # INI files give a str for one entry and None for none
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value if v]


def add_user_model(settings: QSettings, path: str | os.PathLike) -> list[str]:
    """Remember a model file (newest first); the bundled model is never added."""
    path = os.path.abspath(os.fspath(path))
    bundled = bundled_model_path()
    paths = user_model_paths(settings)
    if same_file(path, bundled) or any(same_file(path, p) for p in paths):
        return paths
    paths = [path] + paths
    settings.setValue(_USER_MODELS, paths)
    return paths


def remove_user_model(settings: QSettings, path: str | os.PathLike) -> list[str]:
    paths = [p for p in user_model_paths(settings) if not same_file(p, path)]
    settings.setValue(_USER_MODELS, paths)
    return paths


@dataclass(frozen=True)
class ModelEntry:
    """One row of the list: what the model file's header says."""

    path: Path
    source: str                     # "bundled" or "yours"
    name: str = ""
    data: str = ""
    updates: int | None = None
    augment: str = ""
    valid_error: float | None = None
    created: str = ""
    threshold: float | None = None
    details: str = ""
    problem: str = ""               # why the file cannot be used


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
                      threshold=header.get("threshold"), details=describe_entry(path, header))


def describe_entry(path: Path, header: dict) -> str:
    """The model's story in a few lines: data, schedule, augmentation, figures, software."""
    meta = header.get("metadata") or {}
    train = meta.get("train_config") or {}
    lines = [f"file: {path}", f"name: {meta.get('name') or path.stem}"]
    if meta.get("created"):
        lines.append(f"created: {meta['created']}")
    if meta.get("data"):
        lines.append(f"trained on: {meta['data']}")
    if meta.get("train_files") is not None:
        lines.append(f"files: {len(meta['train_files'])} for training, {len(meta.get('valid_files') or [])} "
                     "for validation")
    if meta.get("updates") is not None:
        schedule = (f", batch {train.get('batch_size')}, learning rate {train.get('learning_rate')} × "
                    f"{train.get('lr_decay')} every {train.get('lr_decay_every')}, momentum {train.get('momentum')}"
                    if train else "")
        lines.append(f"updates: {meta['updates']:,} (seed {meta.get('seed')}{schedule})")
    if meta.get("augment"):
        lines.append(f"augmentation: {meta['augment'].get('description', 'none')}")
    for key, title in (("validation", "validation"), ("threshold_figures", "threshold chosen on")):
        figures = meta.get(key)
        if isinstance(figures, dict) and key == "validation":
            lines.append(f"validation: error {format_percent(figures['error'])}, recall "
                         f"{format_percent(figures['recall'], 1)}, specificity "
                         f"{format_percent(figures['specificity'], 1)} ({figures['n_frames']:,} frames, "
                         f"update {figures['update']:,})")
    lines.append(f"threshold: {header.get('threshold', float('nan')):.4g}"
                 + (f" (chosen on the {meta['threshold_source']} data)" if meta.get("threshold_source") else ""))
    network = header.get("model") or {}
    if network:
        lines.append(f"network: conv {network.get('conv_channels')}, dense {network.get('dense_units')}")
    if meta.get("device"):
        lines.append(f"trained on device {meta['device']} in {float(meta.get('elapsed_s', 0)) / 60:.1f} min")
    if meta.get("software"):
        lines.append("software: " + ", ".join(f"{k} {v}" for k, v in meta["software"].items()))
    return "\n".join(lines)


def known_models(settings: QSettings) -> list[tuple[str, Path]]:
    """(name, path) of the bundled model and of the user's models that can be read."""
    bundled = bundled_model_path()
    entries = [model_entry(bundled, "bundled")] if bundled is not None else []
    entries += [model_entry(p, "yours") for p in user_model_paths(settings)]
    return [(e.name, e.path) for e in entries if not e.problem]


def _percent(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f} %"


# ---- the dialog ------------------------------------------------------------------------------------
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
        bundled = bundled_model_path()
        entries = [model_entry(bundled, "bundled")] if bundled is not None else []
        entries += [model_entry(p, "yours") for p in user_model_paths(self._settings)]
        self.entries = entries
        active = self._active_path()
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(entries))
        bold = QFont()
        bold.setBold(True)
        for row, entry in enumerate(entries):
            is_active = same_file(entry.path, active)
            cells = ("● active" if is_active else "", entry.name, entry.source, entry.data,
                     "" if entry.updates is None else f"{entry.updates:,}", entry.augment,
                     _percent(entry.valid_error), entry.created)
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
