"""The simulated annotator's edit count: inserts, deletes, boundary moves over 50 ms."""

import numpy as np
import pytest

from engine.annotation_effort import Edit, count_edits, edits_inside, file_effort, pooled


def kinds(result):
    return [(e.kind, round(e.start_s, 3), round(e.end_s, 3)) for e in result.edits]


def test_a_perfect_prediction_needs_no_edit_and_boundaries_within_50_ms_are_fine():
    truth = [(1.0, 3.0), (5.0, 6.0)]
    assert count_edits(truth, truth, duration_s=60).count() == 0
    assert count_edits([(1.04, 2.96), (4.951, 6.05)], truth, duration_s=60).count() == 0


def test_each_boundary_off_by_more_than_50_ms_is_one_move_at_the_stretch_between():
    result = count_edits([(1.2, 3.0), (5.0, 5.5)], [(1.0, 3.0), (5.0, 6.0)], duration_s=30)
    assert kinds(result) == [("move", 1.0, 1.2), ("move", 5.5, 6.0)]
    assert result.count("move") == 2 and result.per_minute == pytest.approx(4.0)


def test_missed_regions_are_inserts_and_false_regions_deletes():
    result = count_edits([(0.5, 1.0), (4.0, 6.0)], [(4.0, 6.0), (8.0, 9.0)], duration_s=60)
    assert kinds(result) == [("delete", 0.5, 1.0), ("insert", 8.0, 9.0)]
    assert count_edits([], [(1, 2)], duration_s=60).count("insert") == 1
    assert count_edits([(1, 2)], [], duration_s=60).count("delete") == 1


def test_a_true_region_split_in_two_keeps_the_larger_part_deletes_the_other_and_moves_one_boundary():
    result = count_edits([(1.0, 2.5), (2.7, 3.0)], [(1.0, 3.0)], duration_s=60)
    assert kinds(result) == [("move", 2.5, 3.0), ("delete", 2.7, 3.0)]


def test_one_predicted_region_over_two_true_ones_needs_a_move_and_an_insert():
    result = count_edits([(1.0, 6.0)], [(1.0, 3.0), (4.0, 6.0)], duration_s=60)
    assert sorted(e.kind for e in result.edits) == ["insert", "move"]
    assert result.to_dict() == {"edits": 2, "insert": 1, "delete": 0, "move": 1, "minutes": 1.0,
                                "edits_per_minute": 2.0}


def test_counts_add_up_over_files_and_bad_arguments_are_refused():
    a = count_edits([], [(1, 2)], duration_s=30)
    b = count_edits([(1, 2)], [], duration_s=90)
    assert (a + b).count() == 2 and (a + b).per_minute == pytest.approx(1.0)
    with pytest.raises(ValueError, match="tolerance_s"):
        count_edits([], [], duration_s=1, tolerance_s=-1)


def test_edits_inside_spans_count_any_overlap():
    edits = [Edit("move", 1.0, 1.2), Edit("insert", 5.0, 6.0), Edit("delete", 9.0, 9.5)]
    assert edits_inside(edits, [(1.1, 2.0), (5.9, 7.0)]) == 2
    assert edits_inside(edits, [(2.0, 4.0)]) == 0
    assert edits_inside([Edit("move", 3.0, 3.0)], [(2.0, 4.0)]) == 1


def test_file_effort_smooths_and_thresholds_as_the_app_then_counts():
    fps = 70.0
    truth = np.zeros(700, dtype=bool)
    truth[140:420] = True                              # voice 2-6 s
    probabilities = np.full(700, 0.1)
    probabilities[175:420] = 0.9                       # starts 0.5 s late
    probabilities[560:567] = 0.95                      # a 0.1 s blip: the 800 ms median removes it
    effort = file_effort("song", probabilities, truth, threshold=0.5, frames_per_second=fps)
    assert [e.kind for e in effort.edits.edits] == ["move"]
    assert effort.edits.edits[0].start_s == pytest.approx(2.0) and effort.edits.edits[0].end_s == pytest.approx(2.5)
    assert effort.counts.fn == 35 and effort.counts.fp <= 1  # the even 56-frame median may end a frame late
    counts, edits = pooled([effort, effort])
    assert counts.fn == 70 and edits.count() == 2 and edits.duration_s == pytest.approx(20.0)
