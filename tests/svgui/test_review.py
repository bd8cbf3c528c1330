"""Review navigation and corpus progress in the app: the Review panel, N / Shift+N, Mark Reviewed
(persisted in the folder's sidecar), and the file panel's states and totals."""

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine import fileio
from engine.annotation_state import SIDECAR_NAME, file_state, file_status
from engine.checkpoint import VoiceModel, save_model
from engine.config import ModelConfig
from engine.errors import OutputWriteError
from svgui.main_window import MainWindow
from svgui.widgets.file_panel import FilePanel
from tests.synth import write_song

TIMEOUT_MS = 60_000
FPS = 70


@pytest.fixture
def model_path(env):
    model = VoiceModel.create(model_config=ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16)), seed=1)
    model.threshold = 0.5
    model.metadata = {"name": "tiny test model"}
    return save_model(env / "tiny.safetensors", model)


@pytest.fixture
def songs(env):
    """A folder of three 20 s songs: one labelled, two without labels."""
    folder = env / "songs"
    write_song(folder / "labelled.wav", 20.0, [(2.0, 8.0)], seed=1)
    write_song(folder / "plain.wav", 20.0, [(2.0, 8.0)], seed=2, label_suffix=None)
    write_song(folder / "other.wav", 20.0, [(5.0, 9.0)], seed=3, label_suffix=None)
    return folder


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


def three_doubts(n_frames: int) -> np.ndarray:
    """Confident voice except three doubtful stretches, at 3-5 s (0.6), 9-10 s (0.55) and 14-17 s (0.65)."""
    p = np.full(n_frames, 0.95, dtype=np.float32)
    for (a, b), value in (((3, 5), 0.6), ((9, 10), 0.55), ((14, 17), 0.65)):
        p[a * FPS:b * FPS] = value
    return p


def show_curve(window, p):
    window.document.set_predictions(p, "synthetic", threshold=0.5)
    window.review.refresh_now()


def test_a_file_without_predictions_says_predict_first(qtbot, window, songs):
    assert window.review_panel.hint_text() == "Open a file to review it"
    open_and_wait(qtbot, window, songs / "plain.wav")
    window.document.set_predictions(None)
    window.review.refresh_now()
    key = window.acts["predict"].shortcut().toString()
    assert key == "Ctrl+R" and window.review_panel.hint_text() == f"Predict first ({key})"
    assert not window.acts["review_mark"].isEnabled()  # nothing chosen to mark
    window.acts["review_next"].trigger()  # nothing to go to: a message, no error
    assert "Predict first" in window.statusBar().currentMessage()


def test_panel_lists_spans_most_unsure_first(qtbot, window, songs):
    open_and_wait(qtbot, window, songs / "plain.wav")
    show_curve(window, three_doubts(window.document.n_frames))
    rows = window.review_panel.row_texts()
    assert [r[2] for r in rows] == ["unsure"] * 3
    assert [r[0][:4] for r in rows] == ["0:08", "0:02", "0:13"]  # 0.55, then 0.6, then 0.65
    # the mean includes the 0.1 s of context on either side (at 0.95)
    assert [r[3] for r in rows] == [f"{(d * v + 0.2 * 0.95) / (d + 0.2):.2f}" for d, v in ((1, 0.55), (2, 0.6), (3, 0.65))]
    assert "3 spans to review" in window.review_panel.summary_text()
    table = window.review_panel.table
    table.setFocus()
    table.setCurrentCell(1, 0)
    qtbot.keyClick(table, Qt.Key.Key_Return)  # Enter on a row goes there
    start_s, end_s = window.spectrogram.selection()
    assert start_s == pytest.approx(3 - 0.1, abs=0.03) and end_s == pytest.approx(5 + 0.1, abs=0.03)
    assert window.review.current == 1
    rect = table.visualRect(table.model().index(2, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # and so does a click
    assert window.spectrogram.selection()[0] == pytest.approx(14 - 0.1, abs=0.03)


def test_n_and_shift_n_go_through_the_spans_in_time_and_wrap_around(qtbot, window, songs):
    open_and_wait(qtbot, window, songs / "plain.wav")
    show_curve(window, three_doubts(window.document.n_frames))
    starts = sorted(s.start_s for s in window.review.spans)
    window.go_to(6.0)  # with nothing chosen, N starts from the cursor
    seen = []
    for _ in range(4):
        window.acts["review_next"].trigger()
        seen.append(window.spectrogram.selection()[0])
        assert window.review_panel.current_row() == window.review.current
    assert seen == [starts[1], starts[2], starts[0], starts[1]]
    assert window.acts["review_mark"].isEnabled()
    window.acts["review_previous"].trigger()
    window.acts["review_previous"].trigger()
    assert window.spectrogram.selection()[0] == starts[2]  # wrapped back from the first to the last
    start_s, end_s = window.spectrogram.selection()
    view_start, view_end = window.spectrogram.visible_range()
    assert view_start <= start_s and end_s <= view_end


def test_mark_reviewed_persists_through_a_reopen(qtbot, window, songs, model_path, env):
    open_and_wait(qtbot, window, songs / "plain.wav")
    curve = three_doubts(window.document.n_frames)
    show_curve(window, curve)
    window.go_to(0.0)
    window.acts["review_next"].trigger()  # the span at 3-5 s
    window.acts["review_mark"].trigger()
    assert window.review.done.count(True) == 1
    data = json.loads((songs / SIDECAR_NAME).read_text())
    entry = data["files"]["plain.wav"]
    assert entry["n_spans"] == 3 and entry["n_reviewed"] == 1 and len(entry["reviewed_spans_s"]) == 1
    assert window.review_panel.row_texts()[1][4] == "\u2713"

    again = MainWindow(model_path=model_path)
    qtbot.addWidget(again)
    try:
        open_and_wait(qtbot, again, songs / "plain.wav")
        show_curve(again, curve)
        assert [r[4] for r in again.review_panel.row_texts()] == ["", "\u2713", ""]
        again.go_to(0.0)
        again.acts["review_next"].trigger()  # passes over the reviewed span
        assert again.spectrogram.selection()[0] == pytest.approx(9 - 0.1, abs=0.03)
        again.acts["review_mark"].trigger()
        again.acts["review_next"].trigger()
        again.acts["review_mark"].trigger()
        assert file_status(songs / "plain.wav") == "reviewed"
        assert file_state(songs / "plain.wav").fraction_done == 1.0
    finally:
        again.workers.stop_all()


def test_file_panel_states_follow_accept_edit_save_and_review(qtbot, window, songs):
    window.open_folder(songs)
    panel = window.file_panel
    assert panel.state_texts() == {"labelled.wav": "edited", "other.wav": "no labels", "plain.wav": "no labels"}
    assert panel.totals_text() == "1 edited, 2 no labels"

    open_and_wait(qtbot, window, songs / "plain.wav")
    show_curve(window, three_doubts(window.document.n_frames))
    window.acts["accept"].trigger()
    assert window.save()
    assert panel.state_texts()["plain.wav"] == "pre-annotated \u00b7 0/3"
    assert ("plain.wav", "\u2713 .lab") in panel.row_texts()  # the label file it now has

    window.document.move_region(0, 0.0, 12.0)  # a hand edit: the voice ends at 12 s
    assert window.save()
    assert panel.state_texts()["plain.wav"].startswith("edited")

    window.acts["review_mark_file"].trigger()
    assert panel.state_texts()["plain.wav"].startswith("reviewed")
    assert panel.totals_text().startswith("1 reviewed, 1 edited, 1 no labels; review spans done: 0 of ")


def test_file_panel_reads_the_sidecar_and_survives_a_broken_one(qtbot, songs):
    (songs / SIDECAR_NAME).write_text(json.dumps({"format": "svgui-annotation", "version": 1, "files": {
        "other.wav": {"status": "pre-annotated", "n_spans": 8, "n_reviewed": 2}}}))
    panel = FilePanel()
    qtbot.addWidget(panel)
    panel.set_folder(songs)
    assert panel.state_texts()["other.wav"] == "pre-annotated \u00b7 2/8"
    assert panel.totals_text() == "1 edited, 1 pre-annotated, 1 no labels; review spans done: 2 of 8"
    (songs / SIDECAR_NAME).write_text("{broken")
    panel.set_folder(songs)
    assert panel.state_texts()["other.wav"] == "no labels"
    assert "cannot read the annotation state" in panel.status_text()


def test_a_folder_that_refuses_the_sidecar_gets_a_message_and_the_review_goes_on(qtbot, window, songs, monkeypatch):
    open_and_wait(qtbot, window, songs / "plain.wav")
    show_curve(window, three_doubts(window.document.n_frames))
    real_create = fileio._create_temp_beside

    def refuse(path):  # as a read-only folder would (chmod does not stop root)
        if path.parent == songs:
            raise OutputWriteError(path, "Permission denied")
        return real_create(path)

    monkeypatch.setattr(fileio, "_create_temp_beside", refuse)
    window.acts["review_next"].trigger()
    window.acts["review_mark"].trigger()
    assert "cannot record the review" in window.statusBar().currentMessage()
    assert "Permission denied" in window.statusBar().currentMessage()
    assert not (songs / SIDECAR_NAME).exists() and window.review.done == [False] * 3
    window.acts["review_next"].trigger()  # navigation still works
    assert window.review.current is not None


def test_a_threshold_drag_keeps_what_was_reviewed(qtbot, window, songs):
    open_and_wait(qtbot, window, songs / "plain.wav")
    show_curve(window, three_doubts(window.document.n_frames))
    window.go_to(0.0)
    window.acts["review_next"].trigger()
    window.acts["review_mark"].trigger()
    for threshold in (0.52, 0.54, 0.5):  # one recomputation after the last change
        window.document.set_threshold(threshold)
    qtbot.waitUntil(lambda: not window.review._timer.isActive(), timeout=2000)
    assert sorted(window.review.done) == [False, False, True]
