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

import bisect
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import LabelFormatError
from engine.fileio import atomic_write_text
from engine.labels import (
    NO_VOICE_LABEL,
    VOICE_LABEL,
    Interval,
    LabelWarning,
    Segment,
    format_audacity,
    format_lab,
    is_voiced,
    label_format_of,
    parse_label_line,
    read_label_text,
    voiced_intervals,
    warn_if_empty,
)

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
        if not self.entries:  # no file (or an empty one): the plain format
            fresh = (format_lab(intervals, duration_s=duration_s) if self.label_format == "lab"
                     else format_audacity(intervals))
            return fresh.replace("\n", self.newline)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LabelWarning)
            if _same(intervals, self.voiced_intervals(duration_s=duration_s)):
                return self.text()
        plan = _Plan()
        voiced = [e for e in self.entries if e.segment is not None and is_voiced(e.segment.label, self.label_format)]
        self._fit(plan, voiced, intervals, VOICE_LABEL, duration_s)
        if self.label_format == "lab":
            nosing = [e for e in self.entries
                      if e.segment is not None and e.segment.label.strip().lower() == NO_VOICE_LABEL]
            self._fit(plan, nosing, _gaps(intervals, duration_s), NO_VOICE_LABEL, duration_s)
        lines = [line for entry in plan.apply(self.entries) for line in entry.lines]
        # a last line without a line end gets one when another line follows it
        lines = [line if i == len(lines) - 1 or line.endswith(("\n", "\r")) else line + self.newline
                 for i, line in enumerate(lines)]
        return "".join(lines)

    def _fit(self, plan: "_Plan", entries: list[_Entry], desired: list[Interval], default_label: str,
             duration_s: float) -> None:
        """Plan how the lines of ``entries`` (one class: voice or nosing) come to describe ``desired``."""
        # lines past the audio end and empty ones describe no region on screen: they stay as they are
        entries = [e for e in entries if e.segment.start_s < duration_s and e.segment.end_s > e.segment.start_s]
        groups = _groups(entries, duration_s)
        wanted = {_key(d) for d in desired}
        freed_groups = [(span, members) for span, members in groups if _key(span) not in wanted]
        kept_keys = {_key(span) for span, _ in groups} & wanted
        freed_starts = [span[0] for span, _ in freed_groups]
        for start_s, end_s in (d for d in desired if _key(d) not in kept_keys):
            # freed groups are disjoint and sorted: the ones overlapping [start, end) are consecutive
            first = max(bisect.bisect_right(freed_starts, start_s) - 1, 0)
            last = bisect.bisect_left(freed_starts, end_s)
            overlapping = sorted((e for _, members in freed_groups[first:last] for e in members
                                  if e.segment.start_s < end_s and e.segment.end_s > start_s),
                                 key=lambda e: e.segment.start_s)
            donors = [e for e in overlapping if id(e) not in plan.replaced]
            if not overlapping:  # a new region
                plan.new.append(_Entry([_format_line(start_s, end_s, default_label, self._separator(), self.newline)],
                                       Segment(start_s, end_s, default_label)))
            elif not donors:  # the second half of a split: the same text, after the first half
                plan.replaced[id(overlapping[0])].append(_rewritten(overlapping[0], start_s, end_s, self.newline))
            else:  # an edited region: each of its lines keeps its own part of it, and its text
                spans = [(e.segment.start_s, e.segment.end_s) for e in donors]
                for donor, (a, b) in zip(donors, _cover((start_s, end_s), spans)):
                    unchanged = abs(a - donor.segment.start_s) <= MATCH_TOLERANCE_S and \
                        abs(b - donor.segment.end_s) <= MATCH_TOLERANCE_S
                    plan.replaced[id(donor)] = [donor if unchanged else _rewritten(donor, a, b, self.newline)]
        for _, members in freed_groups:
            plan.removed.update(id(e) for e in members if id(e) not in plan.replaced)  # deleted, or merged

    def _separator(self) -> str:
        return "\t" if self.label_format == "audacity" else " "


@dataclass
class _Plan:
    """The changes a render makes: entries replaced (by one or, for a split, more) or removed, new lines."""

    replaced: dict[int, list[_Entry]] = field(default_factory=dict)  # id(entry) -> its replacement
    removed: set[int] = field(default_factory=set)
    new: list[_Entry] = field(default_factory=list)  # no line to take over: placed by time

    def apply(self, entries: list[_Entry]) -> list[_Entry]:
        """The new entry list, in one pass: a new line goes before the first segment line that starts
        later, else after the last segment line."""
        changed = [r for e in entries if id(e) not in self.removed for r in self.replaced.get(id(e), [e])]
        last_segment = max((i for i, e in enumerate(changed) if e.segment is not None), default=-1)
        new = sorted(self.new, key=lambda e: e.segment.start_s)
        out, k = [], 0
        for i, entry in enumerate(changed):
            while entry.segment is not None and k < len(new) and entry.segment.start_s > new[k].segment.start_s:
                out.append(new[k])
                k += 1
            out.append(entry)
            if i == last_segment:
                out.extend(new[k:])
                k = len(new)
        return out + new[k:]


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


def _key(interval: Interval) -> tuple[float, float]:
    """Intervals with the same key are the same region (unchanged since the file was read)."""
    return round(interval[0], 9), round(interval[1], 9)


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


def _format_line(start_s: float, end_s: float, label: str, separator: str, line_end: str) -> str:
    return f"{start_s:.6f}{separator}{end_s:.6f}{separator}{label}{line_end}"


def _separator_of(line: str) -> str:
    return "\t" if "\t" in line else " "


def _line_end(line: str, default: str) -> str:
    stripped = line.rstrip("\r\n")
    return line[len(stripped):] or default
