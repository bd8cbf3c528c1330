"""Atomic file writes: a crash or a full disk never leaves a half-written file behind; file hashes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from engine.errors import OutputWriteError


def open_problem(path: Path, exc: OSError, *, not_found: str = "file not found") -> str:
    """Why ``path`` could not be opened, in words: a link loop and a broken link are told apart
    from a missing file (Python calls all three 'not found' or 'too many levels')."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    if isinstance(exc, FileNotFoundError):
        return "broken symbolic link" if path.is_symlink() else not_found
    return exc.strerror or str(exc)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    Text mode writes UTF-8 with ``\\n`` line ends whatever the platform or locale.
    On any error the temporary file is removed, ``path`` is untouched, and an OSError
    becomes an OutputWriteError naming the file.
    """
    path = Path(path)
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    fd, tmp_name = _create_temp_beside(path)
    try:
        kwargs = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        _replace_durably(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise OutputWriteError(path, exc.strerror or str(exc)) from None
        raise


def _replace_durably(tmp_name: str, path: Path) -> None:
    """Rename the synced temporary file over ``path``, then sync the folder so the rename survives
    a power cut too (POSIX; Windows cannot open a folder, and its rename is already journalled)."""
    os.replace(tmp_name, path)
    if os.name == "posix":
        _fsync_path(path.parent, flags=os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def _fsync_path(path: str | os.PathLike, *, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's content, hex (the one hasher: model files and the spectrogram cache)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def create_temp_file(path: Path) -> tuple[int, str]:
    """Create an empty hidden ``.STEM.<random>.tmp.SUFFIX`` beside ``path``: (fd, name); OSError if not.

    The suffix matters: np.save appends '.npy' and soundfile picks the format from it.
    Permissions are those a plain open() would give (mkstemp's 0600 would stick to the result).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp_name = str(path.parent / f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            return os.open(tmp_name, flags, 0o666), tmp_name  # 0o666 minus the umask, like open()
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path))


def _create_temp_beside(path: Path) -> tuple[int, str]:
    """``create_temp_file`` with the replaced file's permissions; OutputWriteError naming ``path``."""
    try:
        fd, tmp_name = create_temp_file(path)
    except OSError as exc:
        raise OutputWriteError(path, exc.strerror or str(exc)) from None
    with contextlib.suppress(OSError):
        os.chmod(tmp_name, stat.S_IMODE(os.stat(path).st_mode))
    return fd, tmp_name


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_with(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Atomically create ``path`` with a writer that only accepts a file name (np.save, ...)."""
    path = Path(path)
    fd, tmp_name = _create_temp_beside(path)
    os.close(fd)
    try:
        write(tmp_name)
        _fsync_path(tmp_name)  # the writer closed its own handle: reopen to flush it to disk
        _replace_durably(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise OutputWriteError(path, exc.strerror or str(exc)) from None
        raise


def ensure_writable_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) and prove a file can be made in it, before long work.

    Tested by creating a file, not by permission bits: root ignores those, and read-only
    mounts or a file in the way do not show in them. Raises OutputWriteError naming the folder.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputWriteError(folder, "it exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = _create_temp_beside(folder / ".svgui-write-test")
    except OutputWriteError as exc:
        raise OutputWriteError(folder, exc.reason) from None
    except OSError as exc:
        raise OutputWriteError(folder, exc.strerror or str(exc)) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return folder
