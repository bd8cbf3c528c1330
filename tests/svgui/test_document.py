"""The document model: annotation edits with undo, saving, autosave and recovery, metrics."""

import numpy as np
import pytest

from engine.evaluate import count_errors, smooth_probabilities
from engine.features import log_mel_spectrogram
from engine.labels import intervals_to_targets, read_voiced_intervals
from svgui.document import Document, normalize_intervals


@pytest.fixture
def doc(qtbot, tmp_path):
    samples = (np.random.default_rng(0).standard_normal(22050 * 10) * 0.1).astype(np.float32)
    document = Document()
    document.set_audio(tmp_path / "song.flac", samples, log_mel_spectrogram(samples).numpy())
    return document


def test_normalize_merges_sorts_and_clips():
    assert normalize_intervals([(5, 6), (1, 2), (1.5, 3), (9, 12)], 10.0) == [(1, 3), (5, 6), (9, 10.0)]


def test_every_edit_is_one_undo_step_and_marks_the_document_dirty(doc, qtbot):
    with qtbot.waitSignal(doc.dirtyChanged):
        doc.add_region(1.0, 2.0)
    doc.add_region(4.0, 5.0)
    doc.move_region(0, 1.5, 2.5)
    doc.remove_region(1)
    assert doc.annotations == [(1.5, 2.5)] and doc.is_dirty
    assert [doc.undo_stack.text(i) for i in range(doc.undo_stack.count())] == \
        ["Add region", "Add region", "Move region", "Delete region"]
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.annotations == [(1.0, 2.0), (4.0, 5.0)]
    doc.undo_stack.redo()
    assert doc.annotations == [(1.5, 2.5), (4.0, 5.0)]


def test_overlapping_regions_merge_and_split_and_merge_are_undoable(doc):
    doc.add_region(1.0, 3.0)
    doc.add_region(2.0, 4.0)
    assert doc.annotations == [(1.0, 4.0)]
    assert doc.split_region(2.5)
    assert doc.annotations == [(1.0, 2.5), (2.5, 4.0)]
    doc.merge_regions(0, 1)
    assert doc.annotations == [(1.0, 4.0)]
    doc.undo_stack.undo()
    assert len(doc.annotations) == 2
    assert not doc.split_region(8.0)


def test_snap_prefers_neighbouring_edges_then_the_frame_grid(doc):
    doc.add_region(1.0, 2.0)
    assert doc.snap(2.03) == 2.0
    assert doc.snap(5.004) == pytest.approx(round(5.004 * 70) / 70)
    assert doc.snap(-1) == 0.0 and doc.snap(99) == doc.duration_s


def test_save_and_reload_round_trip_byte_exact(doc, tmp_path):
    doc.add_region(1.0, 2.5)
    doc.add_region(6.0, 7.25)
    for name in ("song.lab", "song.txt"):
        path = doc.save(tmp_path / name)
        assert not doc.is_dirty
        text = path.read_bytes()
        other = Document()
        other.set_audio(doc.audio_path, doc.samples, doc.log_mel)
        other.load_annotations(path)
        assert other.annotations == doc.annotations
        other.save(tmp_path / f"again-{name}")
        assert (tmp_path / f"again-{name}").read_bytes() == text
    assert read_voiced_intervals(tmp_path / "song.lab") == [(1.0, 2.5), (6.0, 7.25)]


def test_autosave_and_recovery(doc, tmp_path):
    doc.label_path = tmp_path / "song.lab"
    assert doc.autosave() is None  # nothing unsaved
    doc.add_region(3.0, 4.0)
    side = doc.autosave()
    assert side.is_file() and side.name == "song.lab.svgui-autosave"
    fresh = Document()
    fresh.set_audio(doc.audio_path, doc.samples, doc.log_mel)
    fresh.label_path = tmp_path / "song.lab"
    assert fresh.recover_autosave()
    assert fresh.annotations == [(3.0, 4.0)] and fresh.is_dirty
    fresh.save()
    assert not side.exists()


def test_threshold_moves_predicted_regions_and_metrics_match_the_engine(doc, qtbot):
    n = doc.n_frames
    probabilities = np.clip(np.sin(np.arange(n) / 40.0) * 0.5 + 0.5, 0, 1).astype(np.float32)
    doc.add_region(2.0, 5.0)
    with qtbot.waitSignal(doc.predictionsChanged):
        doc.set_predictions(probabilities, "test model", 0.5)
    low = doc.predicted_intervals()
    doc.set_threshold(0.9)
    high = doc.predicted_intervals()
    assert sum(b - a for a, b in high) < sum(b - a for a, b in low)
    smoothed = smooth_probabilities(probabilities, median_frames=56)
    expected = count_errors(smoothed > 0.9, intervals_to_targets(doc.annotations, n, 70.0))
    assert doc.metrics() == expected
    fp, fn = doc.error_intervals()
    assert sum(b - a for a, b in fp) == pytest.approx(expected.fp / 70.0)
    assert sum(b - a for a, b in fn) == pytest.approx(expected.fn / 70.0)
    doc.accept_predictions()
    assert doc.annotations == doc.predicted_intervals()
    doc.undo_stack.undo()
    assert doc.annotations == [(2.0, 5.0)]
