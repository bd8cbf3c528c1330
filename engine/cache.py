"""An on-disk cache of linear and log-mel spectrograms, keyed by file content and feature config."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap

from engine import audio, features
from engine.config import FeatureConfig
from engine.errors import AudioLoadError, OutputWriteError
from engine.fileio import atomic_write_text, atomic_write_with

CACHE_FORMAT_VERSION = 1  # bump when what an entry holds changes; old entries are then ignored
HASH_BLOCK_BYTES = 1 << 20
CHUNK_FRAMES = 8192  # ~16 MB of linear frames at a time: a one-hour file stays bounded in memory
_SUFFIXES = (".linear.npy", ".logmel.npy", ".json")

# Hashing a long file takes a moment; remember digests while the file's stat signature is unchanged.
_digest_memo: dict[tuple, str] = {}


class CacheWarning(UserWarning):
    """The spectrogram cache cannot be written; spectrograms are computed without caching."""


def default_cache_root() -> Path:
    """$SVGUI_CACHE_DIR, else $XDG_CACHE_HOME/svgui/spectrograms, else ~/.cache/svgui/spectrograms."""
    if os.environ.get("SVGUI_CACHE_DIR"):
        return Path(os.environ["SVGUI_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "svgui" / "spectrograms"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content, read in 1 MiB blocks."""
    path = Path(path)
    try:
        stat = path.stat()
        signature = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        if signature in _digest_memo:
            return _digest_memo[signature]
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(HASH_BLOCK_BYTES):
                digest.update(block)
    except FileNotFoundError:
        raise AudioLoadError(path, "file not found") from None
    except IsADirectoryError:
        raise AudioLoadError(path, "is a folder, not an audio file") from None
    except OSError as exc:
        raise AudioLoadError(path, exc.strerror or str(exc)) from None
    if len(_digest_memo) > 4096:
        _digest_memo.clear()
    _digest_memo[signature] = digest.hexdigest()
    return _digest_memo[signature]


def config_digest(config: FeatureConfig) -> str:
    """A short hash of every FeatureConfig field (a new field changes it, which is the safe way)."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class SpectrogramCache:
    """Decode each audio file once: later calls memory-map its spectrograms from ``root``.

    Damaged entries are deleted and recomputed; if ``root`` cannot be written, spectrograms
    are computed in memory and one ``CacheWarning`` says so.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()
        self._writable = True
        self._memory_n_samples: dict[str, int] = {}  # fallback meta when nothing can be written

    def linear(self, audio_path: str | os.PathLike, config: FeatureConfig) -> np.ndarray:
        """Linear STFT magnitudes ``[frames, n_bins]`` float32, memory-mapped read-only when cached."""
        key = self._key(audio_path, config)
        cached = self._load_linear(key, config)
        if cached is not None:
            return cached
        samples = audio.load_audio(audio_path, sample_rate=config.sample_rate)
        n_frames = features.frame_count(len(samples), config)
        shape = (n_frames, config.n_bins)
        self._memory_n_samples[key] = len(samples)
        stored = self._store(key, ".linear.npy", shape, lambda out: _fill_linear(samples, out, config))
        if stored is None:
            return _compute_into(np.empty(shape, np.float32), lambda out: _fill_linear(samples, out, config))
        self._store_meta(key, n_samples=len(samples), n_frames=n_frames, config=config)
        return stored

    def log_mel(self, audio_path: str | os.PathLike, config: FeatureConfig) -> np.ndarray:
        """Log-mel spectrogram ``[frames, n_mels]`` float32 computed from the cached linear one."""
        key = self._key(audio_path, config)
        linear = self.linear(audio_path, config)
        path = self._path(key, ".logmel.npy")
        cached = _load_array(path, (linear.shape[0], config.n_mels))
        if cached is not None:
            return cached
        shape = (linear.shape[0], config.n_mels)
        stored = self._store(key, ".logmel.npy", shape, lambda out: _fill_log_mel(linear, out, config))
        if stored is None:
            return _compute_into(np.empty(shape, np.float32), lambda out: _fill_log_mel(linear, out, config))
        return stored

    def duration_s(self, audio_path: str | os.PathLike, config: FeatureConfig) -> float:
        """Duration of the decoded audio in seconds (decodes only on a cache miss)."""
        key = self._key(audio_path, config)
        meta = self._read_meta(key)
        if meta is None and key not in self._memory_n_samples:
            self.linear(audio_path, config)
            meta = self._read_meta(key)
        n_samples = meta["n_samples"] if meta is not None else self._memory_n_samples[key]
        return n_samples / config.sample_rate

    def clear(self) -> int:
        """Delete every cache entry under ``root`` (nothing else); returns the bytes freed."""
        freed = 0
        if not self.root.is_dir():
            return 0
        for folder in self.root.iterdir():
            if not (folder.is_dir() and len(folder.name) == 2):
                continue
            for path in folder.iterdir():
                ours = path.name.endswith(_SUFFIXES) or path.name.endswith(".tmp")
                if ours and path.is_file():
                    with contextlib.suppress(OSError):  # e.g. still mapped on Windows
                        size = path.stat().st_size
                        path.unlink()
                        freed += size
            with contextlib.suppress(OSError):
                folder.rmdir()  # only succeeds when empty
        self._memory_n_samples.clear()
        return freed

    # -- internals -------------------------------------------------------------------------------

    def _key(self, audio_path: str | os.PathLike, config: FeatureConfig) -> str:
        return f"{file_digest(audio_path)}-{config_digest(config)}-v{CACHE_FORMAT_VERSION}"

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / (key + suffix)

    def _read_meta(self, key: str) -> dict | None:
        try:
            meta = json.loads(self._path(key, ".json").read_text(encoding="utf-8"))
            if isinstance(meta.get("n_samples"), int) and isinstance(meta.get("n_frames"), int):
                return meta
        except (OSError, ValueError, AttributeError):
            pass
        return None

    def _load_linear(self, key: str, config: FeatureConfig) -> np.ndarray | None:
        meta = self._read_meta(key)
        if meta is None:
            return None
        return _load_array(self._path(key, ".linear.npy"), (meta["n_frames"], config.n_bins))

    def _store_meta(self, key: str, *, n_samples: int, n_frames: int, config: FeatureConfig) -> None:
        # Written after the array, so a meta file always describes a complete array.
        meta = {"n_samples": n_samples, "n_frames": n_frames, "sample_rate": config.sample_rate}
        with contextlib.suppress(OutputWriteError):
            atomic_write_text(self._path(key, ".json"), json.dumps(meta) + "\n")

    def _store(self, key: str, suffix: str, shape: tuple[int, int],
               fill: Callable[[np.ndarray], None]) -> np.ndarray | None:
        """Fill a new entry on disk chunk by chunk and map it; None if the cache is unwritable."""
        if not self._writable:
            return None
        path = self._path(key, suffix)

        def write(tmp_name: str) -> None:
            if shape[0] == 0:  # not every numpy version can map an empty array
                with open(tmp_name, "wb") as handle:
                    np.save(handle, np.zeros(shape, np.float32))
                return
            out = open_memmap(tmp_name, mode="w+", dtype=np.float32, shape=shape)
            fill(out)
            out.flush()
            del out

        try:
            atomic_write_with(path, write)
        except OutputWriteError as exc:
            self._writable = False
            warnings.warn(f"spectrogram cache {self.root} is not writable ({exc.reason}); "
                          "computing spectrograms without caching", CacheWarning, stacklevel=3)
            return None
        return _load_array(path, shape)


def _load_array(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """Map a cached array read-only; a missing one gives None, a damaged one is deleted first."""
    if not path.exists():
        return None
    try:
        array = np.load(path, mmap_mode="r" if shape[0] > 0 else None, allow_pickle=False)
        if array.shape == shape and array.dtype == np.float32:
            return array
    except (OSError, ValueError, EOFError):
        pass
    with contextlib.suppress(OSError):
        path.unlink()
    return None


def _compute_into(out: np.ndarray, fill: Callable[[np.ndarray], None]) -> np.ndarray:
    fill(out)
    return out


def _fill_linear(samples: np.ndarray, out: np.ndarray, config: FeatureConfig) -> None:
    for first in range(0, out.shape[0], CHUNK_FRAMES):
        last = min(first + CHUNK_FRAMES, out.shape[0])
        lo, hi = first * config.hop_length, (last - 1) * config.hop_length + config.frame_length
        out[first:last] = features.linear_spectrogram(samples[lo:hi], config).numpy()


def _fill_log_mel(linear: np.ndarray, out: np.ndarray, config: FeatureConfig) -> None:
    for first in range(0, out.shape[0], CHUNK_FRAMES):
        chunk = torch.from_numpy(np.array(linear[first:first + CHUNK_FRAMES], dtype=np.float32))
        out[first:first + len(chunk)] = features.log_compress(features.linear_to_mel(chunk, config),
                                                               config).numpy()
