"""Tests of the prediction writers: every format written and read back, prediction names, the merged manifest,
atomicity."""

import csv
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from engine import fileio
from engine.errors import ConfigError, OutputWriteError
from engine.evaluate import predicted_intervals, smooth_probabilities
from engine.export import (
    FORMATS,
    MANIFEST_NAME,
    ExportInfo,
    ManifestWarning,
    is_prediction_file,
    manifest_entry,
    output_path,
    prediction_suffix,
    read_manifest,
    recorded_outputs,
    sidecar_path,
    write_manifest,
    write_npz_bundle,
    write_prediction,
    write_sidecar,
)
from engine.labels import read_voiced_intervals

FPS = 70.0
INFO = ExportInfo(model_name="jamendo-aug", threshold=0.53, tta=True, model_sha256="ab" * 32)


@pytest.fixture
def prediction():
    """10 s of probabilities with two voiced stretches, and the intervals they give."""
    rng = np.random.default_rng(0)
    p = np.full(700, 0.1) + 0.05 * rng.random(700)
    p[140:280] = 0.9
    p[420:630] = 0.8
    p = p.astype(np.float32)
    intervals = predicted_intervals(p, threshold=INFO.threshold)
    assert len(intervals) == 2
    return {"intervals": intervals, "probabilities": p, "duration_s": 10.0, "info": INFO, "name": "song.wav"}


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.mark.parametrize("fmt", ["lab", "audacity"])
def test_label_formats_round_trip(tmp_path, prediction, fmt):
    path = write_prediction(tmp_path / f"song{FORMATS[fmt]}", fmt, **prediction)
    back = read_voiced_intervals(path)
    np.testing.assert_allclose(back, prediction["intervals"], atol=1e-3 if fmt == "lab" else 1e-6)
    assert "#" not in path.read_text()


def test_regions_csv(tmp_path, prediction):
    rows = read_rows(write_prediction(tmp_path / "song.csv", "csv", **prediction))
    assert len(rows) == 2 and all(len(r) == 4 and r[3] == "voice" for r in rows)
    p = prediction["probabilities"]
    for row, (start_s, end_s) in zip(rows, prediction["intervals"]):
        time_s, value, duration_s = map(float, row[:3])
        assert time_s == pytest.approx(start_s, abs=1e-6) and duration_s == pytest.approx(end_s - start_s, abs=1e-6)
        frames = p[int(round(start_s * FPS)):int(round(end_s * FPS))]
        assert value == pytest.approx(frames.mean(), abs=1e-6)


def test_curve_csv_has_the_smoothed_probability_per_frame(tmp_path, prediction):
    rows = read_rows(write_prediction(tmp_path / "song.curve.csv", "curve", **prediction))
    values = np.array(rows, dtype=float)
    assert values.shape == (700, 2)
    np.testing.assert_allclose(values[:, 0], np.arange(700) / FPS, atol=1e-6)
    np.testing.assert_allclose(values[:, 1], smooth_probabilities(prediction["probabilities"]), atol=1e-6)


def test_frames_csv_has_a_header_and_the_raw_probability(tmp_path, prediction):
    rows = read_rows(write_prediction(tmp_path / "song.frames.csv", "frames", **prediction))
    assert rows[0] == ["frame", "time_s", "probability"] and len(rows) == 701
    assert [int(r[0]) for r in rows[1:]] == list(range(700))
    assert float(rows[101][1]) == pytest.approx(100 / FPS, abs=1e-6)
    np.testing.assert_array_equal(np.array([r[2] for r in rows[1:]], dtype=np.float32), prediction["probabilities"])


def test_npz_records_model_and_threshold(tmp_path, prediction):
    path = write_prediction(tmp_path / "song.npz", "npz", **prediction)
    with np.load(path, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["probabilities"], prediction["probabilities"])
        assert float(data["frames_per_second"]) == FPS and float(data["threshold"]) == 0.53
        assert str(data["model"]) == "jamendo-aug" and bool(data["tta"]) and str(data["name"]) == "song.wav"
        np.testing.assert_allclose(data["intervals_s"], prediction["intervals"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jsonschema API used inside jams
def test_jams_is_valid_and_carries_metadata(tmp_path, prediction):
    import jams

    path = write_prediction(tmp_path / "song.jams", "jams", **prediction)
    document = jams.load(str(path), validate=True)
    assert document.file_metadata.duration == 10.0
    annotation = document.annotations.search(namespace="segment_open")[0]
    observations = list(annotation.data)
    assert [o.value for o in observations] == ["voice", "voice"]
    for obs, (start_s, end_s) in zip(observations, prediction["intervals"]):
        assert obs.time == pytest.approx(start_s) and obs.duration == pytest.approx(end_s - start_s)
        frames = prediction["probabilities"][int(round(start_s * FPS)):int(round(end_s * FPS))]
        assert obs.confidence == pytest.approx(frames.mean(), abs=1e-6)
    assert "jamendo-aug" in annotation.annotation_metadata.annotation_tools
    assert annotation.sandbox.threshold == 0.53 and annotation.sandbox.tta is True


def test_textgrid_tiles_the_whole_file(tmp_path, prediction):
    text = write_prediction(tmp_path / "song.TextGrid", "textgrid", **prediction).read_text()
    assert text.startswith('File type = "ooTextFile"\nObject class = "TextGrid"')
    tiles = re.findall(r'intervals \[\d+\]:\s+xmin = ([\d.]+)\s+xmax = ([\d.]+)\s+text = "(\w*)"', text)
    assert int(re.search(r"intervals: size = (\d+)", text).group(1)) == len(tiles) == 5
    bounds = [(float(a), float(b)) for a, b, _ in tiles]
    assert bounds[0][0] == 0 and bounds[-1][1] == 10.0
    assert all(prev[1] == nxt[0] for prev, nxt in zip(bounds, bounds[1:]))
    assert [t for _, _, t in tiles] == ["", "voice", "", "voice", ""]


def _read_back(path, fmt):
    """What a format file says: the voiced regions (s) or the per-frame curve it carries."""
    if fmt in ("lab", "audacity"):
        return "regions", read_voiced_intervals(path)
    if fmt == "csv":
        return "regions", [(float(r[0]), float(r[0]) + float(r[2])) for r in read_rows(path)]
    if fmt == "textgrid":
        tiles = re.findall(r'xmin = ([\d.]+)\s+xmax = ([\d.]+)\s+text = "voice"', path.read_text())
        return "regions", [(float(a), float(b)) for a, b in tiles]
    if fmt == "jams":
        import jams
        annotation = jams.load(str(path), validate=False).annotations.search(namespace="segment_open")[0]
        return "regions", [(o.time, o.time + o.duration) for o in annotation.data]
    if fmt == "curve":
        return "smoothed", np.array(read_rows(path), dtype=float)[:, 1]
    if fmt == "frames":
        return "raw", np.array([r[2] for r in read_rows(path)[1:]], dtype=float)
    with np.load(path, allow_pickle=False) as data:
        return "raw", data["probabilities"].astype(float)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # jsonschema API used inside jams
def test_every_format_is_written_under_its_name_and_reads_back(tmp_path, prediction):
    expected = {"regions": np.array(prediction["intervals"]), "raw": prediction["probabilities"],
                "smoothed": smooth_probabilities(prediction["probabilities"])}
    for fmt in FORMATS:
        path = write_prediction(output_path(tmp_path, "/music/song.wav", fmt), fmt, **prediction)
        assert path.name == "song.pred" + FORMATS[fmt]
        kind, values = _read_back(path, fmt)
        np.testing.assert_allclose(np.asarray(values, dtype=float), expected[kind], atol=1e-3, err_msg=fmt)
    assert sorted(os.listdir(tmp_path)) == sorted("song.pred" + s for s in FORMATS.values())


def test_prediction_names_never_take_a_label_files_name(tmp_path):
    names = {fmt: output_path(tmp_path, "/music/song.flac", fmt).name for fmt in FORMATS}
    assert names["lab"] == "song.pred.lab" and names["audacity"] == "song.pred.txt"
    assert names["curve"] == "song.pred.curve.csv" and names["textgrid"] == "song.pred.TextGrid"
    assert all(prediction_suffix(fmt) == ".pred" + FORMATS[fmt] for fmt in FORMATS)
    assert all(is_prediction_file(tmp_path / name) for name in names.values())
    for ground_truth in ("song.lab", "song.txt", "song.csv", "pred.lab", "song.pred", "song.predicted.lab"):
        assert not is_prediction_file(ground_truth), ground_truth
    assert is_prediction_file("Song-2.PRED.LAB")


def test_unknown_format_names_the_allowed_ones(tmp_path, prediction):
    with pytest.raises(ConfigError, match="audacity.*textgrid"):
        write_prediction(tmp_path / "x.xml", "xml", **prediction)
    with pytest.raises(ConfigError):
        output_path(tmp_path, "song.wav", "xml")
    assert os.listdir(tmp_path) == []


def test_npz_bundle_keys_by_file_name(tmp_path):
    probs = {"01 - Song": np.arange(5, dtype=np.float32), "file": np.ones(3, np.float32)}
    path = write_npz_bundle(tmp_path / "preds.npz", probs, info=INFO)
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["01 - Song", "__meta__", "file"]
        np.testing.assert_array_equal(data["01 - Song"], probs["01 - Song"])
        assert json.loads(str(data["__meta__"])) == INFO.to_dict()


def test_manifest_and_sidecar(tmp_path):
    entries = [manifest_entry("/music/a.wav", tmp_path / "a.lab", duration_s=10.0, voiced_fraction=0.35),
               manifest_entry("/music/b.wav", error="b.wav: not an audio file")]
    path = write_manifest(tmp_path, info=INFO, fmt="lab", entries=entries)
    assert path == tmp_path / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    assert manifest["info"]["model_name"] == "jamendo-aug" and manifest["info"]["threshold"] == 0.53
    assert manifest["format"] == "lab" and manifest["created_utc"].endswith("+00:00")
    assert manifest["files"][0]["output"] == str(tmp_path / "a.lab")
    assert manifest["files"][1]["error"].startswith("b.wav") and manifest["files"][1]["output"] is None
    sidecar = write_sidecar(tmp_path / "a.lab", INFO, source="/music/a.wav")
    assert sidecar == sidecar_path(tmp_path / "a.lab") == tmp_path / "a.lab.json"
    record = json.loads(sidecar.read_text())
    assert record["info"] == INFO.to_dict() and record["source"] == "/music/a.wav"


def test_the_manifest_is_merged_and_each_entry_keeps_its_description(tmp_path):
    write_manifest(tmp_path, info=INFO, fmt="lab", entries=[
        manifest_entry("/m/a.wav", tmp_path / "a.pred.lab", duration_s=10.0, voiced_fraction=0.3),
        manifest_entry("/m/b.wav", error="b.wav: not an audio file")])
    other = ExportInfo(model_name="other", threshold=0.4)
    write_manifest(tmp_path, info=other, fmt="audacity", entries=[
        manifest_entry("/m/a.wav", tmp_path / "a.pred.txt", duration_s=10.0, voiced_fraction=0.2)])
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert manifest["version"] == 2 and manifest["format"] == "audacity" and manifest["info"]["model_name"] == "other"
    by_output = {(Path(e["output"]).name if e["output"] else None): e for e in manifest["files"]}
    assert set(by_output) == {"a.pred.lab", None, "a.pred.txt"}
    assert by_output["a.pred.lab"]["format"] == "lab" and by_output["a.pred.lab"]["info"] == INFO.to_dict()
    assert by_output[None]["format"] == "lab" and by_output[None]["error"].startswith("b.wav")
    assert by_output["a.pred.txt"]["info"]["model_name"] == "other" and by_output["a.pred.txt"]["format"] == "audacity"
    # The same output again replaces its entry; b.wav done at last replaces its failure in that format.
    write_manifest(tmp_path, info=other, fmt="lab", entries=[
        manifest_entry("/m/a.wav", tmp_path / "a.pred.lab", duration_s=10.0, voiced_fraction=0.5),
        manifest_entry("/m/b.wav", tmp_path / "b.pred.lab", duration_s=3.0, voiced_fraction=0.0)])
    files = read_manifest(tmp_path)["files"]
    assert [(Path(e["output"]).name, e["info"]["model_name"]) for e in files] == \
        [("a.pred.txt", "other"), ("a.pred.lab", "other"), ("b.pred.lab", "other")]
    assert recorded_outputs(tmp_path) == {"a.pred.txt", "a.pred.lab", "b.pred.lab"}


def test_a_version_1_manifest_lends_its_run_to_its_entries_and_a_damaged_one_records_nothing(tmp_path):
    old = {"created_utc": "2026-01-01T00:00:00+00:00", "format": "csv", "suffix": ".csv", "info": INFO.to_dict(),
           "files": [manifest_entry("/m/a.wav", "a.csv", duration_s=1.0, voiced_fraction=0.0)]}
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(old))
    write_manifest(tmp_path, info=INFO, fmt="lab", entries=[manifest_entry("/m/a.wav", "a.pred.lab")])
    first = read_manifest(tmp_path)["files"][0]
    assert first["output"] == "a.csv" and first["format"] == "csv" and first["created_utc"] == old["created_utc"]
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.warns(ManifestWarning, match="cannot be read"):
        assert recorded_outputs(tmp_path) == frozenset()


def test_write_under_a_file_raises_and_leaves_nothing(tmp_path, prediction):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    for fmt in ("lab", "npz"):
        with pytest.raises(OutputWriteError):
            write_prediction(blocker / f"song{FORMATS[fmt]}", fmt, **prediction)
    assert os.listdir(tmp_path) == ["not-a-dir"]


@pytest.mark.parametrize("fmt", ["frames", "npz", "jams"])
def test_failed_rename_keeps_the_old_file_and_no_temp_file(tmp_path, prediction, monkeypatch, fmt):
    target = tmp_path / f"song{FORMATS[fmt]}"
    target.write_text("old")

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "replace", fail)
    with pytest.raises(OutputWriteError, match="No space left"):
        write_prediction(target, fmt, **prediction)
    assert os.listdir(tmp_path) == [target.name] and target.read_text() == "old"
