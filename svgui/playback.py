"""Audio playback of the open file (Qt Multimedia), with play-selection, loop and speed.

Without an audio output (a server, a CI machine) or without Qt Multimedia the player is
*unavailable*: ``available`` is False, ``unavailable_reason`` says why in a sentence the window
can show next to the disabled play actions, and every method is a harmless no-op.

A QTimer polls the position while playing: it drives a smooth cursor (``positionChanged``) and
stops or loops at the end of a play range (``range_step`` decides, a pure function).
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, QUrl, Signal

MIN_SPEED, MAX_SPEED = 0.5, 2.0
POLL_INTERVAL_MS = 20
END_TOLERANCE_S = 0.005  # stop this close to the range end: polling cannot hit it exactly
MIN_RANGE_S = 0.01
NO_AUDIO_ENV = "SVGUI_NO_AUDIO"  # set to 1 to force the unavailable path (tests, remote sessions)

PLAY, SEEK, STOP = "play", "seek", "stop"


def clamp_speed(rate: float) -> float:
    """Playback rate limited to [0.5, 2] (1 when not a number)."""
    try:
        rate = float(rate)
    except (TypeError, ValueError):
        return 1.0
    if rate != rate:  # NaN
        return 1.0
    return min(max(rate, MIN_SPEED), MAX_SPEED)


def normalize_range(start_s: float, end_s: float, duration_s: float | None = None) -> tuple[float, float] | None:
    """(start, end) sorted and clipped to [0, duration]; None when shorter than 10 ms."""
    start_s, end_s = sorted((float(start_s), float(end_s)))
    start_s = max(0.0, start_s)
    if duration_s is not None and duration_s > 0:
        end_s = min(end_s, duration_s)
    if end_s - start_s < MIN_RANGE_S:
        return None
    return start_s, end_s


def range_step(position_s: float, start_s: float, end_s: float, loop: bool) -> tuple[str, float]:
    """What playback of [start_s, end_s) does at ``position_s``.

    Returns ``("play", position_s)`` to keep going, ``("seek", start_s)`` to jump back when
    looping, or ``("stop", end_s)`` to stop with the cursor on the range end.
    """
    if position_s < end_s - END_TOLERANCE_S:
        return PLAY, position_s
    return (SEEK, start_s) if loop else (STOP, end_s)


def probe_audio() -> str:
    """Why playback cannot work here, or "" when an audio output exists."""
    if os.environ.get(NO_AUDIO_ENV, "") not in ("", "0"):
        return f"Playback is switched off (environment variable {NO_AUDIO_ENV} is set)."
    try:
        from PySide6.QtMultimedia import QMediaDevices
    except ImportError as exc:
        return f"Playback needs Qt Multimedia (PySide6-Addons), which could not be loaded: {exc}"
    try:
        outputs = QMediaDevices.audioOutputs()
    except Exception as exc:  # noqa: BLE001 - a broken multimedia backend must not stop the app
        return f"Qt Multimedia could not list audio devices: {exc}"
    if not outputs:
        return "No audio output device was found, so playback is disabled."
    return ""


class Player(QObject):
    """Plays one audio file; positions are in seconds.

    ``backend`` (tests only) replaces the QMediaPlayer: an object with its methods setSource,
    play, pause, stop, setPosition, position, duration, setPlaybackRate and playbackState.
    """

    positionChanged = Signal(float)
    stateChanged = Signal(bool)
    error = Signal(str)

    def __init__(self, parent: QObject | None = None, *, backend=None):
        super().__init__(parent)
        self._media = None
        self._audio_output = None
        self._source: Path | None = None
        self._range: tuple[float, float] | None = None
        self._loop = False
        self._speed = 1.0
        self._playing = False
        self._last_position_s = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.timeout.connect(self._poll)
        self.unavailable_reason = "" if backend is not None else probe_audio()
        if backend is not None:
            self._media = backend
        elif not self.unavailable_reason:
            self._create_media_player()
        if self._media is not None:
            self._connect_backend()

    # ---- set-up -------------------------------------------------------------------------------
    def _create_media_player(self) -> None:
        try:
            from PySide6.QtMultimedia import QAudioOutput, QMediaPlayer
            self._audio_output = QAudioOutput(self)
            self._media = QMediaPlayer(self)
            self._media.setAudioOutput(self._audio_output)
        except Exception as exc:  # noqa: BLE001
            self._media = None
            self.unavailable_reason = f"The audio player could not be created: {exc}"

    def _connect_backend(self) -> None:
        for name, slot in (("playbackStateChanged", self._on_backend_state),
                           ("errorOccurred", self._on_backend_error),
                           ("mediaStatusChanged", self._on_media_status)):
            signal = getattr(self._media, name, None)
            if signal is not None:
                signal.connect(slot)

    @property
    def available(self) -> bool:
        return self._media is not None

    # ---- state --------------------------------------------------------------------------------
    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def is_playing(self) -> bool:
        return self._playing

    @property
    def loop(self) -> bool:
        return self._loop

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def current_range(self) -> tuple[float, float] | None:
        """The range being played, None when playing to the end of the file."""
        return self._range

    def position_s(self) -> float:
        if self._media is None:
            return self._last_position_s
        return self._media.position() / 1000.0

    def duration_s(self) -> float:
        if self._media is None:
            return 0.0
        return max(0.0, self._media.duration() / 1000.0)

    # ---- commands -----------------------------------------------------------------------------
    def set_source(self, path: str | os.PathLike | None) -> None:
        """Load a file (None: unload). Stops playback; a missing file emits ``error``."""
        self.stop()
        self._range = None
        self._last_position_s = 0.0
        self._source = None if path is None else Path(path)
        if self._media is None:
            return
        if self._source is not None and not self._source.is_file():
            self.error.emit(f"Cannot play {self._source}: the file does not exist.")
            self._source = None
        self._media.setSource(QUrl() if self._source is None else QUrl.fromLocalFile(str(self._source.resolve())))
        self._media.setPlaybackRate(self._speed)

    def play(self, start_s: float | None = None) -> None:
        """Play from ``start_s`` (or the current position) to the end of the file."""
        self._range = None
        if self._media is None or self._source is None:
            return
        if start_s is None and self.duration_s() and self.position_s() >= self.duration_s() - END_TOLERANCE_S:
            start_s = 0.0  # at the end: start over, as Sonic Visualiser does
        if start_s is not None:
            self.seek(start_s)
        self._start()

    def play_range(self, start_s: float, end_s: float, loop: bool = False) -> None:
        """Play [start_s, end_s); stop at its end, or jump back to its start when ``loop``."""
        if self._media is None or self._source is None:
            return
        span = normalize_range(start_s, end_s, self.duration_s() or None)
        if span is None:
            return
        self._range, self._loop = span, bool(loop)
        self.seek(span[0])
        self._start()

    def stop(self) -> None:
        """Pause where the cursor is (the position is kept, as in Sonic Visualiser)."""
        self._timer.stop()
        if self._media is not None and self._playing:
            self._media.pause()
        self._set_playing(False)

    def toggle(self) -> None:
        if self._playing:
            self.stop()
        else:
            self.play()

    def seek(self, position_s: float) -> None:
        position_s = max(0.0, float(position_s))
        self._last_position_s = position_s
        if self._media is not None:
            self._media.setPosition(int(round(position_s * 1000)))
        self.positionChanged.emit(position_s)

    def set_speed(self, rate: float) -> float:
        """Playback rate, clamped to [0.5, 2]; returns the rate used."""
        self._speed = clamp_speed(rate)
        if self._media is not None:
            self._media.setPlaybackRate(self._speed)
        return self._speed

    def set_loop(self, loop: bool) -> None:
        """Loop the play range (or the whole file when playing without a range)."""
        self._loop = bool(loop)

    # ---- internals ----------------------------------------------------------------------------
    def _start(self) -> None:
        self._media.setPlaybackRate(self._speed)
        self._media.play()
        self._set_playing(True)
        self._timer.start()

    def _set_playing(self, playing: bool) -> None:
        if playing != self._playing:
            self._playing = playing
            self.stateChanged.emit(playing)

    def _poll(self) -> None:
        if self._media is None:
            return
        position_s = self.position_s()
        if self._range is not None:
            action, target_s = range_step(position_s, *self._range, self._loop)
            if action == SEEK:
                self.seek(target_s)
                return
            if action == STOP:
                self.stop()
                self.seek(target_s)
                return
        if position_s != self._last_position_s:
            self._last_position_s = position_s
            self.positionChanged.emit(position_s)

    def _on_backend_state(self, state) -> None:
        from_backend = getattr(state, "name", str(state))
        if from_backend != "PlayingState" and self._playing:
            self._timer.stop()
            self._set_playing(False)

    def _on_media_status(self, status) -> None:
        if getattr(status, "name", str(status)) != "EndOfMedia":
            return
        if self._loop:
            self.seek(self._range[0] if self._range else 0.0)
            self._start()
        else:
            self._timer.stop()
            self._set_playing(False)
            self.positionChanged.emit(self.duration_s())

    def _on_backend_error(self, _error, text: str = "") -> None:
        name = self._source.name if self._source is not None else "audio"
        self.error.emit(f"Cannot play {name}: {text or 'the audio could not be decoded'}")
