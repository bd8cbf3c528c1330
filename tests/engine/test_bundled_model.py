"""The model shipped in resources/models: loads, describes itself, and predicts the demo well."""

import pytest

from engine.checkpoint import load_model
from engine.evaluate import count_errors, smooth_probabilities
from engine.labels import intervals_to_targets, read_voiced_intervals
from engine.predict import predict_file
from engine.resources import bundled_model_path, resource_dir

DEMO = resource_dir() / "demo"
SONG = "jamendolyrics_Fantasma_-_Los_Rombos_5-35s"
INSTRUMENTALS = ["librosa_Brahms_Hungarian_Dance_5_0-30s", "librosa_Kevin_MacLeod_-_Vibe_Ace_0-30s"]


@pytest.fixture(scope="module")
def model():
    path = bundled_model_path()
    assert path is not None, "no model in resources/models"
    assert path.stat().st_size <= 6_000_000
    return load_model(path)


def test_bundled_model_has_the_expected_metadata(model):
    meta = model.metadata
    assert meta["name"] == "svgui-musdb7"
    assert meta["threshold_source"] == "validation"
    assert meta["augment"]["max_pitch"] == 0.3 and meta["augment"]["max_stretch"] == 0.3
    assert meta["augment"]["max_filter_db"] == 10.0
    assert meta["updates"] >= 1000 and meta["seed"] == 0
    assert 0.0 < meta["validation"]["error"] < 0.25
    assert len(meta["validation_songs"]) >= 10
    assert 0.0 < model.threshold < 1.0


def _voiced_share_and_error(model, name):
    prediction = predict_file(model, DEMO / f"{name}.flac")  # its speed: bench/wall_clock.py
    predicted = smooth_probabilities(prediction.probabilities, median_frames=56) > model.threshold
    truth = intervals_to_targets(read_voiced_intervals(DEMO / f"{name}.lab"), len(predicted), 70.0)
    return predicted.mean(), count_errors(predicted, truth)


def test_demo_song_regions_follow_the_sung_phrases(model):
    share, counts = _voiced_share_and_error(model, SONG)
    assert counts.error < 0.15 and counts.recall > 0.85 and counts.specificity > 0.75


@pytest.mark.parametrize("name", INSTRUMENTALS)
def test_demo_instrumentals_get_under_ten_percent_voice(model, name):
    share, _ = _voiced_share_and_error(model, name)
    assert share < 0.10
