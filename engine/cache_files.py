"""The spectrogram cache's files: names, space-reserving writes, stale temporaries, LRU eviction.

An entry is up to three files named by its key in a two-character folder:
``KEY.linear.npy``, ``KEY.logmel.npy`` and ``KEY.json``; a key starts with the audio file's
SHA-256. Temporary files are hidden beside them (``.KEY.….tmp.npy``, ``.KEY.….tmp.json``).
Nothing here knows what the arrays mean; ``engine.cache`` does.
"""

from __future__ import annotations

import contextlib
import errno
import io
import math
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import ConfigError
from engine.fileio import create_temp_file

try:  # POSIX: a writer holds an flock on its temporary file, so a cleaner can tell it is alive
    import fcntl
except ImportError:  # Windows: an open file cannot be deleted anyway; age alone decides
    fcntl = None

DEFAULT_MAX_GB = 8.0  # ~13 hours of audio at 0.6 GB/h (linear + log-mel): a corpus or two
MAX_GB_ENV = "SVGUI_CACHE_MAX_GB"
# A temporary file nobody holds a lock on and untouched this long was left by a dead process.
STALE_TEMP_S = 60.0 if fcntl is not None else 3600.0
GB = 1e9

_KEY = r"[0-9a-f]{64}-[0-9a-f]{12}-v\d+"  # every format version, so that old entries are cleared too
_ENTRY_RE = re.compile(rf"^({_KEY})\.(linear\.npy|logmel\.npy|json)$")
_TEMP_RE = re.compile(rf"^\.({_KEY})\..*\.tmp(\.npy|\.json)?$")


def max_bytes_from_env() -> int:
    """The size limit: $SVGUI_CACHE_MAX_GB gigabytes (10^9 bytes), else DEFAULT_MAX_GB."""
    text = os.environ.get(MAX_GB_ENV, "").strip()
    if not text:
        return int(DEFAULT_MAX_GB * GB)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{MAX_GB_ENV} must be a number of gigabytes >= 0, got {text!r}")
    return int(value * GB)


def format_bytes(n_bytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{int(n_bytes)} B"


# ---- writing --------------------------------------------------------------------------------------
def npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy header of a C-ordered little-endian float32 array of ``shape``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def npy_size(shape: tuple[int, ...]) -> int:
    return len(npy_header(shape)) + 4 * math.prod(shape)


def write_npy(path: Path, shape: tuple[int, int], chunks: Iterable[np.ndarray]) -> None:
    """Atomically create a float32 ``.npy`` at ``path`` from consecutive row chunks.

    The file's space is reserved first and the data goes in with plain writes, never through a
    memory map: on a full disk that is an OSError (ENOSPC) before any work, where a map on a
    sparse file would kill the process with SIGBUS. The temporary file is removed on every
    failure, the caller's exceptions included.
    """
    header = npy_header(shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = create_temp_file(path)  # .KEY.linear.<random>.tmp.npy
    try:
        with os.fdopen(fd, "wb") as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            reserve_space(handle.fileno(), len(header) + 4 * math.prod(shape))
            handle.write(header)
            rows = 0
            for chunk in chunks:
                chunk = np.ascontiguousarray(chunk, dtype="<f4")
                handle.write(memoryview(chunk).cast("B"))
                rows += chunk.shape[0]
            if rows != shape[0]:
                raise RuntimeError(f"wrote {rows} rows of {shape[0]} to {path}")
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def reserve_space(fd: int, n_bytes: int) -> None:
    """Allocate ``n_bytes`` for a file now, so a full disk fails here (no-op where unsupported)."""
    if n_bytes <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, n_bytes)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise  # ENOSPC, EDQUOT, EIO: the caller falls back to memory
        # This file system cannot reserve: plain writes still turn a full disk into an OSError.


# ---- scanning, cleaning, eviction -----------------------------------------------------------------
@dataclass
class CacheScan:
    """What a cache folder holds: entries by key (their files, bytes, last use) and temporary files."""

    entry_files: dict[str, list[Path]] = field(default_factory=dict)
    entry_bytes: dict[str, int] = field(default_factory=dict)
    last_used_s: dict[str, float] = field(default_factory=dict)
    temp_files: list[tuple[Path, int]] = field(default_factory=list)  # (path, bytes)

    @property
    def total_bytes(self) -> int:
        return sum(self.entry_bytes.values()) + sum(size for _, size in self.temp_files)


def scan(root: Path) -> CacheScan:
    """List the cache's own files under ``root``; anything else there is ignored."""
    found = CacheScan()
    for folder in _entry_folders(root):
        with contextlib.suppress(OSError), os.scandir(folder) as listing:
            for item in listing:
                try:
                    if not item.is_file(follow_symlinks=False):
                        continue
                    info = item.stat(follow_symlinks=False)
                except OSError:  # deleted meanwhile by another process
                    continue
                if match := _ENTRY_RE.match(item.name):
                    key = match.group(1)
                    found.entry_files.setdefault(key, []).append(Path(item.path))
                    found.entry_bytes[key] = found.entry_bytes.get(key, 0) + info.st_size
                    used_s = max(info.st_mtime, info.st_atime)
                    found.last_used_s[key] = max(found.last_used_s.get(key, 0.0), used_s)
                elif _TEMP_RE.match(item.name):
                    found.temp_files.append((Path(item.path), info.st_size))
    return found


def remove_stale_temps(root: Path, *, min_age_s: float = STALE_TEMP_S) -> int:
    """Delete temporary files of dead writers (unlocked and untouched for ``min_age_s``); bytes freed."""
    freed = 0
    for path, size in scan(root).temp_files:
        if _remove_if_stale(path, min_age_s):
            freed += size
    return freed


def _remove_if_stale(path: Path, min_age_s: float) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # a live process is writing it right now
        if time.time() - os.fstat(fd).st_mtime < min_age_s:
            return False  # may be between creation and locking, or a just-written meta file
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def remove_entry(files: Iterable[Path]) -> int:
    """Delete one entry's files, its meta file first (so no half entry looks complete)."""
    freed = 0
    for path in sorted(files, key=lambda p: not p.name.endswith(".json")):
        with contextlib.suppress(OSError):  # already gone, or still mapped on Windows
            size = path.stat().st_size
            path.unlink()
            freed += size
    return freed


def evict_lru(root: Path, *, max_bytes: int, keep: set[str] = frozenset()) -> int:
    """Delete least recently used entries until the cache holds at most ``max_bytes``.

    Entries whose key is in ``keep`` (those the running process uses) are never deleted, so
    the result can stay above ``max_bytes``. Returns the bytes the cache holds afterwards.
    """
    found = scan(root)
    total = found.total_bytes
    for key in sorted(found.entry_files, key=found.last_used_s.__getitem__):
        if total <= max_bytes:
            break
        if key not in keep:
            total -= remove_entry(found.entry_files[key])
    return total


def clear(root: Path) -> int:
    """Delete every entry and temporary file of the cache (nothing else); returns the bytes freed."""
    found = scan(root)
    freed = sum(remove_entry(files) for files in found.entry_files.values())
    freed += remove_entry(path for path, _ in found.temp_files)
    for folder in _entry_folders(root):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty
    return freed


def _entry_folders(root: Path) -> list[Path]:
    try:
        return [Path(item.path) for item in os.scandir(root)
                if len(item.name) == 2 and item.is_dir(follow_symlinks=False)]
    except OSError:
        return []
