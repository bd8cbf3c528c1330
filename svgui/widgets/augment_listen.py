"""The preview's play buttons: the original excerpt, and an audio approximation of the augmented one.

Rendering (librosa's phase vocoder, a second on first use) runs in a worker; the WAV goes to a
temporary folder and plays in the preview's own Player, so the open song's player keeps its place.
Without an audio output the buttons are disabled and say why.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QWidget

from engine.config import AugmentConfig
from svgui.augment_audio import render_excerpt_wav, rendered_parts
from svgui.augment_sources import PreviewSource
from svgui.playback import Player
from svgui.workers import Worker, WorkerRegistry


class ListenButtons(QWidget):
    """Emits ``playRequested(augmented)`` from its buttons; ``message`` says what is playing or failed."""

    playRequested = Signal(bool)
    message = Signal(str)

    def __init__(self, workers: WorkerRegistry, player: Player | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._workers = workers
        self.player = player or Player(self)
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._renders = 0
        self.original = QPushButton("▶ Original excerpt")
        self.augmented = QPushButton("▶ Augmented (audio approximation)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for button, augmented in ((self.original, False), (self.augmented, True)):
            button.setEnabled(self.player.available)
            button.setToolTip(self.player.unavailable_reason or "")
            button.clicked.connect(lambda _=False, a=augmented: self.playRequested.emit(a))
            layout.addWidget(button)
        if self.player.available:
            self.augmented.setToolTip("An approximation: pitch shift and time stretch with librosa, loudness and "
                                      "filter as gains, mixing as a weighted sum; dropout and noise are not audible")

    def play(self, source: PreviewSource, samples, centre: int, *, config: AugmentConfig | None = None,
             seed: int = 0) -> Worker | None:
        """Render the excerpt at ``centre`` (augmented when ``config`` is given) in a worker, then play it."""
        if not self.player.available:
            return None
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="svgui-preview-")
        self._renders += 1
        preview = source.preview(centre, config, seed) if config is not None else None
        name = f"{'augmented' if config is not None else 'original'}-{self._renders}.wav"
        worker = Worker(render_excerpt_wav, self._tmp.name, name, samples, centre, features=source.features,
                        draw=preview.draw if preview else None, config=config,
                        partner_frame=preview.partner_frame if preview else None)
        worker.finished.connect(self._play_file)
        worker.failed.connect(self._render_failed)  # a bound method runs in the GUI thread, a lambda would not
        if config is not None:
            shown, left_out = rendered_parts(config)
            self.message.emit("Playing an audio approximation (" + (", ".join(shown) or "no audible change") +
                              (f"; {', '.join(left_out)} not audible" if left_out else "") + ")")
        else:
            self.message.emit("Playing the original excerpt")
        return self._workers.start(worker)

    def _render_failed(self, exc: Exception) -> None:
        self.message.emit(f"Could not render the audio: {exc}")

    def _play_file(self, path: Path) -> None:
        self.player.set_source(path)
        self.player.play(0.0)
