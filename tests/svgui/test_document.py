"""The document model: annotation edits with undo, saving, autosave and recovery, metrics."""

import gc
import warnings
import weakref

import numpy as np
import pytest

from engine import fileio
from engine.errors import LabelFormatError, OutputWriteError, OverwriteRefused
from engine.evaluate import count_errors, smooth_probabilities
from engine.features import log_mel_spectrogram
from engine.labels import intervals_to_targets, read_voiced_intervals
from svgui.document import Document, normalize_intervals


@pytest.fixture
def doc(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("SVGUI_AUTOSAVE_DIR", str(tmp_path / "user-autosave"))  # never the real user folder
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


def test_a_document_with_undo_history_is_freed_by_reference_counting(tmp_path):
    """No reference cycle through the undo stack: left to Python's cycle collector, a dropped
    document's ~QUndoStack deleted commands whose wrappers were already gone (a segfault)."""
    document = Document()
    samples = np.zeros(22050 * 3, dtype=np.float32)
    document.set_audio(tmp_path / "song.flac", samples, log_mel_spectrogram(samples).numpy())
    document.add_region(0.5, 1.0)
    document.add_region(2.0, 2.5)
    document.undo_stack.undo()
    alive = weakref.ref(document)
    gc.disable()
    try:
        del document
        assert alive() is None
    finally:
        gc.enable()


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


# ---- what a save keeps (issue 13 item 5) and where autosaves go (item 12) -------------------------

AUDACITY = ("1.000000\t2.500000\tverse 1\n"
            "\\\t100.000000\t3000.000000\n"
            "4.000000\t5.000000\tchorus\n"
            "6.0\t7.0\tnosing\n"
            "8.0\t9.0\toutro\n")


def _opened(doc, path):
    fresh = Document()
    fresh.set_audio(doc.audio_path, doc.samples, doc.log_mel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh.load_annotations(path)
    return fresh


def test_audacity_texts_and_extra_lines_survive_an_edit_save_and_the_autosave(doc, tmp_path):
    path = tmp_path / "song.txt"
    path.write_text(AUDACITY)
    doc.load_annotations(path)
    assert doc.annotations == [(1.0, 2.5), (4.0, 5.0), (8.0, 9.0)]
    doc.move_region(1, 4.5, 5.0)
    autosaved = doc.autosave().read_text()
    doc.save()
    expected = AUDACITY.replace("4.000000\t5.000000\tchorus", "4.500000\t5.000000\tchorus")
    assert path.read_text() == expected and autosaved == expected
    assert _opened(doc, path).annotations == doc.annotations


def test_a_line_that_does_not_parse_is_shown_as_a_warning_and_written_back(doc, tmp_path):
    path = tmp_path / "song.lab"
    path.write_text("0.0 1.0 sing\nnot a line\n1.0 10.0 nosing\n")
    problems = doc.load_annotations(path)
    assert any("line 2" in p and "kept" in p for p in problems)
    assert doc.annotations == [(0.0, 1.0)]
    doc.add_region(3.0, 4.0)
    doc.save()
    text = path.read_text()
    assert "not a line\n" in text and text.startswith("0.0 1.0 sing\nnot a line\n")
    assert doc.label_file.unparsed and _opened(doc, path).annotations == [(0.0, 1.0), (3.0, 4.0)]


def test_save_never_writes_over_a_label_file_that_failed_to_load(doc, tmp_path):
    path = tmp_path / "song.lab"
    path.write_bytes(b"\xff\xfe\x00 not utf-8")
    with pytest.raises(LabelFormatError):
        doc.load_annotations(path)
    doc.add_region(1.0, 2.0)
    with pytest.raises(OverwriteRefused, match="could not be read.*Save As"):
        doc.save()
    assert path.read_bytes() == b"\xff\xfe\x00 not utf-8" and doc.is_dirty
    doc.save(tmp_path / "other.lab")  # Save As: the user's explicit choice
    assert read_voiced_intervals(tmp_path / "other.lab") == [(1.0, 2.0)] and not doc.is_dirty


def test_save_does_not_write_over_a_label_file_it_did_not_open(doc, tmp_path):
    doc.add_region(1.0, 2.0)
    (tmp_path / "song.lab").write_text("0 10 sing\n")  # appeared after the audio was opened
    with pytest.raises(OverwriteRefused, match="already exists"):
        doc.save()
    assert (tmp_path / "song.lab").read_text() == "0 10 sing\n"


def test_a_symlinked_label_file_is_written_through(doc, tmp_path):
    target = tmp_path / "labels" / "real.txt"
    target.parent.mkdir()
    target.write_text(AUDACITY)
    link = tmp_path / "song.txt"
    link.symlink_to(target)
    doc.load_annotations(link)
    doc.remove_region(2)
    doc.save()
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text() == AUDACITY.replace("8.0\t9.0\toutro\n", "")


def test_autosave_falls_back_to_the_user_data_folder_and_recovery_finds_it(doc, tmp_path, monkeypatch):
    labels = tmp_path / "read-only"
    labels.mkdir()
    (labels / "song.lab").write_text("0 2 sing\n2 10 nosing\n")
    real_create = fileio._create_temp_beside

    def read_only_folder(path):  # what a read-only folder does to the write (root ignores chmod)
        if path.parent == labels:
            raise OutputWriteError(path, "Permission denied")
        return real_create(path)

    monkeypatch.setattr(fileio, "_create_temp_beside", read_only_folder)
    doc.load_annotations(labels / "song.lab")
    doc.add_region(4.0, 5.0)
    where = doc.autosave()
    assert where.parent == tmp_path / "user-autosave" and where.name.startswith("song.lab.")
    assert not doc.autosave_path().exists()
    fresh = Document()
    fresh.set_audio(doc.audio_path, doc.samples, doc.log_mel)
    fresh.load_annotations(labels / "song.lab")
    assert fresh.find_autosave() == where and fresh.recover_autosave()
    assert fresh.annotations == [(0.0, 2.0), (4.0, 5.0)]
    fresh.discard_autosave()
    assert not where.exists()


def test_label_text_under_a_time(doc, tmp_path):
    path = tmp_path / "song.txt"
    path.write_text(AUDACITY)
    doc.load_annotations(path)
    assert doc.label_text_at(1.5) == "verse 1" and doc.label_text_at(4.5) == "chorus"
    assert doc.label_text_at(6.5) == "" and doc.label_text_at(3.0) == ""  # 'nosing' is not a region
    doc.add_region(9.2, 9.8)
    assert doc.label_text_at(9.5) == ""  # drawn, not yet saved: no text
