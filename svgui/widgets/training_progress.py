"""The right side of the training window: status line, progress bar, times, live curves, log, result.

Records arrive once per update, but ``refresh`` draws at most every REFRESH_MS (bar, times) and
PLOT_REFRESH_MS (curves, a redraw costs ~20 ms), so a fast network never floods the GUI thread.
The run's clock leaves pauses out of the speed, the elapsed and the remaining time.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QProgressBar, QVBoxLayout, QWidget

from engine.train import TrainProgress
from svgui.widgets.training_device import format_duration
from svgui.widgets.training_plots import TrainingPlots

REFRESH_MS = 100        # progress bar, times
PLOT_REFRESH_MS = 500   # the curves


class TrainingProgressView(QWidget):
    """What one run is doing; the training window feeds it records and asks it to refresh."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.first: TrainProgress | None = None   # this run's first record (the speed is measured from it)
        self.last: TrainProgress | None = None
        self.count = 0                            # records received in this run
        self._paused_since: float | None = None
        self._paused_total = 0.0
        self._dirty = False
        self._plots_drawn_at = -math.inf

        self.status = QLabel("Choose the training data and press Start Training.")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setFormat("%v / %m updates")
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.times = QLabel(" ")
        self.plots = TrainingPlots()
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(5000)
        self.log.setPlaceholderText("The log of the run appears here.")
        self.log.setMinimumHeight(90)
        self.result_label = QLabel()
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result_label.setStyleSheet("QLabel { background: #eef6ee; border: 1px solid #9c9; padding: 6px; }")
        self.result_label.hide()
        self.hint = hint = QLabel("The main window stays usable while training runs; closing this window keeps "
                                  "training in the background (Model ▸ Train… shows it again).")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #666;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status)
        layout.addWidget(self.bar)
        layout.addWidget(self.times)
        layout.addWidget(self.plots, 3)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.result_label)
        layout.addWidget(hint)

    def begin(self, total_updates: int, *, resumed_at: int | None) -> None:
        """A new run: empty log and counters; the curves start over, or go on from a checkpoint."""
        if resumed_at is None:
            self.plots.clear()
        else:
            self.plots.truncate(resumed_at)
        self.log.clear()
        self.result_label.hide()
        self.first = self.last = None
        self.count, self._paused_total, self._paused_since = 0, 0.0, None
        self.bar.setRange(0, total_updates)
        self.bar.setValue(0)
        self.bar.setFormat(f"0 / {total_updates:,} updates")

    def add(self, record: TrainProgress) -> None:
        self.count += 1
        if self.first is None:
            self.first = record
        self.last = record
        self.plots.append(record)
        if record.validation is not None:
            self._plots_drawn_at = -math.inf  # a new validation point: draw it at the next tick
        self._dirty = True

    def log_line(self, text: str) -> None:
        self.log.appendPlainText(f"{datetime.now():%H:%M:%S}  {text}")

    def show_result(self, html: str) -> None:
        self.result_label.setText(html)
        self.result_label.show()

    # ---- the clock --------------------------------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        if paused:
            self._paused_since = time.perf_counter()
        elif self._paused_since is not None:
            self._paused_total += time.perf_counter() - self._paused_since
            self._paused_since = None
        self._dirty = True

    def paused_s(self) -> float:
        return self._paused_total + (time.perf_counter() - self._paused_since if self._paused_since else 0.0)

    def seconds_per_update(self) -> float:
        """Measured over this run, pauses left out; nan before two updates."""
        first, last = self.first, self.last
        if first is None or last is None or last.update <= first.update:
            return math.nan
        return max(last.elapsed_s - first.elapsed_s - self.paused_s(), 1e-9) / (last.update - first.update)

    # ---- drawing ----------------------------------------------------------------------------------
    def refresh(self, *, force: bool = False) -> bool:
        """Draw what changed (the curves at most every PLOT_REFRESH_MS; everything with ``force``);
        True if the bar and times were drawn."""
        now = time.perf_counter()
        if (force or now - self._plots_drawn_at >= PLOT_REFRESH_MS / 1000) and self.plots.refresh():
            self._plots_drawn_at = now
        if not (self._dirty or force):
            return False
        self._dirty = False
        p = self.last
        if p is None:
            return False
        self.bar.setValue(p.update)
        self.bar.setFormat(f"{p.update:,} / {p.total_updates:,} updates")
        per_update = self.seconds_per_update()
        remaining = per_update * (p.total_updates - p.update)
        rate = f"{1 / per_update:.2f} updates/s" if math.isfinite(per_update) else "measuring speed…"
        left = "done" if p.finished else f"remaining ≈ {format_duration(remaining)}"
        self.times.setText(f"elapsed {format_duration(p.elapsed_s - self.paused_s())} · {left} · {rate} · "
                           f"loss {p.loss:.4f} · learning rate {p.learning_rate:.3g}")
        return True
