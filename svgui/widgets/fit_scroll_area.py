"""A scroll area that fills its viewport with its widget, and scrolls only below the widget's minimum size.

``QScrollArea.setWidgetResizable(True)`` sizes a widget whose layout has word-wrapped labels to their
*preferred* height for the width (heightForWidth), so a dock holding the augmentation preview would
scroll even when the preview's minimum fits. Here the widget gets the viewport's size, never less
than its minimum size hint.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


class FitScrollArea(QScrollArea):
    def __init__(self, widget: QWidget, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidget(widget)
        widget.installEventFilter(self)  # its minimum changes with its layout (e.g. the preview's orientation)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.fit()
        return super().eventFilter(watched, event)

    def fit(self) -> None:
        widget = self.widget()
        minimum, viewport = widget.minimumSizeHint().expandedTo(widget.minimumSize()), self.viewport().size()
        widget.resize(max(viewport.width(), minimum.width()), max(viewport.height(), minimum.height()))
