"""Many files at once: listing audio, exports beside the files or into a folder, a bad file among good
ones, cancelling, and scoring a labelled set exactly as engine.evaluate does."""

import json
from pathlib import Path

import numpy as np
import pytest

from engine.batch_predict import (BatchDone, FileOutcome, ScoredSet, ScoreProgress, export_info, find_audio_files,
                                  predict_files, score_tracks)
from engine.cache import SpectrogramCache
from engine.checkpoint import VoiceModel, load_model, save_model
from engine.config import ModelConfig
from engine.datasets import find_tracks, load_tracks
from engine.errors import ConfigError
from engine.evaluate import evaluate, predicted_intervals
from engine.export import MANIFEST_NAME
from engine.labels import format_lab
from engine.predict import predict_file, predict_linear
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
    assert (tmp_path / "out" / "a.lab").read_text() == format_lab(intervals, duration_s=expected.duration_s)
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
    assert (copy / "a.csv").is_file() and (copy / "sub" / "b.csv").is_file()
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
