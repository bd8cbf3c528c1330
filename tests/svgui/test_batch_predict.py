"""Folder prediction in the background: a corrupt file among good ones, exports beside the files or in a
folder, ground truth kept byte for byte, a question before replacing files that are not ours, an
unwritable output folder refused before starting, Cancel between files with a manifest of the files
done, and the Model menu entry."""

import json
import threading
from pathlib import Path

import pytest

from engine.batch_predict import FileOutcome
from engine.checkpoint import VoiceModel, save_model
from engine.config import ModelConfig
from engine.export import MANIFEST_NAME
from svgui.dialogs import batch_predict_dialog, messages
from svgui.dialogs.batch_predict_dialog import BatchPredictDialog
from svgui.main_window import MainWindow
from svgui.workers import WorkerRegistry
from tests.synth import write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
TIMEOUT_MS = 60_000


@pytest.fixture
def model_path(env):
    model = VoiceModel.create(model_config=SMALL, seed=1)
    model.metadata = {"name": "tiny"}
    return save_model(env / "tiny.safetensors", model)


@pytest.fixture
def folder(env):
    root = env / "music"
    write_song(root / "one.wav", 4.0, [(0.5, 2.0)], seed=1)
    write_song(root / "two.flac", 5.0, [(1.0, 4.0)], seed=2, label_suffix=None)
    write_song(root / "more" / "three.wav", 3.0, [], seed=3, label_suffix=None)
    (root / "zz-broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot really audio" * 20)
    return root


@pytest.fixture
def dialog(qtbot, model_path):
    workers = WorkerRegistry()  # stopped here even when a failed test left a run going
    dlg = BatchPredictDialog(model_path=lambda: model_path, workers=workers)
    qtbot.addWidget(dlg)
    yield dlg
    workers.stop_all()


def test_a_corrupt_file_is_reported_and_the_others_are_written_beside_the_audio(qtbot, dialog, folder):
    dialog.add_input(folder)
    dialog.set_format("lab")
    dialog.set_destination(None)
    with qtbot.waitSignal(dialog.batchFinished, timeout=TIMEOUT_MS) as blocker:
        assert dialog.start()
    done = blocker.args[0]
    assert len(done.outcomes) == 4 and dialog.table.rowCount() == 4
    assert [o.source.name for o in dialog.failures()] == ["zz-broken.wav"]
    assert (folder / "one.pred.lab").read_text() != "" and (folder / "two.pred.lab").is_file()
    assert (folder / "more" / "three.pred.lab").is_file()
    assert dialog.bar.value() == dialog.bar.maximum() == 4
    summary = dialog.summary_text
    assert "3 of 4 file(s) predicted" in summary and "1 failed" in summary and "zz-broken.wav" in summary
    rows = {dialog.table.item(r, 0).text(): dialog.table.item(r, 1).text() for r in range(4)}
    assert rows["zz-broken.wav"].startswith("error:") and "voice" in rows["one.wav"]
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    entries = {Path(e["source"]).name: e for e in manifest["files"]}
    assert entries["zz-broken.wav"]["error"] and entries["one.wav"]["output"].endswith("one.pred.lab")
    assert (folder / "more" / MANIFEST_NAME).is_file()
    assert not [m for m in messages.recorded if m.kind == "error"]  # listed, not a pop-up


def test_exports_into_a_folder_with_tta(qtbot, dialog, folder, env):
    out = env / "exports"
    dialog.add_input(folder / "one.wav")
    dialog.add_input(folder / "more")
    dialog.set_format("npz")
    dialog.set_destination(out)
    dialog.tta_check.setChecked(True)
    with qtbot.waitSignal(dialog.batchFinished, timeout=TIMEOUT_MS):
        dialog.start()
    assert sorted(p.name for p in out.iterdir()) == sorted(["one.pred.npz", "three.pred.npz", MANIFEST_NAME])
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["info"]["tta"] is True and manifest["format"] == "npz"
    assert "2 of 2 file(s) predicted." in dialog.summary_text


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["lab", "audacity"])
def test_predicting_beside_ground_truth_keeps_every_label_file_byte_for_byte(qtbot, dialog, env, fmt):
    root = env / "labelled"
    write_song(root / "one.wav", 3.0, [(0.5, 2.0)], seed=1)  # one.lab
    write_song(root / "two.flac", 3.0, [(1.0, 2.5)], seed=2, label_suffix=".txt")  # Audacity ground truth
    write_song(root / "sub" / "three.wav", 3.0, [], seed=3, label_suffix=".txt")
    before = snapshot(root)
    dialog.add_input(root)
    dialog.set_format(fmt)
    dialog.set_destination(None)  # the default: beside each audio file
    with qtbot.waitSignal(dialog.batchFinished, timeout=TIMEOUT_MS) as blocker:
        assert dialog.start()
    assert not blocker.args[0].failures
    after = snapshot(root)
    assert {name: after[name] for name in before} == before
    tag = ".pred.lab" if fmt == "lab" else ".pred.txt"
    assert {"one" + tag, "two" + tag, "sub/three" + tag} <= set(after)
    assert not [m for m in messages.recorded if m.kind == "replace_files"]
    with qtbot.waitSignal(dialog.batchFinished, timeout=TIMEOUT_MS):  # a re-run replaces our own outputs unasked
        assert dialog.start()
    assert not [m for m in messages.recorded if m.kind == "replace_files"]
    assert {name: p for name, p in snapshot(root).items() if name in before} == before


def test_files_that_are_not_ours_are_replaced_only_after_a_yes(qtbot, dialog, folder, env):
    out = env / "exports"
    out.mkdir()
    (out / "one.pred.lab").write_bytes(b"hand-made\n")
    dialog.add_input(folder / "one.wav")
    dialog.set_destination(out)
    assert not dialog.start()  # the recorded answer is the default: Cancel
    question = messages.recorded[-1]
    assert question.kind == "replace_files" and str(out / "one.pred.lab") in question.text
    assert not dialog.is_running and (out / "one.pred.lab").read_bytes() == b"hand-made\n"
    assert sorted(p.name for p in out.iterdir()) == ["one.pred.lab"]
    messages.answers["replace_files"] = True
    with qtbot.waitSignal(dialog.batchFinished, timeout=TIMEOUT_MS) as blocker:
        assert dialog.start()
    assert not blocker.args[0].failures and (out / "one.pred.lab").read_bytes() != b"hand-made\n"


def test_an_output_folder_that_cannot_be_written_is_refused_before_starting(dialog, folder, env):
    blocker = env / "a-file"
    blocker.write_text("x")
    dialog.add_input(folder)
    dialog.set_destination(blocker / "out")
    assert not dialog.start() and not dialog.is_running
    assert messages.recorded[-1].kind == "error" and str(blocker / "out") in messages.recorded[-1].text
    assert blocker.read_text() == "x" and dialog.table.rowCount() == 0


def test_cancel_stops_between_files_and_the_manifest_lists_the_files_done(qtbot, dialog, folder, env, monkeypatch):
    release = threading.Event()
    real = batch_predict_dialog.run_batch_prediction

    def held_after_first_file(*args, **kwargs):  # the real job, stopped after its first file
        job = real(*args, **kwargs)
        try:
            for item in job:
                yield item
                if isinstance(item, FileOutcome):
                    release.wait(10)  # until the test has pressed Cancel
                    return
        finally:
            job.close()  # what the worker's cancel does: the job's finally writes the manifest
    monkeypatch.setattr(batch_predict_dialog, "run_batch_prediction", held_after_first_file)
    out = env / "partial"
    dialog.add_input(folder)
    dialog.set_destination(out)
    dialog.start()
    qtbot.waitUntil(lambda: len(dialog.outcomes) == 1, timeout=TIMEOUT_MS)
    dialog.cancel()
    release.set()
    qtbot.waitUntil(lambda: not dialog.is_running, timeout=TIMEOUT_MS)
    assert len(dialog.outcomes) == 1 and "Cancelled after 1 of 4 files" in dialog.summary_text
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert [Path(e["source"]) for e in manifest["files"]] == [dialog.outcomes[0].source]
    assert dialog.start_button.isEnabled()


def test_missing_choices_are_readable_messages(dialog, model_path):
    assert not dialog.start()
    assert "Add at least one folder" in messages.recorded[-1].text
    dialog.add_input(model_path.parent)
    dialog.folder_radio.setChecked(True)
    assert not dialog.start()
    assert "output folder" in messages.recorded[-1].text
    none = BatchPredictDialog(model_path=lambda: None)
    none.add_input(model_path.parent)
    assert not none.start() and "No model is active" in messages.recorded[-1].text
    none.deleteLater()


def test_the_model_menu_opens_the_dialog_with_the_active_model_and_the_listed_folder(qtbot, env, model_path, folder):
    window = MainWindow(model_path=model_path)
    qtbot.addWidget(window)
    window.open_folder(folder)
    window.acts["predict_folders"].trigger()
    dlg = window.batch_dialog
    assert dlg.isVisible() and not dlg.isModal()
    assert dlg.input_paths() == [folder] and "tiny" in dlg.model_label.text()
    dlg.set_destination(env / "out")
    with qtbot.waitSignal(dlg.batchFinished, timeout=TIMEOUT_MS):
        dlg.start()
    assert len(dlg.failures()) == 1
    window.workers.stop_all()
