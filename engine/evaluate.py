"""Median smoothing, threshold search and frame-wise scores of voice predictions (SPEC §7)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter

from engine.config import FRAMES_PER_SECOND, EvalConfig
from engine.labels import Interval, targets_to_intervals


def smooth_probabilities(probabilities: np.ndarray, *, median_frames: int = EvalConfig.median_frames) -> np.ndarray:
    """Running median over time, as the authors did (``scipy.ndimage.median_filter``).

    For an even window the median is the upper one: frame i sees frames
    [i - median_frames//2, i + (median_frames-1)//2]; the edges repeat the nearest value.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(..., n_frames)]
        Voice probabilities; leading dims are batch dims.
    median_frames : int > 0
        Window length in frames (56 frames = 800 ms at 70 frames/s).

    Returns
    -------
    smoothed : np.ndarray [shape=(..., n_frames), dtype=float64]
    """
    if median_frames < 1:
        raise ValueError(f"median_frames must be >= 1, got {median_frames}")
    p = np.asarray(probabilities, dtype=np.float64)  # float32 -> float64 is exact
    if p.size == 0 or median_frames == 1:
        return p.copy()
    # 1-D calls: scipy's N-d path with size (1, k) is >10x slower than its 1-D one.
    rows = p.reshape(-1, p.shape[-1])
    out = np.stack([median_filter(row, size=median_frames, mode="nearest") for row in rows])
    return out.reshape(p.shape)


def extend_smoothed(smoothed: np.ndarray | None, probabilities: np.ndarray, *,
                    median_frames: int = EvalConfig.median_frames) -> np.ndarray:
    """``smooth_probabilities(probabilities)``, given ``smoothed``: that of a prefix of them.

    Only the frames whose window reached past the prefix's end are computed again, so a curve
    that grows chunk by chunk (the app, while a prediction runs) costs its length once, not once
    per chunk. Without a shorter prefix (None, or as long) it smooths everything.
    """
    n = probabilities.shape[-1]
    if smoothed is None or smoothed.shape[-1] >= n or median_frames == 1:
        return smooth_probabilities(probabilities, median_frames=median_frames)
    before, after = median_frames // 2, (median_frames - 1) // 2
    final = max(0, smoothed.shape[-1] - after)  # frames whose whole window lay in the prefix
    lo = max(0, final - before)                  # the frames the others' windows start from
    tail = smooth_probabilities(probabilities[..., lo:], median_frames=median_frames)[..., final - lo:]
    return np.concatenate([smoothed[..., :final], tail], axis=-1)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


@dataclass(frozen=True)
class Counts:
    """Frame counts of a binary voice decision. Ratios with a zero denominator are nan
    (e.g. the recall of a file without voice is undefined); ``to_dict`` writes them as None."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(self.tp + other.tp, self.fp + other.fp, self.tn + other.tn, self.fn + other.fn)

    def __radd__(self, other: object) -> Counts:
        if other == 0:  # lets the builtin sum() start from 0
            return self
        return NotImplemented

    @property
    def n_frames(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    @property
    def error(self) -> float:
        return _ratio(self.fp + self.fn, self.n_frames)

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.n_frames)

    @property
    def recall(self) -> float:
        """Fraction of voice frames detected."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        """Fraction of non-voice frames rejected."""
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    def to_dict(self) -> dict[str, int | float | None]:
        ratios = {name: getattr(self, name) for name in
                  ("error", "accuracy", "recall", "specificity", "precision", "f1")}
        return {"tp": self.tp, "fp": self.fp, "tn": self.tn, "fn": self.fn, "n_frames": self.n_frames,
                **{k: (None if math.isnan(v) else v) for k, v in ratios.items()}}


def count_errors(predicted: np.ndarray, targets: np.ndarray, *, ignore: np.ndarray | None = None) -> Counts:
    """Compare frame decisions with the ground truth.

    Parameters
    ----------
    predicted, targets : np.ndarray [shape=(n_frames,), dtype=bool]
    ignore : np.ndarray [shape=(n_frames,), dtype=bool] or None
        Frames left out of the counts (e.g. a boundary collar).
    """
    predicted, targets = np.asarray(predicted, dtype=bool), np.asarray(targets, dtype=bool)
    if predicted.shape != targets.shape:
        raise ValueError(f"predicted has {predicted.size} frames but targets has {targets.size}")
    keep = np.ones_like(targets)
    if ignore is not None:
        ignore = np.asarray(ignore, dtype=bool)
        if ignore.shape != targets.shape:
            raise ValueError(f"ignore has {ignore.size} frames but targets has {targets.size}")
        keep = ~ignore
    count = np.count_nonzero
    return Counts(tp=int(count(predicted & targets & keep)), fp=int(count(predicted & ~targets & keep)),
                  tn=int(count(~predicted & ~targets & keep)), fn=int(count(~predicted & targets & keep)))


def collar_mask(targets: np.ndarray, *, collar_frames: int) -> np.ndarray:
    """Frames within ``collar_frames`` of a change in the ground truth, to ignore when scoring.

    A change between frames i-1 and i (an edge at time i/fps) masks frames
    [i - collar_frames, i + collar_frames), i.e. 2·collar_frames frames per edge.

    Returns
    -------
    mask : np.ndarray [shape=(n_frames,), dtype=bool]
    """
    targets = np.asarray(targets, dtype=bool)
    n_frames = targets.size
    if collar_frames <= 0 or n_frames < 2:
        return np.zeros(n_frames, dtype=bool)
    edges = np.flatnonzero(targets[1:] != targets[:-1]) + 1
    # +1 where a masked span starts, -1 after it ends; a cumulative sum > 0 is inside some span.
    delta = np.zeros(n_frames + 1, dtype=np.int64)
    np.add.at(delta, np.maximum(edges - collar_frames, 0), 1)
    np.add.at(delta, np.minimum(edges + collar_frames, n_frames), -1)
    return np.cumsum(delta[:-1]) > 0


def _collar_frames(config: EvalConfig, frames_per_second: float) -> int:
    return int(round(config.collar_s * frames_per_second))


def _check_lengths(probabilities: Sequence, targets: Sequence) -> None:
    if len(probabilities) != len(targets):
        raise ValueError(f"got {len(probabilities)} probability arrays but {len(targets)} target arrays")
    for index, (p, t) in enumerate(zip(probabilities, targets)):
        if np.shape(p) != np.shape(t):
            raise ValueError(f"file {index}: {np.size(p)} probabilities but {np.size(t)} targets")


def find_best_threshold(probabilities: Sequence[np.ndarray], targets: Sequence[np.ndarray], *,
                        config: EvalConfig = EvalConfig(),
                        frames_per_second: float = FRAMES_PER_SECOND) -> tuple[float, Counts]:
    """The grid threshold maximizing pooled accuracy of the smoothed predictions (strict >).

    Frames of all files are pooled (long files weigh more). Ties go to the lowest such
    threshold. With ``config.collar_s`` > 0 the collar frames are left out, as in ``evaluate``.

    Parameters
    ----------
    probabilities, targets : sequences of np.ndarray [shape=(n_frames_i,)], one pair per file
    frames_per_second : float
        Frame rate, used only to convert the collar to frames.

    Returns
    -------
    threshold : float
    counts : Counts pooled over all files at that threshold
    """
    _check_lengths(probabilities, targets)
    collar = _collar_frames(config, frames_per_second)
    smoothed, truth = [], []
    for p, t in zip(probabilities, targets):
        s, t = smooth_probabilities(p, median_frames=config.median_frames), np.asarray(t, dtype=bool)
        keep = ~collar_mask(t, collar_frames=collar)
        smoothed.append(s[keep])
        truth.append(t[keep])
    smoothed_all = np.concatenate(smoothed) if smoothed else np.zeros(0)
    truth_all = np.concatenate(truth) if truth else np.zeros(0, dtype=bool)
    if smoothed_all.size == 0:
        raise ValueError("no frames to choose a threshold on")
    # Frames above t among voice / non-voice frames, for every grid t at once.
    voice, other = np.sort(smoothed_all[truth_all]), np.sort(smoothed_all[~truth_all])
    grid = np.unique(np.asarray(config.thresholds, dtype=np.float64))  # sorted ascending
    tp = voice.size - np.searchsorted(voice, grid, side="right")
    fp = other.size - np.searchsorted(other, grid, side="right")
    correct = tp + (other.size - fp)
    best = int(np.argmax(correct))  # first maximum = lowest threshold among ties
    counts = Counts(tp=int(tp[best]), fp=int(fp[best]), tn=int(other.size - fp[best]),
                    fn=int(voice.size - tp[best]))
    return float(grid[best]), counts


@dataclass(frozen=True)
class FileResult:
    name: str
    counts: Counts


def format_percent(value: float | None, decimals: int = 2) -> str:
    """'9.42 %'; an undefined ratio (nan or None: the recall of data without voice) is 'n/a'."""
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.{decimals}f} %"



@dataclass(frozen=True)
class Evaluation:
    """Scores of one threshold on a set of files: pooled and per file."""

    threshold: float
    pooled: Counts
    per_file: tuple[FileResult, ...]
    collar_s: float = 0.0

    def to_dict(self) -> dict:
        """JSON-friendly: undefined ratios are None."""
        return {"threshold": self.threshold, "collar_s": self.collar_s, "pooled": self.pooled.to_dict(),
                "per_file": [{"name": r.name, **r.counts.to_dict()} for r in self.per_file]}

    def format_table(self) -> str:
        """A plain-text report: pooled figures, then one line per file."""
        p = self.pooled
        lines = [f"threshold {self.threshold:g}, collar {self.collar_s:g} s, "
                 f"{len(self.per_file)} files, {p.n_frames} frames",
                 f"error {format_percent(p.error)}  recall {format_percent(p.recall)}  "
                 f"specificity {format_percent(p.specificity)}  precision {format_percent(p.precision)}  "
                 f"F1 {format_percent(p.f1)}", ""]
        width = max([len("file")] + [len(r.name) for r in self.per_file])
        lines.append(f"{'file':<{width}}  {'error':>9}  {'recall':>9}  {'specif.':>9}  {'frames':>8}")
        for r in self.per_file:
            c = r.counts
            lines.append(f"{r.name:<{width}}  {format_percent(c.error):>9}  {format_percent(c.recall):>9}  "
                         f"{format_percent(c.specificity):>9}  {c.n_frames:>8}")
        return "\n".join(lines)


def evaluate(probabilities: Sequence[np.ndarray], targets: Sequence[np.ndarray], names: Sequence[str], *,
             threshold: float, config: EvalConfig = EvalConfig(),
             frames_per_second: float = FRAMES_PER_SECOND) -> Evaluation:
    """Smooth, threshold (strict >) and score each file; pooled counts are the per-file sums.

    Parameters
    ----------
    probabilities, targets : sequences of np.ndarray [shape=(n_frames_i,)], one pair per file
    names : sequence of str, one per file
    frames_per_second : float
        Frame rate, used to convert ``config.collar_s`` to frames.
    """
    _check_lengths(probabilities, targets)
    if len(names) != len(targets):
        raise ValueError(f"got {len(names)} names but {len(targets)} files")
    collar = _collar_frames(config, frames_per_second)
    results = []
    for name, p, t in zip(names, probabilities, targets):
        predicted = smooth_probabilities(p, median_frames=config.median_frames) > threshold
        t = np.asarray(t, dtype=bool)
        ignore = collar_mask(t, collar_frames=collar) if collar else None
        results.append(FileResult(str(name), count_errors(predicted, t, ignore=ignore)))
    pooled = sum((r.counts for r in results), Counts())
    return Evaluation(threshold=float(threshold), pooled=pooled, per_file=tuple(results),
                      collar_s=config.collar_s)


def predicted_intervals(probabilities: np.ndarray, *, threshold: float, frames_per_second: float = FRAMES_PER_SECOND,
                        median_frames: int = EvalConfig.median_frames) -> list[Interval]:
    """Voiced intervals [start_s, end_s) of one file: runs of smoothed probability > threshold."""
    smoothed = smooth_probabilities(np.asarray(probabilities).reshape(-1), median_frames=median_frames)
    return targets_to_intervals(smoothed > threshold, frames_per_second)
