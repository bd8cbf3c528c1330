"""The toolbar's decision threshold: a number box bound to ``document.threshold``.

It and the dashed line on the probability curve edit the same value (``document.set_threshold``),
and each follows ``thresholdChanged``, so whichever the user moves, the other shows it.
"""

from __future__ import annotations

from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from svgui.document import Document

STEP = 0.01
TOOLTIP = ("Decision threshold on the smoothed voice probability: frames above it are predicted voice. "
           "The dashed line on the probability curve moves with it; Model ▸ Reset Threshold goes back to "
           "the model's.")


class ThresholdBox(QWidget):
    """'Threshold [0.50]'; Up/Down or the wheel step by 0.01."""

    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self._document = document
        label = QLabel("Threshold")
        self.spin = QDoubleSpinBox(minimum=0.0, maximum=1.0, decimals=2, singleStep=STEP)
        self.spin.setKeyboardTracking(False)  # typing "0.35" sets 0.35 once, not 0.3 first
        self.spin.setAccessibleName("Decision threshold")
        for widget in (self, label, self.spin):
            widget.setToolTip(TOOLTIP)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(label)
        layout.addWidget(self.spin)
        self._show(document.threshold)
        self.spin.valueChanged.connect(self._edited)
        document.thresholdChanged.connect(self._show)

    def value(self) -> float:
        return self.spin.value()

    def _edited(self, value: float) -> None:
        self._document.set_threshold(value)

    def _show(self, threshold: float) -> None:
        # A dragged line gives 0.5371…: show it rounded, without writing the rounded value back.
        self.spin.blockSignals(True)
        self.spin.setValue(threshold)
        self.spin.blockSignals(False)
