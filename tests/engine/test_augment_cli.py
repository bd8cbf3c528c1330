"""`svgui-engine augment` (PNG / .npy preview of one excerpt) and `svgui-engine train --augment`."""

import contextlib
import io
import struct

import numpy as np
import pytest

import engine.train
from engine.cache import SpectrogramCache
from engine.checkpoint import load_model
from engine.cli import main
from engine.config import AugmentConfig, FeatureConfig, ModelConfig, config_to_dict
from engine.datasets import Track, load_track
from engine.features import linear_to_mel, log_compress
from engine.normalize import compute_normalization
from engine.preview import cut_excerpt, preview_excerpt
from tests.cli_helpers import assert_one_line_error, with_widths
from tests.synth import random_voiced, write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
FEATURES = FeatureConfig()
SONG_S = 8.0
VOICED = [(1.0, 3.0), (5.0, 7.0)]


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    return write_song(tmp_path_factory.mktemp("audio") / "tune.wav", SONG_S, VOICED, seed=9)


@pytest.fixture(scope="module")
def song_data(song):
    return load_track(Track(song.stem, song, song.with_suffix(".lab")), config=FEATURES, cache=SpectrogramCache())


def expected_preview(song_data, at_s, config, seed):
    """What the command should compute: the file's own normalization, non-voice partners of the same file."""
    normalization = compute_normalization([song_data.log_mel])
    centre = int(round(at_s * FEATURES.frames_per_second))
    return preview_excerpt(song_data.linear, centre, config=config, seed=seed, features=FEATURES,
                           normalization=normalization, partner_linear=song_data.linear,
                           partner_centres=np.flatnonzero(~song_data.targets),
                           partner_name=song_data.track.audio_path.name), normalization, centre


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


# --- augment ------------------------------------------------------------------------------------------

def test_png_output_is_a_valid_image_and_the_drawn_values_are_printed(song, song_data, tmp_path):
    out = tmp_path / "x.png"
    code, stdout, err = run_cli(["augment", song, "--at", 3, "--seed", 3, "--pitch", 0.3, "--filter", 10,
                                 "--out", out])
    assert code == 0, err
    width, height = png_size(out)
    assert 400 <= width <= 3000 and 200 <= height <= 2000 and width > height
    preview, _, _ = expected_preview(song_data, 3.0, AugmentConfig(max_pitch=0.3, max_filter_db=10.0), 3)
    lines = stdout.splitlines()
    assert lines[0] == preview.description
    assert "pitch ×" in lines[0] and "filter" in lines[0] and "dB" in lines[0] and "Hz" in lines[0]
    assert f"pitch ×{float(preview.draw.pitch_factor[0]):.2f}" in lines[0]
    assert lines[-1] == f"written to {out}"
    assert not [p for p in tmp_path.iterdir() if p.name != "x.png"]  # no temporary files left


def test_npy_output_holds_the_original_and_the_augmented_excerpt(song, song_data, tmp_path):
    out = tmp_path / "x.npy"
    code, stdout, err = run_cli(["augment", song, "--at", 2.5, "--seed", 4, "--augment", "paper", "--out", out])
    assert code == 0, err
    stacked = np.load(out)
    assert stacked.shape == (2, 115, 80) and stacked.dtype == np.float32
    preview, normalization, centre = expected_preview(song_data, 2.5, AugmentConfig.paper(), 4)
    # row 0: the un-augmented standardized log-mel excerpt centred on --at
    plain = normalization.apply(log_compress(linear_to_mel(cut_excerpt(song_data.linear, centre, 115), FEATURES),
                                             FEATURES)).numpy()
    np.testing.assert_allclose(stacked[0], plain, atol=1e-5)
    np.testing.assert_array_equal(stacked[0], preview.original)
    np.testing.assert_array_equal(stacked[1], preview.augmented)
    assert np.abs(stacked[1] - stacked[0]).max() > 0.1
    assert stdout.splitlines()[0] == preview.description


def test_the_same_seed_twice_writes_the_same_array_and_another_seed_does_not(song, tmp_path):
    arrays = []
    for name, seed in (("a", 3), ("b", 3), ("c", 8)):
        out = tmp_path / f"{name}.npy"
        code, _, err = run_cli(["augment", song, "--at", 4, "--seed", seed, "--pitch", 0.3, "--stretch", 0.3,
                                "--loudness", 6, "--mix", 1, "--dropout", 0.1, "--noise", 0.1, "--out", out])
        assert code == 0, err
        arrays.append(np.load(out))
    np.testing.assert_array_equal(arrays[0], arrays[1])
    np.testing.assert_array_equal(arrays[0][0], arrays[2][0])
    assert np.abs(arrays[0][1] - arrays[2][1]).max() > 0.1


def test_excerpts_at_the_first_and_the_last_frame_work(song, song_data, tmp_path):
    last_frame_s = (len(song_data.linear) - 1) / FEATURES.frames_per_second
    for at in (0, last_frame_s):
        out = tmp_path / f"edge{at}.npy"
        code, _, err = run_cli(["augment", song, "--at", at, "--augment", "paper", "--out", out])
        assert code == 0, err
        stacked = np.load(out)
        assert stacked.shape == (2, 115, 80) and np.isfinite(stacked).all()
        # beyond the file's edge the original shows standardized silence (zero padding)
        silence = compute_normalization([song_data.log_mel]).silence(FEATURES)
        outside = stacked[0, :57] if at == 0 else stacked[0, 58:]
        np.testing.assert_allclose(outside, np.broadcast_to(silence, outside.shape), atol=1e-5)


def test_at_near_the_end_of_the_file_is_accepted_or_the_error_states_the_true_range(song, song_data, tmp_path):
    at = SONG_S - 0.01
    code, _, err = run_cli(["augment", song, "--at", at, "--out", tmp_path / "x.npy"])
    if code != 0:
        assert_one_line_error(code, err, "--at")
        stated_end = float(err.rsplit(" to ", 1)[1].split(" s")[0])
        assert stated_end < at, err


def test_mix_with_another_file_names_the_partner(song, tmp_path):
    other = write_song(tmp_path / "other.wav", 6.0, [(2.0, 4.0)], seed=10)
    code, stdout, err = run_cli(["augment", song, "--at", 2, "--mix", 1, "--seed", 1, "--mix-with", other,
                                 "--out", tmp_path / "m.npy"])
    assert code == 0, err
    assert "mix f=" in stdout and "with other.wav @ " in stdout


@pytest.mark.parametrize("at", [SONG_S + 1, -0.5, 1000])
def test_at_beyond_the_file_is_a_one_line_error(song, tmp_path, at):
    out = tmp_path / "x.npy"
    code, _, err = run_cli(["augment", song, "--at", at, "--out", out])
    assert_one_line_error(code, err, "--at", "outside", "tune.wav")
    assert not out.exists()


@pytest.mark.parametrize("name", ["x.jpg", "x", "x.png.txt"])
def test_an_output_that_is_neither_png_nor_npy_is_refused(song, tmp_path, name):
    code, _, err = run_cli(["augment", song, "--at", 1, "--out", tmp_path / name])
    assert_one_line_error(code, err, "--out", ".png or .npy", name)
    assert not list(tmp_path.iterdir())


def test_an_upper_case_npy_suffix_writes_a_loadable_array(song, tmp_path):
    out = tmp_path / "X.NPY"
    code, _, err = run_cli(["augment", song, "--at", 1, "--pitch", 0.2, "--out", out])
    assert code == 0, err
    assert np.load(out).shape == (2, 115, 80)
    assert [p.name for p in tmp_path.iterdir()] == ["X.NPY"]


@pytest.mark.parametrize("argv,needles", [
    (["--pitch", "1.5"], ["max_pitch must be in [0, 1), got 1.5"]),
    (["--augment", "bogus=1"], ["'bogus=1'"]),
])
def test_bad_strengths_are_one_line_errors(song, tmp_path, argv, needles):
    code, _, err = run_cli(["augment", song, "--at", 1, "--out", tmp_path / "x.npy", *argv])
    assert_one_line_error(code, err, *needles)


def test_a_missing_audio_file_is_a_one_line_error(tmp_path):
    code, _, err = run_cli(["augment", tmp_path / "nothing.wav", "--at", 1, "--out", tmp_path / "x.npy"])
    assert_one_line_error(code, err, "nothing.wav")


# --- train --augment ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(3)
    for i in range(3):
        write_song(root / "train" / f"song{i}.wav", 8.0, random_voiced(8.0, rng), seed=20 + i)
    return root / "train"


@contextlib.contextmanager
def small_network():
    original = engine.train.train
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("engine.train.train", with_widths(original, SMALL))
        yield


def test_train_with_augmentation_records_it_in_the_model(corpus, tmp_path):
    out = tmp_path / "net.safetensors"
    with small_network():
        code, stdout, err = run_cli(["train", "--train", corpus, "--out", out, "--updates", 6, "--batch-size", 8,
                                     "--validate-every", 0, "--checkpoint-every", 0, "--device", "cpu",
                                     "--augment", "pitch=0.3,filter=10"])
    assert code == 0, err
    assert "augmentation: pitch ±30 %, filter ±10 dB" in err
    assert f"model written to {out}" in stdout
    model = load_model(out)
    assert model.model_config == SMALL
    expected = AugmentConfig(max_pitch=0.3, max_filter_db=10.0)
    assert model.metadata["augment"] == {**config_to_dict(expected), "description": "pitch ±30 %, filter ±10 dB"}
    assert model.metadata["updates"] == 6


def test_train_with_the_paper_preset_and_without_augmentation(corpus, tmp_path):
    for spec, description in (("paper", "pitch ±30 %, stretch ±30 %, filter ±10 dB"), ("none", "none")):
        out = tmp_path / f"{spec}.safetensors"
        with small_network():
            code, _, err = run_cli(["train", "--train", corpus, "--out", out, "--updates", 2, "--batch-size", 4,
                                    "--validate-every", 0, "--checkpoint-every", 0, "--device", "cpu",
                                    "--augment", spec])
        assert code == 0, err
        assert load_model(out).metadata["augment"]["description"] == description


@pytest.mark.parametrize("spec,needles", [
    ("bogus=1", ["bad augmentation 'bogus=1'", "pitch, stretch, loudness, filter, mix, dropout, noise"]),
    ("pitch=lots", ["'lots' is not a number"]),
    ("stretch=1.2", ["max_stretch must be in [0, 1), got 1.2"]),
])
def test_train_with_a_bad_augmentation_is_a_clear_one_line_error(corpus, tmp_path, spec, needles):
    out = tmp_path / "net.safetensors"
    code, _, err = run_cli(["train", "--train", corpus, "--out", out, "--updates", 2, "--augment", spec])
    assert_one_line_error(code, err, *needles)
    assert not out.exists()
