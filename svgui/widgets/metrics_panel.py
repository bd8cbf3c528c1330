"""Scores of the open file's predictions against its ground truth, updated on every change.

Error, recall, specificity, precision and F1 in percent (frame-wise, after median smoothing and
the threshold, exactly ``engine.evaluate.count_errors``), the threshold, the model, and the
false-positive / false-negative frame counts. Without predictions or ground truth the panel says
so instead of showing zeros.
"""

from __future__ import annotations

import math

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QFrame, QLabel, QVBoxLayout, QWidget

from engine.evaluate import Counts
from svgui.document import Document

METRICS = (  # (key, row label, tooltip)
    ("error", "Error", "Fraction of frames where the prediction disagrees with the ground truth"),
    ("recall", "Recall", "Fraction of voice frames that were detected"),
    ("specificity", "Specificity", "Fraction of non-voice frames that were rejected"),
    ("precision", "Precision", "Fraction of frames predicted as voice that are voice"),
    ("f1", "F1", "Harmonic mean of precision and recall"),
)
NOT_AVAILABLE = "\u2014"  # em dash


def format_percent(value: float) -> str:
    """'12.3 %'; an undefined ratio (nan) is shown as a dash."""
    return NOT_AVAILABLE if value is None or math.isnan(value) else f"{100 * value:.1f} %"


def format_frames(frames: int, frames_per_second: float) -> str:
    return f"{frames} frames ({frames / frames_per_second:.1f} s)"


class MetricsPanel(QWidget):
    """Shows ``document.metrics()``; follows annotation, prediction and threshold changes."""

    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.counts: Counts | None = None
        self.state = "no file"

        self._state_label = QLabel()
        self._state_label.setWordWrap(True)
        self._state_label.setTextFormat(Qt.TextFormat.PlainText)
        font = self._state_label.font()
        font.setItalic(True)
        self._state_label.setFont(font)

        self._values: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(4)
        for key, text, tip in METRICS:
            self._add_row(form, key, text, tip, monospace=True)
        self._separator = QFrame()
        self._separator.setFrameShape(QFrame.Shape.HLine)
        self._separator.setFrameShadow(QFrame.Shadow.Sunken)
        form.addRow(self._separator)
        self._add_row(form, "fp", "False positives", "Frames predicted as voice where the ground truth has none",
                      monospace=True)
        self._add_row(form, "fn", "False negatives", "Voice frames of the ground truth the prediction missed",
                      monospace=True)
        self._add_row(form, "threshold", "Threshold",
                      "Frames whose smoothed probability is above this count as voice", monospace=True)
        self._add_row(form, "model", "Model", "The model that made the predictions")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(8)
        layout.addWidget(self._state_label)
        layout.addLayout(form)
        layout.addStretch(1)

        document.loaded.connect(self.refresh)
        document.annotationsChanged.connect(self.refresh)
        document.predictionsChanged.connect(self.refresh)
        document.thresholdChanged.connect(self.refresh)
        self.refresh()

    def _add_row(self, form: QFormLayout, key: str, text: str, tip: str, *, monospace: bool = False) -> None:
        name = QLabel(text)
        name.setToolTip(tip)
        value = QLabel(NOT_AVAILABLE)
        value.setToolTip(tip)
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        value.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if monospace:
            font = value.font()
            font.setStyleHint(font.StyleHint.Monospace)
            font.setFamilies(["DejaVu Sans Mono", "Menlo", "Consolas", "monospace"])
            value.setFont(font)
        else:
            value.setWordWrap(True)
        form.addRow(name, value)
        self._values[key] = value

    def has_ground_truth(self) -> bool:
        """Annotations exist, or a label file was loaded (an instrumental song has no regions)."""
        return bool(self.document.annotations) or self.document.label_path is not None

    def values(self) -> dict[str, str]:
        """The texts on show, by key (error, recall, ..., fp, fn, threshold, model)."""
        return {key: label.text() for key, label in self._values.items()}

    def state_text(self) -> str:
        return self._state_label.text()

    def show_partial(self, probabilities) -> None:
        """A first prediction still running (``probabilities``: the frames done; None: it ended)."""
        doc = self.document
        if probabilities is None or doc.probabilities is not None or not doc.is_open:
            self.refresh()
            return
        self.state = "predicting"
        done = len(probabilities) / max(doc.n_frames, 1)
        self._state_label.setText(f"Predicting: {format_percent(done)} of the file done. "
                                  "Scores follow once the whole file is done.")
        self._state_label.setVisible(True)

    def refresh(self, *_args) -> None:
        doc = self.document
        has_predictions = doc.probabilities is not None
        self._values["threshold"].setText(f"{doc.threshold:.3f}")
        self._values["model"].setText(doc.model_name or NOT_AVAILABLE)
        self.counts = None
        if not doc.is_open:
            self.state, message = "no file", "No file open."
        elif not has_predictions:
            self.state, message = "no predictions", ("No predictions yet: run the model on this file "
                                                     "to see its scores.")
        elif not self.has_ground_truth():
            self.state = "no ground truth"
            predicted = doc.predicted_targets()
            share = predicted.mean() if predicted.size else math.nan
            message = ("No ground truth: load a label file or annotate voice regions to score the "
                       f"predictions. Predicted voice: {format_percent(share)} of the file, "
                       f"{len(doc.predicted_intervals())} regions.")
        else:
            self.state, message = "scored", ""
            self.counts = doc.metrics()
        self._state_label.setText(message)
        self._state_label.setVisible(bool(message))
        counts = self.counts
        for key, _text, _tip in METRICS:
            self._values[key].setText(NOT_AVAILABLE if counts is None else format_percent(getattr(counts, key)))
        fps = doc.frames_per_second
        self._values["fp"].setText(NOT_AVAILABLE if counts is None else format_frames(counts.fp, fps))
        self._values["fn"].setText(NOT_AVAILABLE if counts is None else format_frames(counts.fn, fps))
        if counts is not None:
            self._values["error"].setToolTip(f"{counts.fp + counts.fn} of {counts.n_frames} frames wrong")
