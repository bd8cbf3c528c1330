"""Tests of the on-disk spectrogram cache: hits, invalidation, damaged entries, fallbacks."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import engine.audio
from engine import cache as cache_module
from engine import features
from engine.cache import CacheWarning, SpectrogramCache, default_cache_root
from engine.config import FeatureConfig
from engine.errors import AudioLoadError
from tests.synth import write_song

CONFIG = FeatureConfig()


@pytest.fixture
def decode_calls(monkeypatch) -> list[Path]:
    """Record every decode the cache does (it must call engine.audio.load_audio)."""
    calls: list[Path] = []
    real = engine.audio.load_audio

    def counting(path, **kwargs):
        calls.append(Path(path))
        return real(path, **kwargs)

    monkeypatch.setattr(engine.audio, "load_audio", counting)
    return calls


@pytest.fixture
def song(tmp_path) -> Path:
    return write_song(tmp_path / "song.wav", 2.0, [(0.5, 1.5)], seed=1, sample_rate=44100,
                      channels=2, label_suffix=None)


def direct_linear(path: Path, config: FeatureConfig = CONFIG) -> np.ndarray:
    samples = engine.audio.load_audio(path, sample_rate=config.sample_rate)
    return features.linear_spectrogram(samples, config).numpy()


def entries(root: Path, suffix: str) -> list[Path]:
    return sorted(root.glob(f"*/*{suffix}"))


def test_second_call_is_a_memory_mapped_hit(tmp_path, song, decode_calls):
    expected = direct_linear(song)
    decode_calls.clear()
    first = SpectrogramCache(tmp_path / "cache").linear(song, CONFIG)
    second = SpectrogramCache(tmp_path / "cache").linear(song, CONFIG)  # a new instance reads the disk
    assert len(decode_calls) == 1
    assert isinstance(second, np.memmap) and not second.flags.writeable
    assert second.shape == (features.frame_count(44100, CONFIG), CONFIG.n_bins) and second.dtype == np.float32
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)


def test_log_mel_equals_direct_computation_and_is_cached(tmp_path, song, decode_calls, monkeypatch):
    monkeypatch.setattr(cache_module, "CHUNK_FRAMES", 7)  # many chunks, with a ragged last one
    import torch
    lin = torch.from_numpy(direct_linear(song))
    expected = features.log_compress(features.linear_to_mel(lin, CONFIG), CONFIG).numpy()
    decode_calls.clear()
    cache = SpectrogramCache(tmp_path / "cache")
    log_mel = cache.log_mel(song, CONFIG)
    again = SpectrogramCache(tmp_path / "cache").log_mel(song, CONFIG)
    assert log_mel.shape == (lin.shape[0], CONFIG.n_mels) and log_mel.dtype == np.float32
    np.testing.assert_allclose(log_mel, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(again, log_mel)
    assert len(decode_calls) == 1
    # Chunked linear computation matches the one-shot one too.
    np.testing.assert_allclose(cache.linear(song, CONFIG), lin.numpy(), rtol=1e-6, atol=1e-7)


def test_changed_content_or_config_is_recomputed(tmp_path, song, decode_calls):
    cache = SpectrogramCache(tmp_path / "cache")
    before = np.array(cache.linear(song, CONFIG))
    write_song(song, 2.0, [(0.2, 1.0)], seed=2, sample_rate=44100, channels=2, label_suffix=None)
    after = cache.linear(song, CONFIG)
    assert len(decode_calls) == 2
    assert after.shape == before.shape and not np.array_equal(after, before)
    np.testing.assert_array_equal(after, direct_linear(song))
    other = FeatureConfig(hop_length=441)
    assert cache.linear(song, other).shape[0] == features.frame_count(44100, other)
    assert len(decode_calls) == 4  # direct_linear decoded once, the new config once


def test_duration_is_cheap_after_first_decode(tmp_path, song, decode_calls):
    cache = SpectrogramCache(tmp_path / "cache")
    assert cache.duration_s(song, CONFIG) == pytest.approx(2.0, abs=1e-4)
    assert SpectrogramCache(tmp_path / "cache").duration_s(song, CONFIG) == pytest.approx(2.0, abs=1e-4)
    assert len(decode_calls) == 1
    assert len(entries(tmp_path / "cache", ".json")) == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_shape", "meta"])
def test_damaged_entry_is_recomputed(tmp_path, song, decode_calls, damage):
    root = tmp_path / "cache"
    expected = np.array(SpectrogramCache(root).linear(song, CONFIG))
    SpectrogramCache(root).log_mel(song, CONFIG)
    linear_file = entries(root, ".linear.npy")[0]
    if damage == "truncate":
        linear_file.write_bytes(linear_file.read_bytes()[:5000])
    elif damage == "garbage":
        linear_file.write_bytes(b"not a numpy file at all" * 100)
    elif damage == "empty":
        linear_file.write_bytes(b"")
    elif damage == "wrong_shape":
        np.save(linear_file, np.zeros((3, 4), np.float32))
    else:
        entries(root, ".json")[0].write_text("{broken")
    decode_calls.clear()
    np.testing.assert_array_equal(SpectrogramCache(root).linear(song, CONFIG), expected)
    assert len(decode_calls) == 1
    assert SpectrogramCache(root).linear(song, CONFIG).shape == expected.shape
    assert len(decode_calls) == 1  # repaired: the next call is a hit again


def test_damaged_log_mel_entry_is_recomputed(tmp_path, song):
    root = tmp_path / "cache"
    expected = np.array(SpectrogramCache(root).log_mel(song, CONFIG))
    entries(root, ".logmel.npy")[0].write_bytes(b"\x93NUMPY garbage")
    np.testing.assert_array_equal(SpectrogramCache(root).log_mel(song, CONFIG), expected)


def test_unwritable_cache_computes_without_caching(tmp_path, song):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    cache = SpectrogramCache(blocker / "cache")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        linear = cache.linear(song, CONFIG)
        log_mel = cache.log_mel(song, CONFIG)
        duration_s = cache.duration_s(song, CONFIG)
    assert [w.category for w in caught] == [CacheWarning]
    assert "not writable" in str(caught[0].message)
    np.testing.assert_array_equal(linear, direct_linear(song))
    assert log_mel.shape == (linear.shape[0], CONFIG.n_mels)
    assert duration_s == pytest.approx(2.0, abs=1e-4)


def test_clear_removes_only_cache_entries(tmp_path, song, decode_calls):
    root = tmp_path / "cache"
    cache = SpectrogramCache(root)
    cache.log_mel(song, CONFIG)
    (root / "keep-me.txt").write_text("not ours")
    assert cache.clear() > 0
    assert list(root.iterdir()) == [root / "keep-me.txt"]
    cache.linear(song, CONFIG)
    assert len(decode_calls) == 2
    assert SpectrogramCache(tmp_path / "never-created").clear() == 0


def test_short_audio_gives_zero_frames(tmp_path):
    import soundfile as sf
    path = tmp_path / "blip.wav"
    sf.write(str(path), np.zeros(500, np.float32), 22050)
    cache = SpectrogramCache(tmp_path / "cache")
    assert cache.linear(path, CONFIG).shape == (0, CONFIG.n_bins)
    assert SpectrogramCache(tmp_path / "cache").log_mel(path, CONFIG).shape == (0, CONFIG.n_mels)


def test_missing_file_is_an_audio_load_error(tmp_path):
    with pytest.raises(AudioLoadError, match="not found"):
        SpectrogramCache(tmp_path / "cache").linear(tmp_path / "nope.wav", CONFIG)


def test_default_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SVGUI_CACHE_DIR", str(tmp_path / "explicit"))
    assert SpectrogramCache().root == tmp_path / "explicit"
    monkeypatch.delenv("SVGUI_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "svgui" / "spectrograms"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_root() == tmp_path / "home" / ".cache" / "svgui" / "spectrograms"
