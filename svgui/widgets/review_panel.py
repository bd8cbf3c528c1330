"""The Review panel: the open file's review spans, most unsure first, and which are done.

It only shows what the review controller gives it (``set_spans``, ``set_hint``) and says what the
user picked (``spanActivated``: a click or Enter on a row); the window's Mark Reviewed action sits
on its button, so the button shows the action's key and state.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QPalette
from PySide6.QtWidgets import QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QToolButton, QVBoxLayout, QWidget

from engine.review import ReviewSpan
from svgui.widgets.tables import make_read_only

COLUMNS = ("Time", "Length", "Reason", "p", "\u2713")
COLUMN_TIPS = ("Where the span starts (m:ss.s)", "How long it is", "Why it needs a look (the most pressing reason)",
               "The mean smoothed voice probability over the span", "Reviewed")
DONE_TEXT = "\u2713"
REASON_TIPS = {
    "disagreement": "The ground truth and the model's regions differ here",
    "flicker": "The model's decision changes and changes back within a moment",
    "unsure": "The smoothed probability stays close to the threshold",
    "boundary": "A voice boundary nobody has confirmed yet",
}


def format_time(time_s: float) -> str:
    """m:ss.s ('1:05.3'); the panel lists songs, which run for minutes."""
    minutes, seconds = divmod(max(time_s, 0.0), 60.0)
    return f"{int(minutes)}:{seconds:04.1f}"


class ReviewPanel(QWidget):
    """A table of review spans (time, length, reason, mean probability, done) and Mark Reviewed."""

    spanActivated = Signal(int)   # row = index into the spans given to ``set_spans``

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._summary = QLabel()
        self._summary.setWordWrap(True)
        self._table = make_read_only(QTableWidget(0, len(COLUMNS)))
        self._table.setHorizontalHeaderLabels(COLUMNS)
        for column, tip in enumerate(COLUMN_TIPS):
            self._table.horizontalHeaderItem(column).setToolTip(tip)
        self._table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self._table.setToolTip("Click a span or press Enter to go there (N / Shift+N: next / previous)")
        header = self._table.horizontalHeader()
        header.setMinimumSectionSize(24)
        for column in range(len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Reason"), QHeaderView.ResizeMode.Stretch)
        self._hint = QLabel()
        self._hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._hint.setWordWrap(True)
        self._mark = QToolButton()
        self._mark.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._summary)
        layout.addWidget(self._table, 1)
        layout.addWidget(self._hint, 1)
        layout.addWidget(self._mark, 0, Qt.AlignmentFlag.AlignLeft)
        self._table.clicked.connect(lambda index: self.spanActivated.emit(index.row()))
        self._table.activated.connect(lambda index: self.spanActivated.emit(index.row()))
        self._mark.hide()
        self.set_hint("Open a file to review it")

    def set_mark_action(self, action: QAction) -> None:
        """The window's Mark Reviewed action, on the panel's button (its text and key show)."""
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setIconText(f"{action.text().replace('&', '')} ({keys})" if keys else action.text().replace("&", ""))
        self._mark.setDefaultAction(action)
        self._mark.show()
        self.set_current(None)

    def set_hint(self, text: str) -> None:
        """Show ``text`` instead of the table (no file, no predictions yet)."""
        self._hint.setText(text)
        self._hint.show()
        self._table.hide()
        self._table.setRowCount(0)
        self._summary.setText("")

    def set_spans(self, spans: list[ReviewSpan], done: list[bool], *, duration_s: float) -> None:
        """List ``spans`` in the order given; rows whose ``done`` is True show as reviewed."""
        self._hint.hide()
        self._table.show()
        self._table.setRowCount(len(spans))
        grey = self.palette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        for row, (span, is_done) in enumerate(zip(spans, done)):
            texts = (format_time(span.start_s), f"{span.duration_s:.1f} s", span.reason,
                     f"{span.mean_probability:.2f}", DONE_TEXT if is_done else "")
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                item.setToolTip("\n".join(f"{r}: {REASON_TIPS[r]}" for r in span.reasons)
                                + f"\n{span.start_s:.2f}\u2013{span.end_s:.2f} s, unsureness {span.unsureness:.2f}")
                if column != COLUMNS.index("Reason"):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if is_done:
                    item.setForeground(grey)
                self._table.setItem(row, column, item)
        n_done = sum(done)
        covered_s = sum(s.duration_s for s in spans)
        share = f", {covered_s / duration_s:.0%} of the file" if duration_s > 0 else ""
        self._summary.setText(f"{len(spans)} span{'s' if len(spans) != 1 else ''} to review{share}; "
                              f"{n_done} reviewed. Most unsure first."
                              if spans else "Nothing to review: the model is sure everywhere.")

    def set_current(self, row: int | None) -> None:
        """Select ``row`` (the chosen span); Mark Reviewed is available only while a span is chosen."""
        action = self._mark.defaultAction()
        if action is not None:
            action.setEnabled(row is not None)
        if row is None:
            self._table.clearSelection()
            return
        self._table.selectRow(row)
        self._table.scrollToItem(self._table.item(row, 0))

    # ---- for tests and tools --------------------------------------------------------------------
    def hint_text(self) -> str:
        return self._hint.text() if self._hint.isVisibleTo(self) else ""

    def summary_text(self) -> str:
        return self._summary.text()

    def row_texts(self) -> list[tuple[str, ...]]:
        return [tuple(self._table.item(r, c).text() for c in range(len(COLUMNS))) for r in range(self._table.rowCount())]

    def current_row(self) -> int | None:
        rows = self._table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    @property
    def table(self) -> QTableWidget:
        return self._table
