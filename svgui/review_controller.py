"""Review ▸ the open file's review spans, N / Shift+N through them, Mark Reviewed, and file states.

A QObject the main window composes. The spans come from ``engine.review.review_spans`` on the
Document's probabilities, threshold and annotations, recomputed (rate-limited: a threshold drag
emits many changes) whenever one of them changes. Decisions go to the folder's annotation-state
sidecar (``engine.annotation_state``): a span is done when reviewed spans cover most of it, so a
span that moved a little after an edit stays done. A save records the file's state: its
annotations equal to the predicted regions -> "pre-annotated", otherwise "edited", and "reviewed"
once every span is done (or by Mark File Reviewed).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from engine import annotation_state as states
from engine.errors import EngineError
from engine.review import ReviewConfig, ReviewSpan, review_spans
from svgui.document import Document

DONE_COVERAGE = 0.8       # a span is done when reviewed spans cover this share of it
REFRESH_DELAY_MS = 80     # coalesces the changes of a threshold drag into one recomputation
SAME_REGIONS_S = 1e-3     # annotations this close to the predicted regions are the predictions


class ReviewController(QObject):
    """The spans of the open file (most unsure first), the one chosen, and what is reviewed."""

    spansChanged = Signal()           # spans, done or the hint changed: redraw the panel
    currentChanged = Signal(object)   # index into ``spans`` or None
    spanChosen = Signal(float, float)  # go there: select [start_s, end_s), loop it if playing
    stateChanged = Signal(object)     # the audio Path whose recorded state changed
    message = Signal(str, int)

    def __init__(self, parent: QObject, document: Document, *, position_s: Callable[[], float] = lambda: 0.0,
                 predict_keys: str = "Ctrl+R", config: ReviewConfig = ReviewConfig()):
        super().__init__(parent)
        self.document, self.config = document, config
        self._position_s = position_s
        self._predict_keys = predict_keys
        self.spans: list[ReviewSpan] = []
        self.done: list[bool] = []
        self.current: int | None = None
        self.hint = "Open a file to review it"
        self._reviewed_s: tuple[tuple[float, float], ...] = ()
        self._timer = QTimer(self, singleShot=True, interval=REFRESH_DELAY_MS, timeout=self.refresh_now)
        document.loaded.connect(self._on_loaded)
        for signal in (document.predictionsChanged, document.thresholdChanged, document.annotationsChanged):
            signal.connect(self._schedule)
        document.saved.connect(self.record_save)

    # ---- computing the spans -----------------------------------------------------------------
    def _schedule(self, *_args) -> None:
        self._timer.start()

    def _on_loaded(self) -> None:
        self._reviewed_s = self._read_state().reviewed_spans_s if self.document.is_open else ()
        self.current = None
        self.refresh_now()

    def refresh_now(self) -> None:
        self._timer.stop()
        doc = self.document
        old = self.spans[self.current] if self.current is not None else None
        if not doc.is_open:
            self._set([], "Open a file to review it")
        elif doc.probabilities is None:
            self._set([], f"Predict first ({self._predict_keys})")
        else:
            # Without labels there is no ground truth to disagree with, only the model's own doubt.
            truth = doc.annotations if doc.label_path is not None or doc.annotations else None
            spans = review_spans(doc.probabilities, doc.frames_per_second, doc.threshold, truth=truth,
                                 config=self.config)
            self._set(spans, "")
        # keep the chosen span chosen if it is still there (the one overlapping it most)
        self.current = None if old is None else self._overlapping(old.start_s, old.end_s)
        self.currentChanged.emit(self.current)

    def _set(self, spans: list[ReviewSpan], hint: str) -> None:
        self.spans, self.hint = spans, hint
        self.done = [states.covered_fraction(s.start_s, s.end_s, self._reviewed_s) >= DONE_COVERAGE for s in spans]
        self.spansChanged.emit()

    def _overlapping(self, start_s: float, end_s: float) -> int | None:
        best, best_overlap = None, 0.0
        for i, span in enumerate(self.spans):
            overlap = min(end_s, span.end_s) - max(start_s, span.start_s)
            if overlap > best_overlap:
                best, best_overlap = i, overlap
        return best

    @property
    def n_done(self) -> int:
        return sum(self.done)

    # ---- navigation ---------------------------------------------------------------------------
    def choose(self, index: int) -> None:
        """Make span ``index`` (into ``spans``) the current one and go there."""
        if self._timer.isActive():
            self.refresh_now()
        if not 0 <= index < len(self.spans):
            return
        self.current = index
        self.currentChanged.emit(index)
        span = self.spans[index]
        self.spanChosen.emit(span.start_s, span.end_s)

    def step(self, direction: int = 1) -> None:
        """N (+1) / Shift+N (-1): the next / previous span in time from the current one (or the
        cursor), wrapping around; spans already reviewed are passed over while any is left."""
        if self._timer.isActive():
            self.refresh_now()
        if not self.spans:
            self.message.emit(self.hint or "Nothing to review in this file", 4000)
            return
        candidates = [i for i in range(len(self.spans)) if not self.done[i]] or list(range(len(self.spans)))
        candidates.sort(key=lambda i: self.spans[i].start_s)
        if self.current is not None:
            here, strict = self.spans[self.current].start_s, True
        else:
            here, strict = self._position_s(), False
        starts = [self.spans[i].start_s for i in candidates]
        if direction > 0:
            after = [i for i, t in zip(candidates, starts) if t > here or (not strict and t >= here)]
            target = after[0] if after else candidates[0]
        else:
            before = [i for i, t in zip(candidates, starts) if t < here]
            target = before[-1] if before else candidates[-1]
        self.choose(target)

    # ---- decisions ----------------------------------------------------------------------------
    def mark_reviewed(self) -> None:
        """Record the current span as reviewed in the sidecar; the file is reviewed once all are."""
        if self.current is None:
            self.message.emit("Choose a span to mark first (N, or click one in the Review panel)", 4000)
            return
        span = self.spans[self.current]
        path = self.document.audio_path
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                state = states.add_reviewed_span(path, span.start_s, span.end_s)
                self._reviewed_s = state.reviewed_spans_s
                self._set(self.spans, self.hint)
                status = "reviewed" if all(self.done) else None
                states.update_file_state(path, status=status, n_spans=len(self.spans), n_reviewed=self.n_done)
        except EngineError as exc:
            self.message.emit(f"cannot record the review: {exc}", 10_000)
            return
        self._tell(caught)
        self.currentChanged.emit(self.current)
        self.stateChanged.emit(path)
        left = len(self.spans) - self.n_done
        self.message.emit(f"reviewed; {left} span{'s' if left != 1 else ''} left" if left
                          else "every span reviewed: the file is marked reviewed", 4000)

    def mark_file_reviewed(self) -> None:
        """Record the whole file as reviewed, whatever its spans."""
        if not self.document.is_open:
            return
        self._update(status="reviewed", n_spans=len(self.spans), n_reviewed=self.n_done)
        self.message.emit(f"{self.document.audio_path.name} marked reviewed", 4000)

    def record_save(self, _label_path: Path | None = None) -> None:
        """After a save: pre-annotated (the predictions as they were), edited, or reviewed."""
        if self._timer.isActive():
            self.refresh_now()
        doc = self.document
        predicted = doc.predicted_intervals() if doc.probabilities is not None else None
        if self.spans and all(self.done):
            status = "reviewed"
        elif predicted is not None and _same_regions(doc.annotations, predicted):
            status = "pre-annotated"
        else:
            status = "edited"
        self._update(status=status, n_spans=len(self.spans), n_reviewed=self.n_done)

    def _update(self, **changes) -> None:
        path = self.document.audio_path
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                states.update_file_state(path, **changes)
        except EngineError as exc:
            self.message.emit(f"cannot record the annotation state: {exc}", 10_000)
            return
        self._tell(caught)
        self.stateChanged.emit(path)

    def _read_state(self) -> states.FileState:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            state = states.file_state(self.document.audio_path)
        self._tell(caught)
        return state

    def _tell(self, caught: list) -> None:
        if caught:
            self.message.emit("; ".join(str(w.message) for w in caught), 10_000)


def _same_regions(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    return len(a) == len(b) and all(abs(x0 - y0) <= SAME_REGIONS_S and abs(x1 - y1) <= SAME_REGIONS_S
                                    for (x0, x1), (y0, y1) in zip(a, b))
