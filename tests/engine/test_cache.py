"""Tests of the on-disk spectrogram cache: hits, invalidation, damaged entries, full disks, size limit."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import engine.audio
from engine import cache as cache_module
from engine import cache_files, features
from engine.cache import CacheWarning, SpectrogramCache, default_cache_root
from engine.cli import main
from engine.config import FeatureConfig
from engine.errors import AudioLoadError, ConfigError, OutputWriteError
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
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(SpectrogramCache(root).linear(song, CONFIG), expected)
    if damage != "meta":  # an unreadable meta file is simply a miss
        assert [str(entries(root, ".linear.npy")[0]) in str(w.message) for w in caught] == [True]
    assert len(decode_calls) == 1
    assert SpectrogramCache(root).linear(song, CONFIG).shape == expected.shape
    assert len(decode_calls) == 1  # repaired: the next call is a hit again


def test_damaged_log_mel_entry_is_recomputed(tmp_path, song):
    root = tmp_path / "cache"
    expected = np.array(SpectrogramCache(root).log_mel(song, CONFIG))
    entries(root, ".logmel.npy")[0].write_bytes(b"\x93NUMPY garbage")
    with pytest.warns(CacheWarning, match="logmel.npy is damaged; recomputing it from .*song.wav"):
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


# ---- full disks, temporary files, size limit, poisoned entries (issue 13, items 2 and 10) ---------
KEY_A = "a" * 64 + "-0123456789ab-v1"


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_at_reservation_warns_once_and_computes_in_memory(tmp_path, song, monkeypatch, decode_calls):
    monkeypatch.setattr(os, "posix_fallocate", no_space)
    cache = SpectrogramCache(tmp_path / "cache")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        linear = cache.linear(song, CONFIG)
        log_mel = cache.log_mel(song, CONFIG)
        assert cache.duration_s(song, CONFIG) == pytest.approx(2.0, abs=1e-4)
    assert [w.category for w in caught] == [CacheWarning]
    assert "No space left on device" in str(caught[0].message) and str(tmp_path / "cache") in str(caught[0].message)
    assert cache.notes == [str(caught[0].message)]
    assert len(decode_calls) == 1  # the in-memory result is reused while the file is in use
    np.testing.assert_array_equal(linear, direct_linear(song))
    assert log_mel.shape == (linear.shape[0], CONFIG.n_mels) and np.isfinite(log_mel).all()
    assert all_files(tmp_path / "cache") == []  # no temporary file left filling the disk


class FailingWrites:
    """A binary file handle whose writes fail with ENOSPC after ``budget`` bytes (a disk filling up)."""

    def __init__(self, handle, budget: int):
        self.handle, self.budget = handle, budget

    def write(self, data):
        self.budget -= memoryview(data).nbytes
        if self.budget < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def test_full_disk_during_writes_removes_the_temporary_file(tmp_path, song, monkeypatch):
    real_fdopen = os.fdopen
    monkeypatch.setattr(cache_files, "reserve_space", lambda fd, n: None)  # a file system without fallocate
    monkeypatch.setattr(cache_files.os, "fdopen", lambda fd, mode: FailingWrites(real_fdopen(fd, mode), 10_000))
    with pytest.warns(CacheWarning, match="No space left on device"):
        linear = SpectrogramCache(tmp_path / "cache").linear(song, CONFIG)
    np.testing.assert_array_equal(linear, direct_linear(song))
    assert all_files(tmp_path / "cache") == []


def test_full_disk_at_the_meta_file_leaves_no_orphan_array(tmp_path, song, monkeypatch):
    def no_space(path, text):
        raise OutputWriteError(path, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(cache_module, "atomic_write_text", no_space)
    cache = SpectrogramCache(tmp_path / "cache")
    with pytest.warns(CacheWarning, match="No space left on device") as caught:
        linear = cache.linear(song, CONFIG)
        log_mel = cache.log_mel(song, CONFIG)
    assert len(caught) == 1
    np.testing.assert_array_equal(linear, direct_linear(song))
    assert log_mel.shape == (linear.shape[0], CONFIG.n_mels)
    assert all_files(tmp_path / "cache") == []


@pytest.mark.parametrize("failure", [KeyboardInterrupt, AudioLoadError])
def test_any_failure_while_writing_removes_the_temporary_file(tmp_path, failure):
    def chunks():
        yield np.zeros((4, 3), np.float32)
        raise failure("x", "interrupted") if failure is AudioLoadError else failure()
    path = tmp_path / "ab" / (KEY_A + ".linear.npy")
    with pytest.raises(failure):
        cache_files.write_npy(path, (8, 3), chunks())
    assert all_files(tmp_path) == []


def test_written_entries_are_plain_npy_files(tmp_path):
    data = np.arange(30, dtype=np.float32).reshape(10, 3)
    path = tmp_path / "ab" / (KEY_A + ".linear.npy")
    cache_files.write_npy(path, data.shape, [data[:4], data[4:]])
    np.testing.assert_array_equal(np.load(path), data)
    assert path.stat().st_size == cache_files.npy_size(data.shape)
    assert all_files(tmp_path) == [path]


def make_temp(root: Path, name: str, age_s: float) -> Path:
    path = root / name[1:3] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * 1000)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_stale_temporary_files_are_removed_at_the_first_write(tmp_path, song):
    fcntl = pytest.importorskip("fcntl")  # POSIX; on Windows age alone decides (one hour)
    root = tmp_path / "cache"
    dead = make_temp(root, f".{KEY_A}.linear.1a2b3c4d.tmp.npy", age_s=3600)
    dead_meta = make_temp(root, f".{KEY_A}.5e6f7a8b.tmp.json", age_s=3600)
    young = make_temp(root, f".{KEY_A}.logmel.0badf00d.tmp.npy", age_s=1)  # its writer may be starting
    busy = make_temp(root, f".{KEY_A}.linear.feedbeef.tmp.npy", age_s=3600)
    stranger = make_temp(root, ".notours.tmp.npy", age_s=3600)
    with open(busy, "rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # a live process writing it (slowly)
        SpectrogramCache(root).linear(song, CONFIG)
        assert busy.exists()
    assert not dead.exists() and not dead_meta.exists()
    assert young.exists() and stranger.exists()


def test_clear_matches_temporary_files_too(tmp_path, song):
    root = tmp_path / "cache"
    SpectrogramCache(root).log_mel(song, CONFIG)
    make_temp(root, f".{KEY_A}.linear.1a2b3c4d.tmp.npy", age_s=0)
    make_temp(root, f".{KEY_A}.5e6f7a8b.tmp.json", age_s=0)
    assert SpectrogramCache(root).clear() > 2000
    assert all_files(root) == []


def songs(tmp_path: Path, n: int, first_seed: int = 10) -> list[Path]:
    return [write_song(tmp_path / f"s{i}.wav", 2.0, [(0.5, 1.5)], seed=first_seed + i, label_suffix=None)
            for i in range(n)]


def entry_keys(root: Path) -> set[str]:
    return set(cache_files.scan(root).entry_files)


def key_of(path: Path) -> str:
    return SpectrogramCache()._key(path, CONFIG)


def test_least_recently_used_entries_go_first_at_the_limit(tmp_path):
    root = tmp_path / "cache"
    a, b, c = songs(tmp_path, 3)
    SpectrogramCache(root).log_mel(a, CONFIG)
    entry_bytes = cache_files.scan(root).total_bytes
    limit = int(2.5 * entry_bytes)  # room for two entries
    for i, path in enumerate((a, b)):
        SpectrogramCache(root, max_bytes=limit).log_mel(path, CONFIG)
        for file in cache_files.scan(root).entry_files[key_of(path)]:
            os.utime(file, (1000.0 + i, 1000.0 + i))  # a used long ago, b later
    SpectrogramCache(root, max_bytes=limit).log_mel(a, CONFIG)  # a hit marks a as just used
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SpectrogramCache(root, max_bytes=limit).log_mel(c, CONFIG)
    assert entry_keys(root) == {key_of(a), key_of(c)}
    assert cache_files.scan(root).total_bytes <= limit


def test_a_run_keeps_its_own_entries_above_the_limit_and_says_so(tmp_path):
    root = tmp_path / "cache"
    files = songs(tmp_path, 3)
    cache = SpectrogramCache(root, max_bytes=1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in files:
            cache.log_mel(path, CONFIG)
    assert entry_keys(root) == {key_of(p) for p in files}  # all mapped by this run: none evicted
    assert len(caught) == 1 and "holds more than its limit of 1.0 kB" in str(caught[0].message)
    SpectrogramCache(root, max_bytes=1000).log_mel(files[0], CONFIG)  # a hit writes nothing, evicts nothing
    assert len(entry_keys(root)) == 3
    with pytest.warns(CacheWarning, match="more than its limit"):
        SpectrogramCache(root, max_bytes=1000).log_mel(songs(tmp_path / "new", 1, first_seed=20)[0], CONFIG)
    assert len(entry_keys(root)) == 1  # the next run's first write evicts every older entry


def test_size_limit_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SVGUI_CACHE_MAX_GB", raising=False)
    assert SpectrogramCache(tmp_path).max_bytes == 8_000_000_000
    monkeypatch.setenv("SVGUI_CACHE_MAX_GB", "0.5")
    assert SpectrogramCache(tmp_path).max_bytes == 500_000_000
    assert SpectrogramCache(tmp_path, max_bytes=123).max_bytes == 123
    for bad in ("lots", "-1", "nan"):
        monkeypatch.setenv("SVGUI_CACHE_MAX_GB", bad)
        with pytest.raises(ConfigError, match="SVGUI_CACHE_MAX_GB"):
            SpectrogramCache(tmp_path)


def test_limit_zero_caches_nothing(tmp_path, song):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        linear = SpectrogramCache(tmp_path / "cache", max_bytes=0).linear(song, CONFIG)
    np.testing.assert_array_equal(linear, direct_linear(song))
    assert not (tmp_path / "cache").exists()


def poison(path: Path) -> None:
    """Replace a cached array by one of the same shape with a NaN in it (a new inode, as a rewrite)."""
    array = np.array(np.load(path))
    array[len(array) // 2, 3] = np.nan
    np.save(path.with_suffix(".new.npy"), array)
    os.replace(path.with_suffix(".new.npy"), path)


@pytest.mark.parametrize("suffix", [".linear.npy", ".logmel.npy"])
def test_nan_poisoned_entry_is_deleted_and_recomputed(tmp_path, song, suffix, decode_calls):
    root = tmp_path / "cache"
    expected = np.array(SpectrogramCache(root).log_mel(song, CONFIG))
    poison(entries(root, suffix)[0])
    with pytest.warns(CacheWarning) as caught:
        again = SpectrogramCache(root).log_mel(song, CONFIG)
    message = str(caught[0].message)
    assert "NaN or infinite" in message and str(entries(root, suffix)[0]) in message and str(song) in message
    np.testing.assert_array_equal(again, expected)
    decode_calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: a clean hit
        np.testing.assert_array_equal(SpectrogramCache(root).log_mel(song, CONFIG), expected)
    assert decode_calls == []


def test_a_poisoned_entry_never_reaches_the_normalization(tmp_path, song):
    from engine.normalize import compute_normalization
    root = tmp_path / "cache"
    SpectrogramCache(root).log_mel(song, CONFIG)
    poison(entries(root, ".logmel.npy")[0])
    with pytest.warns(CacheWarning):
        norm = compute_normalization([SpectrogramCache(root).log_mel(song, CONFIG)])
    assert np.isfinite(norm.mean).all()


def test_audio_giving_non_finite_features_names_the_file(tmp_path):
    loud = tmp_path / "too-loud.wav"
    samples = np.full(22050, 3e38, np.float32)
    samples[::2] = -3e38
    sf.write(str(loud), samples, 22050, subtype="FLOAT")
    for cache in (SpectrogramCache(tmp_path / "cache"), SpectrogramCache(tmp_path / "none", max_bytes=0)):
        with pytest.raises(AudioLoadError, match="too-loud.wav: its linear spectrogram has NaN or infinite"):
            cache.log_mel(loud, CONFIG)
    assert all_files(tmp_path / "cache") == []


def test_cache_info_and_clear_commands(tmp_path, song, monkeypatch, capsys):
    root = tmp_path / "cache"
    monkeypatch.setenv("SVGUI_CACHE_DIR", str(root))
    monkeypatch.setenv("SVGUI_CACHE_MAX_GB", "2")
    SpectrogramCache().log_mel(song, CONFIG)
    make_temp(root, f".{KEY_A}.linear.1a2b3c4d.tmp.npy", age_s=0)
    held = cache_files.scan(root).total_bytes
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"folder: {root}" in out and "entries: 1 (" in out and "temporary files: 1" in out
    assert f"total size: {cache_files.format_bytes(held)}" in out and "limit: 2.0 GB (SVGUI_CACHE_MAX_GB" in out
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 1 and info["total_bytes"] == held and info["limit_bytes"] == 2_000_000_000
    assert main(["cache", "clear"]) == 0
    assert f"removed 1 entry ({cache_files.format_bytes(held)})" in capsys.readouterr().out
    assert all_files(root) == []


def test_cache_command_with_a_bad_limit_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("SVGUI_CACHE_MAX_GB", "huge")
    assert main(["cache", "info"]) == 1
    assert capsys.readouterr().err.strip() == "error: SVGUI_CACHE_MAX_GB must be a number of gigabytes >= 0, got 'huge'"


@contextlib.contextmanager
def tiny_tmpfs(tmp_path: Path, size: str = "2m"):
    """A real small file system, where mounting works (root, not in a restricted container)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_evaluate_with_the_cache_on_a_full_disk_succeeds_with_a_warning(tmp_path):
    demo = Path(__file__).resolve().parents[2] / "resources" / "demo"
    with tiny_tmpfs(tmp_path) as mount_point:
        env = {**os.environ, "SVGUI_CACHE_DIR": str(mount_point)}
        result = subprocess.run([sys.executable, "-m", "engine.cli", "evaluate", "--data", str(demo)],
                                capture_output=True, text=True, env=env, timeout=240)
        left = all_files(mount_point)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])  # was -7 (SIGBUS), exit 135
    assert "No space left on device" in result.stderr and "computing spectrograms in memory" in result.stderr
    assert "error" in result.stdout and "recall" in result.stdout
    assert not [p for p in left if ".tmp" in p.name]
