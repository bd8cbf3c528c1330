"""Export (every format parses back, model and threshold recorded), shortcut reference, messages."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenuBar, QMessageBox, QWidget

from engine.errors import AudioLoadError, EngineError
from engine.export import FORMATS, sidecar_path
from engine.labels import read_voiced_intervals
from svgui.dialogs import messages
from svgui.dialogs.export_dialog import METADATA_FORMATS, ExportDialog, default_export_path, export_document_predictions
from svgui.dialogs.shortcuts_dialog import ShortcutsDialog, action_rows
from svgui.document import Document
from tests.svgui.test_panels import make_document, save_screenshot


@pytest.fixture(autouse=True)
def recorded_messages(monkeypatch):
    """Dialogs record instead of blocking; each test starts with an empty record."""
    monkeypatch.setattr(messages, "NO_MODAL", True)
    monkeypatch.setattr(messages, "recorded", [])
    monkeypatch.setattr(messages, "answers", dict(messages.answers))
    return messages


@pytest.fixture
def document(tmp_path, qapp) -> Document:
    doc = make_document(duration_s=20.0, model="jamendo-cnn v1", threshold=0.61)
    doc.audio_path = tmp_path / "my song.wav"  # the export lands beside it
    return doc


# ---- export -------------------------------------------------------------------------------------
def read_sidecar(path: Path) -> dict:
    return json.loads(sidecar_path(path).read_text())


@pytest.mark.parametrize("fmt", ["lab", "audacity"])
def test_label_exports_read_back_as_the_predicted_intervals(document, tmp_path, fmt):
    path = export_document_predictions(document, default_export_path(document, fmt), fmt)
    assert path == tmp_path / f"my song.pred{FORMATS[fmt]}"  # never the labels' "my song.lab"
    expected = document.predicted_intervals()
    assert len(expected) == 2
    np.testing.assert_allclose(read_voiced_intervals(path), expected, atol=1e-6)
    sidecar = read_sidecar(path)
    assert sidecar["info"]["model_name"] == "jamendo-cnn v1"
    assert sidecar["info"]["threshold"] == 0.61
    assert sidecar["format"] == fmt and sidecar["source"] == str(document.audio_path)


def test_sonic_visualiser_csv_exports(document, tmp_path):
    regions = export_document_predictions(document, tmp_path / "r.csv", "csv")
    rows = [line.split(",") for line in regions.read_text().splitlines()]
    got = [(float(t), float(t) + float(d)) for t, _value, d, _label in rows]
    np.testing.assert_allclose(got, document.predicted_intervals(), atol=1e-5)
    assert all(label == "voice" and 0 <= float(v) <= 1 for _t, v, _d, label in rows)
    curve = np.loadtxt(export_document_predictions(document, tmp_path / "c.curve.csv", "curve"), delimiter=",")
    assert curve.shape == (document.n_frames, 2)
    np.testing.assert_allclose(curve[:, 1], document.smoothed, atol=1e-6)
    frames = np.loadtxt(export_document_predictions(document, tmp_path / "f.frames.csv", "frames"),
                        delimiter=",", skiprows=1)
    np.testing.assert_array_equal(frames[:, 2].astype(np.float32), document.probabilities)
    for path in (regions, tmp_path / "c.curve.csv", tmp_path / "f.frames.csv"):
        assert read_sidecar(path)["info"]["threshold"] == 0.61


def test_npz_export_loads_without_pickle(document, tmp_path):
    path = export_document_predictions(document, tmp_path / "p.npz", "npz")
    with np.load(path, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["probabilities"], document.probabilities)
        np.testing.assert_allclose(data["intervals_s"], document.predicted_intervals())
        assert str(data["model"]) == "jamendo-cnn v1" and float(data["threshold"]) == 0.61
        assert str(data["name"]) == "my song.wav"
    assert not sidecar_path(path).exists()  # the metadata is inside


def test_jams_export_loads_with_jams(document, tmp_path):
    import jams
    path = export_document_predictions(document, tmp_path / "p.jams", "jams")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = jams.load(str(path))
    annotation = loaded.annotations[0]
    assert annotation.namespace == "segment_open"
    got = [(o.time, o.time + o.duration) for o in annotation.data]
    np.testing.assert_allclose(got, document.predicted_intervals(), atol=1e-6)
    assert annotation.sandbox["model_name"] == "jamendo-cnn v1" and annotation.sandbox["threshold"] == 0.61
    assert not sidecar_path(path).exists()


def test_textgrid_export_tiles_the_file(document, tmp_path):
    path = export_document_predictions(document, tmp_path / "p.TextGrid", "textgrid")
    text = path.read_text()
    assert text.startswith('File type = "ooTextFile"') and "xmax = 20.000000" in text
    assert text.count('text = "voice"') == 2
    assert read_sidecar(path)["info"]["model_name"] == "jamendo-cnn v1"


def test_every_format_is_covered():
    assert set(FORMATS) == {"audacity", "lab", "csv", "curve", "frames", "npz", "jams", "textgrid"}
    assert METADATA_FORMATS < set(FORMATS)


def test_export_without_predictions_is_a_clear_engine_error(qapp, tmp_path):
    doc = make_document(with_predictions=False)
    with pytest.raises(EngineError, match="no predictions to export for demo.wav"):
        export_document_predictions(doc, tmp_path / "x.lab", "lab")
    assert not (tmp_path / "x.lab").exists()
    with pytest.raises(EngineError, match="unknown export format 'mp3'"):
        export_document_predictions(make_document(), tmp_path / "x.mp3", "mp3")


def test_export_dialog_defaults_switches_suffix_and_exports(document, qtbot, tmp_path):
    dialog = ExportDialog(document)
    qtbot.addWidget(dialog)
    assert dialog.format() == "audacity"
    assert dialog.path() == tmp_path / "my song.pred.txt"
    assert "2 predicted voice regions" in dialog.summary_text() and "my song.pred.txt.json" in dialog.summary_text()
    dialog.set_format("curve")
    assert dialog.path() == tmp_path / "my song.pred.curve.csv"
    dialog.set_format("lab")
    assert dialog.path() == tmp_path / "my song.pred.lab"
    dialog.set_format("npz")
    assert "stored inside the file" in dialog.summary_text()
    dialog.set_format("lab")
    dialog.show()
    save_screenshot(dialog, "export_dialog")
    with qtbot.waitSignal(dialog.exported) as exported:
        dialog.accept()
    assert exported.args == [tmp_path / "my song.pred.lab"]
    np.testing.assert_allclose(read_voiced_intervals(tmp_path / "my song.pred.lab"), document.predicted_intervals(),
                               atol=1e-6)
    assert dialog.result() == dialog.DialogCode.Accepted
    assert not [m for m in messages.recorded if m.kind == "replace_files"]


def test_export_dialog_asks_before_replacing_a_file_that_is_not_a_prediction(document, qtbot, tmp_path):
    labels = tmp_path / "my song.lab"
    labels.write_bytes(b"0.0 20.0 nosing\n")
    dialog = ExportDialog(document, fmt="lab")
    qtbot.addWidget(dialog)
    dialog.set_path(labels)
    with qtbot.assertNotEmitted(dialog.exported):
        dialog.accept()  # the recorded answer is the default: Cancel
    assert messages.recorded[-1].kind == "replace_files" and "my song.lab" in messages.recorded[-1].text
    assert labels.read_bytes() == b"0.0 20.0 nosing\n" and not sidecar_path(labels).exists()
    messages.answers["replace_files"] = True
    with qtbot.waitSignal(dialog.exported):
        dialog.accept()
    assert labels.read_bytes() != b"0.0 20.0 nosing\n"


def test_export_dialog_asks_before_its_sidecar_replaces_a_file_of_yours(document, qtbot, tmp_path):
    target = tmp_path / "my song.pred.lab"
    notes = sidecar_path(target)  # my song.pred.lab.json
    notes.write_text('{"my": "notes"}\n')
    dialog = ExportDialog(document, fmt="lab")
    qtbot.addWidget(dialog)
    dialog.set_path(target)
    with qtbot.assertNotEmitted(dialog.exported):
        dialog.accept()  # Cancel, the default
    assert messages.recorded[-1].kind == "replace_files" and notes.name in messages.recorded[-1].text
    assert notes.read_text() == '{"my": "notes"}\n' and not target.exists()
    messages.answers["replace_files"] = True
    with qtbot.waitSignal(dialog.exported):
        dialog.accept()
    messages.recorded.clear()
    messages.answers["replace_files"] = False
    with qtbot.waitSignal(dialog.exported):  # now both are svgui's own: replaced without a question
        dialog.accept()
    assert not [m for m in messages.recorded if m.kind == "replace_files"]


def test_export_dialog_reports_write_errors_and_stays_open(document, qtbot, tmp_path):
    dialog = ExportDialog(document, fmt="lab")
    qtbot.addWidget(dialog)
    (tmp_path / "a file").write_text("")
    dialog.set_path(tmp_path / "a file" / "x.lab")  # its "folder" is a file: cannot be written
    with qtbot.assertNotEmitted(dialog.exported):
        dialog.accept()
    assert [m.title for m in messages.recorded] == ["Export failed"]
    assert "x.lab" in messages.recorded[0].text
    assert dialog.exported_path is None


def test_export_dialog_without_predictions_disables_export(qtbot):
    dialog = ExportDialog(make_document(with_predictions=False))
    qtbot.addWidget(dialog)
    assert "no predictions" in dialog.summary_text()
    assert not dialog._export_button.isEnabled()


# ---- shortcuts ----------------------------------------------------------------------------------
def test_shortcuts_dialog_lists_actions_with_menus_and_filters(qtbot):
    host = QWidget()
    qtbot.addWidget(host)
    bar = QMenuBar(host)
    file_menu = bar.addMenu("&File")
    open_action = file_menu.addAction("&Open\u2026")
    open_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Open))
    open_action.setToolTip("Open an audio file")
    file_menu.addSeparator()
    layers = bar.addMenu("&View").addMenu("&Layers")
    truth = layers.addAction("Ground truth")
    truth.setShortcut("Alt+1")
    play = QAction("Play / Stop", host)
    play.setShortcuts([QKeySequence("Space"), QKeySequence("Ctrl+P")])
    loose = QAction("No shortcut", host)
    dialog = ShortcutsDialog([open_action, truth, ("Playback", play), loose, open_action])
    qtbot.addWidget(dialog)
    rows = dialog.visible_rows()
    native = QKeySequence(QKeySequence.StandardKey.Open).toString(QKeySequence.SequenceFormat.NativeText)
    assert rows == [("File", "Open\u2026", native, "Open an audio file"),
                    ("View \u25b8 Layers", "Ground truth", QKeySequence("Alt+1").toString(
                        QKeySequence.SequenceFormat.NativeText), ""),
                    ("Playback", "Play / Stop", "Space, " + QKeySequence("Ctrl+P").toString(
                        QKeySequence.SequenceFormat.NativeText), ""),
                    ("", "No shortcut", "", "")]
    dialog.set_filter("layers")
    assert [r[1] for r in dialog.visible_rows()] == ["Ground truth"]
    dialog.set_filter("SPACE")
    assert [r[1] for r in dialog.visible_rows()] == ["Play / Stop"]
    dialog.set_filter("")
    dialog.sort_by(1)
    assert [r[1] for r in dialog.visible_rows()] == ["Ground truth", "No shortcut", "Open\u2026", "Play / Stop"]
    dialog.sort_by(2)  # by key; actions without one last
    assert dialog.visible_rows()[-1][1] == "No shortcut"


def test_action_rows_skip_separators_and_submenus(qtbot):
    host = QWidget()
    qtbot.addWidget(host)
    bar = QMenuBar(host)
    menu = bar.addMenu("Edit")
    separator = menu.addSeparator()
    submenu = menu.addMenu("More")
    assert action_rows([separator, submenu.menuAction()]) == []


# ---- messages -----------------------------------------------------------------------------------
def test_show_error_records_the_message_without_the_traceback(recorded_messages):
    exc = AudioLoadError("/music/song.mp3", "not an audio file")
    exc.traceback_text = "Traceback (most recent call last):\n  File \"x.py\", line 1\nAudioLoadError: ..."
    assert messages.show_error(None, "Cannot open file", exc) is None
    (message,) = messages.recorded
    assert message.kind == "error" and message.title == "Cannot open file"
    assert message.text == "/music/song.mp3: not an audio file"
    assert "Traceback" not in message.text and "Traceback" in message.details
    assert message.informative == ""  # an EngineError is the user's problem to fix, not a bug


def test_show_error_on_an_unexpected_exception_hints_at_a_bug(recorded_messages):
    try:
        {}["missing"]
    except KeyError as exc:
        messages.show_error(None, "Oops", exc)
    message = messages.recorded[-1]
    assert message.text == "'missing'" and "KeyError" in message.informative
    assert "Traceback" in message.details and "Traceback" not in message.text
    messages.show_error(None, "Plain", "just text")
    assert messages.recorded[-1].text == "just text" and messages.recorded[-1].details == ""


def test_env_variable_also_switches_to_recording(monkeypatch):
    monkeypatch.setattr(messages, "NO_MODAL", False)
    monkeypatch.setenv(messages.NO_MODAL_ENV, "1")
    assert messages.no_modal()
    monkeypatch.setenv(messages.NO_MODAL_ENV, "0")
    assert not messages.no_modal()


def test_questions_return_the_canned_answers(recorded_messages, tmp_path):
    assert messages.ask_save_changes(None, "song.wav") == "discard"
    messages.answers["save_changes"] = "cancel"
    assert messages.ask_save_changes(None, "song.wav") == "cancel"
    autosave = tmp_path / "song.lab.svgui-autosave"
    assert messages.ask_recover_autosave(None, autosave) is False
    messages.answers["recover_autosave"] = True
    assert messages.ask_recover_autosave(None, autosave) is True
    kinds = [m.kind for m in messages.recorded]
    assert kinds == ["save_changes", "save_changes", "recover_autosave", "recover_autosave"]
    assert "song.wav" in messages.recorded[0].text and "song.lab" in messages.recorded[2].text


def test_shown_error_box_puts_the_traceback_under_details(monkeypatch, qtbot):
    monkeypatch.setattr(messages, "NO_MODAL", False)
    monkeypatch.delenv(messages.NO_MODAL_ENV, raising=False)
    parent = QWidget()
    qtbot.addWidget(parent)
    exc = EngineError("song.wav: the file is empty")
    exc.traceback_text = "Traceback ...\nEngineError"
    box = messages.show_error(parent, "Cannot open file", exc)  # open(): does not block
    assert isinstance(box, QMessageBox)
    assert box.text() == "song.wav: the file is empty" and box.detailedText() == exc.traceback_text
    box.close()
