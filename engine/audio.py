"""Decode any audio file libsndfile reads into float32 mono samples at the feature sample rate.

Decoding, down-mixing and resampling run block by block, so a one-hour 44.1 kHz stereo file
never exists in memory as float32 at its original rate (only the 22,050 Hz mono result does).
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from engine.config import FeatureConfig
from engine.errors import AudioLoadError
from engine.fileio import open_problem

BLOCK_FRAMES = 1 << 18  # ~6 s at 44.1 kHz: small enough for bounded memory, big enough to be fast
SALVAGE_FRAMES = 4096  # after a decode error, re-read the failed block in steps this small
RESAMPLE_QUALITY = "HQ"  # librosa's default res_type is soxr_hq

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".caf",
                    ".w64", ".rf64", ".opus")


class AudioWarning(UserWarning):
    """An audio file was decoded only in part (truncated or damaged after some point)."""


def is_audio_path(path: str | os.PathLike) -> bool:
    """Whether a file name has an extension we try to decode."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def audio_duration_s(path: str | os.PathLike) -> float:
    """Duration of a file from its header, without decoding it."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioLoadError(path, _describe_decode_error(path, exc)) from None
    return info.frames / info.samplerate if info.samplerate else 0.0


def load_audio(path: str | os.PathLike, *, sample_rate: int = FeatureConfig.sample_rate,
               on_warning: Callable[[str], None] | None = None) -> np.ndarray:
    """Decode, down-mix and resample a file.

    ``on_warning`` receives the warning's text instead of ``warnings.warn`` (worker threads: the
    warnings module's capture is process-wide, not per thread).

    Returns
    -------
    samples : np.ndarray [shape=(n_samples,), dtype=float32]
        Mono signal at ``sample_rate`` Hz, the mean of all channels.

    Raises
    ------
    AudioLoadError
        Naming the file and the reason: missing, empty, corrupt, unsupported, zero length,
        non-finite samples.

    Warns
    -----
    AudioWarning
        A file that breaks off (a truncated download, a damaged block) gives what decodes before
        the damage, and a warning naming the time where decoding stopped.
    """
    path = Path(path)
    _check_file(path)
    try:
        with sf.SoundFile(str(path)) as audio:
            rate_in = audio.samplerate
            resampler = None
            if rate_in != sample_rate:
                resampler = soxr.ResampleStream(rate_in, sample_rate, 1, dtype="float32",
                                                quality=RESAMPLE_QUALITY)
            # Fill one preallocated buffer (headers give the length) instead of concatenating
            # blocks, which would need twice the memory of a long file at its end.
            expected = audio.frames * sample_rate // rate_in + 64 if audio.frames > 0 else 0
            out = _Buffer(expected)
            n_in, damage = 0, None
            while True:
                try:
                    block = audio.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                    last = len(block) < BLOCK_FRAMES
                except (sf.LibsndfileError, RuntimeError) as exc:
                    block, damage, last = _salvage(audio, n_in), exc, True
                n_in += len(block)
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                if not np.isfinite(mono).all():
                    raise AudioLoadError(path, "contains NaN or infinite samples")
                if resampler is not None:
                    mono = resampler.resample_chunk(np.ascontiguousarray(mono), last=last)
                out.append(mono)
                if last:
                    break
    except AudioLoadError:
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        # TypeError: soundfile wants rate/channels for headerless files (.raw)
        raise AudioLoadError(path, _describe_decode_error(path, exc)) from None
    except MemoryError:
        raise AudioLoadError(path, "too long to decode in the available memory") from None
    if damage is not None:
        detail = str(damage).split(": ", 1)[-1].strip() or type(damage).__name__
        if n_in == 0:
            raise AudioLoadError(path, f"corrupt or unreadable audio from the start ({detail})")
        message = (f"{path}: unreadable after {n_in / rate_in:.2f} s of {audio.frames / rate_in:.2f} s "
                   f"({detail}); using the first {n_in / rate_in:.2f} s")
        if on_warning is not None:
            on_warning(message)
        else:
            warnings.warn(message, AudioWarning, stacklevel=2)
    if n_in == 0:
        raise AudioLoadError(path, "contains no audio samples (zero length)")
    return out.result()


def _salvage(audio: sf.SoundFile, start_frame: int) -> np.ndarray:
    """The frames from ``start_frame`` that still decode, read in small steps up to the damage."""
    blocks = []
    try:
        audio.seek(start_frame)
        while True:
            block = audio.read(SALVAGE_FRAMES, dtype="float32", always_2d=True)
            blocks.append(block)
            if len(block) < SALVAGE_FRAMES:
                break
    except (sf.LibsndfileError, RuntimeError):
        pass  # the damage: keep what came before it
    return np.concatenate(blocks) if blocks else np.zeros((0, audio.channels), dtype=np.float32)


class _Buffer:
    """A growable float32 array; grows (by copying) only if a header under-stated the length."""

    def __init__(self, capacity: int):
        self.data = np.empty(max(capacity, 1), dtype=np.float32)
        self.size = 0

    def append(self, values: np.ndarray) -> None:
        end = self.size + len(values)
        if end > len(self.data):
            grown = np.empty(max(end, 2 * len(self.data)), dtype=np.float32)
            grown[:self.size] = self.data[:self.size]
            self.data = grown
        self.data[self.size:end] = values
        self.size = end

    def result(self) -> np.ndarray:
        # A copy only when much was over-allocated; otherwise a view of the buffer.
        view = self.data[:self.size]
        return view.copy() if len(self.data) - self.size > 1 << 16 else view


def _check_file(path: Path) -> None:
    try:
        info = path.stat()
    except OSError as exc:
        raise AudioLoadError(path, open_problem(path, exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise AudioLoadError(path, "is a folder, not an audio file")
    if not stat.S_ISREG(info.st_mode):
        raise AudioLoadError(path, "not a regular file (a pipe or device?)")
    if info.st_size == 0:
        raise AudioLoadError(path, "file is empty (0 bytes)")


def _describe_decode_error(path: Path, exc: Exception) -> str:
    known = {f".{name.lower()}" for name in sf.available_formats()} | set(AUDIO_EXTENSIONS)
    suffix = path.suffix.lower()
    detail = str(exc).split(": ", 1)[-1].strip() or type(exc).__name__
    if suffix and suffix not in known:
        return f"unsupported format '{suffix}' ({detail})"
    if detail.startswith("File does not exist or is not a regular file"):
        # libsndfile says this of any file it finds no audio in; _check_file saw a regular file
        return "not decodable audio (no audio stream libsndfile can read)"
    return f"corrupt or unreadable audio ({detail})"
