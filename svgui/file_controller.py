"""File ▸ open, save, save as, import and export; the autosave timer and recovery; recent files.

A QObject the main window composes: it changes the Document and asks its questions with the
window as the dialogs' parent, and says what the window's views should do through signals.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QMenu, QWidget

from engine.audio import AUDIO_EXTENSIONS, is_audio_path
from engine.datasets import LABEL_SUFFIXES, label_file_for
from engine.errors import EngineError, OutputWriteError, OverwriteRefused
from svgui import settings as prefs
from svgui.dialogs.export_dialog import ExportDialog
from svgui.dialogs.messages import ask_recover_autosave, ask_save_changes, show_error
from svgui.document import Document
from svgui.tasks import DecodedAudio, decode_and_analyse
from svgui.workers import Worker, WorkerRegistry

AUTOSAVE_INTERVAL_MS = 30_000
AUDIO_FILTER = "Audio files (" + " ".join(f"*{e}" for e in AUDIO_EXTENSIONS) + ");;All files (*)"


class FileController(QObject):
    """Opens audio in a worker, reads and writes the annotations of the Document."""

    opened = Signal(object)         # Path: audio, labels and any recovered autosave are on the document
    openFailed = Signal(str)        # the reason a file could not be opened
    busyChanged = Signal(bool)
    folderOpened = Signal(object)   # Path, for the file panel
    taskText = Signal(str)          # for the status bar's task label ('' when done)
    message = Signal(str, int)      # a status bar message and how long it shows, in ms

    def __init__(self, window: QWidget, document: Document, settings: QSettings, workers: WorkerRegistry):
        super().__init__(window)
        self._window, self.document, self.settings, self.workers = window, document, settings, workers
        self._loading: Worker | None = None
        self._recent_menu: QMenu | None = None
        self._autosave_elsewhere_told: set[Path] = set()  # fallback autosaves the user was told about
        self.autosave_timer = QTimer(self, interval=AUTOSAVE_INTERVAL_MS, timeout=self.autosave)
        self.autosave_timer.start()

    # ---- opening ------------------------------------------------------------------------------
    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._window, "Open audio", prefs.last_folder(self.settings),
                                              AUDIO_FILTER)
        if path:
            self.open_file(Path(path))

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._window, "Open folder", prefs.last_folder(self.settings))
        if folder:
            self.open_folder(Path(folder))

    def open_folder(self, folder: Path) -> None:
        self.folderOpened.emit(folder)
        prefs.set_last_folder(self.settings, folder)

    def open_file(self, path: Path) -> None:
        """Decode and analyse in a worker; the window stays usable meanwhile."""
        path = Path(path)
        if not self.confirm_discard():
            return
        if self._loading is not None:
            self._loading.cancel()
        self.taskText.emit(f"opening {path.name}…")
        self.busyChanged.emit(True)
        worker = Worker(decode_and_analyse, path, self.document.features)
        worker.finished.connect(self._decoded)
        worker.failed.connect(self._open_failed)  # bound methods, not lambdas: Qt runs them in the GUI thread
        self._loading = self.workers.start(worker)

    def open_paths(self, paths: list[Path]) -> None:
        """Folders go to the file panel, the first audio file opens, a label file is imported."""
        for path in paths:
            if path.is_dir():
                self.open_folder(path)
        audio = [p for p in paths if p.is_file() and is_audio_path(p)]
        labels = [p for p in paths if p.suffix.lower() in LABEL_SUFFIXES]
        if audio:
            self.open_file(audio[0])
        elif labels and self.document.is_open:
            self.load_labels(labels[0])

    def _open_failed(self, exc: Exception) -> None:
        self._loading = None
        self.openFailed.emit(str(exc))
        self.taskText.emit("")
        self.busyChanged.emit(False)
        show_error(self._window, "Cannot open file", exc)

    def _decoded(self, decoded: DecodedAudio) -> None:
        self._loading = None
        self.taskText.emit("")
        self.document.set_audio(decoded.path, decoded.samples, decoded.log_mel)
        if decoded.warnings:
            show_error(self._window, "Audio decoded in part", "\n".join(decoded.warnings))
        label = label_file_for(decoded.path)
        if label is not None:
            self.load_labels(label)
        found = self.document.find_autosave()
        if found is not None and ask_recover_autosave(self._window, found, self.document.default_label_path().name):
            self.document.recover_autosave()
        prefs.add_recent_file(self.settings, decoded.path)
        self.refresh_recent()
        self.opened.emit(decoded.path)
        self.busyChanged.emit(False)

    # ---- labels -------------------------------------------------------------------------------
    def load_labels(self, path: Path) -> None:
        try:
            problems = self.document.load_annotations(path)
        except EngineError as exc:
            show_error(self._window, "Cannot read labels",
                       f"{exc}\nSave will not write over this file (Save As can).")
            return
        if problems:
            self.message.emit("; ".join(problems), 10_000)
        unparsed = self.document.label_file.unparsed
        if unparsed:  # lines we show nothing for: say so, they are easy to miss in the status bar
            more = f"\n({len(unparsed) - 1} more such lines.)" if len(unparsed) > 1 else ""
            show_error(self._window, "Label lines not understood", f"{unparsed[0]}{more}\nThese lines are kept "
                       "as they are and written back unchanged when you save.")

    def import_labels_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self._window, "Import labels", str(self.document.audio_path or ""),
                                              "Labels (*.lab *.txt);;All files (*)")
        if path:
            self.load_labels(Path(path))

    # ---- saving -------------------------------------------------------------------------------
    def save(self) -> bool:
        if not self.document.is_open:
            return False
        try:
            path = self.document.save()
        except OverwriteRefused as exc:
            show_error(self._window, "Not saved over", exc)
            return self.save_as()
        except OutputWriteError as exc:  # a read-only folder, a full disk: the edits need another place
            show_error(self._window, "Cannot save annotations", f"{exc}\nChoose another file to save them to.")
            return self.save_as()
        except EngineError as exc:
            show_error(self._window, "Cannot save annotations", exc)
            return False
        self.message.emit(f"saved {path}", 5000)
        return True

    def save_as(self) -> bool:
        start = str(self.document.default_label_path() or "")
        path, _ = QFileDialog.getSaveFileName(self._window, "Save annotations", start,
                                              "Jamendo labels (*.lab);;Audacity labels (*.txt)")
        if not path:
            return False
        try:
            self.document.save(Path(path))
        except EngineError as exc:
            show_error(self._window, "Cannot save annotations", exc)
            return False
        return True

    def export_dialog(self) -> None:
        if self.document.probabilities is None:
            show_error(self._window, "Nothing to export", "There are no predictions for this file yet.")
            return
        ExportDialog(self.document, self._window).exec()

    def autosave(self) -> None:
        try:
            path = self.document.autosave()
        except EngineError as exc:
            self.message.emit(f"autosave failed: {exc}", 10_000)
            return
        if path is None or path == self.document.autosave_path():
            return
        self.message.emit(f"the label folder is not writable: autosaved to {path}", 10_000)
        if path not in self._autosave_elsewhere_told:  # the message box once per file, the status bar each time
            self._autosave_elsewhere_told.add(path)
            show_error(self._window, "Autosave in your data folder",
                       f"The folder of {self.document.default_label_path()} is not writable, so unsaved edits are "
                       f"autosaved to\n{path}\nThey are offered for recovery when you open the file again.")

    def confirm_discard(self) -> bool:
        """True when the open file's edits are saved, or the user chose to discard them."""
        if not self.document.is_dirty:
            return True
        answer = ask_save_changes(self._window,
                                  self.document.audio_path.name if self.document.audio_path else "file")
        if answer == "discard":
            # discarded edits are not offered for recovery later, nor autosaved again meanwhile
            self.document.discard_autosave()
            self.document.undo_stack.setClean()
            return True
        return answer == "save" and self.save()

    # ---- recent files -------------------------------------------------------------------------
    def set_recent_menu(self, menu: QMenu) -> None:
        self._recent_menu = menu
        self.refresh_recent()

    def refresh_recent(self) -> None:
        menu = self._recent_menu
        if menu is None:
            return
        menu.clear()
        for path in prefs.recent_files(self.settings):
            menu.addAction(Path(path).name, lambda p=path: self.open_file(Path(p)))
        menu.setEnabled(bool(menu.actions()))
