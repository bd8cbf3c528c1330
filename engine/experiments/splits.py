"""Training, validation and test files of one run: a seeded split by group, the Jamendo split, k folds."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.datasets import Track, find_tracks, load_jamendo
from engine.errors import DatasetError
from engine.experiments.plan import DataSpec


@dataclass(frozen=True)
class Splits:
    train: list[Track]
    valid: list[Track]
    test: list[Track]
    description: str


def group_of(track: Track, pattern: str) -> str:
    """The group a file belongs to: its name with ``pattern`` cut out (a mix and its stems together)."""
    return re.sub(pattern, "", track.name) if pattern else track.name


def _groups(tracks: Sequence[Track], pattern: str) -> list[str]:
    return sorted({group_of(t, pattern) for t in tracks})


def _take(tracks: Sequence[Track], groups: set[str], pattern: str, *, inside: bool) -> list[Track]:
    return [t for t in tracks if (group_of(t, pattern) in groups) == inside]


def hold_out(tracks: Sequence[Track], fraction: float, *, seed: int,
             pattern: str = "") -> tuple[list[Track], list[Track]]:
    """(rest, held out): round(fraction · groups) whole groups drawn with the seed (at least one).

    Depends only on the seed and the set of names, not on the order of ``tracks``.
    """
    tracks = sorted(tracks, key=lambda t: (t.name, str(t.audio_path)))
    groups = _groups(tracks, pattern)
    if fraction == 0:
        return tracks, []
    if len(groups) < 2:
        raise DatasetError(f"cannot hold out {fraction:.0%} of the files: only {len(groups)} group(s) of files")
    n = min(max(1, round(fraction * len(groups))), len(groups) - 1)
    chosen = {groups[i] for i in np.random.default_rng(seed).permutation(len(groups))[:n]}
    return _take(tracks, chosen, pattern, inside=False), _take(tracks, chosen, pattern, inside=True)


def fold_groups(groups: Sequence[str], n_folds: int, *, seed: int) -> list[set[str]]:
    """Groups dealt round-robin into ``n_folds`` folds after a seeded shuffle (sizes differ by ≤ 1)."""
    if len(groups) < n_folds:
        raise DatasetError(f"{n_folds}-fold cross-validation needs at least {n_folds} groups of files, "
                           f"found {len(groups)}")
    order = np.random.default_rng(seed).permutation(len(groups))
    folds: list[set[str]] = [set() for _ in range(n_folds)]
    for position, index in enumerate(order):
        folds[position % n_folds].add(groups[index])
    return folds


def _listed_folds(lists: Sequence[Path], tracks: Sequence[Track], pattern: str) -> list[set[str]]:
    """Folds from files listing one track name (or audio file name) per line."""
    by_name = {t.name: t for t in tracks} | {t.audio_path.name: t for t in tracks}
    folds, seen = [], {}
    for path in lists:
        try:
            names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        except OSError as exc:
            raise DatasetError(f"cannot read fold list {path}: {exc.strerror or exc}") from None
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise DatasetError(f"fold list {path}: {len(unknown)} name(s) not in the data, e.g. {unknown[0]!r}")
        fold = {group_of(by_name[n], pattern) for n in names}
        for group in fold:
            if group in seen:
                raise DatasetError(f"{group!r} is in fold lists {seen[group].name} and {path.name}")
            seen[group] = path
        folds.append(fold)
    return folds


def run_splits(spec: DataSpec, fold: int = 0) -> Splits:
    """The files of one run; the split is fixed by the plan (repetitions differ only by their seed)."""
    extra = [t for folder in spec.extra_train for t in find_tracks(folder)]
    extra_note = f" + {len(extra)} extra training files" if extra else ""
    if spec.kind == "jamendo":
        corpus = load_jamendo(spec.path)
        s = corpus.splits
        return Splits(s["train"] + extra, s["valid"], s["test"],
                      f"Jamendo corpus at {spec.path}: official split {len(s['train'])}/{len(s['valid'])}/"
                      f"{len(s['test'])}{extra_note}")
    tracks = find_tracks(spec.path)
    if not tracks:
        raise DatasetError(f"no labelled audio in {spec.path}")
    pattern = spec.group
    if spec.kind == "folder":
        rest, test = hold_out(tracks, spec.test_fraction, seed=spec.split_seed, pattern=pattern)
        train, valid = hold_out(rest, spec.valid_fraction / (1 - spec.test_fraction), seed=spec.split_seed + 1,
                                pattern=pattern)
        where = f"folder {spec.path}: {len(train)} train / {len(valid)} valid / {len(test)} test files"
        return Splits(train + extra, valid, test, f"{where} (split seed {spec.split_seed}){extra_note}")
    folds = (_listed_folds(spec.fold_lists, tracks, pattern) if spec.fold_lists
             else fold_groups(_groups(tracks, pattern), spec.folds, seed=spec.split_seed))
    if not 0 <= fold < len(folds):
        raise DatasetError(f"fold {fold + 1} of {len(folds)} does not exist")
    test = _take(tracks, folds[fold], pattern, inside=True)
    listed = set().union(*folds)
    rest = [t for t in tracks if group_of(t, pattern) not in folds[fold] and group_of(t, pattern) in listed]
    train, valid = hold_out(rest, spec.valid_fraction, seed=spec.split_seed + 1 + fold, pattern=pattern)
    return Splits(train + extra, valid, test,
                  f"folder {spec.path}, fold {fold + 1} of {len(folds)}: {len(train)} train / {len(valid)} valid / "
                  f"{len(test)} test files{extra_note}")
