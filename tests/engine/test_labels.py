"""engine.labels: .lab and Audacity files, the normalization rule, segments <-> frame targets."""

import warnings

import numpy as np
import pytest

from engine.errors import EngineError, LabelFormatError
from engine.labels import (
    LabelWarning,
    Segment,
    format_audacity,
    format_lab,
    intervals_to_targets,
    is_voiced,
    label_format_of,
    merge_intervals,
    read_segments,
    read_voiced_intervals,
    targets_to_intervals,
    voiced_intervals,
    write_labels,
)

FPS = 70.0


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _no_warnings(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelWarning)
        return func(*args, **kwargs)


# --- reading ---------------------------------------------------------------------------------

def test_read_jamendo_lab(tmp_path):
    path = _write(tmp_path, "song.lab", "0 12.5 nosing\n12.5 30.25 sing\n30.25 41.0 nosing\n"
                                         "41.0 50 sing\n")
    assert read_segments(path) == [Segment(0.0, 12.5, "nosing"), Segment(12.5, 30.25, "sing"),
                                   Segment(30.25, 41.0, "nosing"), Segment(41.0, 50.0, "sing")]
    assert _no_warnings(read_voiced_intervals, path) == [(12.5, 30.25), (41.0, 50.0)]


def test_lab_anything_but_sing_is_no_voice(tmp_path):
    path = _write(tmp_path, "x.lab", "0 1 sing\n1 2 nosing\n2 3 voice\n3 4 SING\n4 5 singing\n"
                                      "5 6 music\n6 7\n")
    # 'SING' is still sing (case-insensitive); 'voice', 'singing', '' are not 'sing', and say so.
    with pytest.warns(LabelWarning) as record:
        assert read_voiced_intervals(path) == [(0.0, 1.0), (3.0, 4.0)]
    assert len(record) == 1
    assert str(record[0].message) == (f"{path}: labels other than 'sing'/'nosing' count as no voice: "
                                      "line 3 'voice', line 5 'singing', line 6 'music' and 1 more")


def test_lab_with_tabs_and_mixed_whitespace(tmp_path):
    path = _write(tmp_path, "x.lab", "0.0\t1.5\tnosing\r\n1.5 3.0\tsing\r\n  3.0   4.0   nosing  \r\n")
    assert _no_warnings(read_voiced_intervals, path) == [(1.5, 3.0)]


def test_read_audacity_labels_with_spaces_and_spectral_lines(tmp_path):
    text = ("1.000000\t2.500000\tla la la\n"
            "\\\t100.000000\t3000.000000\n"  # Audacity's spectral-selection extra line
            "4.000000\t5.000000\tsing\n"
            "\\\t-1.000000\t-1.000000\n"
            "6.0\t7.0\tno voice\n"
            "8.0\t9.0\t\n")
    path = _write(tmp_path, "labels.txt", text)
    segments = read_segments(path)
    assert segments == [Segment(1.0, 2.5, "la la la"), Segment(4.0, 5.0, "sing"),
                        Segment(6.0, 7.0, "no voice"), Segment(8.0, 9.0, "")]
    # Audacity: any text is voice except explicit negatives.
    assert _no_warnings(read_voiced_intervals, path) == [(1.0, 2.5), (4.0, 5.0), (8.0, 9.0)]


def test_blank_lines_comments_and_bom_are_ignored(tmp_path):
    path = tmp_path / "x.txt"
    path.write_bytes("\ufeff# my labels\n\n1\t2\tsing\n   \n".encode("utf-8"))
    assert read_voiced_intervals(path) == [(1.0, 2.0)]


def test_empty_file_has_no_voice_and_says_so(tmp_path):
    for name, text in (("x.lab", ""), ("x.txt", "\n\n")):
        path = _write(tmp_path, name, text)
        with pytest.warns(LabelWarning, match=f"{name}: no labels in the file, so it all counts as no voice"):
            assert read_voiced_intervals(path) == []


def test_is_voiced_and_label_format_of():
    assert label_format_of("a/b.lab") == "lab" and label_format_of("a/B.LAB") == "lab"
    assert label_format_of("a.txt") == "audacity" and label_format_of("a") == "audacity"
    assert is_voiced("sing", "lab") and not is_voiced("nosing", "lab") and not is_voiced("x", "lab")
    assert is_voiced("Voice", "audacity") and is_voiced("sing", "audacity")
    assert not is_voiced(" NoSing ", "audacity") and not is_voiced("instrumental", "audacity")


@pytest.mark.parametrize("line,reason", [
    ("1.0", "expected 'start end"),
    ("abc 2.0 sing", "must be numbers"),
    ("1.0 two sing", "must be numbers"),
    ("1,5 2,0 sing", "must be numbers"),
    ("nan 2.0 sing", "finite"),
    ("1.0 inf sing", "finite"),
    ("3.0 2.0 sing", "before start"),
])
@pytest.mark.parametrize("name", ["bad.lab", "bad.txt"])
def test_malformed_line_names_file_and_line(tmp_path, line, reason, name):
    path = _write(tmp_path, name, f"0\t1\tsing\n\\\t1\t2\n\n{line}\n5\t6\tsing\n")
    with pytest.raises(LabelFormatError) as info:
        read_voiced_intervals(path)
    error = info.value
    assert isinstance(error, EngineError)
    assert error.line_number == 4  # 1-based, counting skipped and blank lines
    assert error.path == str(path)
    assert f"{path}, line 4" in str(error)
    assert reason in str(error)


def test_missing_and_binary_label_files(tmp_path):
    with pytest.raises(LabelFormatError, match="file not found"):
        read_segments(tmp_path / "nope.lab")
    binary = tmp_path / "x.lab"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(LabelFormatError, match="not a text file") as info:
        read_segments(binary)
    assert info.value.line_number is None
    assert str(binary) in str(info.value)


# --- the normalization rule ------------------------------------------------------------------

def test_overlapping_segments_are_merged_with_a_warning(tmp_path):
    path = _write(tmp_path, "x.txt", "1\t3\tsing\n2\t4\tsing\n6\t7\tsing\n6.5\t6.7\tsing\n")
    with pytest.warns(LabelWarning, match="overlapping") as record:
        intervals = read_voiced_intervals(path)
    assert intervals == [(1.0, 4.0), (6.0, 7.0)]
    assert str(path) in str(record[0].message)


def test_touching_segments_merge_silently():
    segments = [Segment(0, 1, "sing"), Segment(1, 2, "sing"), Segment(2, 3, "nosing")]
    assert _no_warnings(voiced_intervals, segments) == [(0.0, 2.0)]


def test_merge_intervals_joins_within_the_tolerance_and_drops_shorter_ones():
    intervals = [(2.0, 3.0), (0.0, 1.0), (1.0 + 1e-10, 1.5), (4.0, 4.0 + 1e-10)]
    assert merge_intervals(intervals) == [(0.0, 1.0), (1.0 + 1e-10, 1.5), (2.0, 3.0), (4.0, 4.0 + 1e-10)]
    assert merge_intervals(intervals, tolerance_s=1e-9) == [(0.0, 1.5), (2.0, 3.0)]


def test_nosing_never_removes_voice():
    segments = [Segment(0, 10, "sing"), Segment(2, 3, "nosing")]
    assert _no_warnings(voiced_intervals, segments) == [(0.0, 10.0)]


def test_unsorted_lines_are_sorted_with_a_warning(tmp_path):
    path = _write(tmp_path, "x.lab", "5 6 sing\n0 1 sing\n1 5 nosing\n3 4 sing\n")
    with pytest.warns(LabelWarning, match="not in time order"):
        intervals = read_voiced_intervals(path)
    assert intervals == [(0.0, 1.0), (3.0, 4.0), (5.0, 6.0)]


def test_segments_past_the_end_are_cut_or_dropped_with_a_warning(tmp_path):
    path = _write(tmp_path, "x.lab", "0 1 sing\n2 11 sing\n12 13 sing\n")
    with pytest.warns(LabelWarning, match="past the end"):
        intervals = read_voiced_intervals(path, duration_s=10.0)
    assert intervals == [(0.0, 1.0), (2.0, 10.0)]
    with pytest.warns(LabelWarning, match="past the end"):
        assert voiced_intervals([Segment(10.0, 12.0, "sing")], duration_s=10.0) == []


def test_segment_ending_exactly_at_the_end_is_fine():
    assert _no_warnings(voiced_intervals, [Segment(2, 10, "sing")], duration_s=10.0) == [(2.0, 10.0)]


def test_negative_start_moves_to_zero():
    with pytest.warns(LabelWarning, match="negative"):
        assert voiced_intervals([Segment(-0.5, 1.0, "sing"), Segment(-2, -1, "sing")]) == [(0.0, 1.0)]


def test_zero_length_segments_are_dropped():
    assert _no_warnings(voiced_intervals, [Segment(1, 1, "sing"), Segment(2, 3, "sing")]) == [(2.0, 3.0)]


def test_several_problems_in_one_warning():
    segments = [Segment(5, 12, "sing"), Segment(0, 2, "sing"), Segment(1, 3, "sing")]
    with pytest.warns(LabelWarning) as record:
        assert voiced_intervals(segments, duration_s=10.0, source="f.lab") == [(0.0, 3.0), (5.0, 10.0)]
    assert len(record) == 1
    message = str(record[0].message)
    assert message.startswith("f.lab: ")
    assert "time order" in message and "overlapping" in message and "past the end" in message


# --- writing and round trips -----------------------------------------------------------------

def test_lab_round_trip(tmp_path):
    intervals = [(0.5, 1.25), (3.0, 7.125), (9.5, 10.0)]
    path = tmp_path / "out.lab"
    write_labels(path, intervals, duration_s=12.0)
    text = path.read_text()
    assert text.splitlines()[0].split() == ["0.000000", "0.500000", "nosing"]
    assert text.splitlines()[-1].split() == ["10.000000", "12.000000", "nosing"]
    assert _no_warnings(read_voiced_intervals, path, duration_s=12.0) == intervals


def test_audacity_round_trip(tmp_path):
    intervals = [(0.0, 0.123456), (1.5, 2.75), (100.25, 200.5)]
    path = tmp_path / "out.txt"
    write_labels(path, intervals)
    assert path.read_text().splitlines()[1] == "1.500000\t2.750000\tsing"
    assert _no_warnings(read_voiced_intervals, path) == intervals


def test_write_lab_without_duration_ends_at_the_last_interval(tmp_path):
    path = tmp_path / "out.lab"
    write_labels(path, [(1.0, 2.0)])
    assert [line.split()[2] for line in path.read_text().splitlines()] == ["nosing", "sing"]
    write_labels(path, [])
    assert path.read_text() == ""


def test_write_replaces_an_existing_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("99\t100\told\n" * 50)
    write_labels(path, [(1.0, 2.0)])
    assert read_voiced_intervals(path) == [(1.0, 2.0)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_format_lab_covers_the_whole_duration():
    intervals = [(0.0, 1.0), (2.5, 4.0), (4.0, 5.0), (8.0, 9.5)]
    lines = [line.split() for line in format_lab(intervals, duration_s=12.0).splitlines()]
    starts = [float(a) for a, _, _ in lines]
    ends = [float(b) for _, b, _ in lines]
    assert starts[0] == 0.0 and ends[-1] == 12.0
    assert starts[1:] == ends[:-1]  # contiguous: no gap, no overlap
    assert [label for _, _, label in lines] == ["sing", "nosing", "sing", "sing", "nosing", "sing",
                                                "nosing"]
    assert format_lab([], duration_s=3.0).split() == ["0.000000", "3.000000", "nosing"]
    assert format_lab([(0.0, 3.0)], duration_s=3.0).split() == ["0.000000", "3.000000", "sing"]
    assert format_lab([], duration_s=0.0) == ""


def test_format_audacity():
    assert format_audacity([(1.0, 2.0), (3.5, 4.25)], label="voice") == (
        "1.000000\t2.000000\tvoice\n3.500000\t4.250000\tvoice\n")
    assert format_audacity([]) == ""


# --- frames ------------------------------------------------------------------------------------

def test_one_second_segment_covers_frames_70_to_139():
    targets = intervals_to_targets([(1.0, 2.0)], 300, FPS)
    assert targets.dtype == bool and targets.shape == (300,)
    np.testing.assert_array_equal(np.flatnonzero(targets), np.arange(70, 140))


def test_borders_on_and_between_frame_times():
    # Start exactly on frame 7's time: frame 7 is voice. End exactly on frame 21's: it is not.
    assert np.flatnonzero(intervals_to_targets([(7 / 70, 21 / 70)], 40, FPS)).tolist() == list(range(7, 21))
    assert np.flatnonzero(intervals_to_targets([(0.1, 0.3)], 40, FPS)).tolist() == list(range(7, 21))
    # Between frame times: the first frame at or after the start, the last before the end.
    assert np.flatnonzero(intervals_to_targets([(0.105, 0.305)], 40, FPS)).tolist() == list(range(8, 22))
    # Shorter than a frame, between two frame times: no frame.
    assert not intervals_to_targets([(0.101, 0.111)], 40, FPS).any()
    # Starting at 0, and running past the last frame.
    assert intervals_to_targets([(0.0, 100.0)], 40, FPS).all()
    assert intervals_to_targets([(0.0, 1 / 70)], 40, FPS).tolist() == [True] + [False] * 39


def test_intervals_to_targets_edge_cases():
    assert intervals_to_targets([], 5, FPS).tolist() == [False] * 5
    assert intervals_to_targets([(0.0, 1.0)], 0, FPS).shape == (0,)
    assert not intervals_to_targets([(10.0, 11.0)], 70, FPS).any()
    both = intervals_to_targets([(0.5, 0.6), (0.0, 0.1)], 70, FPS)
    assert np.flatnonzero(both).tolist() == list(range(0, 7)) + list(range(35, 42))


def test_targets_to_intervals():
    targets = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert targets_to_intervals(targets, 10.0) == [(0.1, 0.3), (0.5, 0.6), (0.7, 1.0)]
    assert targets_to_intervals(np.zeros(5, bool), FPS) == []
    assert targets_to_intervals(np.ones(140, bool), FPS) == [(0.0, 2.0)]
    assert targets_to_intervals(np.zeros(0, bool), FPS) == []


@pytest.mark.parametrize("seed", range(5))
def test_targets_round_trip(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    targets = rng.random(n) < rng.uniform(0.05, 0.95)
    intervals = targets_to_intervals(targets, FPS)
    np.testing.assert_array_equal(intervals_to_targets(intervals, n, FPS), targets)


@pytest.mark.parametrize("name", ["pred.lab", "pred.txt"])
def test_targets_survive_a_label_file(tmp_path, name):
    # Times are written rounded to 6 decimals; no frame border may move on reading them back.
    rng = np.random.default_rng(7)
    n = 5000
    targets = rng.random(n) < 0.5
    path = tmp_path / name
    write_labels(path, targets_to_intervals(targets, FPS), duration_s=n / FPS)
    intervals = _no_warnings(read_voiced_intervals, path, duration_s=n / FPS)
    np.testing.assert_array_equal(intervals_to_targets(intervals, n, FPS), targets)


def test_segment_duration():
    assert Segment(1.5, 4.0).duration_s == 2.5
    assert Segment(1.5, 4.0).label == "sing"
