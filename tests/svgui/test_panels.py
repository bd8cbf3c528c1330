"""FilePanel (folders, Jamendo corpus, filter, activation) and MetricsPanel (scores of the document)."""

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.evaluate import count_errors
from svgui.document import Document
from svgui.widgets.file_panel import FilePanel, natural_key
from svgui.widgets.metrics_panel import MetricsPanel, format_percent
from tests.synth import write_song

JAMENDO_LABELS = Path("/work/shared/data/jamendo-labels")
SCREENSHOTS = Path(os.environ.get("SVGUI_SCREENSHOT_DIR", Path(__file__).resolve().parents[2] / "out"))


def save_screenshot(widget, name: str) -> None:
    if os.environ.get("SVGUI_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        widget.grab().save(str(SCREENSHOTS / f"{name}.png"))


# ---- FilePanel ------------------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path) -> Path:
    """song 2 and song 10 with .lab files, an Audacity-labelled one, one without labels, a note."""
    root = tmp_path / "songs"
    write_song(root / "song 10.wav", 0.3, [(0.1, 0.2)])
    write_song(root / "song 2.wav", 0.3, [(0.1, 0.2)])
    write_song(root / "Alpha.flac", 0.3, [(0.0, 0.1)], label_suffix=".txt")
    write_song(root / "unlabelled.wav", 0.3, [], label_suffix=None)
    (root / "notes.md").write_text("not audio")
    (root / "orphan.lab").write_text("0 1 sing\n")
    return root


@pytest.fixture
def panel(qtbot) -> FilePanel:
    widget = FilePanel()
    qtbot.addWidget(widget)
    widget.resize(360, 320)
    return widget


def test_folder_lists_audio_sorted_naturally_with_label_state(panel, folder):
    assert panel.set_folder(folder)
    assert panel.row_texts() == [("Alpha.flac", "\u2713 .txt"), ("song 2.wav", "\u2713 .lab"),
                                 ("song 10.wav", "\u2713 .lab"), ("unlabelled.wav", "\u2013 none")]
    assert panel.files() == [folder / n for n in ("Alpha.flac", "song 2.wav", "song 10.wav", "unlabelled.wav")]
    assert "4 audio files, 3 with labels." in panel.status_text()
    assert "orphan.lab" in panel.status_text()  # labels without audio are reported
    save_screenshot(panel, "file_panel")


def test_filter_is_case_insensitive(panel, folder):
    panel.set_folder(folder)
    panel.set_filter("SONG")
    assert [n for n, _ in panel.row_texts()] == ["song 2.wav", "song 10.wav"]
    assert panel.files(visible_only=True) == [folder / "song 2.wav", folder / "song 10.wav"]
    panel.set_filter("")
    assert len(panel.row_texts()) == 4


def test_activation_by_enter_and_double_click_emits_the_path(panel, folder, qtbot):
    panel.set_folder(folder)
    panel.show()
    view = panel.view
    index = view.model().index(1, 0)
    view.setCurrentIndex(index)
    view.setFocus()
    with qtbot.waitSignal(panel.fileActivated) as by_key:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert by_key.args == [folder / "song 2.wav"]
    rect = view.visualRect(view.model().index(2, 0))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())  # a real double-click starts with a press
    with qtbot.waitSignal(panel.fileActivated) as by_mouse:
        qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert by_mouse.args == [folder / "song 10.wav"]


def test_mark_current_and_adjacent_files(panel, folder):
    panel.set_folder(folder)
    assert panel.mark_current(folder / "song 2.wav")
    assert panel.view.currentIndex().data() == "song 2.wav"
    assert panel.view.currentIndex().data(Qt.ItemDataRole.FontRole).bold()
    assert not panel.mark_current(folder / "elsewhere.wav")
    assert panel.adjacent_file(folder / "song 2.wav") == folder / "song 10.wav"
    assert panel.adjacent_file(folder / "song 2.wav", -1) == folder / "Alpha.flac"
    assert panel.adjacent_file(folder / "unlabelled.wav") is None
    panel.mark_current(folder / "song 10.wav")
    panel.set_folder(folder)  # re-listing keeps the open file marked
    assert panel.view.currentIndex().data() == "song 10.wav"


@pytest.mark.parametrize("make_bad, expected", [
    (lambda tmp: tmp / "missing", "dataset folder not found"),
    (lambda tmp: (tmp / "file.wav").write_bytes(b"") * 0 or tmp / "file.wav", "not a folder"),
])
def test_bad_folder_shows_a_message_instead_of_raising(panel, tmp_path, make_bad, expected):
    assert panel.set_folder(make_bad(tmp_path)) is False
    assert expected in panel.status_text()
    assert panel.row_texts() == [] and panel.files() == []


def test_empty_folder_says_so(panel, tmp_path):
    assert panel.set_folder(tmp_path)
    assert "No audio files" in panel.status_text()


def test_set_files_lists_dropped_audio_only(panel, folder):
    panel.set_files([folder / "unlabelled.wav", folder / "notes.md", folder / "song 2.wav"])
    assert panel.row_texts() == [("song 2.wav", "\u2713 .lab"), ("unlabelled.wav", "\u2013 none")]


def test_natural_key_orders_numbers():
    assert sorted(["b10", "B2", "a1"], key=natural_key) == ["a1", "B2", "b10"]


@pytest.mark.skipif(not JAMENDO_LABELS.is_dir(), reason="shared Jamendo labels not present")
def test_jamendo_labels_without_audio_show_a_clear_missing_state(panel, qtbot):
    assert panel.set_folder(JAMENDO_LABELS)
    assert panel.is_jamendo
    rows = panel.row_texts()
    assert len(rows) == 93 and {state for _, state in rows} == {"audio missing"}
    assert panel.files() == []
    assert "labels only" in panel.status_text() and "93" in panel.status_text()
    model = panel.view.model()
    splits = [model.index(r, 0).data() for r in range(model.rowCount())]
    assert splits == ["train (0 of 61 with audio)", "valid (0 of 16 with audio)", "test (0 of 16 with audio)"]
    song = model.index(0, 0, model.index(0, 0))
    with qtbot.assertNotEmitted(panel.fileActivated):
        panel.activate_index(song)
    assert "audio file is missing" in panel.status_text()
    panel.set_filter("10min")
    assert [n for n, _ in panel.row_texts()] == ["01 - 10min"]


def test_jamendo_with_some_audio_opens_those(panel, tmp_path):
    root = tmp_path / "jamendo"
    (root / "labels").mkdir(parents=True)
    (root / "filelists").mkdir()
    for split, names in {"train": ["a", "b"], "valid": ["c"], "test": ["d"]}.items():
        (root / "filelists" / split).write_text("".join(f"{n}.mp3\n" for n in names))
        for n in names:
            (root / "labels" / f"{n}.lab").write_text("0 0.3 sing\n")
    write_song(root / "audio" / "b.wav", 0.3, [], label_suffix=None)
    assert panel.set_folder(root)
    assert panel.files() == [root / "audio" / "b.wav"]
    assert ("b", "\u2713 .lab") in panel.row_texts() and ("a", "audio missing") in panel.row_texts()
    assert "1 of 4 songs have audio" in panel.status_text()


# ---- MetricsPanel ---------------------------------------------------------------------------------
def make_document(duration_s=20.0, truth=((2.0, 6.0), (9.0, 14.0)), predicted=((2.5, 7.0), (10.0, 13.0)),
                  *, with_predictions=True, model="demo-model", threshold=0.5) -> Document:
    doc = Document()
    fps = doc.frames_per_second
    n_frames = int(round(duration_s * fps))
    samples = np.zeros(int(duration_s * doc.features.sample_rate), dtype=np.float32)
    doc.set_audio(Path("/tmp/demo.wav"), samples, np.zeros((n_frames, doc.features.n_mels), np.float32))
    if truth:
        doc.set_annotations(list(truth), "ground truth")
    if with_predictions:
        times = np.arange(n_frames) / fps
        probabilities = np.full(n_frames, 0.2, np.float32)
        for a, b in predicted:
            probabilities[(times >= a) & (times < b)] = 0.8
        doc.set_predictions(probabilities, model, threshold=threshold)
    return doc


@pytest.fixture
def metrics(qtbot):
    def make(doc):
        widget = MetricsPanel(doc)
        qtbot.addWidget(widget)
        return widget
    return make


def expected_texts(doc):
    counts = count_errors(doc.predicted_targets(), doc.truth_targets())
    return counts, {k: format_percent(getattr(counts, k)) for k in ("error", "recall", "specificity", "precision", "f1")}


def test_metrics_equal_count_errors_and_follow_every_change(metrics):
    doc = make_document()
    panel = metrics(doc)
    counts, texts = expected_texts(doc)
    assert panel.state == "scored" and panel.counts == counts
    assert counts.fp > 0 and counts.fn > 0
    shown = panel.values()
    assert {k: shown[k] for k in texts} == texts
    assert shown["fp"].startswith(f"{counts.fp} frames") and shown["fn"].startswith(f"{counts.fn} frames")
    assert shown["threshold"] == "0.500" and shown["model"] == "demo-model"
    save_screenshot(panel, "metrics_panel")

    doc.set_threshold(0.9)  # nothing above: no voice predicted
    counts, texts = expected_texts(doc)
    assert panel.counts == counts and counts.tp == 0 and counts.fp == 0
    assert panel.values()["recall"] == "0.0 %" and panel.values()["precision"] == "\u2014"  # 0/0
    assert panel.values()["threshold"] == "0.900"

    doc.set_threshold(0.5)
    doc.add_region(16.0, 18.0)
    counts, texts = expected_texts(doc)
    assert panel.counts == counts and {k: panel.values()[k] for k in texts} == texts
    doc.undo_stack.undo()
    assert panel.counts == expected_texts(doc)[0]


def test_metrics_without_predictions(metrics):
    doc = make_document(with_predictions=False)
    panel = metrics(doc)
    assert panel.state == "no predictions" and panel.counts is None
    assert "No predictions" in panel.state_text()
    assert panel.values()["error"] == "\u2014" and panel.values()["model"] == "\u2014"
    doc.set_predictions(np.full(doc.n_frames, 0.9, np.float32), "m", threshold=0.5)
    assert panel.state == "scored" and panel.counts.fn == 0
    doc.set_predictions(None)
    assert panel.state == "no predictions"


def test_metrics_without_ground_truth(metrics):
    doc = make_document(truth=())
    panel = metrics(doc)
    assert panel.state == "no ground truth" and panel.counts is None
    assert "No ground truth" in panel.state_text() and "2 regions" in panel.state_text()
    assert panel.values()["f1"] == "\u2014"
    doc.add_region(1.0, 2.0)
    assert panel.state == "scored"


def test_metrics_with_no_file(metrics):
    panel = metrics(Document())
    assert panel.state == "no file" and panel.state_text() == "No file open."
