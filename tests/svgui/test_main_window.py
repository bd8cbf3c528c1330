"""The main window end to end: open the demo, layers, editing with undo, save, autosave,
threshold, export, bad input, closing while work runs, shortcuts, --screenshot."""

import os
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog

from engine import fileio
from engine.checkpoint import VoiceModel, save_model
from engine.config import ModelConfig
from engine.errors import OutputWriteError
from engine.labels import read_voiced_intervals
from engine.resources import resource_dir
from svgui.dialogs import messages
from svgui.dialogs.export_dialog import export_document_predictions
from svgui.main_window import MainWindow
from tests.synth import write_song

DEMO = "jamendolyrics_Fantasma_-_Los_Rombos_5-35s"
TIMEOUT_MS = 60_000


@pytest.fixture
def demo(env):
    """A writable copy of the demo song and its labels."""
    folder = env / "demo"
    folder.mkdir()
    for suffix in (".flac", ".lab"):
        shutil.copy(resource_dir() / "demo" / f"{DEMO}{suffix}", folder / f"{DEMO}{suffix}")
    return folder / f"{DEMO}.flac"


@pytest.fixture
def model_path(env):
    model = VoiceModel.create(model_config=ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16)), seed=1)
    model.threshold = 0.5
    model.metadata = {"name": "tiny test model"}
    return save_model(env / "tiny.safetensors", model)


@pytest.fixture
def window(qtbot, env, model_path):
    win = MainWindow(model_path=model_path)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.document.undo_stack.setClean()
    win.workers.stop_all()


def open_and_wait(qtbot, window, path):
    with qtbot.waitSignals([window.fileShown, window.predictionsShown], timeout=TIMEOUT_MS):
        window.open_file(path)


def test_opening_the_demo_shows_spectrogram_labels_and_predictions(qtbot, window, demo):
    open_and_wait(qtbot, window, demo)
    doc = window.document
    assert doc.log_mel.shape[1] == 80 and doc.duration_s == pytest.approx(30.0, abs=0.05)
    assert doc.annotations == read_voiced_intervals(demo.with_suffix(".lab"))
    assert len(doc.annotations) == 3
    assert doc.probabilities is not None and len(doc.probabilities) == doc.n_frames
    assert doc.model_name == "tiny test model"
    for layer in window.spectrogram.LAYERS:
        assert window.spectrogram.is_layer_visible(layer)
    window.acts["layer_errors"].trigger()
    assert not window.spectrogram.is_layer_visible("errors")
    assert window.metrics.state == "scored"
    assert DEMO in window.windowTitle()


def test_edit_undo_save_reload_round_trip(qtbot, window, demo):
    open_and_wait(qtbot, window, demo)
    doc = window.document
    before = list(doc.annotations)
    window.spectrogram.draw_region(1.0, 2.0)
    assert len(doc.annotations) == 4 and window.isWindowModified()
    window.acts["undo"].trigger()
    assert doc.annotations == before
    window.acts["redo"].trigger()
    window.spectrogram.drag_region(0, 1.5, 2.5)
    assert doc.annotations[0] == pytest.approx((1.5, 2.5), abs=1 / 70)
    window.acts["save"].trigger()
    assert not window.isWindowModified()
    saved = demo.with_suffix(".lab").read_bytes()
    assert read_voiced_intervals(demo.with_suffix(".lab")) == doc.annotations
    open_and_wait(qtbot, window, demo)
    doc.save()
    assert demo.with_suffix(".lab").read_bytes() == saved


def test_autosave_and_recovery_after_a_crash(qtbot, window, demo, model_path):
    open_and_wait(qtbot, window, demo)
    window.spectrogram.draw_region(1.0, 2.0)
    edited = list(window.document.annotations)
    window.files.autosave()
    side = window.document.autosave_path()
    assert side.is_file()
    window.document.undo_stack.setClean()  # simulate the crash: the edits were never saved
    messages.answers["recover_autosave"] = True
    second = MainWindow(model_path=model_path)
    qtbot.addWidget(second)
    open_and_wait(qtbot, second, demo)
    assert second.document.annotations == edited and second.document.is_dirty
    second.document.undo_stack.setClean()
    second.workers.stop_all()


def test_threshold_drag_changes_predicted_regions_and_accept_predictions(qtbot, window, demo):
    open_and_wait(qtbot, window, demo)
    doc = window.document
    smoothed = doc.smoothed
    window.probability.threshold_line.setValue(float(np.quantile(smoothed, 0.2)))
    low = sum(b - a for a, b in doc.predicted_intervals())
    window.probability.threshold_line.setValue(float(np.quantile(smoothed, 0.8)))
    high = sum(b - a for a, b in doc.predicted_intervals())
    assert doc.threshold == pytest.approx(float(np.quantile(smoothed, 0.8)))
    assert high < low
    window.acts["accept"].trigger()
    assert doc.annotations == doc.predicted_intervals()


def test_export_files_parse_back(qtbot, window, demo, tmp_path):
    open_and_wait(qtbot, window, demo)
    out = export_document_predictions(window.document, tmp_path / "pred.txt", "audacity")
    assert read_voiced_intervals(out) == pytest.approx(window.document.predicted_intervals())


def test_bad_files_show_a_message_and_leave_the_app_usable(qtbot, window, demo, env):
    corrupt = env / "broken.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 10)
    window.open_file(corrupt)
    qtbot.waitUntil(lambda: bool(messages.recorded), timeout=TIMEOUT_MS)
    assert "broken.wav" in messages.recorded[-1].text and "Traceback" not in messages.recorded[-1].text
    bad_labels = env / "bad.lab"
    write_song(env / "bad.flac", 4.0, [(1.0, 2.0)])
    bad_labels.write_text("0.0 1.0 sing\nnot a line\n")
    with qtbot.waitSignal(window.fileShown, timeout=TIMEOUT_MS):
        window.open_file(env / "bad.flac")
    assert any("line 2" in m.text for m in messages.recorded)
    open_and_wait(qtbot, window, demo)  # still usable
    assert len(window.document.annotations) == 3


def test_closing_while_a_worker_runs_stops_the_thread(qtbot, env, model_path):
    long_song = write_song(env / "long.flac", 120.0, [(10.0, 50.0)], label_suffix=None)
    win = MainWindow(model_path=model_path)
    qtbot.addWidget(win)
    win.show()
    win.open_file(long_song)
    assert win.workers.active
    win.close()
    assert not win.workers.active


def test_shortcuts_of_the_ux_guide_are_on_menu_actions(qtbot, window):
    expected = {"play": "Space", "play_selection": "S", "loop": "L", "start": "Home", "end": "End",
                "scroll_left": "Left", "scroll_right": "Right", "zoom_in": "Up", "zoom_out": "Down", "fit": "F",
                "zoom_selection": "Ctrl+E", "tool_navigate": "1", "tool_select": "2", "tool_draw": "3",
                "tool_erase": "4", "add_region": "Ctrl+B", "delete": "Del", "import_labels": "Ctrl+L",
                "export": "Ctrl+Shift+E", "layer_truth": "Alt+1"}
    for name, key in expected.items():
        shortcuts = [s.toString() for s in window.acts[name].shortcuts()]
        assert key in shortcuts, (name, shortcuts)
    assert not window.acts["play"].isEnabled() and window.acts["play"].toolTip()  # no audio device
    window.acts["tool_draw"].trigger()
    assert window.spectrogram.tool() == "draw"


def test_screenshot_mode_writes_a_picture_and_exits(env, demo, model_path):
    out = env / "shot.png"
    run_env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SVGUI_SETTINGS_DIR": str(env / "s2")}
    result = subprocess.run([sys.executable, "-m", "svgui.app", "--screenshot", str(out), "--model",
                             str(model_path), "--size", "900x600", str(demo)],
                            capture_output=True, text=True, timeout=120, env=run_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_dropping_files_opens_audio_and_imports_labels(qtbot, window, demo, env):
    with qtbot.waitSignals([window.fileShown, window.predictionsShown], timeout=TIMEOUT_MS):
        window.open_paths([demo])
    other = env / "other.txt"
    other.write_text("1.000000\t2.000000\tsing\n")
    window.open_paths([other])
    assert window.document.annotations == [(1.0, 2.0)]


# ---- label files are never lost (issue 13 items 5, 9, 12) ------------------------------------------

def _make_read_only(monkeypatch, folder):
    """Writes into ``folder`` fail as in a read-only folder (chmod does not stop root, who runs CI)."""
    real_create = fileio._create_temp_beside

    def create(path):
        if path.parent == folder:
            raise OutputWriteError(path, "Permission denied")
        return real_create(path)

    monkeypatch.setattr(fileio, "_create_temp_beside", create)


def _song_with_labels(env, name, label_bytes):
    song = write_song(env / "songs" / f"{name}.flac", 4.0, [(1.0, 2.0)], label_suffix=None)
    song.with_suffix(".lab").write_bytes(label_bytes)
    return song


def test_save_writes_back_label_lines_the_app_does_not_understand(qtbot, window, env):
    song = _song_with_labels(env, "odd", b"0.0 1.0 sing\nnot a line\n1.0 4.0 nosing\n")
    open_and_wait(qtbot, window, song)
    assert window.document.annotations == [(0.0, 1.0)]
    assert any(m.title == "Label lines not understood" and "line 2" in m.text for m in messages.recorded)
    window.spectrogram.draw_region(2.0, 3.0)
    window.acts["save"].trigger()
    text = song.with_suffix(".lab").read_text()
    assert text.startswith("0.0 1.0 sing\nnot a line\n") and "sing" in text.splitlines()[-2]
    assert not window.isWindowModified()


def test_save_offers_save_as_for_a_label_file_that_failed_to_load(qtbot, window, env, monkeypatch):
    song = _song_with_labels(env, "binary", b"\xff\xfe\x00 not text")
    open_and_wait(qtbot, window, song)
    assert any(m.title == "Cannot read labels" and "Save will not write over" in m.text for m in messages.recorded)
    window.spectrogram.draw_region(1.0, 2.0)
    chosen = env / "songs" / "binary-new.lab"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *args, **kwargs: (str(chosen), "")))
    window.acts["save"].trigger()
    assert song.with_suffix(".lab").read_bytes() == b"\xff\xfe\x00 not text"
    assert any(m.title == "Not saved over" for m in messages.recorded)
    assert read_voiced_intervals(chosen) == window.document.annotations and not window.isWindowModified()


def test_autosave_of_a_read_only_label_folder_goes_to_the_user_data_folder(qtbot, window, demo, env, model_path,
                                                                           monkeypatch):
    _make_read_only(monkeypatch, demo.parent)
    open_and_wait(qtbot, window, demo)
    window.spectrogram.draw_region(1.0, 2.0)
    edited = list(window.document.annotations)
    window.files.autosave()
    window.files.autosave()
    where = window.document.find_autosave()
    assert where is not None and where.parent == env / "settings" / "autosave"
    assert str(where) in window.statusBar().currentMessage()
    told = [m for m in messages.recorded if m.title == "Autosave in your data folder"]
    assert len(told) == 1 and str(where) in told[0].text  # once, not every 30 s
    window.document.undo_stack.setClean()  # the crash: edits never saved
    messages.answers["recover_autosave"] = True
    second = MainWindow(model_path=model_path)
    qtbot.addWidget(second)
    open_and_wait(qtbot, second, demo)
    assert second.document.annotations == edited
    asked = [m for m in messages.recorded if m.kind == "recover_autosave"]
    assert asked[-1].text.endswith(f"found for {DEMO}.lab.") and str(where) in asked[-1].informative
    second.document.undo_stack.setClean()
    second.workers.stop_all()


def test_discarded_edits_are_not_offered_for_recovery(qtbot, window, demo, model_path):
    open_and_wait(qtbot, window, demo)
    window.spectrogram.draw_region(1.0, 2.0)
    window.files.autosave()
    side = window.document.autosave_path()
    assert side.is_file()
    window.close()  # the question is answered 'discard' (conftest)
    assert [m.kind for m in messages.recorded] == ["save_changes"] and not side.exists()
    second = MainWindow(model_path=model_path)
    qtbot.addWidget(second)
    open_and_wait(qtbot, second, demo)
    assert "recover_autosave" not in [m.kind for m in messages.recorded]
    second.workers.stop_all()


def _run_app(args, env):
    run_env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SVGUI_SETTINGS_DIR": str(env / "s3")}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "svgui.app", *map(str, args)], capture_output=True, text=True,
                            timeout=120, env=run_env)
    return result, time.monotonic() - started


def test_a_failed_prediction_is_announced_with_its_reason(qtbot, window, demo, monkeypatch):
    """--screenshot listens to this to exit with the reason instead of waiting for its timeout."""
    from engine.errors import EngineError
    from svgui import prediction_controller

    with qtbot.waitSignals([window.fileShown, window.predictionsShown], timeout=TIMEOUT_MS):
        window.open_file(demo)

    def failing_prediction(*args, **kwargs):
        raise EngineError("the model ran out of memory")
        yield  # a generator, as the real job is

    monkeypatch.setattr(prediction_controller, "predict_audio", failing_prediction)
    with qtbot.waitSignal(window.predictionFailed, timeout=TIMEOUT_MS) as signal:
        window.predictions.predict()
    assert signal.args == ["the model ran out of memory"]
    assert any(m.title == "Prediction failed" for m in messages.recorded)


def test_screenshot_of_a_bad_or_missing_file_exits_with_the_reason(env, model_path):
    broken = env / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00garbage" * 10)
    result, seconds = _run_app(["--screenshot", env / "shot.png", "--model", model_path, broken], env)
    assert result.returncode == 1 and seconds < 60
    assert f"error: {broken}: corrupt or unreadable audio" in result.stderr
    assert not (env / "shot.png").exists()
    result, seconds = _run_app(["--screenshot", env / "shot.png", env / "missing.flac"], env)
    assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == \
        f"error: {env / 'missing.flac'}: no such file or folder"


def test_missing_paths_on_the_command_line_are_reported_in_the_window_and_on_stderr(qtbot, env, model_path,
                                                                                     monkeypatch, capsys):
    from PySide6.QtWidgets import QApplication

    from svgui import app

    monkeypatch.setattr(QApplication, "exec", lambda self: 0)  # main() returns once the window is up
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() sets these for the process
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    missing = env / "gone.flac"
    assert app.main([str(missing), "--model", str(model_path)]) == 0
    assert f"warning: {missing}: no such file or folder" in capsys.readouterr().err
    shown = [m for m in messages.recorded if m.title == "Files not found"]
    assert len(shown) == 1 and f"{missing}: no such file or folder" in shown[0].text


def test_a_truncated_file_opens_up_to_the_damage_with_a_message(qtbot, window, env):
    full = write_song(env / "full.flac", 6.0, [(1.0, 2.0)], label_suffix=None)
    cut = env / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    open_and_wait(qtbot, window, cut)
    assert 1.0 < window.document.duration_s < 4.0
    shown = [m for m in messages.recorded if m.title == "Audio decoded in part"]
    assert len(shown) == 1 and "unreadable after" in shown[0].text and "cut.flac" in shown[0].text


def test_save_into_a_read_only_folder_offers_save_as(qtbot, window, demo, env, monkeypatch):
    open_and_wait(qtbot, window, demo)
    original = demo.with_suffix(".lab").read_bytes()
    _make_read_only(monkeypatch, demo.parent)
    window.spectrogram.draw_region(1.0, 2.0)
    chosen = env / "elsewhere.lab"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *args, **kwargs: (str(chosen), "")))
    assert window.save()
    assert demo.with_suffix(".lab").read_bytes() == original
    assert read_voiced_intervals(chosen) == window.document.annotations
    assert any("Permission denied" in m.text for m in messages.recorded)



def test_audacity_label_texts_show_in_the_status_bar_and_survive_a_save(qtbot, window, env):
    song = write_song(env / "songs" / "texts.flac", 4.0, [(1.0, 2.0)], label_suffix=None)
    labels = song.with_suffix(".txt")
    labels.write_text("0.500000\t1.500000\tverse 1\n\\\t100.000000\t3000.000000\n2.0\t3.0\tchorus\n")
    open_and_wait(qtbot, window, song)
    window._show_position(1.0, 440.0)
    assert "ground truth: voice (verse 1)" in window.status_position.text()
    window.document.move_region(1, 2.0, 3.5)
    window.acts["save"].trigger()
    assert labels.read_text() == ("0.500000\t1.500000\tverse 1\n\\\t100.000000\t3000.000000\n"
                                  "2.000000\t3.500000\tchorus\n")


def test_a_long_files_first_prediction_is_drawn_as_it_grows_and_a_re_prediction_keeps_the_old_curve(
        qtbot, window, env):
    song = write_song(env / "long.wav", 70.0, [(10.0, 30.0)])  # 4,900 frames: three chunks of 2,048
    seen = []  # (frames handed out, frames on the probability curve then)

    def drawn() -> int:
        x, _ = window.probability.curve.getData()
        return 0 if x is None else len(x)
    window.predictions.partialPredictions.connect(lambda p: seen.append((None if p is None else len(p), drawn())))
    thresholds = []  # the line the growing curve is drawn against
    window.predictions.partialPredictions.connect(lambda _: thresholds.append(window.probability.threshold_line.value()))
    window.document.set_threshold(0.9)  # a user's choice on the last file: the model's applies from the first step
    states = []  # the metrics panel while it runs
    window.predictions.partialPredictions.connect(lambda _: states.append(window.metrics.state_text()))
    open_and_wait(qtbot, window, song)
    assert thresholds == [0.5] * 3  # the tiny test model's threshold
    assert states[0].startswith("Predicting: 41.8 % of the file done") and states[-1].startswith("Predicting: 100.0 %")
    assert window.metrics.state == "scored"
    n = window.document.n_frames
    assert [handed for handed, _ in seen] == [2048, 4096, n]
    assert all(drawn == handed for handed, drawn in seen)  # the curve followed each step
    final = window.document.probabilities
    assert drawn() == n
    seen.clear()
    with qtbot.waitSignal(window.predictionsShown, timeout=TIMEOUT_MS):
        window.predictions.set_tta(True)
    assert seen == []  # the old curve and regions stay together until the new ones arrive
    assert not np.array_equal(window.document.probabilities, final)
