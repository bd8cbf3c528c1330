"""The model shipped in resources/models: loads, describes its recipe, predicts the demo well, at any level."""

import numpy as np
import pytest

from engine.audio import load_audio
from engine.checkpoint import describe_model, load_model
from engine.evaluate import count_errors, smooth_probabilities
from engine.labels import intervals_to_targets, read_voiced_intervals
from engine.predict import predict_samples
from engine.resources import bundled_model_path, previous_bundled_models, resource_dir

DEMO = resource_dir() / "demo"
SONG = "jamendolyrics_Fantasma_-_Los_Rombos_5-35s"
INSTRUMENTALS = ["librosa_Brahms_Hungarian_Dance_5_0-30s", "librosa_Kevin_MacLeod_-_Vibe_Ace_0-30s"]


@pytest.fixture(scope="module")
def path():
    found = bundled_model_path()
    assert found is not None, "no model in resources/models"
    assert found.stat().st_size <= 8_000_000  # float32: half precision moved predictions by 9e-3 (batch norms)
    return found


@pytest.fixture(scope="module")
def model(path):
    return load_model(path)


def test_bundled_model_has_the_expected_metadata(model):
    meta = model.metadata
    assert meta["name"] == "svgui-musdb7-robust"
    assert meta["threshold_source"] == "validation"
    assert meta["augment"]["max_pitch"] == 0.3 and meta["augment"]["max_stretch"] == 0.3
    assert meta["augment"]["max_filter_db"] == 10.0 and meta["augment"]["max_loudness_db"] == 10.0
    assert meta["augment"]["remix_probability"] == 0.5
    assert meta["updates"] >= 4000 and meta["seed"] == 0
    assert 0.0 < meta["validation"]["error"] < 0.13  # no worse than the paper-recipe model it replaced (12.9 %)
    assert len(meta["validation_songs"]) >= 10
    assert 0.0 < model.threshold < 1.0


def test_bundled_model_describes_its_level_invariant_recipe(path, model):
    assert (model.model_config.architecture, model.model_config.first_conv) == ("thesis", "zero-mean")
    assert "recipe: thesis network, fixed input normalization, zero-mean first convolution, adam" in describe_model(path)


def _error(model, name, gain_db=0.0):
    samples = load_audio(DEMO / f"{name}.flac") * np.float32(10 ** (gain_db / 20))
    predicted = smooth_probabilities(predict_samples(model, samples), median_frames=56) > model.threshold
    truth = intervals_to_targets(read_voiced_intervals(DEMO / f"{name}.lab"), len(predicted), 70.0)
    return predicted.mean(), count_errors(predicted, truth)


def test_demo_song_regions_follow_the_sung_phrases(model):
    _, counts = _error(model, SONG)
    assert counts.error < 0.15 and counts.recall > 0.85 and counts.specificity > 0.75


@pytest.mark.parametrize("gain_db", [-12.0, 6.0])
def test_the_demo_song_quieter_or_louder_keeps_its_error(model, gain_db):
    _, at_zero = _error(model, SONG)
    _, scaled = _error(model, SONG, gain_db)
    assert abs(scaled.error - at_zero.error) <= 0.03, (gain_db, scaled.error, at_zero.error)


@pytest.mark.parametrize("name", INSTRUMENTALS)
def test_demo_instrumentals_get_under_ten_percent_voice(model, name):
    share, _ = _error(model, name)
    assert share < 0.10


def test_the_previously_bundled_model_still_loads_and_keeps_its_figures():
    """The paper-recipe model this one replaced, in resources/models/previous/ (listed in the Models window)."""
    previous = {load_model(p).metadata["name"]: load_model(p) for p in previous_bundled_models()}
    old = previous["svgui-musdb7"]
    assert (old.model_config.architecture, old.model_config.first_conv) == ("paper", "plain")
    _, counts = _error(old, SONG)
    assert counts.error < 0.15


def test_bundled_model_path_takes_the_named_model_never_a_checkpoint(tmp_path, monkeypatch):
    import os
    import shutil

    from engine.resources import BUNDLED_MODEL_NAME
    real = bundled_model_path()
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("SVGUI_RESOURCES", str(tmp_path))
    assert bundled_model_path() is None
    # a training into this folder leaves checkpoints, newer than the model: never the bundled model
    shutil.copy(real, models / "other.safetensors")
    for name in ("other.checkpoint.safetensors", "other.checkpoint-a923740b3d911648.safetensors"):
        (models / name).write_bytes(b"x")
        os.utime(models / name, (2e9, 2e9))
    assert bundled_model_path() == models / "other.safetensors"
    (models / BUNDLED_MODEL_NAME).write_bytes(b"x")
    os.utime(models / BUNDLED_MODEL_NAME, (1e9, 1e9))  # older than the rest: the name decides, not the time
    assert bundled_model_path() == models / BUNDLED_MODEL_NAME
