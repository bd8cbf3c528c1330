"""Evaluating from the GUI (the table holds engine.evaluate's figures; a click opens the file) and the
models dialog (metadata, make active, compare two models on the open file and on a folder)."""

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

from engine.cache import SpectrogramCache
from engine.checkpoint import VoiceModel, load_model, save_model
from engine.config import ModelConfig
from engine.datasets import find_tracks, load_tracks
from engine.evaluate import evaluate
from engine.predict import predict_linear
from svgui.dialogs import messages
from svgui.dialogs.evaluate_dialog import COLUMNS, EvaluateDialog
from svgui.main_window import MainWindow
from svgui.widgets import models_panel
from svgui.widgets.models_panel import add_user_model, remove_user_model, user_model_paths
from tests.synth import random_voiced, write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
TIMEOUT_MS = 60_000


def make_model(path, seed, *, name, error=None, updates=300, augment="pitch ±30 %, stretch ±30 %, filter ±10 dB"):
    model = VoiceModel.create(model_config=SMALL, seed=seed)
    model.threshold = 0.45 + 0.01 * seed
    model.metadata = {"name": name, "created": f"2025-01-0{seed}T10:00:00+00:00", "updates": updates, "seed": 0,
                      "data": "folder /data/songs: 12 files", "augment": {"description": augment},
                      "train_files": ["a"] * 10, "valid_files": ["b"] * 2, "threshold_source": "validation",
                      "validation": None if error is None else {"update": updates, "threshold": 0.5, "error": error,
                                                                 "recall": 0.9, "specificity": 0.8, "n_frames": 1000}}
    return save_model(path, model)


@pytest.fixture
def models(env, monkeypatch):
    bundled = make_model(env / "bundled.safetensors", 1, name="bundled-net", error=0.123)
    monkeypatch.setattr(models_panel, "bundled_model_path", lambda: bundled)
    previous = make_model(env / "previous.safetensors", 3, name="old-net", error=0.2)
    monkeypatch.setattr(models_panel, "previous_bundled_models", lambda: [previous])
    mine = make_model(env / "mine.safetensors", 2, name="my-net", error=0.0456, updates=1200, augment="none")
    return bundled, mine


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(5)
    for i in range(3):
        write_song(root / f"track{i}.wav", 6.0, random_voiced(6.0, rng), seed=20 + i)
    return root


def engine_evaluation(model_path, folder):
    model = load_model(model_path)
    data = load_tracks(find_tracks(folder), config=model.features, cache=SpectrogramCache())
    probabilities = [predict_linear(model, d.linear) for d in data]
    return evaluate(probabilities, [d.targets for d in data], [d.track.name for d in data],
                    threshold=model.threshold, config=model.eval_config)


# ---- evaluate ------------------------------------------------------------------------------------
def test_the_evaluation_table_holds_the_engines_figures_and_sorts(qtbot, env, models, labelled):
    bundled, mine = models
    dialog = EvaluateDialog(models=lambda: [("bundled-net", bundled), ("my-net", mine)], active_path=lambda: mine)
    qtbot.addWidget(dialog)
    assert dialog.model_combo.currentData() == str(mine) and "(active)" in dialog.model_combo.currentText()
    dialog.set_folder(labelled)
    with qtbot.waitSignal(dialog.evaluated, timeout=TIMEOUT_MS):
        assert dialog.start()
    expected = engine_evaluation(mine, labelled)
    assert dialog.result.evaluation == expected
    rows = {row["File"]: row for row in dialog.table_rows()}
    assert set(rows) == {r.name for r in expected.per_file}
    for file_result in expected.per_file:
        row, counts = rows[file_result.name], file_result.counts
        for title, value in (("Error", counts.error), ("Recall", counts.recall), ("Specificity", counts.specificity),
                             ("Precision", counts.precision), ("F1", counts.f1)):
            assert row[title] == (None if np.isnan(value) else pytest.approx(value, abs=0)), (file_result.name, title)
        assert row["Frames"] == counts.n_frames and row["path"] == labelled / f"{file_result.name}.wav"
    pooled = dialog.pooled.text()
    assert f"error {100 * expected.pooled.error:.2f} %" in pooled and "3 files" in pooled
    errors = [row["Error"] for row in dialog.table_rows()]
    assert errors == sorted(errors, reverse=True)  # worst first
    dialog.table.sortByColumn(COLUMNS.index("Frames"), Qt.SortOrder.AscendingOrder)
    frames = [row["Frames"] for row in dialog.table_rows()]
    assert frames == sorted(frames)


def test_clicking_a_file_opens_it_in_the_main_window(qtbot, env, models, labelled):
    bundled, mine = models
    window = MainWindow(model_path=mine)
    qtbot.addWidget(window)
    window.show()
    window.acts["evaluate"].trigger()
    dialog = window.evaluate_dialog
    assert dialog.isVisible() and not dialog.isModal()
    dialog.set_folder(labelled)
    with qtbot.waitSignal(dialog.evaluated, timeout=TIMEOUT_MS):
        dialog.start()
    index = dialog.proxy.index(0, 0)
    target = dialog.table_rows()[0]["path"]
    with qtbot.waitSignals([window.fileShown, window.predictionsShown], timeout=TIMEOUT_MS):
        dialog.table.clicked.emit(index)
    assert window.document.audio_path == target
    assert window.document.annotations  # the labels, so the error lanes have something to compare
    window.workers.stop_all()


def test_the_evaluation_window_plots_error_against_gain(qtbot, env, models, labelled):
    from engine.robustness import sweep_gains
    from svgui.tasks import drain

    _, mine = models
    dialog = EvaluateDialog(models=lambda: [("my-net", mine)])
    qtbot.addWidget(dialog)
    dialog.set_folder(labelled)
    dialog.gains_check.setChecked(True)
    dialog.gains_edit.setText("-12, 0, 6")
    with qtbot.waitSignal(dialog.evaluated, timeout=TIMEOUT_MS):
        assert dialog.start()
    sweep = dialog.result.gain_sweep
    model = load_model(mine)
    data = load_tracks(find_tracks(labelled), config=model.features, cache=SpectrogramCache())
    _, expected = drain(sweep_gains(model, data, (-12.0, 0.0, 6.0), threshold=model.threshold))
    assert sweep == expected  # the engine's figures, at the model's threshold
    assert sweep.levels[1].counts == dialog.result.evaluation.pooled
    assert dialog.gain_plot.isVisibleTo(dialog)
    curves = dialog.gain_plot.getPlotItem().listDataItems()
    assert [c.name() for c in curves] == ["error", "recall", "specificity"]
    assert list(curves[0].getData()[0]) == [-12.0, 0.0, 6.0]
    dialog.gains_edit.setText("-18, 90")
    assert not dialog.start()
    assert "90 dB is out of range" in messages.recorded[-1].text


def test_evaluating_a_folder_without_labels_is_a_readable_error(qtbot, env, models):
    bundled, _ = models
    write_song(env / "nolabels" / "x.wav", 3.0, [], label_suffix=None)
    dialog = EvaluateDialog(models=lambda: [("bundled-net", bundled)])
    qtbot.addWidget(dialog)
    dialog.set_folder(env / "nolabels")
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_running, timeout=TIMEOUT_MS)
    assert messages.recorded[-1].title == "Evaluation failed" and "label" in messages.recorded[-1].text
    assert dialog.evaluate_button.isEnabled()


# ---- models --------------------------------------------------------------------------------------
def test_the_list_of_user_models_is_remembered(env):
    settings = QSettings(str(env / "s.ini"), QSettings.Format.IniFormat)
    assert user_model_paths(settings) == []
    add_user_model(settings, env / "a.safetensors")
    add_user_model(settings, env / "b.safetensors")
    add_user_model(settings, env / "a.safetensors")
    assert user_model_paths(settings) == [str(env / "b.safetensors"), str(env / "a.safetensors")]
    remove_user_model(settings, env / "b.safetensors")
    settings.sync()
    reread = QSettings(str(env / "s.ini"), QSettings.Format.IniFormat)
    assert user_model_paths(reread) == [str(env / "a.safetensors")]


def test_the_models_dialog_lists_metadata_and_makes_a_model_active(qtbot, env, models):
    bundled, mine = models
    window = MainWindow(model_path=bundled)
    qtbot.addWidget(window)
    add_user_model(window.settings, mine)
    add_user_model(window.settings, env / "gone.safetensors")  # deleted since: listed as unreadable
    window.acts["models"].trigger()
    dialog = window.models_dialog
    assert dialog.isVisible()
    rows = {dialog.table.item(r, 1).text(): [dialog.table.item(r, c).text() for c in range(dialog.table.columnCount())]
            for r in range(dialog.table.rowCount())}
    assert set(rows) == {"bundled-net", "old-net", "my-net", "gone"}
    assert rows["bundled-net"][0] == "● active" and rows["bundled-net"][2] == "bundled"
    assert rows["old-net"][2] == "previous bundled"  # kept loadable when a new model is bundled
    assert dialog.select(env / "previous.safetensors") and dialog.activate_button.isEnabled()
    assert not dialog.remove_button.isEnabled()  # shipped with the app: not the user's to remove
    assert rows["my-net"][2:8] == ["yours", "folder /data/songs: 12 files", "1,200", "none", "4.56 %",
                                   "2025-01-02 10:00"]
    assert "cannot read" in rows["gone"][3]
    assert dialog.select(mine)
    details = dialog.details.toPlainText()
    assert "updates: 1,200" in details and "validation: error 4.56 %" in details and "10 for training" in details
    assert "recipe: paper network, fixed input normalization, plain first convolution, sgd-nesterov" in details
    dialog.make_active()
    assert window.model.path == mine
    assert dialog.table.item(next(r for r in range(4) if dialog.table.item(r, 1).text() == "my-net"), 0).text() \
        == "● active"
    assert dialog.select(env / "gone.safetensors") and not dialog.activate_button.isEnabled()
    dialog.remove_selected()
    assert dialog.table.rowCount() == 3
    window.workers.stop_all()


def test_comparing_two_models_on_the_open_file_and_on_a_folder(qtbot, env, models, labelled):
    bundled, mine = models
    window = MainWindow(model_path=mine)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignals([window.fileShown, window.predictionsShown], timeout=TIMEOUT_MS):
        window.open_file(labelled / "track1.wav")
    dialog = window.show_models_dialog()
    assert dialog.compare.compare_paths()[0] == mine  # the active model first
    # before any comparison: what to do, the picked models as columns, no bare legend box
    assert dialog.compare.compare_status.text().startswith("Compare the two models on the file open")
    header = dialog.compare.figures.horizontalHeaderItem
    assert [header(c).text() for c in range(2)] == ["my-net", "bundled-net"]
    assert not dialog.compare.curve_legend.isVisible()
    dialog.compare.set_compare(mine, mine)
    assert not dialog.compare.compare_on_open_file()  # the widget says why, the dialog shows it
    assert (messages.recorded[-1].kind, messages.recorded[-1].title) == ("error", "Pick two different models")
    dialog.compare.set_compare(bundled, mine)
    with qtbot.waitSignal(dialog.compared, timeout=TIMEOUT_MS) as blocker:
        assert dialog.compare.compare_on_open_file()
    curves = blocker.args[0]
    assert curves.names == ("bundled-net", "my-net")
    assert dialog.compare.curve_legend.isVisible()
    items = dialog.compare.curve_plot.listDataItems()
    assert len(items) == 2 and len(items[0].getData()[0]) == window.document.n_frames
    table = dialog.compare.figures_table()
    assert set(table) == {"threshold", "voice predicted", "error", "recall", "specificity"}
    assert table["threshold"] == ["0.46", "0.47"]

    with qtbot.waitSignal(dialog.compared, timeout=TIMEOUT_MS) as blocker:
        dialog.compare.compare_on_folder(labelled)
    table = dialog.compare.figures_table()
    for column, path in enumerate((bundled, mine)):
        expected = engine_evaluation(path, labelled)
        assert table["error"][column] == f"{100 * expected.pooled.error:.2f} %"
        assert table["files"][column] == "3"

    with qtbot.waitSignal(dialog.compared, timeout=TIMEOUT_MS) as blocker:
        assert dialog.compare.compare_gains_on_folder(labelled)
    comparison = blocker.args[0]
    assert comparison.names == ("bundled-net", "my-net")
    assert dialog.compare.gain_canvas.isVisibleTo(dialog) and not dialog.compare.curve_canvas.isVisibleTo(dialog)
    curves = dialog.compare.gain_canvas.getPlotItem().listDataItems()
    assert [list(c.getData()[0]) for c in curves] == [[-18.0, -12.0, -6.0, 0.0, 6.0]] * 2
    table = dialog.compare.figures_table()
    for column, path in enumerate((bundled, mine)):
        zero_db = engine_evaluation(path, labelled).pooled.error  # 0 dB is the plain evaluation
        assert table["error at 0 dB"][column] == f"{100 * zero_db:.2f} %"
        sweep = comparison.sweeps[column]
        assert table["spread (worst − best)"][column] == f"{100 * sweep.spread:.1f} points"
        assert list(curves[column].getData()[1]) == pytest.approx([100 * e for e in sweep.errors])
    window.workers.stop_all()


def test_models_that_share_a_name_are_told_apart_by_their_file_names():
    from svgui.model_jobs import distinct_names
    assert distinct_names(["a", "b"], ["/x/one.safetensors", "/y/two.safetensors"]) == ("a", "b")
    assert distinct_names(["net", "net"], ["/x/aug.safetensors", "/y/noaug.safetensors"]) == ("aug", "noaug")
    assert distinct_names(["net", "net"], ["/x/m.safetensors", "/y/m.safetensors"]) == ("net (1)", "net (2)")
