"""Annotation effort: the edits a simulated annotator makes to turn predicted regions into the truth.

Three kinds of edit, each counted once: insert a region the prediction missed, delete a region
that is not voice, and move a boundary that is off by more than ``tolerance_s`` (50 ms: below
that, a boundary is as good as an annotator's click). Predicted and true regions are paired one
to one, largest overlap first; a pair costs at most its two boundary moves, an unpaired true
region an insert, an unpaired predicted one a delete. (Pairing never costs more than not pairing:
two moves against an insert and a delete.)

Each edit carries the stretch of audio where the annotator must act (the inserted or deleted
region, or the span between the wrong and the right boundary), so the share of edits inside the
review spans (``engine.review``) can be measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.config import EvalConfig
from engine.evaluate import Counts, count_errors, smooth_probabilities
from engine.labels import Interval, targets_to_intervals

BOUNDARY_TOLERANCE_S = 0.05
EDIT_KINDS = ("insert", "delete", "move")


@dataclass(frozen=True)
class Edit:
    """One edit: its kind and the stretch [start_s, end_s] of audio it concerns."""

    kind: str
    start_s: float
    end_s: float

    def overlaps(self, start_s: float, end_s: float) -> bool:
        """Whether the edit touches [start_s, end_s) (a boundary move of zero width counts at its time)."""
        return self.start_s < end_s and start_s <= self.end_s


@dataclass(frozen=True)
class EditCount:
    """The edits for one file (or several, added up) and the audio they were counted on."""

    edits: tuple[Edit, ...]
    duration_s: float

    def count(self, kind: str | None = None) -> int:
        return sum(1 for e in self.edits if kind is None or e.kind == kind)

    @property
    def per_minute(self) -> float:
        return self.count() / (self.duration_s / 60) if self.duration_s > 0 else float("nan")

    def __add__(self, other: "EditCount") -> "EditCount":
        return EditCount(self.edits + other.edits, self.duration_s + other.duration_s)

    def to_dict(self) -> dict[str, float]:
        return {"edits": self.count(), **{kind: self.count(kind) for kind in EDIT_KINDS},
                "minutes": round(self.duration_s / 60, 4), "edits_per_minute": round(self.per_minute, 3)}


def _overlap_s(a: Interval, b: Interval) -> float:
    return min(a[1], b[1]) - max(a[0], b[0])


def count_edits(predicted: Sequence[Interval], truth: Sequence[Interval], *, duration_s: float,
                tolerance_s: float = BOUNDARY_TOLERANCE_S) -> EditCount:
    """The edits that turn ``predicted`` regions into ``truth`` regions (both (start_s, end_s) lists).

    Parameters
    ----------
    predicted, truth : sequences of (start_s, end_s), each disjoint
    duration_s : float >= 0, the audio these regions belong to (for edits per minute)
    tolerance_s : float >= 0, a boundary off by at most this needs no move

    Returns
    -------
    EditCount, its edits in time order
    """
    if tolerance_s < 0 or duration_s < 0:
        raise ValueError(f"tolerance_s and duration_s must be >= 0, got {tolerance_s}, {duration_s}")
    predicted = sorted((float(a), float(b)) for a, b in predicted if b > a)
    truth = sorted((float(a), float(b)) for a, b in truth if b > a)
    # Overlapping pairs, found by a sweep (both lists are sorted and disjoint).
    pairs, j = [], 0
    for i, p in enumerate(predicted):
        while j < len(truth) and truth[j][1] <= p[0]:
            j += 1
        k = j
        while k < len(truth) and truth[k][0] < p[1]:
            pairs.append((_overlap_s(p, truth[k]), i, k))
            k += 1
    pairs.sort(key=lambda x: (-x[0], x[1], x[2]))
    paired_p, paired_t, edits = set(), set(), []
    for _, i, k in pairs:
        if i in paired_p or k in paired_t:
            continue
        paired_p.add(i)
        paired_t.add(k)
        for wrong, right in zip(predicted[i], truth[k]):
            if abs(wrong - right) > tolerance_s:
                edits.append(Edit("move", min(wrong, right), max(wrong, right)))
    edits += [Edit("insert", *t) for k, t in enumerate(truth) if k not in paired_t]
    edits += [Edit("delete", *p) for i, p in enumerate(predicted) if i not in paired_p]
    edits.sort(key=lambda e: (e.start_s, e.end_s, e.kind))
    return EditCount(tuple(edits), float(duration_s))


def edits_inside(edits: Sequence[Edit], spans: Sequence[tuple[float, float]]) -> int:
    """How many edits touch at least one of the spans ((start_s, end_s) pairs)."""
    return sum(1 for e in edits if any(e.overlaps(a, b) for a, b in spans))


@dataclass(frozen=True)
class FileEffort:
    """One file under one model: frame errors and the edits its predicted regions need."""

    name: str
    counts: Counts
    edits: EditCount

    def to_dict(self) -> dict:
        return {"name": self.name, "error": self.counts.error, **self.edits.to_dict()}


def file_effort(name: str, probabilities: np.ndarray, targets: np.ndarray, *, threshold: float,
                frames_per_second: float, eval_config: EvalConfig = EvalConfig(),
                tolerance_s: float = BOUNDARY_TOLERANCE_S) -> FileEffort:
    """Smooth and threshold (SPEC §7, as the app draws the predicted regions), then count errors and edits."""
    smoothed = smooth_probabilities(probabilities, median_frames=eval_config.median_frames)
    n = min(len(smoothed), len(targets))
    decision, truth = smoothed[:n] > threshold, np.asarray(targets[:n], dtype=bool)
    edits = count_edits(targets_to_intervals(decision, frames_per_second),
                        targets_to_intervals(truth, frames_per_second),
                        duration_s=n / frames_per_second, tolerance_s=tolerance_s)
    return FileEffort(name, count_errors(decision, truth), edits)


def pooled(efforts: Sequence[FileEffort]) -> tuple[Counts, EditCount]:
    """Frame counts and edits of several files added up."""
    return sum((e.counts for e in efforts), Counts()), sum((e.edits for e in efforts), EditCount((), 0.0))
