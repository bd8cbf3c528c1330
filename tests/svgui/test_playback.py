"""Player: the unavailable path (no audio device in CI) and the range/loop logic without a device."""

import pytest
from PySide6.QtCore import QObject, Signal

from svgui import playback
from svgui.playback import PLAY, SEEK, STOP, Player, clamp_speed, normalize_range, probe_audio, range_step
from tests.synth import write_song


@pytest.fixture
def no_audio(monkeypatch):
    monkeypatch.setenv(playback.NO_AUDIO_ENV, "1")


def test_unavailable_player_has_a_reason_and_every_call_is_a_no_op(no_audio, qtbot, tmp_path):
    song = write_song(tmp_path / "song.wav", 1.0, [(0.2, 0.6)])
    player = Player()
    assert player.available is False
    assert playback.NO_AUDIO_ENV in player.unavailable_reason
    with qtbot.assertNotEmitted(player.stateChanged), qtbot.assertNotEmitted(player.error):
        player.set_source(song)
        player.play()
        player.play(0.5)
        player.play_range(0.1, 0.4, loop=True)
        player.toggle()
        player.stop()
        player.set_loop(True)
    assert player.is_playing is False
    assert player.set_speed(3.0) == 2.0 and player.speed == 2.0
    assert player.position_s() == 0.0
    assert player.duration_s() == 0.0
    player.seek(0.25)  # the cursor still moves (the window shows it), nothing plays
    assert player.position_s() == 0.25


def test_ci_machine_without_audio_outputs_reports_it(qapp, monkeypatch):
    monkeypatch.delenv(playback.NO_AUDIO_ENV, raising=False)
    from PySide6.QtMultimedia import QMediaDevices
    reason = probe_audio()
    if QMediaDevices.audioOutputs():
        assert reason == ""
        assert Player().available
    else:
        assert reason == "No audio output device was found, so playback is disabled."
        player = Player()
        assert not player.available and player.unavailable_reason == reason


def test_missing_qt_multimedia_is_a_reason_not_a_crash(qapp, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "PySide6.QtMultimedia":
            raise ImportError("No module named 'PySide6.QtMultimedia'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delenv(playback.NO_AUDIO_ENV, raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    player = Player()
    assert not player.available
    assert "Qt Multimedia" in player.unavailable_reason


@pytest.mark.parametrize("position, loop, expected", [
    (1.0, False, (PLAY, 1.0)),
    (1.99, False, (PLAY, 1.99)),
    (1.999, False, (STOP, 2.0)),   # within the end tolerance
    (2.3, False, (STOP, 2.0)),     # polled past the end
    (2.3, True, (SEEK, 0.5)),
    (0.2, True, (PLAY, 0.2)),      # before the range (user seeked): keep playing
])
def test_range_step(position, loop, expected):
    assert range_step(position, 0.5, 2.0, loop) == expected


def test_normalize_range_and_speed():
    assert normalize_range(3.0, 1.0) == (1.0, 3.0)
    assert normalize_range(-1.0, 2.0, 10.0) == (0.0, 2.0)
    assert normalize_range(8.0, 12.0, 10.0) == (8.0, 10.0)
    assert normalize_range(1.0, 1.005) is None
    assert normalize_range(11.0, 12.0, 10.0) is None
    assert [clamp_speed(r) for r in (0.1, 0.75, 1.0, 5, "x", float("nan"))] == [0.5, 0.75, 1.0, 2.0, 1.0, 1.0]


class FakeMediaPlayer(QObject):
    """The QMediaPlayer methods Player uses, with a position the test moves by hand."""

    playbackStateChanged = Signal(object)

    def __init__(self):
        super().__init__()
        self.position_ms, self.duration_ms, self.rate, self.playing, self.source = 0, 10_000, 1.0, False, None

    def setSource(self, url): self.source = url
    def setPosition(self, ms): self.position_ms = ms
    def position(self): return self.position_ms
    def duration(self): return self.duration_ms
    def setPlaybackRate(self, rate): self.rate = rate
    def play(self): self.playing = True
    def pause(self): self.playing = False
    def stop(self): self.playing = False


@pytest.fixture
def fake_player(qtbot, tmp_path):
    song = write_song(tmp_path / "song.wav", 1.0, [(0.2, 0.6)])
    backend = FakeMediaPlayer()
    player = Player(backend=backend)
    player.set_source(song)
    return player, backend


def test_play_range_stops_at_its_end(fake_player, qtbot):
    player, backend = fake_player
    with qtbot.waitSignal(player.stateChanged) as started:
        player.play_range(4.0, 2.0)  # reversed ends are sorted
    assert started.args == [True] and backend.playing and backend.position_ms == 2000
    assert player.current_range == (2.0, 4.0)
    backend.position_ms = 3000
    with qtbot.waitSignal(player.positionChanged) as moved:
        pass
    assert moved.args == [3.0]
    backend.position_ms = 4010  # playback ran past the end between two polls
    with qtbot.waitSignal(player.stateChanged) as stopped:
        pass
    assert stopped.args == [False]
    assert not backend.playing and backend.position_ms == 4000


def test_play_range_loops_back_to_its_start(fake_player, qtbot):
    player, backend = fake_player
    player.set_speed(0.5)
    player.play_range(1.0, 1.5, loop=True)
    assert backend.rate == 0.5
    backend.position_ms = 1600
    qtbot.waitUntil(lambda: backend.position_ms == 1000, timeout=1000)
    assert player.is_playing and backend.playing
    player.toggle()
    assert not player.is_playing and not backend.playing
    player.play(7.0)  # plain play forgets the range
    assert player.current_range is None and backend.position_ms == 7000


def test_missing_file_is_an_error_signal(qtbot, tmp_path):
    player = Player(backend=FakeMediaPlayer())
    with qtbot.waitSignal(player.error) as error:
        player.set_source(tmp_path / "gone.wav")
    assert "gone.wav" in error.args[0] and "does not exist" in error.args[0]
    player.play()  # nothing loaded: no-op
    assert not player.is_playing
