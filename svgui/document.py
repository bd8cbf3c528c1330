"""The open file's state: audio, spectrogram, annotations, predictions; every change is a signal.

Widgets take the document in ``__init__`` and connect to its signals; they never talk to each
other. Annotation edits go through the QUndoStack (one command per edit, storing the interval
lists before and after), so every edit is undoable and the stack's clean state is the saved file.
"""

from __future__ import annotations

import math
import os
import warnings
import weakref
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from engine.config import EvalConfig, FeatureConfig
from engine.errors import LabelFormatError, OverwriteRefused
from engine.evaluate import Counts, count_errors, smooth_probabilities
from engine.label_file import LabelFile, read_label_file, write_label_text
from engine.labels import (
    Interval,
    intervals_to_targets,
    is_voiced,
    label_format_of,
    merge_intervals,
    read_label_text,
    targets_to_intervals,
)
from svgui import autosave as autosaves

AUTOSAVE_SUFFIX = autosaves.AUTOSAVE_SUFFIX
SNAP_TOLERANCE_S = 0.05
EDIT_TOLERANCE_S = 1e-9  # float fuzz of dragged edges: closer than this is touching / empty


def normalize_intervals(intervals: list[Interval], duration_s: float | None = None) -> list[Interval]:
    """Sorted, merged, clipped to [0, duration] and non-empty (the shape annotations always have)."""
    clipped = [(max(0.0, min(a, b)), max(a, b) if duration_s is None else min(max(a, b), duration_s))
               for a, b in intervals]
    return merge_intervals(clipped, tolerance_s=EDIT_TOLERANCE_S)


class SetAnnotations(QUndoCommand):
    """Replace the annotation list; undo restores the previous one.

    The command holds its document weakly. The stack (a child of the document) owns the command,
    so a strong reference would make a cycle through the document's Python wrapper. If Python's
    garbage collector then freed the document, ``~QUndoStack`` deleted commands whose wrappers it
    had already torn down, and the process crashed (seen as segfaults at the end of test runs).
    """

    def __init__(self, document: "Document", before: list[Interval], after: list[Interval], text: str):
        super().__init__(text)
        self._document = weakref.ref(document)
        self._before, self._after = before, after

    def redo(self) -> None:
        self._apply(self._after)

    def undo(self) -> None:
        self._apply(self._before)

    def _apply(self, intervals: list[Interval]) -> None:
        document = self._document()
        if document is not None:  # gone: the stack is being destroyed with it
            document._apply_annotations(intervals)


class Document(QObject):
    """One open audio file with its ground truth and the model's predictions."""

    loaded = Signal()
    annotationsChanged = Signal()
    predictionsChanged = Signal()
    thresholdChanged = Signal(float)
    dirtyChanged = Signal(bool)
    messages = Signal(str)
    saved = Signal(object)  # the label file Path, after a successful save (the review state follows it)

    def __init__(self, parent: QObject | None = None, *, features: FeatureConfig = FeatureConfig(),
                 eval_config: EvalConfig = EvalConfig()):
        super().__init__(parent)
        self.features, self.eval_config = features, eval_config
        self.audio_path: Path | None = None
        self.label_path: Path | None = None
        # The lines of the label file the annotations came from (or were last saved to): a save
        # rewrites only edited regions and keeps texts and lines the app does not interpret.
        self.label_file: LabelFile | None = None
        self._unreadable: dict[str, str] = {}  # label files that failed to load -> why; never saved over
        self.samples = np.zeros(0, dtype=np.float32)
        self.log_mel = np.zeros((0, features.n_mels), dtype=np.float32)
        self.duration_s = 0.0
        self.annotations: list[Interval] = []
        self.probabilities: np.ndarray | None = None
        self.smoothed: np.ndarray | None = None
        self.model_name = ""
        self.threshold = 0.5
        self.undo_stack = QUndoStack(self)
        # A bound slot (not a lambda): Qt drops it when the document is destroyed first.
        self.undo_stack.cleanChanged.connect(self._clean_changed)

    def _clean_changed(self, clean: bool) -> None:
        self.dirtyChanged.emit(not clean)

    # ---- loading ---------------------------------------------------------------------------
    @property
    def frames_per_second(self) -> float:
        return self.features.frames_per_second

    @property
    def n_frames(self) -> int:
        return len(self.log_mel)

    @property
    def is_open(self) -> bool:
        return self.audio_path is not None

    @property
    def is_dirty(self) -> bool:
        return not self.undo_stack.isClean()

    def set_audio(self, path: Path, samples: np.ndarray, log_mel: np.ndarray) -> None:
        """Show a newly decoded file (from a loader worker); clears annotations and predictions."""
        self.audio_path = Path(path)
        self.samples, self.log_mel = samples, log_mel
        self.duration_s = len(samples) / self.features.sample_rate
        self.label_path, self.label_file, self._unreadable = None, None, {}
        self.annotations, self.probabilities, self.smoothed, self.model_name = [], None, None, ""
        self.undo_stack.clear()
        self.loaded.emit()
        self.annotationsChanged.emit()
        self.predictionsChanged.emit()

    def load_annotations(self, path: Path) -> list[str]:
        """Read a label file as the (clean) ground truth; returns the warnings it produced.

        A file that cannot be read at all raises LabelFormatError and is remembered: ``save``
        never writes over it. Lines that do not parse are kept (a warning) and saved back as they are.
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                label_file = read_label_file(path)
            except LabelFormatError as exc:
                self._unreadable[_file_key(path)] = exc.reason
                raise
            intervals = label_file.voiced_intervals(duration_s=self.duration_s, source=str(path))
        self.label_path, self.label_file = Path(path), label_file
        self.undo_stack.clear()
        self._apply_annotations(intervals)
        return [str(w.message) for w in caught]

    # ---- annotation edits (all undoable) ------------------------------------------------------
    def set_annotations(self, intervals: list[Interval], text: str) -> None:
        after = normalize_intervals(intervals, self.duration_s)
        if after != self.annotations:
            self.undo_stack.push(SetAnnotations(self, list(self.annotations), after, text))

    def _apply_annotations(self, intervals: list[Interval]) -> None:
        self.annotations = list(intervals)
        self.annotationsChanged.emit()

    def add_region(self, start_s: float, end_s: float) -> None:
        self.set_annotations(self.annotations + [(start_s, end_s)], "Add region")

    def remove_region(self, index: int) -> None:
        self.set_annotations([r for i, r in enumerate(self.annotations) if i != index], "Delete region")

    def move_region(self, index: int, start_s: float, end_s: float) -> None:
        regions = list(self.annotations)
        regions[index] = (start_s, end_s)
        self.set_annotations(regions, "Move region")

    def merge_regions(self, first: int, last: int) -> None:
        """One region from the start of ``first`` to the end of ``last`` (gaps between become voice)."""
        lo, hi = sorted((first, last))
        regions = self.annotations[:lo] + [(self.annotations[lo][0], self.annotations[hi][1])] + self.annotations[hi + 1:]
        self.set_annotations(regions, "Merge regions")

    def split_region(self, time_s: float, gap_s: float = 0.0) -> bool:
        """Split the region under ``time_s`` in two; False if no region is there."""
        for i, (a, b) in enumerate(self.annotations):
            if a < time_s < b:
                t = self.snap(time_s)
                parts = [(a, t - gap_s / 2), (t + gap_s / 2, b)]
                # keep the two halves apart: normalize_intervals would merge touching ones
                regions = self.annotations[:i] + parts + self.annotations[i + 1:]
                after = [r for r in regions if r[1] - r[0] > EDIT_TOLERANCE_S]
                self.undo_stack.push(SetAnnotations(self, list(self.annotations), after, "Split region"))
                return True
        return False

    def accept_predictions(self) -> None:
        """Pre-annotation: replace the ground truth with the predicted regions (undoable)."""
        self.set_annotations(self.predicted_intervals(), "Accept predictions as annotations")

    def region_at(self, time_s: float) -> int | None:
        for i, (a, b) in enumerate(self.annotations):
            if a <= time_s < b:
                return i
        return None

    def label_text_at(self, time_s: float) -> str:
        """The texts of the label file's voice lines at ``time_s`` inside a region ('verse 1'), else ''.

        From the file as loaded or last saved, so a region drawn since has no text yet."""
        if self.label_file is None or self.region_at(time_s) is None:
            return ""
        texts = [s.label.strip() for s in self.label_file.segments
                 if s.start_s <= time_s < s.end_s and is_voiced(s.label, self.label_file.label_format)]
        return ", ".join(dict.fromkeys(t for t in texts if t))

    def snap(self, time_s: float, *, exclude: int | None = None, tolerance_s: float = SNAP_TOLERANCE_S) -> float:
        """Snap to a neighbouring region edge within ``tolerance_s``, else to the 1/70 s frame grid."""
        edges = [e for i, r in enumerate(self.annotations) if i != exclude for e in r]
        if edges:
            nearest = min(edges, key=lambda e: abs(e - time_s))
            if abs(nearest - time_s) <= tolerance_s:
                return nearest
        snapped = round(time_s * self.frames_per_second) / self.frames_per_second
        return min(max(snapped, 0.0), self.duration_s)

    # ---- predictions ------------------------------------------------------------------------
    def set_predictions(self, probabilities: np.ndarray | None, model_name: str = "", threshold: float | None = None) -> None:
        self.probabilities = probabilities
        self.smoothed = None if probabilities is None else smooth_probabilities(
            probabilities, median_frames=self.eval_config.median_frames)
        self.model_name = model_name
        if threshold is not None:
            self.threshold = float(threshold)
            self.thresholdChanged.emit(self.threshold)
        self.predictionsChanged.emit()

    def set_threshold(self, threshold: float) -> None:
        threshold = min(max(float(threshold), 0.0), 1.0)
        if not math.isclose(threshold, self.threshold, abs_tol=1e-9):
            self.threshold = threshold
            self.thresholdChanged.emit(threshold)

    def predicted_targets(self) -> np.ndarray | None:
        return None if self.smoothed is None else self.smoothed > self.threshold

    def predicted_intervals(self) -> list[Interval]:
        targets = self.predicted_targets()
        return [] if targets is None else targets_to_intervals(targets, self.frames_per_second)

    def truth_targets(self) -> np.ndarray:
        return intervals_to_targets(self.annotations, len(self.smoothed) if self.smoothed is not None else self.n_frames,
                                    self.frames_per_second)

    def error_intervals(self) -> tuple[list[Interval], list[Interval]]:
        """False positives and false negatives of the predictions against the ground truth."""
        predicted = self.predicted_targets()
        if predicted is None:
            return [], []
        truth = self.truth_targets()
        fps = self.frames_per_second
        return (targets_to_intervals(predicted & ~truth, fps), targets_to_intervals(~predicted & truth, fps))

    def metrics(self) -> Counts | None:
        predicted = self.predicted_targets()
        return None if predicted is None else count_errors(predicted, self.truth_targets())

    # ---- saving -------------------------------------------------------------------------------
    def default_label_path(self) -> Path | None:
        if self.label_path is not None:
            return self.label_path
        return None if self.audio_path is None else self.audio_path.with_suffix(".lab")

    def _label_file_for(self, path: Path) -> LabelFile:
        """The loaded file's lines when saving in its format, else an empty file of ``path``'s format."""
        if self.label_file is not None and self.label_file.label_format == label_format_of(path):
            return self.label_file
        return LabelFile(label_format_of(path))

    def annotation_text(self, path: Path) -> str:
        return self._label_file_for(path).render(self.annotations, duration_s=self.duration_s)

    def check_save_allowed(self, path: Path) -> None:
        """Refuse (OverwriteRefused) to write over a label file that failed to load or that the app
        did not open: Save never destroys what it cannot show; Save As (an explicit choice) may."""
        reason = self._unreadable.get(_file_key(path))
        if reason is not None:
            raise OverwriteRefused([path], f"{path} could not be read ({reason}), so Save does not write "
                                           "over it; use Save As to choose another file")
        opened = self.label_path is not None and _file_key(self.label_path) == _file_key(path)
        if not opened and (path.exists() or path.is_symlink()):
            raise OverwriteRefused([path], f"{path} already exists and was not opened with this file, so "
                                           "Save does not write over it; use Save As")

    def save(self, path: Path | None = None) -> Path:
        """Atomically write the annotations (.lab or Audacity .txt); marks the document clean.

        Without ``path`` (Save) it writes the default label file, after ``check_save_allowed``; a
        ``path`` (Save As) is the user's explicit choice. A symbolic link is written through.
        """
        if path is None:
            path = self.default_label_path()
            self.check_save_allowed(path)
        path = Path(path)
        base = self._label_file_for(path)
        text = base.render(self.annotations, duration_s=self.duration_s)
        write_label_text(path, text, bom=base.bom)
        old_base = self.default_label_path()
        self.label_path, self.label_file = path, LabelFile.parse(text, path=path, bom=base.bom)
        self._unreadable.pop(_file_key(path), None)
        self.undo_stack.setClean()
        self.discard_autosave(old_base)
        self.discard_autosave(path)
        self.saved.emit(path)
        return path

    def autosave_path(self) -> Path:
        """The autosave beside the label file (``autosave`` may fall back to the user data folder)."""
        return autosaves.side_path(self._autosave_base())

    def _autosave_base(self) -> Path:
        return self.default_label_path() or Path("untitled.lab")

    def autosave(self) -> Path | None:
        """Write unsaved edits to a side file for recovery after a crash; returns where (None: nothing to do).

        The text is what Save would write (label texts and uninterpreted lines included), beside the
        label file or, if that folder is not writable, in the user data folder.
        """
        if not self.is_open or not self.is_dirty:
            return None
        return autosaves.write_autosave(self._autosave_base(), self.annotation_text(self._autosave_base()))

    def find_autosave(self) -> Path | None:
        return autosaves.find_autosave(self._autosave_base()) if self.is_open else None

    def discard_autosave(self, base: Path | None = None) -> None:
        """Delete the autosave(s) of ``base`` (default: this file's): its edits were saved or discarded."""
        base = base or (self._autosave_base() if self.is_open else None)
        if base is not None:
            autosaves.remove_autosaves(base)

    def recover_autosave(self) -> bool:
        """Load the autosave's annotations as an undoable edit (the file stays dirty)."""
        path = self.find_autosave()
        if path is None:
            return False
        base = self._autosave_base()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the label file's own warnings were shown when it loaded
            recovered = LabelFile.parse(read_label_text(path), path=base)
            intervals = recovered.voiced_intervals(duration_s=self.duration_s, source=str(path))
        self.set_annotations(intervals, "Recover autosaved annotations")
        return True


def _file_key(path: Path) -> str:
    """One name per file, whatever the spelling or a symbolic link on the way."""
    return os.path.normcase(os.path.realpath(path))
