"""Songs with stems: finding them, reading them sample-aligned, voice labels from the vocal level.

Two layouts are read:

- musdb7 (``../shared/data/musdb7-train``): ``NAME.flac`` is the mix and ``NAME (accompaniment).flac``
  the same music without its voice beside it; vocals = mix − accompaniment, after checking that
  the two are sample-aligned.
- MUSDB18-HQ as distributed: ``train/NAME/`` and ``test/NAME/`` folders holding ``mixture.wav``,
  ``vocals.wav``, ``drums.wav``, ``bass.wav`` and ``other.wav``; accompaniment = drums + bass + other.

MUSDB18's ``.stem.mp4`` files need an MP4/AAC decoder that soundfile lacks (``musdb``/``stempeg``
call the ffmpeg program): they are refused with what to do (``musdbconvert`` to WAV folders).

Labels: a mix with a label file beside it keeps it; without one (MUSDB18), frame voice labels
come from the vocal stem by ``VocalActivityRule`` (see its docstring and the README).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from engine.audio import AUDIO_EXTENSIONS, load_audio
from engine.config import FeatureConfig
from engine.errors import DatasetError
from engine.features import frame_count

ACCOMPANIMENT_SUFFIX = " (accompaniment)"
MUSDB_MIX, MUSDB_VOCALS = "mixture", "vocals"
MUSDB_ACCOMPANIMENT = ("drums", "bass", "other")  # summed into the accompaniment
MUSDB_SPLITS = ("train", "test")
MAX_LEVEL_DB = 60.0        # gains and ratios beyond ±60 dB are typos, not experiments
SILENT_PEAK_DBFS = -80.0   # a vocal stem whose peak stays below this has no voice to remix or label
ALIGN_WINDOW_S = 30.0      # cross-correlate at most this much of the middle of a song
ALIGN_MAX_LAG_S = 0.05     # offsets searched, either way
ALIGN_RESIDUAL_RATIO = 0.5  # misaligned only if shifting cuts the residual energy below this fraction


@dataclass(frozen=True)
class StemSet:
    """Where one song's stems lie: vocals = ``vocals``, or ``mix`` − the sum of ``accompaniment``."""

    name: str
    mix: Path
    accompaniment: tuple[Path, ...]
    vocals: Path | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.mix, *((self.vocals,) if self.vocals else ()), *self.accompaniment)


@dataclass(frozen=True)
class StemAudio:
    """A song's vocals and accompaniment, mono at ``sample_rate``, the same length."""

    stems: StemSet
    vocals: np.ndarray
    accompaniment: np.ndarray
    sample_rate: int

    @property
    def vocal_level_db(self) -> float:
        return energy_db(self.vocals)

    @property
    def accompaniment_level_db(self) -> float:
        return energy_db(self.accompaniment)

    def remix(self, ratio_db: float) -> np.ndarray:
        """accompaniment + vocals scaled so that their energy ratio over the song is ``ratio_db``."""
        gain_db = ratio_db - (self.vocal_level_db - self.accompaniment_level_db)
        return self.accompaniment + self.vocals * np.float32(10 ** (gain_db / 20))


def energy_db(samples: np.ndarray) -> float:
    """Mean power in dB relative to full scale (−inf for silence)."""
    power = float(np.mean(np.square(samples, dtype=np.float64))) if len(samples) else 0.0
    return 10 * math.log10(power) if power > 0 else -math.inf


def check_level_db(value: float, what: str) -> float:
    """A gain or ratio in dB within ±MAX_LEVEL_DB, else a DatasetError quoting it."""
    if not -MAX_LEVEL_DB <= value <= MAX_LEVEL_DB:  # NaN fails too
        raise DatasetError(f"{what} {value:g} dB is out of range: use values within ±{MAX_LEVEL_DB:g} dB")
    return float(value)


def parse_levels_db(text: str, *, what: str) -> tuple[float, ...]:
    """'-18,-12,-6,0,6' → (-18.0, ...); each within ±60 dB, no repeats; errors name the value."""
    values = []
    for item in text.split(","):
        item = item.strip()
        try:
            value = float(item)
        except ValueError:
            raise DatasetError(f"{what}: {item!r} is not a number of dB (write e.g. -18,-12,-6,0,6)") from None
        values.append(check_level_db(value, what))
    if len(set(values)) != len(values):
        raise DatasetError(f"{what}: a level is listed twice in {text!r}")
    return tuple(values)


# ---- finding stems -------------------------------------------------------------------------------
def _sibling(folder: Path, stem: str) -> Path | None:
    return next((folder / f"{stem}{ext}" for ext in AUDIO_EXTENSIONS if (folder / f"{stem}{ext}").is_file()), None)


def is_accompaniment_path(path: str | os.PathLike) -> bool:
    return Path(path).stem.endswith(ACCOMPANIMENT_SUFFIX)


def stems_of(audio_path: str | os.PathLike) -> StemSet | None:
    """The stems beside a mix, if it has any (musdb7 or MUSDB18-HQ layout); None for other files.

    A MUSDB18-HQ ``mixture`` whose folder lacks one of the other stems is a DatasetError naming it.
    """
    path = Path(audio_path)
    if is_accompaniment_path(path):
        return None
    accompaniment = _sibling(path.parent, path.stem + ACCOMPANIMENT_SUFFIX)
    if accompaniment is not None:
        return StemSet(path.stem, path, (accompaniment,))
    if path.stem != MUSDB_MIX:
        return None
    vocals = _sibling(path.parent, MUSDB_VOCALS)
    others = {name: _sibling(path.parent, name) for name in MUSDB_ACCOMPANIMENT}
    if vocals is None and not any(others.values()):
        return None
    missing = [name for name, found in {MUSDB_VOCALS: vocals, **others}.items() if found is None]
    if missing:
        raise DatasetError(f"{path.parent}: MUSDB18 song folder without its {', '.join(missing)} stem(s) "
                           f"(need {MUSDB_VOCALS}, {', '.join(MUSDB_ACCOMPANIMENT)} beside {path.name})")
    return StemSet(path.parent.name, path, tuple(others[name] for name in MUSDB_ACCOMPANIMENT), vocals)


def is_musdb_layout(folder: str | os.PathLike) -> bool:
    """MUSDB18(-HQ) as distributed: ``train/`` and ``test/`` folders of songs."""
    folder = Path(folder)
    return all((folder / split).is_dir() for split in MUSDB_SPLITS)


def musdb_mixtures(folder: str | os.PathLike) -> list[Path]:
    """The ``mixture`` files of every song folder under a MUSDB18-HQ split (or a folder of songs).

    ``.stem.mp4`` files (MUSDB18) are refused: soundfile cannot decode MP4/AAC.
    """
    folder = Path(folder)
    mp4 = sorted(folder.glob("*.stem.mp4"))
    if mp4:
        raise DatasetError(
            f"{folder}: MUSDB18 .stem.mp4 files ({mp4[0].name}, ...) need an MP4/AAC decoder that is not "
            f"installed (musdb/stempeg call the ffmpeg program). Convert them once to WAV folders with "
            f"musdb's `musdbconvert {folder.parent} OUT` (pip install musdb, and ffmpeg), or use MUSDB18-HQ")
    songs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    mixtures = [m for m in (_sibling(song, MUSDB_MIX) for song in songs) if m is not None]
    without = [song.name for song in songs if _sibling(song, MUSDB_MIX) is None]
    if without:
        raise DatasetError(f"{folder}: song folder(s) without a {MUSDB_MIX}.wav: {', '.join(without[:10])}")
    for mixture in mixtures:
        stems_of(mixture)  # a missing stem is an error now, not in the middle of training
    return mixtures


# ---- reading stems -------------------------------------------------------------------------------
def _header(path: Path) -> sf._SoundFileInfo:
    if not path.is_file():
        raise DatasetError(f"stem file not found: {path}")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise DatasetError(f"{path}: cannot read this stem ({exc})") from None


def _check_headers(stems: StemSet) -> None:
    """Same sample rate and length for every stem of a song, before decoding anything."""
    headers = {path: _header(path) for path in stems.files}
    rates = {h.samplerate for h in headers.values()}
    if len(rates) > 1:
        listed = ", ".join(f"{p.name} {h.samplerate} Hz" for p, h in headers.items())
        raise DatasetError(f"stems of {stems.name} differ in sample rate: {listed} (in {stems.mix.parent})")
    lengths = {h.frames for h in headers.values()}
    if len(lengths) > 1:
        listed = ", ".join(f"{p.name} {h.frames} samples ({h.frames / h.samplerate:.3f} s)" for p, h in headers.items())
        raise DatasetError(f"stems of {stems.name} differ in length: {listed} (in {stems.mix.parent}); "
                           f"stems must be sample-aligned and equally long")


def alignment_lag(mix: np.ndarray, accompaniment: np.ndarray, *, sample_rate: int) -> int:
    """The lag (samples) by which the accompaniment must be delayed to line up with the mix; 0 if aligned.

    Cross-correlation over the middle ``ALIGN_WINDOW_S`` of the song finds the best lag within
    ±``ALIGN_MAX_LAG_S``; it only counts if shifting by it removes most of the residual (mix −
    accompaniment) energy, so a periodic accompaniment whose correlation has several peaks is not
    called misaligned.
    """
    window = min(len(mix), int(ALIGN_WINDOW_S * sample_rate))
    first = (len(mix) - window) // 2
    a = mix[first:first + window].astype(np.float64)
    b = accompaniment[first:first + window].astype(np.float64)
    if not np.any(b):
        return 0  # nothing to line up (a cappella)
    max_lag = min(int(ALIGN_MAX_LAG_S * sample_rate), window - 1)
    size = 1 << int(math.ceil(math.log2(2 * window)))
    corr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    lag = int(lags[np.argmax(corr[lags])])
    if lag == 0:
        return 0

    def residual(shift: int) -> float:
        shifted = np.roll(b, shift)
        keep = slice(abs(shift), window - abs(shift))
        return float(np.sum((a[keep] - shifted[keep]) ** 2))
    return lag if residual(lag) < ALIGN_RESIDUAL_RATIO * residual(0) else 0


def read_stems(stems: StemSet, *, sample_rate: int = FeatureConfig.sample_rate) -> StemAudio:
    """Decode a song's stems at ``sample_rate``; vocals = mix − accompaniment where no vocal stem exists.

    Raises DatasetError naming the files when the stems differ in sample rate or length, when the
    accompaniment is not sample-aligned with the mix, or when the vocals are silent.
    """
    _check_headers(stems)
    accompaniment = np.sum([load_audio(p, sample_rate=sample_rate) for p in stems.accompaniment], axis=0,
                           dtype=np.float32)
    if stems.vocals is not None:
        vocals = load_audio(stems.vocals, sample_rate=sample_rate)
    else:
        mix = load_audio(stems.mix, sample_rate=sample_rate)
        lag = alignment_lag(mix, accompaniment, sample_rate=sample_rate)
        if lag:
            raise DatasetError(
                f"{stems.accompaniment[0].name} is {abs(lag)} samples ({1000 * abs(lag) / sample_rate:.1f} ms) "
                f"{'early' if lag > 0 else 'late'} against {stems.mix.name} (in {stems.mix.parent}): vocals = "
                f"mix − accompaniment needs sample-aligned files")
        vocals = mix - accompaniment
    peak = float(np.max(np.abs(vocals))) if len(vocals) else 0.0
    if peak <= 10 ** (SILENT_PEAK_DBFS / 20):
        source = stems.vocals.name if stems.vocals else f"{stems.mix.name} − {stems.accompaniment[0].name}"
        raise DatasetError(f"the vocals of {stems.name} ({source}, in {stems.mix.parent}) are silent "
                           f"(peak below {SILENT_PEAK_DBFS:g} dBFS): nothing to remix or label")
    return StemAudio(stems, vocals.astype(np.float32, copy=False), accompaniment, sample_rate)


# ---- labels from the vocal level ---------------------------------------------------------------
@dataclass(frozen=True)
class VocalActivityRule:
    """Frame voice labels from the vocal stem's level.

    Each STFT frame's RMS (the 1024 samples it covers) in dB is compared with the song's vocal
    level, the ``reference_percentile`` of its frame levels (loud singing). A frame switches on
    above ``reference − on_below_db`` and stays on until it falls under ``reference −
    off_below_db`` (hysteresis: consonants and decays between loud notes stay voice); frames
    under ``floor_dbfs`` are never voice (bleed and noise in a silent stem). Then gaps shorter
    than ``min_gap_s`` are filled and voice runs shorter than ``min_voice_s`` dropped.
    """

    reference_percentile: float = 95.0
    on_below_db: float = 20.0
    off_below_db: float = 30.0
    floor_dbfs: float = -55.0
    min_gap_s: float = 0.3
    min_voice_s: float = 0.2


def frame_levels_db(samples: np.ndarray, features: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """RMS in dBFS of each STFT frame (frame i covers samples [hop·i, hop·i + frame_length))."""
    n = frame_count(len(samples), features)
    squares = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
    starts = np.arange(n) * features.hop_length
    power = (squares[starts + features.frame_length] - squares[starts]) / features.frame_length
    return 10 * np.log10(np.maximum(power, 1e-20))


def _runs(mask: np.ndarray, value: bool) -> list[tuple[int, int]]:
    padded = np.r_[not value, mask == value, not value].astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2]))


def vocal_activity(vocals: np.ndarray, *, features: FeatureConfig = FeatureConfig(),
                   rule: VocalActivityRule = VocalActivityRule()) -> np.ndarray:
    """Voice targets ``[n_frames]`` (bool) of a vocal stem at ``features.sample_rate``, by ``rule``."""
    levels = frame_levels_db(vocals, features)
    if levels.size == 0:
        return np.zeros(0, dtype=bool)
    audible = levels > rule.floor_dbfs
    if not audible.any():
        return np.zeros(levels.size, dtype=bool)
    reference = float(np.percentile(levels[audible], rule.reference_percentile))
    on, off = levels > reference - rule.on_below_db, levels > reference - rule.off_below_db
    on &= audible
    off &= audible
    # Hysteresis: a run above the lower threshold is voice if it reaches the upper one somewhere.
    voice = np.zeros(levels.size, dtype=bool)
    for start, stop in _runs(off, True):
        if on[start:stop].any():
            voice[start:stop] = True
    fps = features.frames_per_second
    for start, stop in _runs(voice, False):
        if 0 < start and stop < voice.size and stop - start < rule.min_gap_s * fps:
            voice[start:stop] = True
    for start, stop in _runs(voice, True):
        if stop - start < rule.min_voice_s * fps:
            voice[start:stop] = False
    return voice


def stem_targets(stems: StemSet, n_frames: int, *, features: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Voice targets of a mix from its vocal stem (``vocal_activity``), ``n_frames`` long."""
    targets = vocal_activity(read_stems(stems, sample_rate=features.sample_rate).vocals, features=features)
    if targets.size < n_frames:
        targets = np.r_[targets, np.zeros(n_frames - targets.size, dtype=bool)]
    return targets[:n_frames]
