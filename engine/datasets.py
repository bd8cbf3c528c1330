"""Training data: folders of labelled audio, the Jamendo corpus layout, splits and track loading."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio import AUDIO_EXTENSIONS, is_audio_path
from engine.cache import SpectrogramCache
from engine.config import FeatureConfig
from engine.errors import ConfigError, DatasetError
from engine.export import is_prediction_file
from engine.labels import intervals_to_targets, read_voiced_intervals
from engine.stems import MUSDB_SPLITS, is_musdb_layout, musdb_mixtures, stem_targets, stems_of

LABEL_SUFFIXES = (".lab", ".txt")  # in order of preference
JAMENDO_SPLITS = ("train", "valid", "test")
MAX_NAMES_SHOWN = 10


def label_file_for(audio_path: Path) -> Path | None:
    """A label file of the same stem beside the audio (.lab preferred over .txt)."""
    for suffix in LABEL_SUFFIXES:
        candidate = audio_path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


class DatasetWarning(UserWarning):
    """A dataset folder holds files that were skipped (audio without labels, labels without audio)."""


@dataclass(frozen=True)
class Track:
    """One audio file and its label file (None: unlabelled, only for prediction)."""

    name: str
    audio_path: Path
    label_path: Path | None


@dataclass(frozen=True)
class DatasetReport:
    """What ``scan_folder`` could not pair up."""

    folder: Path
    unlabelled_audio: tuple[Path, ...] = ()
    orphan_labels: tuple[Path, ...] = ()  # .lab files only: .txt files are often notes or licences
    duplicate_audio: tuple[Path, ...] = ()  # same name, another extension: skipped

    @property
    def is_clean(self) -> bool:
        return not (self.unlabelled_audio or self.orphan_labels or self.duplicate_audio)

    def summary(self) -> str:
        parts = [f"{what} ({len(paths)}): {format_names([p.name for p in paths])}"
                 for what, paths in (("audio without labels", self.unlabelled_audio),
                                     ("labels without audio", self.orphan_labels),
                                     ("skipped duplicate audio", self.duplicate_audio)) if paths]
        return f"{self.folder}: " + ("; ".join(parts) if parts else "every audio file has labels")


def format_names(names: Sequence[str], limit: int = MAX_NAMES_SHOWN) -> str:
    """'a, b, c' or 'a, b, ... and N more' for error messages."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def scan_folder(folder: str | os.PathLike, *, require_labels: bool = True,
                recursive: bool = False) -> tuple[list[Track], DatasetReport]:
    """Pair audio files with same-stem label files beside them (.lab preferred over .txt).

    Predictions (song.pred.lab, ``engine.export.is_prediction_file``) are skipped: never ground
    truth, never listed as labels without audio.

    Tracks are sorted by name (the path relative to ``folder`` without extension); audio
    without labels becomes a track with ``label_path=None`` only if ``require_labels`` is False.
    """
    folder = _existing_folder(folder)
    groups: dict[Path, dict[str, Path]] = {}  # path without suffix -> {suffix: path}
    for path in _walk_files(folder, recursive=recursive):
        if not is_prediction_file(path):  # song.pred.lab is our output, never ground truth or an orphan
            groups.setdefault(path.with_suffix(""), {})[path.suffix.lower()] = path
    tracks, unlabelled, orphans, duplicates = [], [], [], []
    for base, by_suffix in groups.items():
        audio = [by_suffix[s] for s in AUDIO_EXTENSIONS if s in by_suffix]
        label = next((by_suffix[s] for s in LABEL_SUFFIXES if s in by_suffix), None)
        if not audio:
            orphans += [by_suffix[".lab"]] if ".lab" in by_suffix else []
            continue
        duplicates += audio[1:]
        if label is None:
            unlabelled.append(audio[0])
            if require_labels:
                continue
        tracks.append(Track(base.relative_to(folder).as_posix(), audio[0], label))
    tracks.sort(key=lambda t: t.name)
    report = DatasetReport(folder, tuple(sorted(unlabelled)), tuple(sorted(orphans)), tuple(sorted(duplicates)))
    return tracks, report


def find_tracks(folder: str | os.PathLike, *, recursive: bool = False) -> list[Track]:
    """Labelled tracks of a folder; warns about skipped files, raises if there are none."""
    tracks, report = scan_folder(folder, recursive=recursive)
    if not tracks:
        raise DatasetError(f"no audio files with labels (.lab or .txt of the same name) in {report.folder}"
                           + ("" if report.is_clean else f" ({report.summary()})"))
    if not report.is_clean:
        warnings.warn(report.summary(), DatasetWarning, stacklevel=2)
    return tracks


def is_jamendo_layout(folder: str | os.PathLike) -> bool:
    """Whether a folder looks like the Jamendo corpus: ``labels/`` and ``filelists/`` inside."""
    folder = Path(folder)
    return (folder / "labels").is_dir() and (folder / "filelists").is_dir()


@dataclass(frozen=True)
class JamendoCorpus:
    """The Jamendo corpus with its official split; every dict has the keys train, valid, test."""

    root: Path
    splits: dict[str, list[Track]]  # songs whose audio was found, in filelist order
    listed: dict[str, list[str]]  # every listed song name, in filelist order
    missing_audio: dict[str, list[str]]
    unlisted_labels: list[str]  # label files named in no list

    @property
    def report(self) -> str:
        lines = [f"Jamendo corpus at {self.root}: " + " / ".join(
            f"{len(self.splits[s])} of {len(self.listed[s])} {s}" for s in JAMENDO_SPLITS) + " songs with audio"]
        lines += [f"missing {s} audio ({len(m)}): {format_names(m)}" for s, m in self.missing_audio.items() if m]
        if self.unlisted_labels:
            lines.append(f"labels in no list ({len(self.unlisted_labels)}): {format_names(self.unlisted_labels)}")
        return "\n".join(lines)


def load_jamendo(root: str | os.PathLike, *, require_audio: bool = True) -> JamendoCorpus:
    """Read and verify the official split; find audio by song name (any audio extension).

    Audio may lie in ``root`` or any subfolder (``audio/``, ``train/`` ...), whatever extension
    the lists write (one entry's extension is unknown).
    """
    root = _existing_folder(root)
    if not is_jamendo_layout(root):
        raise DatasetError(f"{root} is not a Jamendo corpus folder: it needs 'labels' and 'filelists' subfolders")
    labels = {p.stem: p for p in (root / "labels").iterdir()
              if p.suffix.lower() == ".lab" and not is_prediction_file(p)}
    listed: dict[str, list[str]] = {}
    written_suffix: dict[str, str] = {}
    for split in JAMENDO_SPLITS:
        list_path = root / "filelists" / split
        try:
            entries = [line.strip() for line in list_path.read_text(encoding="utf-8-sig").splitlines()]
        except OSError as exc:
            raise DatasetError(f"Jamendo corpus at {root}: cannot read filelists/{split} "
                               f"({exc.strerror or exc})") from None
        # Entries name audio files, but one lacks a usable extension: match labels by name first.
        pairs = [(e, "") if e in labels else os.path.splitext(e) for e in entries if e]
        listed[split] = [stem for stem, _ in pairs]
        written_suffix.update((stem, suffix.lower()) for stem, suffix in pairs)
        if not listed[split]:
            raise DatasetError(f"Jamendo corpus at {root}: filelists/{split} lists no songs")
    _verify_split(root, listed, labels)
    audio_index: dict[str, list[Path]] = {}
    for path in _walk_files(root, recursive=True, skip_dirs={"labels", "filelists"}):
        if is_audio_path(path):
            audio_index.setdefault(path.stem, []).append(path)
    # Several files of one song: prefer the extension the list wrote, then lossless formats.
    best = {name: min(paths, key=lambda p: (p.suffix.lower() != written_suffix.get(name),
                                            AUDIO_EXTENSIONS.index(p.suffix.lower()), str(p)))
            for name, paths in audio_index.items()}
    splits = {s: [Track(n, best[n], labels[n]) for n in names if n in best] for s, names in listed.items()}
    missing = {s: [n for n in names if n not in best] for s, names in listed.items()}
    all_listed = {n for names in listed.values() for n in names}
    corpus = JamendoCorpus(root, splits, listed, missing, sorted(set(labels) - all_listed))
    all_missing = [n for names in missing.values() for n in names]
    if require_audio and all_missing:
        raise DatasetError(
            f"Jamendo corpus at {root}: audio missing for {len(all_missing)} of {len(all_listed)} listed "
            f"songs (found {len(all_listed) - len(all_missing)}); looked for <name>.ogg, .mp3 or another "
            f"audio extension in the folder and its subfolders. Missing: {format_names(all_missing)}")
    return corpus


def _verify_split(root: Path, listed: dict[str, list[str]], labels: dict[str, Path]) -> None:
    names = [name for split in JAMENDO_SPLITS for name in listed[split]]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        where = [f"{n} (in {', '.join(s for s in JAMENDO_SPLITS if n in listed[s])})" for n in repeated]
        raise DatasetError(f"Jamendo corpus at {root}: songs listed more than once: {format_names(where)}")
    unlabelled = [name for name in names if name not in labels]
    if unlabelled:
        raise DatasetError(f"Jamendo corpus at {root}: listed songs without labels/<name>.lab: "
                           f"{format_names(unlabelled)}")


def split_tracks(tracks: Sequence[Track], *, valid_fraction: float,
                 seed: int) -> tuple[list[Track], list[Track]]:
    """Hold out ``round(n * valid_fraction)`` whole files (at least 1, at most n - 1) for validation.

    The draw depends only on the seed and the set of track names, not on their order.
    """
    if not 0 <= float(valid_fraction) < 1:  # NaN fails too
        raise ConfigError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    ordered = sorted(tracks, key=lambda t: (t.name, str(t.audio_path)))
    if valid_fraction == 0 or len(ordered) < 2:
        return ordered, []
    n_valid = min(max(1, round(len(ordered) * valid_fraction)), len(ordered) - 1)
    chosen = set(np.random.default_rng(seed).permutation(len(ordered))[:n_valid].tolist())
    train = [t for i, t in enumerate(ordered) if i not in chosen]
    valid = [t for i, t in enumerate(ordered) if i in chosen]
    return train, valid


@dataclass
class TrackData:
    """A track's spectrograms (memory-mapped from the cache) and frame targets."""

    track: Track
    linear: np.ndarray  # [frames, n_bins] float32
    log_mel: np.ndarray  # [frames, n_mels] float32
    targets: np.ndarray | None  # [frames] bool; None without labels
    duration_s: float


def load_track(track: Track, *, config: FeatureConfig, cache: SpectrogramCache) -> TrackData:
    """Spectrograms from the cache (decoding on a miss) and targets at ``config.frames_per_second``."""
    linear = cache.linear(track.audio_path, config)
    log_mel = cache.log_mel(track.audio_path, config)
    duration_s = cache.duration_s(track.audio_path, config)
    targets = None
    if track.label_path is not None:
        intervals = read_voiced_intervals(track.label_path, duration_s=duration_s)
        targets = intervals_to_targets(intervals, linear.shape[0], config.frames_per_second)
    elif (stems := stems_of(track.audio_path)) is not None:  # no label file: the vocal stem's level (MUSDB18)
        targets = stem_targets(stems, linear.shape[0], features=config)
    return TrackData(track, linear, log_mel, targets, duration_s)


def load_tracks(tracks: Sequence[Track], *, config: FeatureConfig, cache: SpectrogramCache,
                on_progress: Callable[[int, int, Track], None] | None = None) -> list[TrackData]:
    """Load every track; ``on_progress(done, total, track)`` is called after each one."""
    loaded = []
    for done, track in enumerate(tracks, start=1):
        loaded.append(load_track(track, config=config, cache=cache))
        if on_progress is not None:
            on_progress(done, len(tracks), track)
    return loaded


def musdb_tracks(folder: str | os.PathLike) -> list[Track]:
    """A MUSDB18-HQ split (a folder of song folders): one track per song, named by its folder, its
    ``mixture`` the audio; labels from a label file beside it, else from the vocal stem (``load_track``)."""
    return [Track(m.parent.name, m, label_file_for(m)) for m in musdb_mixtures(_existing_folder(folder))]


def is_song_folders(folder: str | os.PathLike) -> bool:
    """A folder of MUSDB18-HQ song folders (``NAME/mixture.wav``) or of MUSDB18 ``.stem.mp4`` files."""
    folder = Path(folder)
    return any(folder.glob("*.stem.mp4")) or any(folder.glob("*/mixture.*"))


def resolve_dataset(path: str | os.PathLike) -> list[Track]:
    """Tracks of a labelled folder, of every split of a Jamendo corpus root, or of MUSDB18-HQ."""
    path = _existing_folder(path)
    if is_jamendo_layout(path):
        return [t for tracks in load_jamendo(path).splits.values() for t in tracks]
    if is_musdb_layout(path):
        return [t for split in MUSDB_SPLITS for t in musdb_tracks(path / split)]
    if is_song_folders(path):
        return musdb_tracks(path)
    return find_tracks(path)


def resolve_training_data(train_path: str | os.PathLike, *, valid_path: str | os.PathLike | None = None,
                          valid_fraction: float = 0.0,
                          seed: int = 0) -> tuple[list[Track], list[Track], str]:
    """Training tracks, validation tracks and a one-line description of where they come from.

    A Jamendo root uses its official train/valid split unless ``valid_path`` is given (then its
    train split only); a folder holds out ``valid_fraction`` of its files unless ``valid_path``
    is given. ``valid_fraction`` is ignored when the validation data is explicit or official.
    """
    train_root = _existing_folder(train_path)
    if is_jamendo_layout(train_root):
        corpus = load_jamendo(train_root)
        train, valid = corpus.splits["train"], corpus.splits["valid"]
        description = f"Jamendo corpus at {train_root}: {len(train)} train"
        if valid_path is None:
            return train, valid, description + f" / {len(valid)} valid (official split)"
    else:
        if is_musdb_layout(train_root):  # MUSDB18-HQ: its train split (its test split stays for evaluation)
            train = musdb_tracks(train_root / "train")
            description = f"MUSDB18-HQ at {train_root}: {len(train)} train songs"
        elif is_song_folders(train_root):
            train = musdb_tracks(train_root)
            description = f"MUSDB18-HQ songs in {train_root}: {len(train)} songs"
        else:
            train = find_tracks(train_root)
            description = f"folder {train_root}: {len(train)} files"
        if valid_path is None:
            train, valid = split_tracks(train, valid_fraction=valid_fraction, seed=seed)
            held_out = f"{len(valid)} held out for validation (seed {seed})" if valid else "no validation"
            return train, valid, f"{description}, {held_out}"
    valid_root = _existing_folder(valid_path)
    if is_jamendo_layout(valid_root):
        valid = load_jamendo(valid_root).splits["valid"]
        description += f"; validation: Jamendo valid split at {valid_root}: {len(valid)} files"
    else:
        valid = find_tracks(valid_root)
        description += f"; validation: folder {valid_root}: {len(valid)} files"
    check_disjoint(train, valid)
    return train, valid, description


def check_disjoint(train: list[Track], valid: list[Track]) -> None:
    """Raise DatasetError naming the audio files that are both training and validation data."""
    shared = sorted({t.audio_path.resolve() for t in train} & {t.audio_path.resolve() for t in valid})
    if shared:
        raise DatasetError(f"{len(shared)} audio file(s) are in both the training and the validation data: "
                           f"{format_names([p.name for p in shared])}")


def _existing_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise DatasetError(f"dataset folder not found: {folder}")
    if not folder.is_dir():
        raise DatasetError(f"not a folder: {folder} (expected a folder of audio and label files)")
    return folder


def _walk_files(folder: Path, *, recursive: bool, skip_dirs: frozenset[str] | set[str] = frozenset()):
    """Files under ``folder``, skipping hidden ones (macOS '._x.mp3' sidecars, our temp files)."""
    # Follow linked folders (an 'audio' link to another drive is common), each only once.
    seen = {folder.resolve()}
    for current, dirs, files in os.walk(folder, followlinks=True):
        if recursive:
            kept = [d for d in sorted(dirs) if not d.startswith(".") and d not in skip_dirs
                    and (Path(current) / d).resolve() not in seen]
            seen.update((Path(current) / d).resolve() for d in kept)
            dirs[:] = kept
        else:
            dirs[:] = []
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(current) / name
