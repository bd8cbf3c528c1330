"""Voice annotations: read/write Jamendo .lab and Audacity labels; segments <-> frame targets.

Normalization rule (documented in the README, applied by ``voiced_intervals``):
- lines may come in any order: segments are sorted by start time;
- overlapping or touching voiced segments are merged (voice is the union of voiced segments;
  a ``nosing`` segment never removes voice that another line declares);
- segments reaching past the end of the audio are cut at the end, those starting at or after
  it are dropped; a negative start is moved to 0;
each of these emits a ``LabelWarning`` naming the file, none is an error; so do words other than
``sing``/``nosing`` in a .lab file (they count as no voice) and an empty file. Lines that do not parse
(wrong field count, non-numbers, NaN, end before start) raise ``LabelFormatError`` with the line.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import LabelFormatError
from engine.fileio import atomic_write_text, open_problem

VOICE_LABEL = "sing"
NO_VOICE_LABEL = "nosing"
# Audacity users label what they hear: any text marks voice except these explicit negatives.
NEGATIVE_LABELS = frozenset({"nosing", "no voice", "novoice", "no_voice", "non-vocal", "nonvocal",
                             "instrumental", "no-sing", "no sing"})


# Label files store rounded times (Audacity: 6 decimals), so a border written at frame time i/fps
# reads back up to 5e-7 s off it: a time this close to a frame time counts as that frame time.
TIME_TOLERANCE_S = 1e-6


class LabelWarning(UserWarning):
    """Labels were readable but needed fixing (overlaps, unsorted lines, past the audio end)."""


@dataclass(frozen=True)
class Segment:
    """One line of a label file: [start_s, end_s) with its text label."""

    start_s: float
    end_s: float
    label: str = VOICE_LABEL
    line: int | None = field(default=None, compare=False)  # 1-based line in its file, for messages

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


Interval = tuple[float, float]


def label_format_of(path: str | os.PathLike) -> str:
    """'lab' for Jamendo .lab files, 'audacity' for everything else (.txt)."""
    return "lab" if Path(path).suffix.lower() == ".lab" else "audacity"


def read_segments(path: str | os.PathLike) -> list[Segment]:
    """Parse a .lab or Audacity label file into its segments, in file order."""
    path = Path(path)
    text = read_label_text(path)
    segments = []
    for number, raw in enumerate(text.splitlines(), start=1):
        segment = parse_label_line(raw, path=path, line_number=number)
        if segment is not None:
            segments.append(segment)
    return segments


def read_label_text(path: Path) -> str:
    """The text of a label file (UTF-8, a BOM dropped); LabelFormatError if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise LabelFormatError(path, None, "not a text file (cannot decode as UTF-8)") from None
    except OSError as exc:
        raise LabelFormatError(path, None, open_problem(path, exc)) from None


def parse_label_line(raw: str, *, path: str | os.PathLike, line_number: int) -> Segment | None:
    """One line as a Segment; None for blank, comment and Audacity spectral (backslash) lines."""
    line = raw.strip()
    if not line or line.startswith("\\") or line.startswith("#"):
        return None
    # Any whitespace separates start and end (tabs in Audacity, spaces or a mix in .lab);
    # the rest of the line is the label, spaces included.
    fields = line.split(None, 2)
    if len(fields) not in (2, 3):
        raise LabelFormatError(path, line_number, f"expected 'start end [label]', got {line!r}")
    try:
        start_s, end_s = float(fields[0]), float(fields[1])
    except ValueError:
        raise LabelFormatError(path, line_number, f"start and end must be numbers, got {line!r}") from None
    if not (math.isfinite(start_s) and math.isfinite(end_s)):
        raise LabelFormatError(path, line_number, f"start and end must be finite, got {line!r}")
    if end_s < start_s:
        raise LabelFormatError(path, line_number, f"end {end_s} is before start {start_s}")
    return Segment(start_s, end_s, fields[2] if len(fields) == 3 else "", line_number)


def is_voiced(label: str, label_format: str) -> bool:
    """SPEC §2: in .lab files only 'sing' is voice; in Audacity files any non-negative text."""
    text = label.strip().lower()
    if label_format == "lab":
        return text == VOICE_LABEL
    return text not in NEGATIVE_LABELS


def voiced_intervals(segments: list[Segment], *, label_format: str = "lab",
                     duration_s: float | None = None, source: str = "labels") -> list[Interval]:
    """Sorted, disjoint, non-empty voiced intervals, fixed per the module's normalization rule."""
    voiced = [(s.start_s, s.end_s) for s in segments if is_voiced(s.label, label_format)]
    problems = []
    unknown = unknown_label_lines(segments, label_format)
    if unknown:
        shown = ", ".join(f"line {s.line} {s.label!r}" if s.line else repr(s.label) for s in unknown[:3])
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        problems.append(f"labels other than 'sing'/'nosing' count as no voice: {shown}{more}")
    if any(a.start_s > b.start_s for a, b in zip(segments, segments[1:])):
        problems.append("lines are not in time order")
    if any(start < 0 for start, _ in voiced):
        problems.append("negative start times were moved to 0")
        voiced = [(max(0.0, a), max(0.0, b)) for a, b in voiced]
    voiced = sorted((a, b) for a, b in voiced if b > a)
    # sorted by start, any overlap shows between neighbours (touching ones merge silently)
    if any(start < end for (_, end), (start, _) in zip(voiced, voiced[1:])):
        problems.append("overlapping voiced segments were merged")
    merged = merge_intervals(voiced)
    if duration_s is not None and merged and merged[-1][1] > duration_s + TIME_TOLERANCE_S:
        problems.append(f"segments past the end of the audio ({duration_s:.3f} s) were cut")
        merged = [(a, min(b, duration_s)) for a, b in merged if a < duration_s]
    if problems:
        warnings.warn(f"{source}: " + "; ".join(problems), LabelWarning, stacklevel=2)
    return merged


def merge_intervals(intervals: list[Interval], *, tolerance_s: float = 0.0) -> list[Interval]:
    """Sorted union of ``intervals``: those meeting within ``tolerance_s`` become one, ones no longer
    than ``tolerance_s`` are dropped. Label files merge exactly (0); GUI edits allow float fuzz."""
    out: list[list[float]] = []
    for start, end in sorted(intervals):
        if end - start <= tolerance_s:
            continue
        if out and start <= out[-1][1] + tolerance_s:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def unknown_label_lines(segments: list[Segment], label_format: str) -> list[Segment]:
    """Segments of a .lab file whose word is neither 'sing' nor 'nosing' (Audacity texts are all known)."""
    if label_format != "lab":
        return []
    return [s for s in segments if s.label.strip().lower() not in (VOICE_LABEL, NO_VOICE_LABEL)]


def warn_if_empty(segments: list[Segment], source: str) -> None:
    """An empty label file is legal (no voice anywhere) but more often a mistake: say so."""
    if not segments:
        warnings.warn(f"{source}: no labels in the file, so it all counts as no voice", LabelWarning,
                      stacklevel=3)


def read_voiced_intervals(path: str | os.PathLike, *, duration_s: float | None = None) -> list[Interval]:
    """Read a label file and return its normalized voiced intervals."""
    segments = read_segments(path)
    warn_if_empty(segments, str(path))
    return voiced_intervals(segments, label_format=label_format_of(path), duration_s=duration_s, source=str(path))


def intervals_to_targets(intervals: list[Interval], n_frames: int, frames_per_second: float) -> np.ndarray:
    """Frame targets: frame i (at i/fps s) is voice iff start <= i/fps < end for some interval.

    Borders within ``TIME_TOLERANCE_S`` of a frame time count as on it, so intervals from
    ``targets_to_intervals`` survive a round trip through a label file.

    Returns
    -------
    targets : np.ndarray [shape=(n_frames,), dtype=bool]
    """
    times_s = np.arange(n_frames) / frames_per_second
    targets = np.zeros(n_frames, dtype=bool)
    for start_s, end_s in intervals:
        lo, hi = np.searchsorted(times_s, [start_s - TIME_TOLERANCE_S, end_s - TIME_TOLERANCE_S],
                                 side="left")
        targets[lo:hi] = True
    return targets


def targets_to_intervals(targets: np.ndarray, frames_per_second: float) -> list[Interval]:
    """Runs of voiced frames as intervals [i/fps, j/fps); inverse of ``intervals_to_targets``."""
    flags = np.concatenate([[False], np.asarray(targets, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(flags.astype(np.int8)))
    return [(float(a / frames_per_second), float(b / frames_per_second))
            for a, b in zip(edges[::2], edges[1::2])]


def format_lab(intervals: list[Interval], *, duration_s: float) -> str:
    """Jamendo .lab text covering [0, duration_s] with alternating sing/nosing lines.

    Six decimals, like Audacity: three would move frame borders (1/70 s apart) by a frame.
    """
    lines, cursor = [], 0.0
    for start_s, end_s in intervals:
        if start_s > cursor:
            lines.append(f"{cursor:.6f} {start_s:.6f} {NO_VOICE_LABEL}")
        lines.append(f"{start_s:.6f} {end_s:.6f} {VOICE_LABEL}")
        cursor = end_s
    if duration_s > cursor:
        lines.append(f"{cursor:.6f} {duration_s:.6f} {NO_VOICE_LABEL}")
    return "\n".join(lines) + "\n" if lines else ""


def format_audacity(intervals: list[Interval], *, label: str = VOICE_LABEL) -> str:
    """Audacity label text: start<TAB>end<TAB>label, six decimals, '.' whatever the locale."""
    return "".join(f"{a:.6f}\t{b:.6f}\t{label}\n" for a, b in intervals)


def write_labels(path: str | os.PathLike, intervals: list[Interval], *, duration_s: float | None = None) -> None:
    """Atomically write voiced intervals as .lab (needs ``duration_s``) or Audacity labels."""
    if label_format_of(path) == "lab":
        if duration_s is None:
            duration_s = intervals[-1][1] if intervals else 0.0
        atomic_write_text(path, format_lab(intervals, duration_s=duration_s))
    else:
        atomic_write_text(path, format_audacity(intervals))
