"""The training dialog: a real short run on synthesized songs, live progress, Pause/Resume, Cancel with a
checkpoint, failures as messages, closing the app mid-training, and the settings it starts from."""

import time

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from engine.checkpoint import VoiceModel, load_model, save_model
from engine.config import AugmentConfig, ModelConfig, TrainConfig
from engine.errors import TrainingDiverged
from engine.predict import predict_file
from engine.train import TrainProgress, checkpoint_path_for
from svgui import settings as prefs
from svgui.dialogs import messages
from svgui.dialogs.training_dialog import TrainingDialog
from svgui.main_window import MainWindow
from svgui.model_jobs import TrainingSteps, gather_training_data, readable_training_error
from svgui.widgets.training_device import format_duration
from svgui.widgets.training_plots import nice_ceiling, trailing_mean
from svgui.widgets.training_progress import PLOT_REFRESH_MS
from svgui.workers import WorkerRegistry
from tests.synth import random_voiced, write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
TIMEOUT_MS = 60_000
QUIET_MS = 500  # no progress for this long: the worker is waiting (updates of the small network take ~10 ms)


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(3)
    for i in range(4):
        write_song(root / "train" / f"song{i}.wav", 8.0, random_voiced(8.0, rng), seed=i)
    write_song(root / "valid" / "check.wav", 8.0, random_voiced(8.0, rng), seed=9)
    return root


@pytest.fixture
def dialog(qtbot, env):
    settings = QSettings(str(env / "dialog.ini"), QSettings.Format.IniFormat)
    workers = WorkerRegistry()  # stopped here even when a failed test left a run going
    dlg = TrainingDialog(settings=settings, model_config=SMALL, workers=workers)
    qtbot.addWidget(dlg)
    yield dlg
    workers.stop_all()


def settled(qtbot, read, *, timeout_ms=TIMEOUT_MS):
    """``read()`` once it has not changed for QUIET_MS (instead of a fixed wait long enough for a slow machine)."""
    value, quiet_since = read(), time.monotonic()
    deadline = quiet_since + timeout_ms / 1000
    while time.monotonic() - quiet_since < QUIET_MS / 1000:
        assert time.monotonic() < deadline, f"still changing after {timeout_ms} ms"
        qtbot.wait(50)
        now = read()
        if now != value:
            value, quiet_since = now, time.monotonic()
    return value


def configure(dlg, songs, out, *, updates=30, validate_every=10, checkpoint_every=0):
    dlg.form.add_folder(songs / "train")
    dlg.form.set_augment(AugmentConfig())  # the runs here test the window, not augmentation: the fastest
    dlg.form.set_validation("folder", folder=songs / "valid")
    dlg.form.updates_spin.setValue(updates)
    dlg.form.validate_spin.setValue(validate_every)
    dlg.form.checkpoint_spin.setValue(checkpoint_every)
    dlg.form.set_output(out)


def test_the_dialog_starts_from_the_papers_settings(dialog):
    config = dialog.form.train_config()
    assert (config.updates, config.batch_size, config.learning_rate, config.lr_decay, config.lr_decay_every,
            config.momentum, config.seed) == (40_000, 32, 0.01, 0.85, 2000, 0.95, 0)
    assert dialog.form.device_combo.currentData() in ("cpu", "cuda:0")
    assert dialog.form.augment_config() == AugmentConfig.paper()  # the paper's combination by default
    assert dialog.form.augment_combo.currentData() == "paper"
    dialog.form.updates_spin.setValue(7)
    dialog.form.augment_edit.setText("pitch=0.1")
    dialog.form.restore_defaults()
    assert dialog.form.train_config() == TrainConfig() and dialog.form.augment_config() == AugmentConfig.paper()
    full = TrainingDialog()  # the full network: the README's benchmark figure gives the expected time
    if full.form.device_combo.currentData() == "cpu":
        assert "5 h 00 min" in full.form.time_note.text() and "40,000 updates" in full.form.time_note.text()
    full.deleteLater()


def test_the_augmentation_of_the_last_run_started_is_the_next_default(qtbot, env):
    settings = QSettings(str(env / "saved.ini"), QSettings.Format.IniFormat)
    prefs.set_training_augment(settings, "pitch=0.2,noise=0.1")
    dlg = TrainingDialog(settings=settings, model_config=SMALL)
    qtbot.addWidget(dlg)
    assert dlg.form.augment_config() == AugmentConfig(max_pitch=0.2, noise_sigma=0.1)
    assert dlg.form.augment_combo.currentData() == "custom"
    prefs.set_training_augment(settings, "pitch=banana")  # unreadable: the paper's again
    again = TrainingDialog(settings=settings, model_config=SMALL)
    qtbot.addWidget(again)
    assert again.form.augment_config() == AugmentConfig.paper()


def test_a_short_run_writes_a_model_that_loads_and_predicts(qtbot, dialog, songs, env):
    out = env / "models" / "short.safetensors"
    configure(dialog, songs, out)
    seen_mid_run = []
    dialog.plots.loss_raw.sigPlotChanged.connect(lambda *_: seen_mid_run.append(dialog.bar.value()))
    with qtbot.waitSignal(dialog.modelTrained, timeout=TIMEOUT_MS) as blocker:
        assert dialog.start()
    assert blocker.args == [out]
    assert dialog.state == "finished" and not dialog.is_running
    assert prefs.training_augment(dialog._settings) == "none"  # what the next window starts from
    # progress and plots followed the run
    assert dialog.bar.value() == dialog.bar.maximum() == 30
    assert dialog.plots.n_points == 30 and np.isfinite(dialog.plots.losses()).all()
    assert dialog.plots.valid_updates == [10, 20, 30]
    assert len(dialog.plots.loss_raw.getData()[0]) == 30
    assert any(0 < value < 30 for value in seen_mid_run)  # drawn while running, not only at the end
    assert "Finished" in dialog.result_label.text() and "error" in dialog.result_label.text()
    log = dialog.log.toPlainText()
    assert "validation error" in log and "finished" in log and "train" in log
    # the model loads, predicts, and says how it was made
    model = load_model(out)
    assert model.model_config == SMALL
    assert model.metadata["updates"] == 30 and model.metadata["threshold_source"] == "validation"
    assert "folder" in model.metadata["data"] and model.metadata["valid_files"] == ["check"]
    prediction = predict_file(model, songs / "valid" / "check.wav")
    assert len(prediction.probabilities) > 500 and np.isfinite(prediction.probabilities).all()
    assert not checkpoint_path_for(out).exists()
    # "Use this model"
    assert dialog.use_button.isEnabled()
    with qtbot.waitSignal(dialog.useModelRequested) as used:
        dialog.use_button.click()
    assert used.args == [out]


def test_pause_resume_and_cancel_keep_a_loadable_checkpoint(qtbot, dialog, songs, env):
    out = env / "long.safetensors"
    configure(dialog, songs, out, updates=1_000_000, validate_every=0)
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.progress_count >= 5, timeout=TIMEOUT_MS)
    qtbot.waitUntil(lambda: dialog.bar.value() > 0 and dialog.plots.redraw_count > 1, timeout=10_000)
    # the speed shows from the second update's record on, at the next refresh tick
    qtbot.waitUntil(lambda: "remaining ≈ –" not in dialog.times.text(), timeout=10_000)
    assert "remaining" in dialog.times.text() and "updates/s" in dialog.times.text()

    dialog.pause_button.click()
    assert dialog.state == "paused" and dialog.pause_button.text() == "Resume"
    paused_at = settled(qtbot, lambda: dialog.progress_count)  # the updates in flight arrive, then it waits
    qtbot.wait(QUIET_MS)
    assert dialog.progress_count == paused_at
    assert "Paused" in dialog.status.text()

    dialog.pause_button.click()
    assert dialog.state == "training"
    qtbot.waitUntil(lambda: dialog.progress_count >= paused_at + 5, timeout=TIMEOUT_MS)
    dialog.set_augment(AugmentConfig.paper(), source="preview")  # from the preview, mid-run
    assert dialog.form.augment_config() == AugmentConfig()  # the form still shows this run's

    with qtbot.waitSignal(dialog.runningChanged, timeout=5000):  # its latency: bench/wall_clock.py
        dialog.cancel_button.click()
    assert dialog.state == "idle" and dialog.start_button.isEnabled()
    checkpoint = checkpoint_path_for(out)
    assert checkpoint.is_file() and str(checkpoint) in dialog.status.text()
    model = load_model(checkpoint)
    assert model.metadata["updates"] == dialog.last_progress.update
    assert not out.exists()
    assert dialog.form.augment_config() == AugmentConfig.paper()  # ... and offers it for the next run
    assert not dialog.form.resume_check.isHidden() and dialog.form.resume_check.isChecked()
    assert dialog.form.request().resume


def test_a_failure_is_a_readable_message_and_the_dialog_stays_usable(qtbot, dialog, songs, env):
    bad = env / "bad"
    write_song(bad / "fine.wav", 6.0, [(1.0, 3.0)])
    (bad / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot really audio" * 20)
    (bad / "broken.lab").write_text("0.0 1.0 sing\n")
    dialog.form.add_folder(bad)
    dialog.form.set_validation("none")
    dialog.form.set_output(env / "never.safetensors")
    with qtbot.waitSignal(dialog.runningChanged, timeout=TIMEOUT_MS, check_params_cb=lambda on: not on):
        dialog.start()
    errors = [m for m in messages.recorded if m.kind == "error"]
    assert len(errors) == 1 and errors[0].title == "Training failed"
    assert "broken.wav" in errors[0].text and "Traceback" not in errors[0].text
    assert dialog.state == "idle" and dialog.start_button.isEnabled() and dialog.form.isEnabled()
    assert not (env / "never.safetensors").exists()


def test_a_diverging_run_says_so_and_what_to_try(qtbot, dialog, songs, env):
    configure(dialog, songs, env / "diverged.safetensors", updates=50, validate_every=0)
    dialog.form.lr_spin.setValue(10.0)  # the loss becomes nan within a few updates
    with qtbot.waitSignal(dialog.runningChanged, timeout=TIMEOUT_MS, check_params_cb=lambda on: not on):
        dialog.start()
    error = [m for m in messages.recorded if m.kind == "error"][-1]
    assert "training loss became nan" in error.text and "lower learning rate" in error.text
    assert not error.informative  # an EngineError: no "this is a bug" note, no traceback in the text
    assert dialog.state == "idle" and "failed" in dialog.log.toPlainText()


def test_progress_is_drawn_at_most_every_refresh_interval(qtbot, dialog):
    dialog._set_state("training")
    dialog.bar.setRange(0, 40_000)
    dialog._timer.start()
    started, drawn_before = time.perf_counter(), dialog.plots.redraw_count
    for update in range(1, 2001):  # bursts as a fast GPU run would send them
        record = TrainProgress(update, 40_000, 0.5 + 0.1 * np.sin(update), 0.01, update * 0.001)
        dialog._on_progress(TrainingSteps((record,)))
        if update % 100 == 0:
            qtbot.wait(60)
    qtbot.wait(600)
    dialog._timer.stop()
    assert dialog.progress_count == 2000 and dialog.plots.n_points == 2000
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert 2 <= dialog.plots.redraw_count - drawn_before <= elapsed_ms / PLOT_REFRESH_MS + 1
    assert dialog.plots.n_points == 2000 and dialog.plots.loss_raw.getData()[0][-1] >= 1999  # the end drawn
    assert dialog.bar.value() == 2000
    for curve in (dialog.plots.loss_raw, dialog.plots.loss_smooth, dialog.plots.rate_curve):  # drawn per pixel
        assert curve.opts["autoDownsample"] and curve.opts["downsampleMethod"] == "peak" and curve.opts["clipToView"]


def test_bad_settings_are_refused_before_starting(dialog, env):
    assert not dialog.start()  # no data
    assert "folder" in messages.recorded[-1].text
    dialog.form.add_folder(env)
    dialog.form.augment_edit.setText("pitch=2")
    assert "max_pitch" in dialog.form.augment_note.text()
    assert not dialog.start()
    assert messages.recorded[-1].text.startswith("augmentation:")
    assert not dialog.is_running


def test_augmentation_from_the_preview_the_paper_or_a_spec_line(dialog):
    dialog.set_augment(AugmentConfig(max_pitch=0.2, noise_sigma=0.1), source="preview")
    assert dialog.form.augment_combo.currentData() == "preview"
    assert dialog.form.augment_edit.text() == "pitch=0.2,noise=0.1"
    dialog.form.augment_combo.setCurrentIndex(dialog.form.augment_combo.findData("paper"))
    assert dialog.form.augment_config() == AugmentConfig.paper()
    dialog.form.augment_edit.setText("pitch=0.3,stretch=0.3,filter=10")
    assert dialog.form.augment_combo.currentData() == "paper"
    dialog.form.augment_edit.setText("pitch=0.1,stretch=0.3")
    assert dialog.form.augment_combo.currentData() == "custom"
    assert "pitch ±10 %" in dialog.form.augment_note.text()
    dialog.form.augment_combo.setCurrentIndex(dialog.form.augment_combo.findData("none"))
    assert dialog.form.augment_config() == AugmentConfig() and dialog.form.augment_edit.text() == "none"


def test_listed_files_and_a_seeded_fraction_make_the_training_data(qtbot, env, songs):
    listed = sorted((songs / "train").glob("*.wav")) + [env / "unlabelled.wav"]
    write_song(env / "unlabelled.wav", 2.0, [], label_suffix=None)
    dlg = TrainingDialog(listed_files=lambda: listed, model_config=SMALL)
    qtbot.addWidget(dlg)
    dlg.form.files_radio.setChecked(True)
    dlg.form.set_validation("fraction", fraction=0.25)
    dlg.form.set_output(env / "m.safetensors")
    assert "4 labelled" in dlg.form.files_note.text() and "1 without labels" in dlg.form.files_note.text()
    request = dlg.form.request()
    assert len(request.files) == 4 and request.validation == "fraction" and request.valid_fraction == 0.25
    data = gather_training_data(request)
    assert len(data.train) == 3 and len(data.valid) == 1
    assert data == gather_training_data(request)  # seeded: the same draw again
    assert "held out" in data.description


def test_plot_helpers_smooth_and_round_ranges():
    values = np.arange(10, dtype=float)
    assert np.allclose(trailing_mean(values, 3), [0, 0.5, 1, 2, 3, 4, 5, 6, 7, 8])
    assert [nice_ceiling(v) for v in (0.73, 0.0101, 7.0, 0, float("nan"))] == [0.8, 0.012, 8.0, 1.0, 1.0]
    assert nice_ceiling(6120, steps=(1, 2, 5, 10)) == 10_000


def test_readable_messages_for_memory_and_divergence(tmp_path):
    checkpoint = tmp_path / "m.checkpoint.safetensors"
    text = readable_training_error(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), device="cuda:0",
                                   checkpoint=checkpoint)
    assert "ran out of memory on cuda:0" in text and "smaller batch size" in text and "No checkpoint" in text
    save_model(checkpoint, VoiceModel.create(model_config=SMALL))
    text = readable_training_error(TrainingDiverged("the training loss became nan at update 12; try a lower "
                                                    "learning rate (the last checkpoint is kept)"),
                                   device="cpu", checkpoint=checkpoint)
    assert text.startswith("the training loss became nan")
    assert format_duration(18_000) == "5 h 00 min" and format_duration(75) == "1 min 15 s"


# ---- in the main window -------------------------------------------------------------------------
@pytest.fixture
def window(qtbot, env):
    model = VoiceModel.create(model_config=SMALL, seed=1)
    path = save_model(env / "tiny.safetensors", model)
    win = MainWindow(model_path=path)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.document.undo_stack.setClean()
    win.workers.stop_all()


def test_closing_the_app_mid_training_asks_and_stops_the_thread(qtbot, window, songs, env):
    dlg = window.show_training_dialog()
    assert dlg.isVisible() and not dlg.isModal()
    dlg.model_config = SMALL
    out = env / "closing.safetensors"
    configure(dlg, songs, out, updates=1_000_000, validate_every=0)
    assert dlg.start()
    qtbot.waitUntil(lambda: dlg.progress_count >= 3, timeout=TIMEOUT_MS)
    assert window.isEnabled()  # the window stays usable

    messages.answers["stop_training"] = False  # "Keep Training"
    window.close()
    assert window.isVisible() and dlg.is_running
    messages.answers["stop_training"] = True
    window.close()
    assert [m.kind for m in messages.recorded].count("stop_training") == 2
    assert not window.workers.active
    assert checkpoint_path_for(out).is_file()  # the cancelled run kept its checkpoint


def test_the_preview_sends_its_settings_and_a_finished_model_becomes_active(qtbot, window, songs, env):
    window.augment_preview.controls.set_config(AugmentConfig(max_pitch=0.25))
    window.augment_preview.use_for_training()  # "Use these settings for training"
    dlg = window.training_dialog
    assert dlg is not None and dlg.isVisible()
    assert dlg.form.augment_config() == AugmentConfig(max_pitch=0.25)
    assert dlg.form.augment_combo.currentData() == "preview"
    dlg.model_config = SMALL
    dlg.form.augment_edit.setText("none")
    out = env / "made.safetensors"
    configure(dlg, songs, out, updates=12, validate_every=0)
    with qtbot.waitSignal(dlg.modelTrained, timeout=TIMEOUT_MS):
        dlg.start()
    dlg.use_button.click()
    assert window.model is not None and window.model.path == out
    from svgui.widgets.models_panel import user_model_paths
    assert str(out) in user_model_paths(window.settings)
