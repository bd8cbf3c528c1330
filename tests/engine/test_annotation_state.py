"""Tests of the annotation-state sidecar: derived and recorded states, updates, reviewed spans, bad sidecars."""

import json
import warnings

import numpy as np
import pytest
import soundfile as sf

from engine.annotation_state import (
    SIDECAR_NAME,
    AnnotationStateWarning,
    add_reviewed_span,
    covered_fraction,
    file_state,
    file_status,
    folder_totals,
    update_file_state,
)
from engine.datasets import scan_folder


@pytest.fixture
def folder(tmp_path):
    for name in ("a", "b", "c"):
        sf.write(tmp_path / f"{name}.wav", np.zeros(22050, dtype=np.float32), 22050)
    (tmp_path / "b.lab").write_text("0.0 0.5 sing\n0.5 1.0 nosing\n")
    return tmp_path


def test_without_a_sidecar_the_state_comes_from_the_label_files(folder):
    assert file_status(folder / "a.wav") == "none"
    assert file_status(folder / "b.wav") == "edited"
    state = file_state(folder / "b.wav")
    assert not state.recorded and state.fraction_done is None
    assert folder_totals([folder / f"{n}.wav" for n in "abc"]) == {
        "none": 2, "pre-annotated": 0, "edited": 1, "reviewed": 0}


def test_updates_are_recorded_and_survive_a_reread(folder):
    update_file_state(folder / "a.wav", status="pre-annotated", n_spans=4, n_reviewed=0)
    add_reviewed_span(folder / "a.wav", 1.0, 2.0)
    add_reviewed_span(folder / "a.wav", 1.5, 3.0)   # merges with the first
    add_reviewed_span(folder / "a.wav", 5.0, 6.0)
    state = update_file_state(folder / "a.wav", n_reviewed=2)
    assert state.status == "pre-annotated" and state.reviewed_spans_s == ((1.0, 3.0), (5.0, 6.0))
    assert state.fraction_done == 0.5
    again = file_state(folder / "a.wav")
    assert again == state and again.recorded
    data = json.loads((folder / SIDECAR_NAME).read_text())
    assert data["format"] == "svgui-annotation" and data["version"] == 1
    assert data["files"]["a.wav"]["reviewed_spans_s"] == [[1.0, 3.0], [5.0, 6.0]]
    # a first update of a labelled file keeps its derived status
    assert update_file_state(folder / "b.wav", n_spans=3).status == "edited"
    assert folder_totals([folder / f"{n}.wav" for n in "abc"])["pre-annotated"] == 1


def test_keys_of_other_versions_survive_and_the_sidecar_is_no_label_file(folder):
    update_file_state(folder / "a.wav", status="edited")
    data = json.loads((folder / SIDECAR_NAME).read_text())
    data["files"]["a.wav"]["note"] = "kept"
    (folder / SIDECAR_NAME).write_text(json.dumps(data))
    update_file_state(folder / "a.wav", status="reviewed")
    assert json.loads((folder / SIDECAR_NAME).read_text())["files"]["a.wav"]["note"] == "kept"
    tracks, report = scan_folder(folder, require_labels=False)
    assert [t.label_path is not None for t in tracks] == [False, True, False]
    assert not report.orphan_labels


@pytest.mark.parametrize("text, reason", [("{not json", "not JSON"),
                                          ('{"format": "other"}', "not an svgui annotation state"),
                                          ('{"format": "svgui-annotation", "version": 99}', "version 99")])
def test_an_unreadable_sidecar_is_ignored_with_a_warning_and_rebuilt(folder, text, reason):
    (folder / SIDECAR_NAME).write_text(text)
    with pytest.warns(AnnotationStateWarning, match=reason):
        assert file_status(folder / "b.wav") == "edited"
    with pytest.warns(AnnotationStateWarning):
        update_file_state(folder / "a.wav", status="reviewed")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert file_status(folder / "a.wav") == "reviewed"
    # rebuilding never writes over the file that was there: its bytes are kept beside it
    assert (folder / f"{SIDECAR_NAME}.unreadable").read_text() == text
    (folder / SIDECAR_NAME).write_text(text)
    with pytest.warns(AnnotationStateWarning, match=f"kept as {SIDECAR_NAME}.unreadable-2"):
        update_file_state(folder / "a.wav", status="edited")
    assert (folder / f"{SIDECAR_NAME}.unreadable").read_text() == text
    assert (folder / f"{SIDECAR_NAME}.unreadable-2").read_text() == text


def test_bad_entries_and_values(folder):
    (folder / SIDECAR_NAME).write_text(json.dumps({"format": "svgui-annotation", "version": 1, "files": {
        "a.wav": {"status": "finished", "reviewed_spans_s": [[2, 1], [0, 1]], "n_spans": -1}}}))
    with pytest.warns(AnnotationStateWarning, match="status 'finished'.*reviewed span.*n_spans"):
        state = file_state(folder / "a.wav")
    assert state.status == "none" and state.reviewed_spans_s == ((0.0, 1.0),) and state.n_spans is None
    with pytest.raises(ValueError, match="status must be one of"):
        update_file_state(folder / "a.wav", status="done")
    with pytest.raises(ValueError, match="start < end"):
        add_reviewed_span(folder / "c.wav", 3.0, 3.0)


def test_covered_fraction():
    assert covered_fraction(0.0, 4.0, [(1.0, 2.0), (3.0, 9.0)]) == 0.5
    assert covered_fraction(0.0, 4.0, []) == 0.0


def test_a_label_file_made_after_the_entry_counts_as_edited(folder):
    add_reviewed_span(folder / "c.wav", 0.0, 0.5)  # reviewed a span before there were labels
    assert file_status(folder / "c.wav") == "none"
    (folder / "c.lab").write_text("0.0 1.0 sing\n")
    state = file_state(folder / "c.wav")
    assert state.status == "edited" and state.reviewed_spans_s == ((0.0, 0.5),)
