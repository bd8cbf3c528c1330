"""Train and Evaluate in the app with the spectrogram cache on a full disk: they finish and say so
(it used to be SIGBUS, killing the window with unsaved edits in it)."""

import errno
import os

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from engine import cache_files
from engine.checkpoint import VoiceModel, load_model, save_model
from engine.config import ModelConfig
from svgui.dialogs import messages
from svgui.dialogs.evaluate_dialog import EvaluateDialog
from svgui.dialogs.training_dialog import TrainingDialog
from svgui.workers import WorkerRegistry
from tests.synth import random_voiced, write_song

pytestmark = pytest.mark.filterwarnings("ignore::engine.cache.CacheWarning")  # asserted in the windows
SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
TIMEOUT_MS = 60_000


@pytest.fixture
def full_disk(env, monkeypatch):
    """An empty cache folder on a disk where every cache entry's reservation fails with ENOSPC."""
    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setenv("SVGUI_CACHE_DIR", str(env / "cache"))
    monkeypatch.setattr(cache_files, "reserve_space", no_space)  # the model file itself still gets written
    return env / "cache"


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("full-disk-songs")
    rng = np.random.default_rng(13)
    for i in range(3):
        write_song(root / f"song{i}.wav", 5.0, random_voiced(5.0, rng), seed=40 + i)
    return root


def cache_files_left(folder):
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_training_on_a_full_disk_finishes_and_logs_the_warning(qtbot, env, full_disk, songs):
    workers = WorkerRegistry()
    dialog = TrainingDialog(settings=QSettings(str(env / "dialog.ini"), QSettings.Format.IniFormat),
                            model_config=SMALL, workers=workers)
    qtbot.addWidget(dialog)
    dialog.form.add_folder(songs)
    dialog.form.set_validation("none")
    dialog.form.updates_spin.setValue(5)
    dialog.form.validate_spin.setValue(0)
    dialog.form.checkpoint_spin.setValue(0)
    out = env / "model.safetensors"
    dialog.form.set_output(out)
    try:
        with qtbot.waitSignal(dialog.modelTrained, timeout=TIMEOUT_MS):
            assert dialog.start()
    finally:
        workers.stop_all()
    log = dialog.log.toPlainText()
    assert "warning: spectrogram cache" in log and "No space left on device" in log
    assert [m for m in messages.recorded if m.kind == "error"] == []
    assert load_model(out).model_config == SMALL
    assert cache_files_left(full_disk) == []


def test_evaluating_on_a_full_disk_fills_the_table(qtbot, env, full_disk, songs):
    model_path = save_model(env / "net.safetensors", VoiceModel.create(model_config=SMALL, seed=1))
    dialog = EvaluateDialog(models=lambda: [("net", model_path)])
    qtbot.addWidget(dialog)
    dialog.set_folder(songs)
    with qtbot.waitSignal(dialog.evaluated, timeout=TIMEOUT_MS):
        assert dialog.start()
    assert len(dialog.table_rows()) == 3 and "3 files" in dialog.pooled.text()
    assert [m for m in messages.recorded if m.kind == "error"] == []
    assert cache_files_left(full_disk) == []
