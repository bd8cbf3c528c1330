"""Tests of whole-file prediction: fully convolutional = excerpt-wise, chunking, padding, TTA."""

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.audio import load_audio
from engine.checkpoint import VoiceModel
from engine.config import ModelConfig, PredictConfig
from engine.errors import AudioLoadError, EngineError
from engine.features import frame_count, linear_spectrogram, log_mel_spectrogram
from engine.normalize import compute_normalization
from engine.predict import Prediction, predict_file, predict_linear, predict_linear_source, predict_samples
from tests.synth import SAMPLE_RATE, synth_song, write_song

SMALL = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16))
TTA_FACTORS = PredictConfig().tta_pitch_factors


@pytest.fixture(scope="module")
def song():
    """~3 s of synthesized audio with a voiced stretch."""
    return synth_song(3.0, [(0.6, 2.1)], seed=1)


def _model(samples, config: ModelConfig, seed: int) -> VoiceModel:
    # Statistics of the song itself keep a random network's outputs away from 0 and 1.
    normalization = compute_normalization([log_mel_spectrogram(samples)])
    return VoiceModel.create(model_config=config, normalization=normalization, seed=seed)


@pytest.fixture(scope="module")
def full_model(song):
    return _model(song, ModelConfig(), seed=3)


@pytest.fixture(scope="module")
def small_model(song):
    return _model(song, SMALL, seed=4)


@pytest.fixture(scope="module")
def full_probabilities(full_model, song):
    return predict_samples(full_model, song)


def test_fully_convolutional_equals_excerptwise_full_size(full_model, song, full_probabilities):
    reference = predict_samples(full_model, song, excerptwise=True)
    assert full_probabilities.shape == reference.shape == (frame_count(len(song)),)
    assert full_probabilities.dtype == np.float32
    assert full_probabilities.std() > 0.02  # a real spread of values, not a saturated network
    assert np.abs(full_probabilities - reference).max() <= 1e-5


def test_each_frame_is_the_excerpt_centred_on_it(small_model, song):
    """Independent check of the padding: 57 frames of standardized silence on each side."""
    probabilities = predict_samples(small_model, song)
    feats = small_model.normalization.apply(log_mel_spectrogram(song))
    silence = torch.as_tensor(small_model.normalization.silence(small_model.features))
    assert torch.allclose(silence, (np.log(1e-7) - torch.as_tensor(small_model.normalization.mean))
                          / torch.as_tensor(small_model.normalization.std))
    padded = torch.cat([silence.expand(57, -1), feats, silence.expand(57, -1)])
    n = len(feats)
    with torch.no_grad():
        for i in (0, 1, 56, 57, n // 2, n - 58, n - 1):
            excerpt = padded[i:i + 115][None, None]
            expected = torch.sigmoid(small_model.network(excerpt)).item()
            assert probabilities[i] == pytest.approx(expected, abs=1e-5), i


@pytest.mark.parametrize("chunk_frames", [50, 57, 115, 200])
def test_chunking_does_not_change_the_result(full_model, song, full_probabilities, chunk_frames):
    chunked = predict_samples(full_model, song, chunk_frames=chunk_frames)
    assert np.abs(chunked - full_probabilities).max() <= 1e-5


def test_one_frame_chunks_give_the_unchunked_result(full_model, song):
    # The extreme case on 0.2 s (15 frames, each chunk all padding but one frame): a whole file's
    # 210 one-frame chunks took ~10 s and tested nothing more.
    short = song[:SAMPLE_RATE // 5]
    whole = predict_samples(full_model, short)
    chunked = predict_samples(full_model, short, chunk_frames=1)
    assert len(chunked) == frame_count(len(short)) and np.abs(chunked - whole).max() <= 1e-5


def test_chunks_read_bounded_ranges(small_model, song):
    linear = linear_spectrogram(song)
    requests = []

    def read(lo, hi):
        requests.append((lo, hi))
        return linear[lo:hi]
    out = predict_linear_source(small_model, len(linear), read, chunk_frames=50)
    n = len(linear)
    assert len(requests) == -(-n // 50)
    assert all(hi - lo <= 50 + 2 * 57 for lo, hi in requests)
    assert requests[0][0] == 0 and requests[-1][1] == n
    assert np.abs(out - predict_linear(small_model, linear.numpy())).max() <= 1e-5


def test_file_shorter_than_one_excerpt(full_model):
    samples = synth_song(0.5, [(0.1, 0.4)], seed=2)
    probabilities = predict_samples(full_model, samples)
    assert probabilities.shape == ((len(samples) - 1024) // 315 + 1,) == (32,)
    assert np.isfinite(probabilities).all()
    reference = predict_samples(full_model, samples, excerptwise=True)
    assert np.abs(probabilities - reference).max() <= 1e-5


@pytest.mark.parametrize("n_samples", [1024, 1338, 1339, 1024 + 315 * 10, 22050])
def test_number_of_frames(small_model, n_samples):
    samples = np.random.default_rng(n_samples).normal(0, 0.1, n_samples).astype(np.float32)
    probabilities = predict_samples(small_model, samples)
    assert probabilities.shape == ((n_samples - 1024) // 315 + 1,)
    assert np.isfinite(probabilities).all()


def test_shorter_than_one_stft_frame(small_model, tmp_path):
    with pytest.raises(ValueError, match="1023 samples is shorter than one STFT frame"):
        predict_samples(small_model, np.zeros(1023, np.float32))
    path = tmp_path / "blip.wav"
    sf.write(path, np.full(1000, 0.1, np.float32), SAMPLE_RATE)
    with pytest.raises(AudioLoadError, match="blip.wav: too short to analyse") as info:
        predict_file(small_model, path)
    assert info.value.path == str(path)


def test_predict_linear_equals_predict_samples(full_model, song, full_probabilities):
    linear = linear_spectrogram(song).numpy()
    assert linear.shape == (frame_count(len(song)), 513)
    assert np.abs(predict_linear(full_model, linear) - full_probabilities).max() <= 1e-5


@pytest.mark.filterwarnings("error::DeprecationWarning")
def test_predict_linear_takes_a_tensor_without_warnings(small_model, song):
    linear = linear_spectrogram(song)
    expected = predict_linear(small_model, linear.numpy())
    assert np.array_equal(predict_linear(small_model, linear), expected)


def test_pitch_factor_one_equals_no_tta(full_model, song, full_probabilities):
    assert np.array_equal(predict_samples(full_model, song, pitch_factors=(1.0,)), full_probabilities)
    assert np.array_equal(predict_samples(full_model, song, pitch_factors=[1.0]), full_probabilities)
    # Through the frequency-scaling path: the mean of two identity warps is the plain prediction.
    twice = predict_samples(full_model, song, pitch_factors=(1.0, 1.0))
    assert np.abs(twice - full_probabilities).max() <= 1e-6


def test_tta_is_the_mean_of_single_factor_predictions(full_model, song, full_probabilities):
    tta = predict_samples(full_model, song, pitch_factors=TTA_FACTORS)
    singles = np.stack([predict_samples(full_model, song, pitch_factors=(f,)) for f in TTA_FACTORS])
    assert np.abs(tta - singles.mean(axis=0)).max() <= 1e-6
    assert np.abs(singles[TTA_FACTORS.index(1.0)] - full_probabilities).max() <= 1e-6
    # Each shift really changes the input: the singles differ from each other and from no TTA.
    assert all(np.abs(s - full_probabilities).max() > 1e-3 for i, s in enumerate(singles) if TTA_FACTORS[i] != 1.0)
    assert np.abs(tta - full_probabilities).max() > 1e-3


def test_tta_with_chunks(small_model, song):
    whole = predict_samples(small_model, song, pitch_factors=TTA_FACTORS)
    chunked = predict_samples(small_model, song, pitch_factors=TTA_FACTORS, chunk_frames=37)
    assert np.abs(whole - chunked).max() <= 1e-5


def test_predict_file_stereo_44k(small_model, tmp_path):
    path = write_song(tmp_path / "stereo.wav", 3.0, [(1.0, 2.0)], seed=5, sample_rate=44100, channels=2)
    assert sf.info(path).channels == 2 and sf.info(path).samplerate == 44100
    prediction = predict_file(small_model, path)
    samples = load_audio(path)
    assert len(samples) == pytest.approx(3.0 * SAMPLE_RATE, abs=2)
    assert prediction.duration_s == pytest.approx(3.0, abs=1e-3)
    assert prediction.frames_per_second == pytest.approx(22050 / 315)
    assert prediction.probabilities.shape == (frame_count(len(samples)),)
    assert np.array_equal(prediction.probabilities, predict_samples(small_model, samples))
    assert prediction.pitch_factors == (1.0,) and prediction.tta is False


def test_predict_file_tta_flag(small_model, tmp_path):
    path = write_song(tmp_path / "song.flac", 2.0, [(0.5, 1.5)], seed=6)
    plain = predict_file(small_model, path, tta=False)
    tta = predict_file(small_model, path, tta=True)
    assert not plain.tta and tta.tta
    assert tta.pitch_factors == TTA_FACTORS
    samples = load_audio(path)
    assert np.array_equal(tta.probabilities, predict_samples(small_model, samples, pitch_factors=TTA_FACTORS))
    config = PredictConfig(tta_pitch_factors=(0.9, 1.1), chunk_frames=30)
    custom = predict_file(small_model, path, tta=True, config=config)
    assert custom.pitch_factors == (0.9, 1.1)
    assert np.abs(custom.probabilities
                  - predict_samples(small_model, samples, pitch_factors=(0.9, 1.1))).max() <= 1e-5


def test_prediction_tta_property():
    p = np.zeros(3, np.float32)
    assert not Prediction(p, 70.0, 1.0).tta
    assert not Prediction(p, 70.0, 1.0, (1.0,)).tta
    assert Prediction(p, 70.0, 1.0, (0.9,)).tta
    assert Prediction(p, 70.0, 1.0, (0.8, 0.9, 1.0, 1.1, 1.2)).tta


def test_missing_and_corrupt_files(small_model, tmp_path):
    with pytest.raises(AudioLoadError, match="not found"):
        predict_file(small_model, tmp_path / "nothing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioLoadError, match="bad.wav"):
        predict_file(small_model, bad)


def test_nan_model_is_reported(song, tmp_path):
    model = _model(song, SMALL, seed=0)
    with torch.no_grad():
        model.network.fc3.bias.fill_(float("nan"))
    path = write_song(tmp_path / "song.wav", 1.0, [], seed=1)
    with pytest.raises(EngineError, match="NaN probabilities"):
        predict_file(model, path)


def test_prediction_leaves_the_network_in_eval_mode_and_unchanged(song):
    model = _model(song, SMALL, seed=1)
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    model.network.train()
    first = predict_samples(model, song[:22050])
    second = predict_samples(model, song[:22050])
    assert np.array_equal(first, second)  # no dropout at prediction time
    assert all(torch.equal(before[k], v) for k, v in model.network.state_dict().items())
