"""A label file as the user wrote it: every line kept, so that saving changes only edited regions.

The GUI edits voiced intervals; ``LabelFile.render`` maps them back onto the file's own lines:
- a voiced region that did not change keeps its line(s) byte for byte (text, spacing, decimals);
- an edited region keeps the text, line end and extra lines (Audacity's ``\\ f0 f1`` spectral
  line) of the line it came from; a split region gives both halves that text;
- lines the app does not interpret stay where they are: comments, blank lines, negative labels
  of Audacity files, unknown words and lines that do not parse (``unparsed``, each a warning);
- in a .lab file the ``nosing`` lines are fitted to the new gaps the same way, so the file keeps
  covering the audio.
A file with no edits renders to exactly its original text.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import LabelFormatError
from engine.fileio import atomic_write_text
from engine.labels import (NO_VOICE_LABEL, VOICE_LABEL, Interval, LabelWarning, Segment, format_audacity,
                           format_lab, is_voiced, label_format_of, parse_label_line, read_label_text,
                           voiced_intervals, warn_if_empty)

MATCH_TOLERANCE_S = 1e-9  # an interval this close to a file's interval is that interval, unchanged


@dataclass
class _Entry:
    """One segment line with the ``\\`` lines that follow it, or one line the app does not interpret."""

    lines: list[str]               # raw text, line ends included
    segment: Segment | None = None


@dataclass
class LabelFile:
    """The lines of one label file (or of none: ``entries`` empty) in its format."""

    label_format: str
    entries: list[_Entry] = field(default_factory=list)
    newline: str = "\n"
    bom: bool = False
    unparsed: list[LabelFormatError] = field(default_factory=list)  # lines kept but not understood

    @classmethod
    def parse(cls, text: str, *, path: str | os.PathLike, bom: bool = False) -> "LabelFile":
        """Split ``text`` into entries; lines that do not parse are kept (and listed in ``unparsed``)."""
        lines = text.splitlines(keepends=True)
        newline = "\r\n" if any(line.endswith("\r\n") for line in lines) else "\n"
        result = cls(label_format_of(path), newline=newline, bom=bom)
        for number, raw in enumerate(lines, start=1):
            try:
                segment = parse_label_line(raw, path=path, line_number=number)
            except LabelFormatError as exc:
                result.unparsed.append(exc)
                segment = None
            previous = result.entries[-1] if result.entries else None
            if raw.strip().startswith("\\") and previous is not None and previous.segment is not None:
                previous.lines.append(raw)  # a spectral line belongs to the label above it
            else:
                result.entries.append(_Entry([raw], segment))
        return result

    @property
    def segments(self) -> list[Segment]:
        return [e.segment for e in self.entries if e.segment is not None]

    def text(self) -> str:
        return "".join(line for entry in self.entries for line in entry.lines)

    def voiced_intervals(self, *, duration_s: float | None, source: str = "labels") -> list[Interval]:
        return voiced_intervals(self.segments, label_format=self.label_format, duration_s=duration_s, source=source)

    def render(self, intervals: list[Interval], *, duration_s: float) -> str:
        """The file's text with its voiced regions replaced by ``intervals`` (sorted, disjoint)."""
        if not self.segments and not self.entries:
            fresh = (format_lab(intervals, duration_s=duration_s) if self.label_format == "lab"
                     else format_audacity(intervals))
            return fresh.replace("\n", self.newline)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LabelWarning)
            if _same(intervals, self.voiced_intervals(duration_s=duration_s)):
                return self.text()
        out = list(self.entries)
        voiced = [e for e in self.entries if e.segment is not None and is_voiced(e.segment.label, self.label_format)]
        self._fit(out, voiced, intervals, VOICE_LABEL, duration_s)
        if self.label_format == "lab":
            nosing = [e for e in self.entries
                      if e.segment is not None and e.segment.label.strip().lower() == NO_VOICE_LABEL]
            self._fit(out, nosing, _gaps(intervals, duration_s), NO_VOICE_LABEL, duration_s)
        lines = [line for entry in out for line in entry.lines]
        # a last line without a line end gets one when another line follows it
        lines = [line if i == len(lines) - 1 or line.endswith(("\n", "\r")) else line + self.newline
                 for i, line in enumerate(lines)]
        return "".join(lines)

    def _fit(self, out: list[_Entry], entries: list[_Entry], desired: list[Interval], default_label: str,
             duration_s: float) -> None:
        """Make the lines of ``entries`` (one class: voice or nosing) describe ``desired``, in place in ``out``."""
        # lines past the audio end and empty ones describe no region on screen: they stay as they are
        entries = [e for e in entries if e.segment.start_s < duration_s and e.segment.end_s > e.segment.start_s]
        groups = _groups(entries, duration_s)
        kept = [i for i, (span, _) in enumerate(groups) if any(_same([span], [d]) for d in desired)]
        freed = sorted((e for i, (_, members) in enumerate(groups) if i not in kept for e in members),
                       key=lambda e: e.segment.start_s)
        missing = [d for d in desired if not any(_same([groups[i][0]], [d]) for i in kept)]
        last_from: dict[int, _Entry] = {}  # donor entry -> the last entry written from it
        for start_s, end_s in missing:
            overlapping = [e for e in freed if e.segment.start_s < end_s and e.segment.end_s > start_s]
            donors = [e for e in overlapping if id(e) not in last_from]
            if not overlapping:  # a new region
                new = _Entry([_format_line(start_s, end_s, default_label, self._separator(), self.newline)],
                             Segment(start_s, end_s, default_label))
                out.insert(_time_position(out, start_s), new)
            elif not donors:  # the second half of a split: the same text, after the first half
                new = _rewritten(overlapping[0], start_s, end_s, self.newline)
                out.insert(max(out.index(last_from[id(overlapping[0])]) + 1, _time_position(out, start_s)), new)
                last_from[id(overlapping[0])] = new
            else:  # an edited region: each of its lines keeps its own part of it, and its text
                for donor, (a, b) in zip(donors, _cover((start_s, end_s), [(e.segment.start_s, e.segment.end_s)
                                                                           for e in donors])):
                    unchanged = abs(a - donor.segment.start_s) <= MATCH_TOLERANCE_S and \
                        abs(b - donor.segment.end_s) <= MATCH_TOLERANCE_S
                    new = donor if unchanged else _rewritten(donor, a, b, self.newline)
                    out[out.index(donor)] = new
                    last_from[id(donor)] = new
        for entry in freed:
            if id(entry) not in last_from:
                out.remove(entry)  # its region was deleted or merged into another

    def _separator(self) -> str:
        return "\t" if self.label_format == "audacity" else " "


def read_label_file(path: str | os.PathLike) -> LabelFile:
    """Read a label file keeping every line; LabelFormatError only if it cannot be read at all.

    Warns (``LabelWarning``, one line naming the file) for lines that do not parse and for an
    empty file.
    """
    path = Path(path)
    label_file = LabelFile.parse(read_label_text(path), path=path, bom=_has_bom(path))
    if label_file.unparsed:
        first = label_file.unparsed[0]
        more = f" (and {len(label_file.unparsed) - 1} more such lines)" if len(label_file.unparsed) > 1 else ""
        warnings.warn(f"{first}{more}; kept as it is and written back unchanged on save", LabelWarning,
                      stacklevel=2)
    warn_if_empty(label_file.segments, str(path))
    return label_file


def _has_bom(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(3) == b"\xef\xbb\xbf"
    except OSError:
        return False  # read_label_text reports why


def write_label_text(path: str | os.PathLike, text: str, *, bom: bool = False) -> Path:
    """Atomically write a label file; a symbolic link is written through (it stays a link).

    Returns the file actually written (the link's target for a link).
    """
    target = Path(os.path.realpath(path))
    atomic_write_text(target, ("\ufeff" if bom else "") + text)
    return target


def _same(a: list[Interval], b: list[Interval]) -> bool:
    return len(a) == len(b) and all(abs(x0 - y0) <= MATCH_TOLERANCE_S and abs(x1 - y1) <= MATCH_TOLERANCE_S
                                    for (x0, x1), (y0, y1) in zip(a, b))


def _groups(entries: list[_Entry], duration_s: float) -> list[tuple[Interval, list[_Entry]]]:
    """Entries merged into the disjoint intervals they cover (as ``voiced_intervals`` merges them)."""
    groups: list[tuple[list[float], list[_Entry]]] = []
    for entry in sorted(entries, key=lambda e: e.segment.start_s):
        start_s, end_s = max(0.0, entry.segment.start_s), min(entry.segment.end_s, duration_s)
        if groups and start_s <= groups[-1][0][1]:
            groups[-1][0][1] = max(groups[-1][0][1], end_s)
            groups[-1][1].append(entry)
        else:
            groups.append(([start_s, end_s], [entry]))
    return [((a, b), members) for (a, b), members in groups]


def _gaps(intervals: list[Interval], duration_s: float) -> list[Interval]:
    gaps, cursor = [], 0.0
    for start_s, end_s in intervals:
        if start_s > cursor:
            gaps.append((cursor, start_s))
        cursor = max(cursor, end_s)
    if duration_s > cursor:
        gaps.append((cursor, duration_s))
    return gaps


def _cover(target: Interval, spans: list[Interval]) -> list[Interval]:
    """``spans`` (sorted by start, each overlapping ``target``) clipped to ``target``, then stretched
    as little as possible so that together they cover it: the first reaches its start, the last its
    end, and a span after a hole starts where the ones before it end."""
    pieces = [[max(a, target[0]), min(b, target[1])] for a, b in spans]
    pieces[0][0] = target[0]
    reach = pieces[0][1]
    for piece in pieces[1:]:
        piece[0] = min(piece[0], reach)
        reach = max(reach, piece[1])
    if reach < target[1]:
        max(pieces, key=lambda p: p[1])[1] = target[1]
    return [(a, b) for a, b in pieces]


def _rewritten(donor: _Entry, start_s: float, end_s: float, newline: str) -> _Entry:
    """``donor``'s line with new times: its text, separator, line end and extra lines kept."""
    line = _format_line(start_s, end_s, donor.segment.label, _separator_of(donor.lines[0]),
                        _line_end(donor.lines[0], newline))
    return _Entry([line] + donor.lines[1:], Segment(start_s, end_s, donor.segment.label))


def _time_position(out: list[_Entry], start_s: float) -> int:
    """Before the first segment line starting later, else after the last segment line."""
    last = -1
    for i, entry in enumerate(out):
        if entry.segment is not None:
            if entry.segment.start_s > start_s:
                return i
            last = i
    return last + 1 if last >= 0 else len(out)


def _format_line(start_s: float, end_s: float, label: str, separator: str, line_end: str) -> str:
    return f"{start_s:.6f}{separator}{end_s:.6f}{separator}{label}{line_end}"


def _separator_of(line: str) -> str:
    return "\t" if "\t" in line else " "


def _line_end(line: str, default: str) -> str:
    stripped = line.rstrip("\r\n")
    return line[len(stripped):] or default
