"""An on-disk cache of linear and log-mel spectrograms, keyed by file content and feature config."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from engine import audio, cache_files, features
from engine.config import FeatureConfig
from engine.errors import AudioLoadError, OutputWriteError
from engine.fileio import atomic_write_text, file_sha256

CACHE_FORMAT_VERSION = 1  # bump when what an entry holds changes; old entries are then ignored
CHUNK_FRAMES = 8192  # ~16 MB of linear frames at a time: a one-hour file stays bounded in memory

# Hashing a long file takes a moment; remember digests while the file's stat signature is unchanged.
_digest_memo: dict[tuple, str] = {}
# Arrays already checked for NaN/inf, by (path, inode, size, mtime): a rewrite gets a new inode.
_verified_memo: set[tuple] = set()


class CacheWarning(UserWarning):
    """The spectrogram cache cannot be written; spectrograms are computed without caching."""


def default_cache_root() -> Path:
    """$SVGUI_CACHE_DIR, else $XDG_CACHE_HOME/svgui/spectrograms, else ~/.cache/svgui/spectrograms."""
    if os.environ.get("SVGUI_CACHE_DIR"):
        return Path(os.environ["SVGUI_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "svgui" / "spectrograms"


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content, remembered per (path, size, times, inode)."""
    path = Path(path)
    try:
        stat = path.stat()
        signature = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        if signature in _digest_memo:
            return _digest_memo[signature]
        digest = file_sha256(path)
    except FileNotFoundError:
        raise AudioLoadError(path, "file not found") from None
    except IsADirectoryError:
        raise AudioLoadError(path, "is a folder, not an audio file") from None
    except OSError as exc:
        raise AudioLoadError(path, exc.strerror or str(exc)) from None
    if len(_digest_memo) > 4096:
        _digest_memo.clear()
    _digest_memo[signature] = digest
    return _digest_memo[signature]


def config_digest(config: FeatureConfig) -> str:
    """A short hash of every FeatureConfig field (a new field changes it, which is the safe way)."""
    text = json.dumps(dataclasses.asdict(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class SpectrogramCache:
    """Decode each audio file once: later calls memory-map its spectrograms from ``root``.

    Entries are checked on every first read in a process (shape, dtype, finite values);
    a damaged one is deleted and recomputed with a ``CacheWarning``. If ``root`` cannot be
    written (no permission, full disk), spectrograms are computed in memory and one
    ``CacheWarning`` says so. The cache keeps at most ``max_bytes`` (default
    $SVGUI_CACHE_MAX_GB, else 8 GB), deleting least recently used entries first; the entries
    of the files this instance has used are kept, so one large run may exceed the limit.
    ``notes`` lists every warning given, for windows that show them.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()
        self.max_bytes = cache_files.max_bytes_from_env() if max_bytes is None else int(max_bytes)
        self.notes: list[str] = []
        self._writable = self.max_bytes > 0
        self._memory_n_samples: dict[str, int] = {}  # fallback meta when nothing can be written
        self._used_keys: set[str] = set()  # never evicted by this instance: its run maps them
        self._held_bytes: int | None = None  # what the folder holds, known after the first write
        self._warned_limit = False
        # Uncached results of the file used last: load_track asks for linear twice and log-mel once.
        self._in_memory: dict[tuple[str, str], np.ndarray] = {}

    def linear(self, audio_path: str | os.PathLike, config: FeatureConfig) -> np.ndarray:
        """Linear STFT magnitudes ``[frames, n_bins]`` float32, memory-mapped read-only when cached."""
        key = self._key(audio_path, config)
        self._used_keys.add(key)
        cached = self._in_memory.get((key, ".linear.npy"))
        if cached is None:
            cached = self._load_linear(key, config, audio_path)
        if cached is not None:
            return cached
        samples = audio.load_audio(audio_path, sample_rate=config.sample_rate)
        n_frames = features.frame_count(len(samples), config)
        shape = (n_frames, config.n_bins)
        self._memory_n_samples[key] = len(samples)

        def chunks() -> Iterator[np.ndarray]:
            return _finite(_linear_chunks(samples, n_frames, config), audio_path, "linear spectrogram")
        stored = self._store(key, ".linear.npy", shape, chunks, audio_path)
        if stored is None:
            return self._keep_in_memory(key, ".linear.npy", _collect(chunks(), shape))
        self._store_meta(key, n_samples=len(samples), n_frames=n_frames, config=config)
        return stored

    def log_mel(self, audio_path: str | os.PathLike, config: FeatureConfig) -> np.ndarray:
        """Log-mel spectrogram ``[frames, n_mels]`` float32 computed from the cached linear one."""
        key = self._key(audio_path, config)
        linear = self.linear(audio_path, config)
        shape = (linear.shape[0], config.n_mels)
        cached = self._in_memory.get((key, ".logmel.npy"))
        if cached is None:
            cached = self._load_array(self._path(key, ".logmel.npy"), shape, audio_path)
        if cached is not None:
            return cached

        def chunks() -> Iterator[np.ndarray]:
            return _finite(_log_mel_chunks(linear, config), audio_path, "log-mel spectrogram")
        stored = self._store(key, ".logmel.npy", shape, chunks, audio_path)
        return self._keep_in_memory(key, ".logmel.npy", _collect(chunks(), shape)) if stored is None else stored

    def duration_s(self, audio_path: str | os.PathLike, config: FeatureConfig) -> float:
        """Duration of the decoded audio in seconds (decodes only on a cache miss)."""
        key = self._key(audio_path, config)
        meta = self._read_meta(key, config)
        if meta is None and key not in self._memory_n_samples:
            self.linear(audio_path, config)
            meta = self._read_meta(key, config)
        n_samples = meta["n_samples"] if meta is not None else self._memory_n_samples[key]
        return n_samples / config.sample_rate

    def clear(self) -> int:
        """Delete every cache entry and temporary file under ``root`` (nothing else); bytes freed."""
        self._memory_n_samples.clear()
        self._held_bytes = None
        return cache_files.clear(self.root)

    # -- internals -------------------------------------------------------------------------------

    def _key(self, audio_path: str | os.PathLike, config: FeatureConfig) -> str:
        return f"{file_digest(audio_path)}-{config_digest(config)}-v{CACHE_FORMAT_VERSION}"

    def _path(self, key: str, suffix: str) -> Path:
        return self.root / key[:2] / (key + suffix)

    def _read_meta(self, key: str, config: FeatureConfig) -> dict | None:
        try:
            meta = json.loads(self._path(key, ".json").read_text(encoding="utf-8"))
            n_samples, n_frames = meta.get("n_samples"), meta.get("n_frames")
            if (isinstance(n_samples, int) and isinstance(n_frames, int) and n_samples >= 0
                    and n_frames == features.frame_count(n_samples, config)):
                return meta
        except (OSError, ValueError, AttributeError):
            pass
        return None

    def _load_linear(self, key: str, config: FeatureConfig, audio_path) -> np.ndarray | None:
        meta = self._read_meta(key, config)
        if meta is None:
            return None
        with contextlib.suppress(OSError):  # least recently used goes first: mark this entry used
            os.utime(self._path(key, ".json"))
        return self._load_array(self._path(key, ".linear.npy"), (meta["n_frames"], config.n_bins), audio_path)

    def _load_array(self, path: Path, shape: tuple[int, int], audio_path) -> np.ndarray | None:
        """Map a cached array read-only; a missing one gives None, a damaged one is deleted first."""
        if not path.exists():
            return None
        try:
            array = np.load(path, mmap_mode="r" if shape[0] > 0 else None, allow_pickle=False)
            if array.shape != shape or array.dtype != np.float32:
                problem = f"has shape {array.shape} {array.dtype}, expected {shape} float32"
            elif not _verified_finite(path, array):
                problem = "holds NaN or infinite values"
            else:
                return array
        except (OSError, ValueError, EOFError):
            problem = "is damaged"
        with contextlib.suppress(OSError):
            path.unlink()
        self._warn(f"spectrogram cache entry {path} {problem}; recomputing it from {audio_path}")
        return None

    def _store_meta(self, key: str, *, n_samples: int, n_frames: int, config: FeatureConfig) -> None:
        # Written after the array, so a meta file always describes a complete array.
        meta = {"n_samples": n_samples, "n_frames": n_frames, "sample_rate": config.sample_rate}
        try:
            atomic_write_text(self._path(key, ".json"), json.dumps(meta) + "\n")
        except OutputWriteError as exc:
            with contextlib.suppress(OSError):  # an array without its meta is never read: free its space
                self._path(key, ".linear.npy").unlink()
            self._stop_writing(exc.reason)

    def _store(self, key: str, suffix: str, shape: tuple[int, int],
               chunks: Callable[[], Iterable[np.ndarray]], audio_path) -> np.ndarray | None:
        """Write a new entry chunk by chunk and map it; None if it cannot be written."""
        if not self._writable:
            return None
        path = self._path(key, suffix)
        n_bytes = cache_files.npy_size(shape)
        try:
            self._make_room(n_bytes)
            cache_files.write_npy(path, shape, chunks())
        except OSError as exc:  # full disk, no permission, read-only file system, ...
            self._stop_writing(exc.strerror or str(exc))
            return None
        self._held_bytes = (self._held_bytes or 0) + n_bytes
        with contextlib.suppress(OSError):
            _verified_memo.add(_signature(path))  # its chunks were checked while being written
        return self._load_array(path, shape, audio_path)

    def _make_room(self, n_bytes: int) -> None:
        """Before the first write: remove dead writers' temporaries; evict to stay under the limit."""
        if self._held_bytes is None:
            cache_files.remove_stale_temps(self.root)
            self._held_bytes = cache_files.scan(self.root).total_bytes
        if self._held_bytes + n_bytes <= self.max_bytes:
            return
        self._held_bytes = cache_files.evict_lru(self.root, max_bytes=self.max_bytes - n_bytes,
                                                 keep=self._used_keys)
        if self._held_bytes + n_bytes > self.max_bytes and not self._warned_limit:
            self._warned_limit = True
            self._warn(f"spectrogram cache {self.root} holds more than its limit of "
                       f"{cache_files.format_bytes(self.max_bytes)}: the files in use need it "
                       f"(raise {cache_files.MAX_GB_ENV} to keep more)")

    def _stop_writing(self, reason: str) -> None:
        if self._writable:
            self._writable = False
            self._warn(f"spectrogram cache {self.root} is not writable ({reason}); "
                       "computing spectrograms in memory without caching")

    def _keep_in_memory(self, key: str, suffix: str, array: np.ndarray) -> np.ndarray:
        if any(k != key for k, _ in self._in_memory):
            self._in_memory.clear()  # one file's arrays at most
        self._in_memory[key, suffix] = array
        return array

    def _warn(self, message: str) -> None:
        self.notes.append(message)
        frame, stacklevel = sys._getframe(0), 1
        while frame is not None and frame.f_code.co_filename == __file__:  # point at our caller
            frame, stacklevel = frame.f_back, stacklevel + 1
        warnings.warn(message, CacheWarning, stacklevel=stacklevel)


def _signature(path: Path) -> tuple:
    stat = path.stat()
    return str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns


def _verified_finite(path: Path, array: np.ndarray) -> bool:
    """Whether every value is finite, checked in chunks once per file version and process."""
    signature = _signature(path)
    if signature in _verified_memo:
        return True
    if not all(np.isfinite(array[i:i + CHUNK_FRAMES]).all() for i in range(0, array.shape[0], CHUNK_FRAMES)):
        return False
    if len(_verified_memo) > 4096:
        _verified_memo.clear()
    _verified_memo.add(signature)
    return True


def _finite(chunks: Iterable[np.ndarray], audio_path, what: str) -> Iterator[np.ndarray]:
    """Pass chunks through, refusing NaN/inf: a bad spectrogram names its audio file, not the cache."""
    for chunk in chunks:
        if not np.isfinite(chunk).all():
            raise AudioLoadError(audio_path, f"its {what} has NaN or infinite values "
                                             "(extreme sample values?)")
        yield chunk


def _collect(chunks: Iterable[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    out = np.empty(shape, np.float32)
    first = 0
    for chunk in chunks:
        out[first:first + len(chunk)] = chunk
        first += len(chunk)
    return out


def _linear_chunks(samples: np.ndarray, n_frames: int, config: FeatureConfig) -> Iterator[np.ndarray]:
    for first in range(0, n_frames, CHUNK_FRAMES):
        last = min(first + CHUNK_FRAMES, n_frames)
        lo, hi = first * config.hop_length, (last - 1) * config.hop_length + config.frame_length
        yield features.linear_spectrogram(samples[lo:hi], config).numpy()


def _log_mel_chunks(linear: np.ndarray, config: FeatureConfig) -> Iterator[np.ndarray]:
    for first in range(0, linear.shape[0], CHUNK_FRAMES):
        chunk = torch.from_numpy(np.array(linear[first:first + CHUNK_FRAMES], dtype=np.float32))
        yield features.log_compress(features.linear_to_mel(chunk, config), config).numpy()
