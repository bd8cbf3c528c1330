"""Model ▸ Improve Model with My Annotations…: end to end on tiny data, the refusal of too few files,
and the lineage in the Models window."""

from pathlib import Path

import numpy as np
import pytest

from engine.annotation_effort import file_effort
from engine.annotation_state import update_file_state
from engine.cache import SpectrogramCache
from engine.checkpoint import VoiceModel, load_model, save_model
from engine.config import FeatureConfig, ModelConfig
from engine.datasets import find_tracks, load_tracks
from engine.evaluate import find_best_threshold
from engine.finetune import DEFAULT_TUNE
from engine.normalize import compute_normalization
from engine.predict import predict_linear
from svgui.dialogs import messages
from svgui.improve_jobs import (
    HeldOutRow,
    ImproveRequest,
    ImproveResult,
    corrected_files,
    default_output,
    run_improve,
    verdict,
)
from svgui.main_window import MainWindow
from svgui.model_jobs import LogLine
from tests.synth import random_voiced, write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Five labelled songs and a parent model; one song is only pre-annotated (not a correction)."""
    root = tmp_path_factory.mktemp("improve")
    rng = np.random.default_rng(11)
    for i in range(5):
        write_song(root / "songs" / f"take{i}.flac", 8.0, random_voiced(8.0, rng), seed=110 + i)
    update_file_state(root / "songs" / "take4.flac", status="pre-annotated")
    data = load_tracks(find_tracks(root / "songs"), config=FeatureConfig(), cache=SpectrogramCache())
    model = VoiceModel.create(model_config=SMALL, seed=1, normalization=compute_normalization(d.log_mel for d in data))
    model.threshold, model.metadata = 0.45, {"name": "parent-net", "data": "elsewhere", "updates": 10}
    return root / "songs", save_model(root / "parent.safetensors", model)


def test_only_edited_or_reviewed_files_count_and_new_names_never_replace_a_file(corpus, tmp_path):
    folder, parent = corpus
    files = sorted(folder.glob("*.flac"))
    assert [p.name for p in corrected_files(files)] == [f"take{i}.flac" for i in range(4)]
    first = default_output(parent, tmp_path)
    assert first.name == "parent-improved.safetensors"
    first.write_bytes(b"taken")
    assert default_output(first, tmp_path).name == "parent-improved-2.safetensors"


def test_improve_window_end_to_end(qtbot, env, corpus):
    folder, parent = corpus
    window = MainWindow(model_path=parent)
    qtbot.addWidget(window)
    window.open_folder(folder)
    window.acts["improve"].trigger()
    dialog = window.improve_dialog
    assert dialog.isVisible() and len(dialog.files) == 4
    summary = dialog.summary.text()
    assert "parent-net" in summary and "4 marked edited or reviewed" in summary and "fine-tuning on 3" in summary
    assert "keeps the model's threshold" in summary and DEFAULT_TUNE.describe() in summary
    dialog.choose_threshold.setChecked(True)  # one held-out file: nothing to choose it on
    assert "choosing one needs 2 held-out files" in dialog.summary.text()
    dialog.choose_threshold.setChecked(False)
    dialog.updates.setValue(12)
    dialog.out_edit.setText(str(env / "models" / "mine.safetensors"))
    with qtbot.waitSignal(dialog.modelTrained, timeout=TIMEOUT_MS) as blocker:
        assert dialog.start()
    out = env / "models" / "mine.safetensors"
    assert blocker.args == [out] and not dialog.is_running
    result = dialog.result
    assert len(result.rows) == 1 and len(result.tuned_files) == 3
    held = result.rows[0].name
    assert held not in result.tuned_files and held != "take4"
    # the table: one row per held-out file, then the pooled row; figures from the real models
    assert dialog.table.isVisible() and dialog.table.rowCount() == 2
    assert dialog.table.item(0, 0).text() == held
    assert dialog.table.item(1, 0).text() == "All 1 held-out file(s)"
    assert dialog.table.item(0, 1).text().endswith("%") and dialog.table.item(0, 4).text() != ""
    assert dialog.table.horizontalHeaderItem(1).text() == "Error: parent-net"
    assert dialog.view.bar.value() == 12 and "Finished" in dialog.view.result_label.text()
    assert verdict(result)[1] in dialog.view.result_label.text()  # better, worse, mixed or same, in words
    child = load_model(out)
    assert child.metadata["parent"]["name"] == "parent-net" and child.threshold == pytest.approx(0.45)
    assert held not in child.metadata["train_files"] and "take4" not in child.metadata["train_files"]
    # one click: the new model becomes active
    assert dialog.use_button.isVisible()
    dialog.use_button.click()
    assert window.model.path == out
    # the Models window shows where it came from
    window.acts["models"].trigger()
    models = window.models_dialog
    assert models.select(out)
    row = next(r for r in range(models.table.rowCount()) if models.table.item(r, 1).text() == "mine")
    assert models.table.item(row, models.table.columnCount() - 1).text() == "parent-net"
    details = models.details.toPlainText()
    assert "lineage: parent-net → mine" in details and "fine-tuned from: parent-net (parent.safetensors" in details
    assert "threshold: 0.45 (kept from the parent model)" in details
    window.workers.stop_all()


def test_fewer_than_two_corrected_files_get_a_clear_message(qtbot, env, corpus, tmp_path):
    folder, parent = corpus
    lonely = tmp_path / "lonely"
    write_song(lonely / "only.flac", 6.0, [(1.0, 4.0)], seed=3)
    window = MainWindow(model_path=parent)
    qtbot.addWidget(window)
    window.open_folder(lonely)
    dialog = window.show_improve_dialog()
    assert "at least 2 corrected files" in dialog.summary.text()
    assert not dialog.start() and not dialog.is_running
    message = messages.recorded[-1]
    assert message.title == "Cannot improve the model"
    assert "at least 2 labelled files, got 1 (only.flac)" in message.text
    window.workers.stop_all()


def _run(request):
    """Drive the job to its end as the worker does; returns (log lines, result)."""
    job, lines = run_improve(request), []
    while True:
        try:
            item = next(job)
        except StopIteration as stop:
            return lines, stop.value
        if isinstance(item, LogLine):
            lines.append(item.text)


def test_two_held_out_files_choose_the_threshold_and_each_is_scored_at_the_others(corpus, tmp_path):
    folder, parent = corpus
    files = corrected_files(sorted(folder.glob("*.flac")))
    out = tmp_path / "chosen.safetensors"
    lines, result = _run(ImproveRequest(parent, tuple(files), out, holdout_fraction=0.5, updates=6,
                                        choose_threshold=True))
    assert len(result.rows) == 2 and "chosen on the 2 held-out files" in result.threshold_note
    assert any(line.startswith("fine-tuning parent-net") and DEFAULT_TUNE.describe() in line for line in lines)
    child = load_model(out)
    held = load_tracks([t for t in find_tracks(folder) if t.name in {r.name for r in result.rows}],
                       config=child.features, cache=SpectrogramCache())
    held.sort(key=lambda d: [r.name for r in result.rows].index(d.track.name))
    probabilities = [predict_linear(child, d.linear) for d in held]
    everything, _ = find_best_threshold(probabilities, [d.targets for d in held], config=child.eval_config)
    assert child.threshold == pytest.approx(everything) and child.metadata["threshold_source"] == "validation"
    for i, row in enumerate(result.rows):  # the figure of file i owes nothing to file i's own labels
        other, _ = find_best_threshold([probabilities[1 - i]], [held[1 - i].targets], config=child.eval_config)
        expected = file_effort(row.name, probabilities[i], held[i].targets, threshold=other,
                               frames_per_second=child.features.frames_per_second, eval_config=child.eval_config)
        assert row.child.counts == expected.counts and row.child.edits == expected.edits


def _row(name, probabilities, truth):
    return file_effort(name, probabilities, truth, threshold=0.5, frames_per_second=70.0)


def test_the_verdict_says_plainly_when_the_new_model_is_worse():
    truth = np.repeat([False, True, False], 300)
    right, wrong = np.where(truth, 0.9, 0.1), np.full(len(truth), 0.9)
    rows = (HeldOutRow("a", _row("a", right, truth), _row("a", wrong, truth)),)
    worse = ImproveResult(Path("m.safetensors"), "parent-net", "mine", ("b",), rows, last=None)
    kind, sentence = verdict(worse)
    assert kind == "worse" and "worse than parent-net" in sentence and "parent-net, which stays the active" in sentence
    flipped = ImproveResult(Path("m.safetensors"), "parent-net", "mine", ("b",),
                            (HeldOutRow("a", rows[0].child, rows[0].parent),), last=None)
    assert verdict(flipped)[0] == "better"
    same = ImproveResult(Path("m.safetensors"), "parent-net", "mine", ("b",),
                         (HeldOutRow("a", rows[0].parent, rows[0].parent),), last=None)
    assert verdict(same)[0] == "same" and "stays the active model" in verdict(same)[1]
