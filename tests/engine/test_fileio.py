"""engine.fileio: atomic writes never leave half-written files or temporaries behind."""

import os
import stat

import numpy as np
import pytest
import soundfile as sf

from engine.errors import EngineError, OutputWriteError
from engine.fileio import atomic_open, atomic_write_text, atomic_write_with


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_write_creates_and_replaces(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "first\n")
    assert path.read_text() == "first\n"
    atomic_write_text(path, "second, longer content\n" * 3)
    assert path.read_text() == "second, longer content\n" * 3
    assert _names(tmp_path) == ["out.txt"]


def test_text_is_utf8_with_unix_line_ends(tmp_path):
    path = tmp_path / "x.txt"
    atomic_write_text(path, "Schlüter\nGrill\n")
    assert path.read_bytes() == "Schlüter\nGrill\n".encode("utf-8")


def test_binary_mode(tmp_path):
    path = tmp_path / "x.bin"
    with atomic_open(path, "wb") as handle:
        handle.write(b"\x00\x01\xff")
    assert path.read_bytes() == b"\x00\x01\xff"


def test_creates_missing_parent_folders(tmp_path):
    path = tmp_path / "a" / "b" / "x.txt"
    atomic_write_text(path, "hi")
    assert path.read_text() == "hi"


def test_nothing_visible_until_the_block_ends(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")
    with atomic_open(path) as handle:
        handle.write("new")
        handle.flush()
        assert path.read_text() == "old"
    assert path.read_text() == "new"


def test_failure_mid_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("old content\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_open(path) as handle:
            handle.write("half of the new content")
            raise RuntimeError("boom")
    assert path.read_text() == "old content\n"
    assert _names(tmp_path) == ["labels.txt"]


def test_failure_of_a_new_file_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(tmp_path / "new.txt", "wb") as handle:
            handle.write(b"x")
            raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_oserror_inside_the_block_becomes_output_write_error(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")
    with pytest.raises(OutputWriteError) as info:
        with atomic_open(path):
            raise OSError(28, "No space left on device")
    assert str(path) in str(info.value) and "No space left" in str(info.value)
    assert isinstance(info.value, EngineError)
    assert path.read_text() == "old"
    assert _names(tmp_path) == ["x.txt"]


def test_target_is_a_folder(tmp_path):
    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(OutputWriteError) as info:
        atomic_write_text(folder, "x")
    assert info.value.path == str(folder)
    assert folder.is_dir() and _names(tmp_path) == ["taken"]


def test_parent_is_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file")
    with pytest.raises(OutputWriteError, match="cannot write"):
        atomic_write_text(blocker / "x.txt", "x")
    with pytest.raises(OutputWriteError):
        atomic_write_with(blocker / "x.npy", lambda name: None)
    assert blocker.read_text() == "I am a file"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputWriteError):
            atomic_write_text(folder / "x.txt", "x")
    finally:
        folder.chmod(0o700)


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        with atomic_open("x.txt", "a"):
            pass


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_permissions_follow_the_umask_or_the_replaced_file(tmp_path):
    old_umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644  # not mkstemp's 0600
        private = tmp_path / "private.txt"
        private.write_text("secret")
        private.chmod(0o600)
        atomic_write_text(private, "still secret")
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(old_umask)


def test_write_with_np_save(tmp_path):
    # np.save appends '.npy' to names without it: the temporary name must keep the suffix.
    path = tmp_path / "cache.npy"
    atomic_write_with(path, lambda name: np.save(name, np.arange(5)))
    np.testing.assert_array_equal(np.load(path), np.arange(5))
    assert _names(tmp_path) == ["cache.npy"]


def test_write_with_soundfile(tmp_path):
    # soundfile picks the format from the extension of the name it is given.
    path = tmp_path / "clip.flac"
    data = np.linspace(-0.5, 0.5, 1000).astype(np.float32)
    atomic_write_with(path, lambda name: sf.write(name, data, 22050))
    assert sf.info(str(path)).format == "FLAC"
    np.testing.assert_allclose(sf.read(str(path), dtype="float32")[0], data, atol=1e-4)
    assert _names(tmp_path) == ["clip.flac"]


def test_write_with_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.ones(3))

    def failing(name):
        with open(name, "wb") as handle:
            handle.write(b"partial")
        raise ValueError("writer failed")

    with pytest.raises(ValueError, match="writer failed"):
        atomic_write_with(path, failing)
    np.testing.assert_array_equal(np.load(path), np.ones(3))
    assert _names(tmp_path) == ["x.npy"]

    def disk_full(name):
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputWriteError, match="No space left"):
        atomic_write_with(path, disk_full)
    np.testing.assert_array_equal(np.load(path), np.ones(3))
    assert _names(tmp_path) == ["x.npy"]


@pytest.mark.skipif(os.name != "posix", reason="folders are synced on POSIX only")
@pytest.mark.parametrize("writer", ["open", "with"])
def test_both_writers_sync_the_file_and_then_the_folder(tmp_path, monkeypatch, writer):
    synced, real_fsync = [], os.fsync

    def recording_fsync(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    path = tmp_path / "out.npy"
    if writer == "open":
        with atomic_open(path, "wb") as handle:
            np.save(handle, np.arange(3))
    else:
        atomic_write_with(path, lambda name: np.save(name, np.arange(3)))
    assert synced == ["file", "folder"]
    assert np.load(path).tolist() == [0, 1, 2]


def test_file_sha256_matches_hashlib(tmp_path):
    import hashlib

    from engine.fileio import file_sha256
    path = tmp_path / "x.bin"
    path.write_bytes(b"svgui" * 100_000)
    assert file_sha256(path) == hashlib.sha256(b"svgui" * 100_000).hexdigest()
