"""The training window's output file: never a non-model, a model only when the user says so, and
another run's checkpoint is kept (issue 13 items 3 and 4)."""

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from engine.checkpoint import VoiceModel, load_model, load_training_state, save_model
from engine.config import ModelConfig
from engine.train import checkpoint_path_for
from svgui.dialogs import messages
from svgui.dialogs.training_dialog import TrainingDialog
from svgui.workers import WorkerRegistry
from tests.synth import random_voiced, write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(5)
    for i in range(3):
        write_song(root / f"song{i}.wav", 6.0, random_voiced(6.0, rng), seed=i)
    return root


@pytest.fixture
def dialog(qtbot, env, songs):
    workers = WorkerRegistry()
    dlg = TrainingDialog(settings=QSettings(str(env / "d.ini"), QSettings.Format.IniFormat), model_config=SMALL,
                         workers=workers)
    qtbot.addWidget(dlg)
    dlg.form.add_folder(songs)
    dlg.form.set_validation("none")
    dlg.form.updates_spin.setValue(6)
    dlg.form.validate_spin.setValue(0)
    dlg.form.checkpoint_spin.setValue(5)
    yield dlg
    workers.stop_all()


def test_a_file_that_is_not_a_model_is_refused_before_asking(dialog, env):
    song = env / "song.safetensors"
    song.write_bytes(b"fLaC and more")
    dialog.form.set_output(song)
    assert not dialog.start() and not dialog.is_running
    assert "not an svgui model: it is never replaced" in messages.recorded[-1].text
    assert not any(m.kind == "overwrite_model" for m in messages.recorded)
    assert song.read_bytes() == b"fLaC and more"


def test_an_existing_model_is_replaced_only_when_the_user_agrees(qtbot, dialog, env, monkeypatch):
    out = save_model(env / "m.safetensors", VoiceModel.create(model_config=SMALL))
    before = out.read_bytes()
    dialog.form.set_output(out)
    monkeypatch.setitem(messages.answers, "overwrite_model", False)
    assert not dialog.start()
    assert out.read_bytes() == before
    monkeypatch.setitem(messages.answers, "overwrite_model", True)
    with qtbot.waitSignal(dialog.modelTrained, timeout=TIMEOUT_MS):
        assert dialog.start()
    assert load_model(out).metadata["updates"] == 6


def test_another_runs_checkpoint_is_kept_and_the_log_says_so(qtbot, dialog, env):
    out = env / "m.safetensors"
    usual = checkpoint_path_for(out)
    older = VoiceModel.create(model_config=SMALL)
    save_model(usual, older, training_info={"update": 3, "elapsed_s": 1.0, "run_id": "0123456789abcdef",
                                             "config": {"updates": 10}, "augment": {}})
    before = usual.read_bytes()
    dialog.form.set_output(out)
    assert dialog.form.resume_check.isChecked()  # offered by default; the user starts a new run instead
    dialog.form.resume_check.setChecked(False)
    with qtbot.waitSignal(dialog.modelTrained, timeout=TIMEOUT_MS):
        assert dialog.start()
    assert "belongs to another training run and is kept" in dialog.log.toPlainText()
    assert usual.read_bytes() == before and load_training_state(usual)[1]["run_id"] == "0123456789abcdef"
    assert sorted(p.name for p in env.glob("m.checkpoint*")) == ["m.checkpoint.safetensors"]


def test_cancelling_beside_another_runs_checkpoint_names_this_runs_own(qtbot, dialog, env):
    out = env / "m.safetensors"
    usual = checkpoint_path_for(out)
    save_model(usual, VoiceModel.create(model_config=SMALL),
               training_info={"update": 3, "elapsed_s": 1.0, "run_id": "0123456789abcdef",
                              "config": {"updates": 10}, "augment": {}})
    dialog.form.set_output(out)
    dialog.form.resume_check.setChecked(False)
    dialog.form.updates_spin.setValue(1_000_000)
    with qtbot.waitSignal(dialog.runningChanged, timeout=TIMEOUT_MS, check_params_cb=lambda running: not running):
        assert dialog.start()
        qtbot.waitUntil(lambda: dialog.progress_count >= 2, timeout=TIMEOUT_MS)
        dialog.cancel()
    own = [p for p in env.glob("m.checkpoint-*.safetensors")]
    assert len(own) == 1 and str(own[0]) in dialog.status.text() and "--resume" in dialog.status.text()
    assert load_training_state(usual)[1]["run_id"] == "0123456789abcdef"
