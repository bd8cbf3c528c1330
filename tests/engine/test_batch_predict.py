"""Many files at once: listing audio, exports beside the files or into a folder, a bad file among good
ones, cancelling, never replacing files that are not ours, the merged manifest, and scoring a labelled
set exactly as engine.evaluate does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import batch_predict
from engine.batch_predict import (
    BatchDone,
    FileOutcome,
    ScoredSet,
    ScoreProgress,
    export_info,
    find_audio_files,
    plan_outputs,
    predict_files,
    predict_one,
    prepare_outputs,
    score_tracks,
)
from engine.cache import SpectrogramCache
from engine.checkpoint import VoiceModel, load_model, save_model
from engine.cli import main as cli_main
from engine.config import ModelConfig
from engine.datasets import find_tracks, load_tracks, scan_folder
from engine.errors import ConfigError, OutputWriteError, OverwriteRefused
from engine.evaluate import evaluate, predicted_intervals
from engine.export import MANIFEST_NAME, ManifestWarning
from engine.labels import format_lab
from engine.predict import predict_file, predict_linear
from tests.cli_helpers import assert_one_line_error
from tests.synth import write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    network = VoiceModel.create(model_config=SMALL, seed=2)
    network.threshold = 0.5
    network.metadata = {"name": "tiny"}
    save_model(path, network)
    return load_model(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("songs")
    write_song(root / "a.wav", 4.0, [(0.5, 2.0)], seed=1)
    write_song(root / "sub" / "b.flac", 5.0, [(1.0, 4.0)], seed=2)
    (root / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot really audio" * 20)
    (root / ".hidden.wav").write_bytes(b"")
    (root / "notes.txt").write_text("not audio\n")
    (root / "empty").mkdir()
    return root


def test_find_audio_files_lists_folders_recursively_and_reports_empty_ones(folder):
    files, empty = find_audio_files([folder, folder / "empty", folder / "missing.wav"])
    assert [p.relative_to(folder).as_posix() for p in files[:3]] == ["a.wav", "broken.wav", "sub/b.flac"]
    assert files[3] == folder / "missing.wav"  # kept: predicting it says what is wrong
    assert empty == [folder / "empty"]


def test_a_bad_file_does_not_stop_the_others_and_the_manifest_lists_all(model, folder, tmp_path):
    files, _ = find_audio_files([folder])
    info = export_info(model)
    records = list(predict_files(model, files, fmt="lab", out_dir=tmp_path / "out", info=info))
    outcomes, done = records[:-1], records[-1]
    assert all(isinstance(o, FileOutcome) for o in outcomes) and isinstance(done, BatchDone)
    assert [o.done for o in outcomes] == [1, 2, 3] and {o.total for o in outcomes} == {3}
    assert [o.source.name for o in done.failures] == ["broken.wav"]
    assert "broken.wav" in done.failures[0].error
    good = [o for o in outcomes if o.ok]
    expected = predict_file(model, folder / "a.wav")
    intervals = predicted_intervals(expected.probabilities, threshold=0.5)
    assert (tmp_path / "out" / "a.pred.lab").read_text() == format_lab(intervals, duration_s=expected.duration_s)
    assert good[0].voiced_fraction == pytest.approx(sum(b - a for a, b in intervals) / expected.duration_s)
    assert done.manifests == (tmp_path / "out" / MANIFEST_NAME,)
    manifest = json.loads(done.manifests[0].read_text())
    assert [Path(e["source"]).name for e in manifest["files"]] == ["a.wav", "broken.wav", "b.flac"]
    assert manifest["info"]["model_name"] == "tiny" and len(manifest["info"]["model_sha256"]) == 64


def test_exports_beside_the_audio_with_a_manifest_per_folder(model, folder, tmp_path):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    files, _ = find_audio_files([copy])
    done = list(predict_files(model, files, fmt="csv", out_dir=None, info=export_info(model, tta=True)))[-1]
    assert (copy / "a.pred.csv").is_file() and (copy / "sub" / "b.pred.csv").is_file()
    assert {m.relative_to(copy).as_posix() for m in done.manifests} == {MANIFEST_NAME, f"sub/{MANIFEST_NAME}"}
    top = json.loads((copy / MANIFEST_NAME).read_text())
    assert [Path(e["source"]).name for e in top["files"]] == ["a.wav", "broken.wav"] and top["info"]["tta"]


def test_closing_early_still_writes_the_manifest_of_the_files_done(model, folder, tmp_path):
    files, _ = find_audio_files([folder])
    generator = predict_files(model, files, fmt="lab", out_dir=tmp_path / "out", info=export_info(model))
    first = next(generator)
    generator.close()
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert [e["source"] for e in manifest["files"]] == [str(first.source)]


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def labelled(tmp_path):
    """Audio with hand-made .lab and Audacity .txt ground truth beside it."""
    root = tmp_path / "labelled"
    write_song(root / "one.wav", 3.0, [(0.5, 2.0)], seed=1)
    write_song(root / "two.flac", 3.0, [(1.0, 2.5)], seed=2, label_suffix=".txt")
    write_song(root / "sub" / "three.wav", 3.0, [], seed=3)
    (root / "sub" / "three.txt").write_text("0.5\t1.0\tverse 1\n")  # beside a .lab: notes
    return root


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any audio is decoded."""
    def refuse(*args, **kwargs):
        raise AssertionError("audio was decoded")
    monkeypatch.setattr(batch_predict, "predict_file", refuse)


@pytest.mark.parametrize("fmt", ["lab", "audacity"])
def test_predicting_beside_ground_truth_keeps_every_label_file_byte_for_byte(model, labelled, fmt):
    before = snapshot(labelled)
    files, _ = find_audio_files([labelled])
    done = list(predict_files(model, files, fmt=fmt, out_dir=None, info=export_info(model)))[-1]
    assert not done.failures
    suffix = ".pred.lab" if fmt == "lab" else ".pred.txt"
    assert sorted(o.output.relative_to(labelled).as_posix() for o in done.outcomes) == \
        [f"one{suffix}", f"sub/three{suffix}", f"two{suffix}"]
    after = snapshot(labelled)
    assert {name: after[name] for name in before} == before
    # Loaders still pair the audio with its ground truth and list no prediction as an orphan label.
    tracks, report = scan_folder(labelled, recursive=True)
    assert [(t.name, t.label_path.name) for t in tracks] == [("one", "one.lab"), ("sub/three", "three.lab"),
                                                            ("two", "two.txt")]
    assert report.is_clean, report.summary()


def test_a_foreign_file_at_an_output_name_is_refused_before_decoding(model, labelled, tmp_path, no_decoding):
    out = tmp_path / "out"
    out.mkdir()
    (out / "one.pred.lab").write_text("mine\n")
    with pytest.raises(OverwriteRefused, match=r"1 file\(s\).*one\.pred\.lab.*nothing was written") as caught:
        next(predict_files(model, [labelled / "one.wav", labelled / "two.flac"], fmt="lab", out_dir=out,
                           info=export_info(model)))
    assert caught.value.paths == (str(out / "one.pred.lab"),)
    assert sorted(p.name for p in out.iterdir()) == ["one.pred.lab"] and (out / "one.pred.lab").read_text() == "mine\n"


def test_a_foreign_file_named_like_the_manifest_is_never_replaced_without_overwrite(model, labelled, tmp_path,
                                                                                    no_decoding):
    out = tmp_path / "out"
    out.mkdir()
    (out / MANIFEST_NAME).write_text("my own notes, not JSON\n")
    with pytest.raises(OverwriteRefused, match=MANIFEST_NAME) as caught, \
            pytest.warns(ManifestWarning, match="records no outputs of ours"):
        next(predict_files(model, [labelled / "one.wav"], fmt="lab", out_dir=out, info=export_info(model)))
    assert caught.value.paths == (str(out / MANIFEST_NAME),)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME]
    assert (out / MANIFEST_NAME).read_text() == "my own notes, not JSON\n"


def test_overwrite_replaces_a_foreign_file_and_our_own_output_is_replaced_without_asking(model, labelled, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "one.pred.lab").write_text("mine\n")
    info = export_info(model)
    done = list(predict_files(model, [labelled / "one.wav"], fmt="lab", out_dir=out, info=info, overwrite=True))[-1]
    assert not done.failures and (out / "one.pred.lab").read_text() != "mine\n"
    plan = plan_outputs([labelled / "one.wav"], fmt="lab", out_dir=out)
    assert plan.ours == {out / "one.pred.lab"} and plan.foreign == ()
    (out / "one.pred.lab").write_text("stale prediction\n")  # ours per the manifest: a re-run replaces it
    done = list(predict_files(model, [labelled / "one.wav"], fmt="lab", out_dir=out, info=info))[-1]
    assert not done.failures and (out / "one.pred.lab").read_text().startswith("0.0")


def test_a_file_that_appears_during_the_run_is_refused_alone(model, labelled, tmp_path):
    target = tmp_path / "one.pred.lab"
    target.write_text("appeared\n")
    outcome = predict_one(model, labelled / "one.wav", target, fmt="lab", info=export_info(model))
    assert not outcome.ok and "exists and is not a prediction recorded" in outcome.error
    assert target.read_text() == "appeared\n"


def test_an_output_folder_that_cannot_be_made_fails_before_decoding(model, labelled, tmp_path, no_decoding):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for out in (blocker / "sub", blocker):
        with pytest.raises(OutputWriteError, match=f"cannot write {out}"):
            prepare_outputs([labelled / "one.wav"], fmt="lab", out_dir=out)
        with pytest.raises(OutputWriteError):
            next(predict_files(model, [labelled / "one.wav"], fmt="lab", out_dir=out, info=export_info(model)))
    assert blocker.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "labelled"]


def test_two_runs_in_different_formats_merge_the_manifest(model, labelled, tmp_path):
    out = tmp_path / "out"
    files = [labelled / "one.wav", labelled / "two.flac"]
    list(predict_files(model, files, fmt="lab", out_dir=out, info=export_info(model)))
    list(predict_files(model, files[:1], fmt="audacity", out_dir=out, info=export_info(model, threshold=0.3)))
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    described = {Path(e["output"]).name: (e["format"], e["info"]["threshold"]) for e in manifest["files"]}
    assert described == {"one.pred.lab": ("lab", 0.5), "two.pred.lab": ("lab", 0.5), "one.pred.txt": ("audacity", 0.3)}
    assert manifest["format"] == "audacity"  # the top level describes the latest run


# ---- the command line, in a subprocess --------------------------------------------------------
def run_predict(*args):
    result = subprocess.run([sys.executable, "-m", "engine.cli", "predict", *map(str, args)],
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stderr


def test_cli_predict_into_the_labelled_folder_keeps_ground_truth_and_merges_the_manifest(model, labelled):
    before = snapshot(labelled)
    for fmt in ("lab", "audacity"):  # the case: --out is the folder of audio and labels itself
        code, err = run_predict(labelled, "--model", model.path, "--out", labelled, "--format", fmt)
        assert code == 0, err
    after = snapshot(labelled)
    assert {name: after[name] for name in before} == before
    new = sorted(set(after) - set(before))
    assert new == sorted([MANIFEST_NAME] + [f"{n}.pred.{x}" for n in ("one", "three", "two") for x in ("lab", "txt")])
    manifest = json.loads((labelled / MANIFEST_NAME).read_text())
    assert sorted((Path(e["output"]).name, e["format"]) for e in manifest["files"]) == sorted(
        [(f"{n}.pred.lab", "lab") for n in ("one", "three", "two")]
        + [(f"{n}.pred.txt", "audacity") for n in ("one", "three", "two")])


def test_cli_refuses_a_foreign_file_before_decoding_and_replaces_it_with_overwrite(model, labelled, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "two.pred.lab").write_bytes(b"hand-made\n")
    code, err = run_predict(labelled, "--model", model.path, "--out", out)
    assert_one_line_error(code, err, "two.pred.lab", "--overwrite", "nothing was written")
    assert sorted(p.name for p in out.iterdir()) == ["two.pred.lab"]  # not even the other files
    assert (out / "two.pred.lab").read_bytes() == b"hand-made\n"
    argv = ["predict", str(labelled), "--model", str(model.path), "--out", str(out)]
    assert cli_main(argv + ["--overwrite"]) == 0  # in-process from here: a subprocess costs seconds
    assert (out / "two.pred.lab").read_bytes() != b"hand-made\n" and (out / "one.pred.lab").is_file()
    assert cli_main(argv) == 0  # now ours: re-running replaces them unasked


def test_cli_output_folder_that_cannot_be_written_fails_before_decoding(model, labelled, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, err = run_predict(labelled, "--model", model.path, "--out", blocker / "sub")
    assert_one_line_error(code, err, f"cannot write {blocker / 'sub'}")
    assert blocker.read_text() == "x"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_read_only_output_folder_fails_before_decoding(model, labelled, tmp_path):
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, err = run_predict(labelled, "--model", model.path, "--out", out)
    finally:
        out.chmod(0o755)
    assert_one_line_error(code, err, f"cannot write {out}", "Permission denied")
    assert list(out.iterdir()) == []


def test_export_info_checks_the_threshold(model):
    assert export_info(model, threshold=0.25).threshold == 0.25
    with pytest.raises(ConfigError):
        export_info(model, threshold=1.5)


def test_score_tracks_gives_the_engines_evaluation(model, tmp_path):
    for i in range(3):
        write_song(tmp_path / f"s{i}.wav", 4.0, [(0.5 + i * 0.3, 2.5)], seed=10 + i)
    tracks = find_tracks(tmp_path)
    records = list(score_tracks(model, tracks, cache=SpectrogramCache(tmp_path / "cache")))
    assert [r.done for r in records[:-1]] == [1, 2, 3] and all(isinstance(r, ScoreProgress) for r in records[:-1])
    scored = records[-1]
    assert isinstance(scored, ScoredSet) and scored.tracks == tuple(tracks)
    data = load_tracks(tracks, config=model.features, cache=SpectrogramCache(tmp_path / "cache"))
    probabilities = [predict_linear(model, d.linear) for d in data]
    expected = evaluate(probabilities, [d.targets for d in data], [d.track.name for d in data],
                        threshold=model.threshold, config=model.eval_config)
    assert scored.evaluation == expected
    assert all(np.array_equal(a, b) for a, b in zip(scored.probabilities, probabilities))
