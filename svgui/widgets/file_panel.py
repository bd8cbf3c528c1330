"""The file browser: audio files of a folder (or a Jamendo corpus by split), with their labels.

A row per audio file, sorted by name (numbers in natural order); the second column says whether
a label file lies beside it. A Jamendo corpus root shows its train/valid/test splits as branches;
songs whose audio is missing stay listed (greyed, not openable) so a labels-only corpus still
shows what is there. Problems with the folder appear as text in the panel, never as exceptions.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QPalette, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QLineEdit, QTreeView, QVBoxLayout, QWidget

from engine.annotation_state import STATUSES, FileState, file_states
from engine.audio import is_audio_path
from engine.datasets import JAMENDO_SPLITS, format_names, is_jamendo_layout, label_file_for, load_jamendo, scan_folder
from engine.errors import EngineError

PATH_ROLE = Qt.ItemDataRole.UserRole + 1      # Path of the audio file (None for split branches and missing audio)
LABEL_ROLE = Qt.ItemDataRole.UserRole + 2     # Path of the label file or None
SORT_ROLE = Qt.ItemDataRole.UserRole + 3
NAME_COLUMN, LABEL_COLUMN, STATE_COLUMN = 0, 1, 2
HAS_LABELS_TEXT, NO_LABELS_TEXT = "\u2713 {suffix}", "\u2013 none"
STATE_TEXTS = {"none": "no labels", "pre-annotated": "pre-annotated", "edited": "edited", "reviewed": "reviewed"}
STATE_TIPS = {"none": "No labels yet", "pre-annotated": "The model's predictions, accepted and saved, not yet corrected",
              "edited": "Labels saved after editing by hand (or made outside svgui)",
              "reviewed": "Every review span checked, or the file marked reviewed"}


def natural_key(name: str) -> str:
    """Case-insensitive sort key with numbers in numeric order ('song 2' before 'song 10')."""
    return re.sub(r"\d+", lambda m: m.group().zfill(12), name.casefold())


class FilePanel(QWidget):
    """Lists the audio files of a folder; double-click or Enter opens one (``fileActivated``)."""

    fileActivated = Signal(object)  # Path of the audio file

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.folder: Path | None = None
        self.is_jamendo = False
        self._current: Path | None = None
        self._items: dict[str, QStandardItem] = {}  # normalized audio path -> name item

        self._title = QLabel("No folder open")
        self._title.setToolTip("The folder whose audio files are listed")
        font = self._title.font()
        font.setBold(True)
        self._title.setFont(font)
        self._totals = QLabel()
        self._totals.setWordWrap(True)
        self._totals.setToolTip("How many files are in each annotation state, and the review spans done "
                                "(from svgui-annotation.json beside the audio)")
        self._filter = QLineEdit()
        self._filter.setPlaceholderText("Filter by name\u2026")
        self._filter.setClearButtonEnabled(True)
        self._filter.setToolTip("Show only files whose name contains this text (case-insensitive)")
        self._model = QStandardItemModel(0, 3, self)
        self._model.setHorizontalHeaderLabels(["Name", "Labels", "State"])
        self._proxy = QSortFilterProxyModel(self)
        self._proxy.setSourceModel(self._model)
        self._proxy.setSortRole(SORT_ROLE)
        self._proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self._proxy.setFilterKeyColumn(NAME_COLUMN)
        self._proxy.setRecursiveFilteringEnabled(True)
        self._view = QTreeView()
        self._view.setModel(self._proxy)
        self._view.setRootIsDecorated(False)
        self._view.setUniformRowHeights(True)
        self._view.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # song names differ at the end as often as not
        self._view.setAlternatingRowColors(True)
        self._view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._view.setSortingEnabled(True)
        self._view.sortByColumn(NAME_COLUMN, Qt.SortOrder.AscendingOrder)
        self._view.setToolTip("Double-click or press Enter to open a file")
        header = self._view.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(NAME_COLUMN, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(LABEL_COLUMN, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(STATE_COLUMN, QHeaderView.ResizeMode.ResizeToContents)
        self._status = QLabel()
        self._status.setWordWrap(True)
        self._status.setTextFormat(Qt.TextFormat.PlainText)
        self._status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._title)
        layout.addWidget(self._totals)
        layout.addWidget(self._filter)
        layout.addWidget(self._view, 1)
        layout.addWidget(self._status)

        self._filter.textChanged.connect(self._apply_filter)
        self._view.activated.connect(self._on_activated)
        self._set_status("Open a folder of audio files (File \u25b8 Open Folder) or drop files here.")

    # ---- filling ------------------------------------------------------------------------------
    def set_folder(self, path: str | os.PathLike) -> bool:
        """List a labelled folder or a Jamendo corpus root; False (with a message shown) on error."""
        folder = Path(path).expanduser()
        self._clear()
        self.folder = folder
        self._title.setText(folder.name or str(folder))
        self._title.setToolTip(str(folder))
        try:
            if is_jamendo_layout(folder):
                self._fill_jamendo(folder)
            else:
                self._fill_folder(folder)
        except (EngineError, OSError) as exc:
            self._clear()
            self._set_status(f"Cannot list {folder}: {exc}" if isinstance(exc, OSError) else str(exc), error=True)
            return False
        return True

    def set_files(self, paths) -> None:
        """List the given audio files (e.g. dropped on the window); other files are ignored."""
        self._clear()
        self.folder = None
        files = sorted({Path(p) for p in paths if is_audio_path(p)}, key=lambda p: natural_key(p.name))
        self._title.setText("Files")
        self._title.setToolTip("")
        for audio in files:
            self._model.appendRow(self._file_row(audio.name, audio, label_file_for(audio)))
        self._finish(self._summary(files, [p for p in files if label_file_for(p)]))

    def _fill_folder(self, folder: Path) -> None:
        tracks, report = scan_folder(folder, require_labels=False)
        tracks.sort(key=lambda t: natural_key(t.name))
        for track in tracks:
            self._model.appendRow(self._file_row(track.audio_path.name, track.audio_path, track.label_path))
        notes = [self._summary([t.audio_path for t in tracks], [t for t in tracks if t.label_path])]
        if report.orphan_labels:
            notes.append(f"Label files without audio ({len(report.orphan_labels)}): "
                         f"{format_names([p.name for p in report.orphan_labels])}")
        if report.duplicate_audio:
            notes.append(f"Skipped (same name, another format): "
                         f"{format_names([p.name for p in report.duplicate_audio])}")
        if not tracks:
            notes = [f"No audio files in this folder ({', '.join(('.wav', '.flac', '.ogg', '.mp3'))} \u2026)."
                     + (" " + notes[1] if len(notes) > 1 else "")]
        self._finish("\n".join(notes), warn=not tracks)

    def _fill_jamendo(self, root: Path) -> None:
        corpus = load_jamendo(root, require_audio=False)
        self.is_jamendo = True
        self._view.setRootIsDecorated(True)
        label_dir = root / "labels"
        for order, split in enumerate(JAMENDO_SPLITS):
            found = {t.name: t for t in corpus.splits[split]}
            branch = QStandardItem(f"{split} ({len(found)} of {len(corpus.listed[split])} with audio)")
            branch.setData(str(order), SORT_ROLE)
            branch.setSelectable(False)
            font = branch.font()
            font.setBold(True)
            branch.setFont(font)
            side = QStandardItem("")
            side.setData(str(order), SORT_ROLE)
            side.setSelectable(False)
            for name in corpus.listed[split]:
                track = found.get(name)
                if track is not None:
                    branch.appendRow(self._file_row(name, track.audio_path, track.label_path))
                else:
                    branch.appendRow(self._missing_row(name, label_dir / f"{name}.lab"))
            self._model.appendRow([branch, side])
        self._view.expandAll()
        n_found = sum(len(t) for t in corpus.splits.values())
        n_listed = sum(len(n) for n in corpus.listed.values())
        if n_found == 0:
            text = (f"Jamendo corpus, labels only: the audio of all {n_listed} songs is missing. "
                    "Put the audio files (<song name>.ogg, .mp3, \u2026) in this folder or a subfolder "
                    "to open them.")
        else:
            text = f"Jamendo corpus: {n_found} of {n_listed} songs have audio."
            if n_found < n_listed:
                text += f" The other {n_listed - n_found} are greyed out (audio missing)."
        if corpus.unlisted_labels:
            text += f"\nLabels in no split list ({len(corpus.unlisted_labels)}): {format_names(corpus.unlisted_labels)}"
        self._finish(text, warn=n_found == 0)

    def _file_row(self, name: str, audio: Path, label: Path | None) -> list[QStandardItem]:
        item = QStandardItem(name)
        item.setData(audio, PATH_ROLE)
        item.setData(label, LABEL_ROLE)
        item.setData(natural_key(name), SORT_ROLE)
        item.setToolTip(str(audio))
        self._items[self._key(audio)] = item
        state = QStandardItem("")
        state.setData("9", SORT_ROLE)
        row = [item, QStandardItem(), state]
        self._show_label(item, label, cell=row[LABEL_COLUMN])
        return row

    def _show_label(self, item: QStandardItem, label: Path | None, *, cell: QStandardItem | None = None) -> None:
        """The Labels cell of ``item``'s row: the label file's suffix, or none."""
        item.setData(label, LABEL_ROLE)
        if cell is None:
            cell = self._model.itemFromIndex(item.index().siblingAtColumn(LABEL_COLUMN))
        cell.setText(HAS_LABELS_TEXT.format(suffix=label.suffix) if label else NO_LABELS_TEXT)
        cell.setData("0" if label else "1", SORT_ROLE)
        cell.setToolTip(f"Labels: {label}" if label else
                        "No label file (.lab or .txt of the same name) beside this audio file")
        if label is None:
            cell.setForeground(self.palette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text))
        else:
            cell.setData(None, Qt.ItemDataRole.ForegroundRole)

    def _missing_row(self, name: str, label: Path) -> list[QStandardItem]:
        grey = self.palette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        item = QStandardItem(name)
        item.setData(None, PATH_ROLE)
        item.setData(label, LABEL_ROLE)
        item.setData(natural_key(name), SORT_ROLE)
        item.setForeground(grey)
        font = item.font()
        font.setItalic(True)
        item.setFont(font)
        item.setToolTip(f"Audio missing: no {name}.<audio extension> in the corpus folder or its subfolders; "
                        f"labels: {label}")
        status = QStandardItem("audio missing")
        status.setData("2", SORT_ROLE)
        status.setForeground(grey)
        status.setToolTip(item.toolTip())
        return [item, status, QStandardItem("")]

    def _summary(self, files: list, labelled: list) -> str:
        n = len(files)
        return f"{n} audio file{'s' if n != 1 else ''}, {len(labelled)} with labels."

    def refresh_state(self, _path: str | os.PathLike | None = None) -> None:
        """Show the recorded state of every file again (after ``_path``'s changed)."""
        self.refresh_states()

    def refresh_states(self) -> None:
        """Each file's annotation state (the sidecar beside the audio) in the State column, totals above."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            states = file_states([item.data(PATH_ROLE) for item in self._items.values()])
        totals = dict.fromkeys(STATUSES, 0)
        n_spans = n_reviewed = 0
        for item in self._items.values():
            state = states[Path(item.data(PATH_ROLE))]
            if item.data(LABEL_ROLE) is None:  # a label file saved since the folder was listed
                self._show_label(item, label_file_for(Path(item.data(PATH_ROLE))))
            cell = self._model.itemFromIndex(item.index().siblingAtColumn(STATE_COLUMN))
            cell.setText(self.state_text(state))
            cell.setToolTip(STATE_TIPS[state.status] + (f"; {state.n_reviewed} of {state.n_spans} review spans done"
                                                        if state.n_spans else ""))
            cell.setData(str(STATUSES.index(state.status)), SORT_ROLE)
            totals[state.status] += 1
            if state.n_spans is not None:
                n_spans, n_reviewed = n_spans + state.n_spans, n_reviewed + min(state.n_reviewed, state.n_spans)
        parts = [f"{totals[s]} {STATE_TEXTS[s]}" for s in reversed(STATUSES) if totals[s]]
        spans = f"; review spans done: {n_reviewed} of {n_spans}" if n_spans else ""
        self._totals.setText(", ".join(parts) + spans if self._items else "")
        if caught:
            self._set_status("\n".join(str(w.message) for w in caught), error=True)

    @staticmethod
    def state_text(state: FileState) -> str:
        """'edited · 3/7': the state and, once counted, the review spans done."""
        text = STATE_TEXTS[state.status]
        if state.n_spans:
            text += f" \u00b7 {min(state.n_reviewed, state.n_spans)}/{state.n_spans}"
        return text

    def state_texts(self) -> dict[str, str]:
        """The State column by file name (for tests and tools)."""
        return {item.text(): self._model.itemFromIndex(item.index().siblingAtColumn(STATE_COLUMN)).text()
                for item in self._items.values()}

    def totals_text(self) -> str:
        return self._totals.text()

    def _finish(self, text: str, *, warn: bool = False) -> None:
        self._proxy.sort(self._view.header().sortIndicatorSection(), self._view.header().sortIndicatorOrder())
        if self._current is not None:
            self.mark_current(self._current)
        self._set_status(text, error=warn)
        self.refresh_states()

    def _clear(self) -> None:
        self._model.removeRows(0, self._model.rowCount())
        self._items.clear()
        self.is_jamendo = False
        self._view.setRootIsDecorated(False)

    def _set_status(self, text: str, *, error: bool = False) -> None:
        self._status.setText(text)
        self._status.setProperty("error", error)
        # A warning colour that works on light and dark palettes: the palette's link colour is
        # tuned for contrast; a plain red is not (and fails for red-green colour blindness).
        self._status.setStyleSheet("color: #b35806;" if error else "")

    # ---- queries and marking ------------------------------------------------------------------
    @staticmethod
    def _key(path: Path) -> str:
        return os.path.normcase(os.path.abspath(path))

    def status_text(self) -> str:
        return self._status.text()

    def files(self, *, visible_only: bool = False) -> list[Path]:
        """Openable audio files: all in name order, or the visible ones in display order."""
        out: list[Path] = []

        def walk(model, parent: QModelIndex) -> None:
            for row in range(model.rowCount(parent)):
                index = model.index(row, NAME_COLUMN, parent)
                path = index.data(PATH_ROLE)
                if path is not None:
                    out.append(path)
                walk(model, index)

        walk(self._proxy if visible_only else self._model, QModelIndex())
        return out

    def row_texts(self) -> list[tuple[str, str]]:
        """(name, labels column) of every visible file row, in display order (for tests and tools)."""
        rows: list[tuple[str, str]] = []

        def walk(parent: QModelIndex) -> None:
            for row in range(self._proxy.rowCount(parent)):
                index = self._proxy.index(row, NAME_COLUMN, parent)
                if self._proxy.rowCount(index):
                    walk(index)
                else:
                    rows.append((index.data(), self._proxy.index(row, LABEL_COLUMN, parent).data()))

        walk(QModelIndex())
        return rows

    def adjacent_file(self, path: str | os.PathLike | None, step: int = 1) -> Path | None:
        """The visible file ``step`` rows after (before, if negative) ``path``; None past the ends."""
        files = self.files(visible_only=True)
        if not files:
            return None
        keys = [self._key(p) for p in files]
        if path is None or self._key(Path(path)) not in keys:
            return files[0] if step > 0 else files[-1]
        i = keys.index(self._key(Path(path))) + step
        return files[i] if 0 <= i < len(files) else None

    def mark_current(self, path: str | os.PathLike | None) -> bool:
        """Show ``path`` as the open file (bold, selected, scrolled to); False if it is not listed."""
        for item in self._items.values():
            if item.font().bold():
                font = item.font()
                font.setBold(False)
                item.setFont(font)
        self._current = None if path is None else Path(path)
        item = None if path is None else self._items.get(self._key(Path(path)))
        if item is None:
            return False
        font = item.font()
        font.setBold(True)
        item.setFont(font)
        index = self._proxy.mapFromSource(item.index())
        if index.isValid():
            self._view.setCurrentIndex(index)
            self._view.scrollTo(index)
        return True

    def set_filter(self, text: str) -> None:
        self._filter.setText(text)

    def activate_index(self, index: QModelIndex) -> None:
        """What a double-click or Enter on a row does (public so the window and tests can call it)."""
        self._on_activated(index)

    # ---- slots --------------------------------------------------------------------------------
    def _apply_filter(self, text: str) -> None:
        self._proxy.setFilterFixedString(text.strip())
        if self.is_jamendo:
            self._view.expandAll()

    def _on_activated(self, index: QModelIndex) -> None:
        path = self._proxy.index(index.row(), NAME_COLUMN, index.parent()).data(PATH_ROLE)
        if path is not None:
            self.fileActivated.emit(Path(path))
        elif index.isValid() and not self._proxy.hasChildren(index.siblingAtColumn(NAME_COLUMN)):
            self._set_status(f"{index.siblingAtColumn(NAME_COLUMN).data()}: the audio file is missing, "
                             "so it cannot be opened (its labels are listed for reference).", error=True)

    @property
    def view(self) -> QTreeView:
        return self._view

    @property
    def filter_edit(self) -> QLineEdit:
        return self._filter
