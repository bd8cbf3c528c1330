"""The precision setting in the app: kept in the settings, offered by the Model menu, the training
window and the folder prediction window, and used by their predictions and trainings."""

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from engine.checkpoint import VoiceModel, save_model
from engine.config import ModelConfig
from svgui import settings as prefs
from svgui.dialogs.batch_predict_dialog import BatchPredictDialog
from svgui.main_window import MainWindow
from svgui.model_jobs import LogLine, run_batch_prediction
from svgui.tasks import PredictionDone, drain, predict_audio
from svgui.widgets.training_settings import TrainingSettings
from svgui.workers import WorkerRegistry
from tests.synth import synth_song, write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))


def test_the_setting_round_trips_and_a_bad_value_means_auto(env):
    settings = prefs.make_settings()
    assert prefs.precision(settings) == "auto"
    prefs.set_precision(settings, "bf16")
    assert prefs.precision(settings) == "bf16"
    settings.setValue("model/precision", "fp64")
    assert prefs.precision(settings) == "auto"


def test_the_open_files_prediction_runs_in_the_chosen_precision():
    model = VoiceModel.create(model_config=SMALL, seed=2)
    samples = synth_song(3.0, [(1.0, 2.0)], seed=1)
    results = {}
    for precision in ("fp32", "bf16", "auto"):
        steps, result = drain(predict_audio(model, samples, precision=precision))
        assert isinstance(result, PredictionDone) and steps[-1].fraction == 1.0
        results[precision] = result
    assert [results[p].precision for p in ("fp32", "bf16")] == ["fp32", "bf16"]
    assert results["auto"].precision in ("fp32", "bf16")
    assert np.abs(results["fp32"].probabilities - results["bf16"].probabilities).max() < 0.05


def test_the_model_menu_sets_the_precision(qtbot, env):
    window = MainWindow()
    qtbot.addWidget(window)
    assert window.acts["precision_auto"].isChecked()
    window.acts["precision_fp32"].trigger()
    assert prefs.precision(window.settings) == "fp32"
    assert window.acts["precision_fp32"].isChecked() and not window.acts["precision_auto"].isChecked()
    window.workers.stop_all()


def test_the_training_window_starts_from_the_apps_choice_and_passes_its_own(qtbot, env):
    settings = QSettings(str(env / "form.ini"), QSettings.Format.IniFormat)
    prefs.set_precision(settings, "fp32")
    form = TrainingSettings(settings=settings, model_config=SMALL)
    qtbot.addWidget(form)
    assert form.precision_combo.precision() == "fp32" and form.train_config().precision == "fp32"
    form.precision_combo.set_precision("bf16")
    assert form.train_config().precision == "bf16"


def test_folder_prediction_uses_and_reports_the_precision(qtbot, env):
    model_path = save_model(env / "tiny.safetensors", VoiceModel.create(model_config=SMALL, seed=1))
    write_song(env / "music" / "one.wav", 3.0, [(0.5, 2.0)], seed=1)
    steps = list(run_batch_prediction(model_path, [env / "music"], fmt="lab", out_dir=env / "out", tta=False,
                                      precision="bf16"))
    assert any(isinstance(s, LogLine) and "precision bf16" in s.text for s in steps)
    assert (env / "out" / "one.pred.lab").is_file()
    dialog = BatchPredictDialog(model_path=lambda: model_path, workers=WorkerRegistry(), precision="fp32")
    qtbot.addWidget(dialog)
    assert dialog.precision_combo.precision() == "fp32"


@pytest.mark.parametrize("native, words", [(False, "emulated"), (True, "native on this CPU")])
def test_the_bf16_choice_says_whether_this_cpu_runs_it_natively(monkeypatch, native, words):
    from svgui.widgets import precision_combo
    monkeypatch.setattr(precision_combo.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision_combo, "cpu_features", lambda: {"native_bf16": native})
    assert words in precision_combo._bf16_label()
