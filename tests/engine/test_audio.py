"""engine.audio: decoding, down-mixing, resampling to 22,050 Hz and clear load errors."""

import warnings

import numpy as np
import pytest
import soundfile as sf

from engine import audio
from engine.audio import AudioWarning, audio_duration_s, is_audio_path, load_audio
from engine.errors import AudioLoadError, EngineError
from tests.synth import synth_song

SR = 22050


def _sine(freq_hz, n, rate, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * freq_hz * np.arange(n) / rate)).astype(np.float32)


def _peak_hz(signal, rate):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return np.argmax(spectrum) * rate / len(signal)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_any_rate_and_channel_count_becomes_float32_mono_at_22050(tmp_path, rate, channels):
    n = rate + 123  # not a multiple of any block or ratio
    tone = _sine(1000.0, n, rate)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path = tmp_path / f"tone_{rate}_{channels}.wav"
    sf.write(path, data, rate, subtype="FLOAT")

    samples = load_audio(path)

    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert abs(len(samples) - n * SR / rate) <= 1
    # Identical channels average to the same tone; its amplitude survives resampling.
    middle = samples[len(samples) // 4: 3 * len(samples) // 4]
    assert np.max(np.abs(middle)) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("rate,freq_hz", [(8000, 440.0), (44100, 1000.0), (48000, 3000.0),
                                          (44100, 9000.0)])
def test_sine_keeps_its_frequency_after_resampling(tmp_path, rate, freq_hz):
    path = tmp_path / "sine.wav"
    sf.write(path, _sine(freq_hz, rate, rate), rate, subtype="FLOAT")
    samples = load_audio(path)
    # 1 s of signal: FFT bins are 1 Hz apart.
    assert _peak_hz(samples, SR) == pytest.approx(freq_hz, abs=2.0)


def test_content_above_the_new_nyquist_is_removed(tmp_path):
    rate = 44100
    path = tmp_path / "high.wav"
    sf.write(path, _sine(15000.0, rate, rate), rate, subtype="FLOAT")  # > 11,025 Hz
    samples = load_audio(path)
    assert np.sqrt(np.mean(samples ** 2)) < 1e-3  # no alias of the 15 kHz tone


def test_unchanged_rate_is_bit_exact(tmp_path):
    signal = synth_song(1.0, [(0.2, 0.8)], seed=3)
    path = tmp_path / "song.wav"
    sf.write(path, signal, SR, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path), signal)


def test_stereo_with_opposite_channels_averages_to_silence(tmp_path):
    tone = _sine(440.0, 44100, 44100)
    path = tmp_path / "opposite.wav"
    sf.write(path, np.stack([tone, -tone], axis=1), 44100, subtype="FLOAT")
    samples = load_audio(path)
    assert abs(len(samples) - SR) <= 1
    np.testing.assert_allclose(samples, 0.0, atol=1e-6)


def test_channels_are_averaged_not_summed(tmp_path):
    n = 4000
    data = np.zeros((n, 5), np.float32)
    data[:, 0] = 0.5
    data[:, 3] = 0.25
    path = tmp_path / "five.wav"
    sf.write(path, data, SR, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path), 0.15, atol=1e-6)


@pytest.mark.parametrize("suffix,subtype", [(".wav", "PCM_16"), (".flac", "PCM_16"),
                                            (".ogg", "VORBIS")])
def test_wav_flac_and_ogg_decode(tmp_path, suffix, subtype):
    rate = 44100
    tone = _sine(660.0, rate, rate)
    path = tmp_path / f"tone{suffix}"
    sf.write(path, np.stack([tone, tone], axis=1), rate, subtype=subtype)
    samples = load_audio(path)
    assert samples.dtype == np.float32
    assert abs(len(samples) - SR) <= 1
    assert _peak_hz(samples, SR) == pytest.approx(660.0, abs=2.0)


def test_long_file_crosses_block_boundaries(tmp_path, monkeypatch):
    # A small block size exercises the block-wise decode + streaming resampler.
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 1000)
    rate = 44100
    n = 10 * 1000  # exactly ten blocks: the last read returns zero frames
    signal = _sine(500.0, n, rate)
    path = tmp_path / "blocks.wav"
    sf.write(path, signal, rate, subtype="FLOAT")
    blocked = load_audio(path)
    monkeypatch.setattr(audio, "BLOCK_FRAMES", 1 << 18)
    whole = load_audio(path)
    assert abs(len(blocked) - n * SR / rate) <= 1
    assert len(blocked) == len(whole)
    np.testing.assert_allclose(blocked, whole, atol=1e-4)


def test_custom_sample_rate(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, _sine(440.0, 44100, 44100), 44100)
    assert abs(len(load_audio(path, sample_rate=16000)) - 16000) <= 1


def test_audio_duration_s_reads_the_header(tmp_path):
    path = tmp_path / "d.flac"
    sf.write(path, np.zeros((48000 * 3 + 24000, 2), np.float32), 48000)
    assert audio_duration_s(path) == pytest.approx(3.5)


def test_audio_duration_s_errors(tmp_path):
    with pytest.raises(AudioLoadError, match="file not found"):
        audio_duration_s(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(AudioLoadError, match="corrupt"):
        audio_duration_s(bad)


def test_is_audio_path():
    assert is_audio_path("a/b/song.WAV")
    assert is_audio_path("x.flac") and is_audio_path("x.mp3") and is_audio_path("x.ogg")
    assert not is_audio_path("x.lab") and not is_audio_path("x.txt") and not is_audio_path("wav")


# --- errors: each names the file and the reason ---------------------------------------------

def _assert_load_error(path, reason_part):
    with pytest.raises(AudioLoadError) as info:
        load_audio(path)
    error = info.value
    assert isinstance(error, EngineError)
    assert str(path) in str(error)
    assert error.path == str(path)
    assert reason_part in error.reason
    assert reason_part in str(error)
    return error


def test_missing_file(tmp_path):
    _assert_load_error(tmp_path / "missing.wav", "file not found")


def test_folder_is_not_a_file(tmp_path):
    folder = tmp_path / "album.wav"
    folder.mkdir()
    _assert_load_error(folder, "folder")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    _assert_load_error(path, "empty")


@pytest.mark.parametrize("suffix, reason", [(".wav", "corrupt"), (".flac", "corrupt"),
                                            (".mp3", "not decodable audio")])
def test_corrupt_file(tmp_path, suffix, reason):
    path = tmp_path / f"corrupt{suffix}"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    error = _assert_load_error(path, reason)
    assert "does not exist" not in str(error)  # libsndfile's words for 'no audio found' in an mp3


def test_symbolic_link_loop_and_broken_link(tmp_path):
    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    _assert_load_error(loop, "symbolic link loop")
    dangling = tmp_path / "dangling.wav"
    dangling.symlink_to(tmp_path / "gone.wav")
    _assert_load_error(dangling, "broken symbolic link")


def test_truncated_flac_decodes_what_is_readable_and_warns_with_the_position(tmp_path):
    samples = np.random.default_rng(2).uniform(-0.5, 0.5, 22050 * 10).astype(np.float32)
    full = tmp_path / "full.flac"
    sf.write(full, samples, 22050)
    path = tmp_path / "truncated.flac"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.warns(AudioWarning, match=r"truncated.flac: unreadable after (\d+\.\d\d) s of 10.00 s") as record:
        decoded = load_audio(path)
    kept_s = float(str(record[0].message).split("unreadable after ")[1].split(" s")[0])
    assert len(decoded) / 22050 == pytest.approx(kept_s, abs=0.005)  # the message has 2 decimals
    assert 3.0 < kept_s < 5.5  # about half of the file, the damaged last block lost at most
    np.testing.assert_array_equal(decoded, load_audio(full)[: len(decoded)])  # what is kept is exact


def test_flac_with_damaged_body(tmp_path):
    rng = np.random.default_rng(1)
    good = tmp_path / "good.flac"
    sf.write(good, rng.uniform(-0.5, 0.5, 100_000).astype(np.float32), 44100)
    data = good.read_bytes()
    path = tmp_path / "damaged.flac"
    path.write_bytes(data[:200] + rng.bytes(len(data) - 200))
    _assert_load_error(path, "corrupt")


@pytest.mark.parametrize("name", ["notes.mid", "data.xyz", "readme.txt"])
def test_unsupported_format(tmp_path, name):
    path = tmp_path / name
    path.write_text("MThd this is not audio at all\n" * 10)
    error = _assert_load_error(path, "unsupported format")
    assert path.suffix in error.reason


def test_raw_headerless_file_is_a_load_error(tmp_path):
    path = tmp_path / "samples.raw"  # soundfile wants rate/channels for RAW: not a TypeError
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(AudioLoadError):
        load_audio(path)
    with pytest.raises(AudioLoadError):
        audio_duration_s(path)


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MP3")
def test_mp3_decodes(tmp_path):
    rate = 44100
    path = tmp_path / "tone.mp3"
    sf.write(path, _sine(1000.0, 2 * rate, rate), rate)
    samples = load_audio(path)
    assert abs(len(samples) - 2 * SR) < 0.05 * SR  # encoder padding may add a few ms
    assert _peak_hz(samples, SR) == pytest.approx(1000.0, abs=2.0)


def test_zero_length_wav(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros((0, 2), np.float32), 44100)
    assert path.stat().st_size > 0  # a valid header, no frames
    _assert_load_error(path, "zero length")
    assert audio_duration_s(path) == 0.0


def test_zero_length_wav_at_target_rate(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, np.float32), SR)
    _assert_load_error(path, "zero length")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("rate", [22050, 44100])
def test_non_finite_samples(tmp_path, bad, rate):
    data = np.zeros((3000, 2), np.float32)
    data[1234, 1] = bad
    path = tmp_path / "nonfinite.wav"
    sf.write(path, data, rate, subtype="FLOAT")
    _assert_load_error(path, "NaN or infinite")


def test_on_warning_takes_the_warning_instead_of_the_warnings_module(tmp_path):
    full = tmp_path / "full.flac"
    sf.write(full, np.random.default_rng(3).uniform(-0.5, 0.5, 22050 * 4).astype(np.float32), 22050)
    path = tmp_path / "cut.flac"
    path.write_bytes(full.read_bytes()[: full.stat().st_size * 3 // 4])
    received = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning may reach the warnings module
        load_audio(path, on_warning=received.append)
    assert len(received) == 1 and received[0].startswith(f"{path}: unreadable after ")
