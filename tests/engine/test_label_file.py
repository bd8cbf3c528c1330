"""engine.label_file: label files keep every line the app does not edit, byte for byte."""

import difflib
import warnings

import numpy as np
import pytest

from engine.errors import LabelFormatError
from engine.label_file import LabelFile, read_label_file, write_label_text
from engine.labels import LabelWarning

AUDACITY = ("1.000000\t2.500000\tverse 1\n"
            "\\\t100.000000\t3000.000000\n"          # spectral selection of 'verse 1'
            "4.000000\t5.000000\tchorus\n"
            "6.0\t7.0\tnosing\n"                        # a negative label: kept, not voice
            "# notes by the annotator\n"
            "8.0\t9.0\toutro\n")
LAB = "0 12.5 nosing\n12.5 30.25 sing\n30.25 41.0 nosing\n41.0 50 sing\n"


def _changed_lines(before: str, after: str) -> list[str]:
    return [d for d in difflib.ndiff(before.splitlines(), after.splitlines()) if d[:1] in "+-"]


def test_unchanged_regions_render_the_original_text():
    for text, name, duration_s in ((AUDACITY, "x.txt", 10.0), (LAB, "x.lab", 50.0),
                                   (AUDACITY.replace("\n", "\r\n"), "x.txt", 10.0), ("", "x.lab", 3.0)):
        label_file = LabelFile.parse(text, path=name)
        intervals = label_file.voiced_intervals(duration_s=duration_s)
        assert label_file.render(intervals, duration_s=duration_s) == (text or "0.000000 3.000000 nosing\n")


def test_editing_one_region_changes_only_its_line_and_keeps_its_text():
    label_file = LabelFile.parse(AUDACITY, path="x.txt")
    assert label_file.voiced_intervals(duration_s=10.0) == [(1.0, 2.5), (4.0, 5.0), (8.0, 9.0)]
    after = label_file.render([(1.0, 2.5), (4.25, 5.5), (8.0, 9.0)], duration_s=10.0)
    assert _changed_lines(AUDACITY, after) == ["- 4.000000\t5.000000\tchorus", "+ 4.250000\t5.500000\tchorus"]


def test_split_delete_and_new_regions():
    label_file = LabelFile.parse(AUDACITY, path="x.txt")
    # split 'verse 1', delete 'chorus', add a region at 9.5 s
    after = label_file.render([(1.0, 1.5), (2.0, 2.5), (8.0, 9.0), (9.5, 9.75)], duration_s=10.0)
    assert after == ("1.000000\t1.500000\tverse 1\n\\\t100.000000\t3000.000000\n"
                     "2.000000\t2.500000\tverse 1\n\\\t100.000000\t3000.000000\n"
                     "6.0\t7.0\tnosing\n# notes by the annotator\n8.0\t9.0\toutro\n"
                     "9.500000\t9.750000\tsing\n")


def test_lab_nosing_lines_follow_the_new_gaps():
    label_file = LabelFile.parse(LAB, path="x.lab")
    after = label_file.render([(3.0, 4.0), (12.5, 30.25), (42.0, 50.0)], duration_s=50.0)
    assert after == ("0.000000 3.000000 nosing\n3.000000 4.000000 sing\n4.000000 12.500000 nosing\n"
                     "12.5 30.25 sing\n30.250000 42.000000 nosing\n42.000000 50.000000 sing\n")
    assert LabelFile.parse(after, path="x.lab").voiced_intervals(duration_s=50.0) == \
        [(3.0, 4.0), (12.5, 30.25), (42.0, 50.0)]


def test_crlf_line_ends_and_a_last_line_without_one_are_kept():
    text = "1.0\t2.0\tla\r\n3.0\t4.0\tlo"
    after = LabelFile.parse(text, path="x.txt").render([(1.0, 2.0), (3.0, 4.0), (5.0, 6.0)], duration_s=10.0)
    assert after == "1.0\t2.0\tla\r\n3.0\t4.0\tlo\r\n5.000000\t6.000000\tsing\r\n"


def test_lines_that_do_not_parse_are_kept_and_warned_about(tmp_path):
    path = tmp_path / "song.lab"
    path.write_text("0.0 1.0 sing\nnot a line\n1.0 4.0 nosing\n")
    with pytest.warns(LabelWarning, match=r"song.lab, line 2: .*'not a line'.*kept as it is") as record:
        label_file = read_label_file(path)
    assert len(record) == 1
    assert label_file.voiced_intervals(duration_s=4.0) == [(0.0, 1.0)]
    after = label_file.render([(0.0, 1.0), (2.0, 3.0)], duration_s=4.0)
    assert "not a line\n" in after and after.count("\n") == 5


def test_unreadable_files_still_raise(tmp_path):
    binary = tmp_path / "x.lab"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LabelFormatError, match="not a text file"):
        read_label_file(binary)
    loop = tmp_path / "loop.lab"
    loop.symlink_to(loop)
    with pytest.raises(LabelFormatError, match="symbolic link loop"):
        read_label_file(loop)
    dangling = tmp_path / "dangling.lab"
    dangling.symlink_to(tmp_path / "gone.lab")
    with pytest.raises(LabelFormatError, match="broken symbolic link"):
        read_label_file(dangling)


def test_empty_file_warns(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    with pytest.warns(LabelWarning, match="empty.txt: no labels in the file"):
        assert read_label_file(path).segments == []


def test_write_goes_through_a_symlink_and_keeps_the_bom(tmp_path):
    target = tmp_path / "real" / "song.txt"
    target.parent.mkdir()
    target.write_bytes(b"\xef\xbb\xbf1.0\t2.0\tla\n")
    link = tmp_path / "song.txt"
    link.symlink_to(target)
    label_file = read_label_file(link)
    assert label_file.bom
    written = write_label_text(link, label_file.render([(1.0, 3.0)], duration_s=5.0), bom=label_file.bom)
    assert written == target and link.is_symlink()
    assert target.read_bytes() == b"\xef\xbb\xbf1.000000\t3.000000\tla\n"


def test_overlapping_labels_of_one_region_each_keep_their_own_part():
    text = "1.0\t3.0\tverse\n2.0\t4.0\tsolo\n6.0\t7.0\tbridge\n"
    label_file = LabelFile.parse(text, path="x.txt")
    with pytest.warns(LabelWarning, match="overlapping"):
        assert label_file.voiced_intervals(duration_s=10.0) == [(1.0, 4.0), (6.0, 7.0)]
    # shrink the region's end: 'verse' lies inside and stays byte for byte, 'solo' is cut
    assert label_file.render([(1.0, 3.5), (6.0, 7.0)], duration_s=10.0) == \
        "1.0\t3.0\tverse\n2.000000\t3.500000\tsolo\n6.0\t7.0\tbridge\n"
    # merge with the next region: nothing is lost, 'bridge' reaches back to where 'solo' ends
    assert label_file.render([(1.0, 7.0)], duration_s=10.0) == \
        "1.0\t3.0\tverse\n2.0\t4.0\tsolo\n4.000000\t7.000000\tbridge\n"


def _random_intervals(rng, duration_s):
    edges = np.unique(np.round(rng.uniform(0, duration_s, 2 * rng.integers(0, 6)), 3))
    return [(float(a), float(b)) for a, b in zip(edges[::2], edges[1::2]) if b > a]


@pytest.mark.parametrize("seed", range(40))
def test_any_edit_reads_back_as_the_edit_and_keeps_every_other_line(seed):
    rng = np.random.default_rng(seed)
    name, duration_s = ("x.lab", 20.0) if seed % 2 else ("x.txt", 20.0)
    lines, others = [], []
    for start_s, end_s in _random_intervals(rng, duration_s):
        lines.append(f"{start_s} {end_s} {'sing' if name == 'x.lab' else rng.choice(['verse', 'chorus'])}\n")
        if rng.random() < 0.4:
            others.append(rng.choice(["# a comment\n", "garbage line\n", "3.0 4.0 nosing\n", "\n"]))
            lines.append(others[-1])
    label_file = LabelFile.parse("".join(lines), path=name)
    edit = _random_intervals(rng, duration_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LabelWarning)
        after = LabelFile.parse(label_file.render(edit, duration_s=duration_s), path=name)
        read_back = after.voiced_intervals(duration_s=duration_s)
    assert len(read_back) == len(edit) and (not edit or np.allclose(read_back, edit, atol=1e-6))
    kept = [line for entry in after.entries for line in entry.lines if line in others]
    if name == "x.txt":  # in .lab files nosing lines are managed
        assert kept == others
    else:
        assert kept == [line for line in others if "nosing" not in line]
