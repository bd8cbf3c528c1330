"""Where each file of a folder stands in annotation: the ``svgui-annotation.json`` sidecar.

The sidecar lies in the folder of the audio files and travels with the data (QSettings would not).
It is JSON, written atomically (``engine.fileio``), keyed by audio file name::

    {"format": "svgui-annotation", "version": 1,
     "files": {"song.flac": {"status": "edited",            # see STATUSES
                             "reviewed_spans_s": [[12.3, 15.0], ...],   # spans marked reviewed
                             "n_spans": 14, "n_reviewed": 5}}}          # review spans at the last count

``status`` is one of "pre-annotated" (predictions accepted and saved), "edited" (saved after
hand edits) or "reviewed" (every review span done, or marked so). A file without an entry (or
with "none") is "edited" when a label file lies beside it (labels made outside the app are taken
as hand-made) and "none" otherwise. Keys this version does not know are kept on rewrite.

The sidecar is never a label file (label loaders read only .lab and .txt). One that cannot be
read (not JSON, another format, a newer version) is ignored with an ``AnnotationStateWarning``
and rebuilt on the next update; the file itself is never written over: before the fresh one is
written it is kept as ``svgui-annotation.json.unreadable`` (``-2``, ``-3``... if taken), and a
warning says so.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.datasets import label_file_for
from engine.errors import OutputWriteError
from engine.fileio import atomic_write_text
from engine.labels import Interval, merge_intervals

SIDECAR_NAME = "svgui-annotation.json"
FORMAT = "svgui-annotation"
VERSION = 1
STATUSES = ("none", "pre-annotated", "edited", "reviewed")


class AnnotationStateWarning(UserWarning):
    """The annotation sidecar could not be read, or one of its entries made no sense; it is rebuilt."""


@dataclass(frozen=True)
class FileState:
    """One audio file's entry (``recorded``: False when the sidecar has none and it was derived)."""

    status: str = "none"
    reviewed_spans_s: tuple[Interval, ...] = ()
    n_spans: int | None = None
    n_reviewed: int = 0
    recorded: bool = False

    @property
    def fraction_done(self) -> float | None:
        """Share of the review spans marked reviewed at the last count; None if never counted."""
        if self.n_spans is None:
            return None
        return 1.0 if self.n_spans == 0 else min(self.n_reviewed / self.n_spans, 1.0)


def sidecar_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / SIDECAR_NAME


def read_entries(folder: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The raw entries of a folder's sidecar by file name ({} if there is none or it is unreadable)."""
    return _read(sidecar_path(folder))[0]


def _read(path: Path) -> tuple[dict[str, dict[str, Any]], bool]:
    """(entries, whether a file lies there that could not be read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, False
    except (OSError, UnicodeDecodeError) as exc:
        return _unreadable(path, getattr(exc, "strerror", None) or str(exc)), True
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return _unreadable(path, f"not JSON ({exc.msg} at line {exc.lineno})"), True
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return _unreadable(path, f"not an svgui annotation state (format {_get(data, 'format')!r})"), True
    if data.get("version") != VERSION:
        return _unreadable(path, f"version {_get(data, 'version')!r}, this svgui reads version {VERSION}"), True
    files = data.get("files", {})
    if not isinstance(files, dict):
        return _unreadable(path, "'files' is not an object"), True
    return {name: entry for name, entry in files.items() if isinstance(entry, dict)}, False


def _set_aside(path: Path) -> None:
    """Keep an unreadable sidecar under a free name beside it (a hard link, which never replaces
    an existing file, then the old name removed), so that rebuilding it loses nothing."""
    for n in range(1, 1000):
        kept = path.with_name(f"{path.name}.unreadable" + (f"-{n}" if n > 1 else ""))
        try:
            os.link(path, kept)
            path.unlink()
        except FileExistsError:
            continue
        except OSError as exc:  # no hard links here (FAT, some network shares): a checked rename
            if kept.exists():
                continue
            try:
                os.rename(path, kept)
            except OSError:
                raise OutputWriteError(kept, exc.strerror or str(exc)) from exc
        warnings.warn(f"{path}: the unreadable annotation state is kept as {kept.name}; a fresh one is written",
                      AnnotationStateWarning, stacklevel=3)
        return
    raise OutputWriteError(path, "no free name to keep the unreadable annotation state under")


def _get(data: Any, key: str) -> Any:
    return data.get(key) if isinstance(data, dict) else None


def _unreadable(path: Path, reason: str) -> dict:
    warnings.warn(f"{path}: cannot read the annotation state ({reason}); it is ignored and rebuilt",
                  AnnotationStateWarning, stacklevel=3)
    return {}


def parse_entry(entry: dict[str, Any], *, source: str = "") -> FileState:
    """A FileState from a raw entry; invalid fields are dropped with a warning."""
    problems = []
    status = entry.get("status", "none")
    if status not in STATUSES:
        problems.append(f"status {status!r}")
        status = "none"
    spans: list[Interval] = []
    for span in entry.get("reviewed_spans_s", []) if isinstance(entry.get("reviewed_spans_s"), list) else []:
        if (isinstance(span, list) and len(span) == 2 and all(isinstance(t, (int, float)) for t in span)
                and all(math.isfinite(t) for t in span) and span[0] < span[1]):
            spans.append((float(span[0]), float(span[1])))
        else:
            problems.append(f"reviewed span {span!r}")
    n_spans = entry.get("n_spans")
    if n_spans is not None and not (isinstance(n_spans, int) and n_spans >= 0):
        problems.append(f"n_spans {n_spans!r}")
        n_spans = None
    n_reviewed = entry.get("n_reviewed", 0)
    if not (isinstance(n_reviewed, int) and n_reviewed >= 0):
        problems.append(f"n_reviewed {n_reviewed!r}")
        n_reviewed = 0
    if problems:
        warnings.warn(f"{source}: ignored in the annotation state: {', '.join(problems)}",
                      AnnotationStateWarning, stacklevel=2)
    return FileState(status, tuple(merge_intervals(spans)), n_spans, n_reviewed, recorded=True)


def file_state(audio_path: str | os.PathLike) -> FileState:
    """The recorded state of one audio file, or the one derived from its label file."""
    return file_states([Path(audio_path)])[Path(audio_path)]


def _state_of(path: Path, entry: dict[str, Any] | None) -> FileState:
    state = FileState() if entry is None else parse_entry(entry, source=f"{sidecar_path(path.parent)} ({path.name})")
    if state.status == "none" and label_file_for(path) is not None:  # labels made outside svgui since
        state = dataclasses.replace(state, status="edited")
    return state


def file_status(audio_path: str | os.PathLike) -> str:
    """"none", "pre-annotated", "edited" or "reviewed" (see the module docstring)."""
    return file_state(audio_path).status


def update_file_state(audio_path: str | os.PathLike, *, status: str | None = None,
                      reviewed_spans_s: list[Interval] | None = None, n_spans: int | None = None,
                      n_reviewed: int | None = None) -> FileState:
    """Change one file's entry (the arguments given) and rewrite the sidecar atomically.

    Raises ValueError for an unknown status, OutputWriteError if the folder cannot be written.
    """
    audio_path = Path(audio_path)
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    folder = audio_path.parent
    entries, unreadable = _read(sidecar_path(folder))
    if unreadable:
        _set_aside(sidecar_path(folder))
    entry = dict(entries.get(audio_path.name, {}))
    if "status" not in entry:
        entry["status"] = file_state(audio_path).status if status is None else status
    if status is not None:
        entry["status"] = status
    if reviewed_spans_s is not None:
        entry["reviewed_spans_s"] = [[round(a, 6), round(b, 6)] for a, b in merge_intervals(list(reviewed_spans_s))]
    if n_spans is not None:
        entry["n_spans"] = int(n_spans)
    if n_reviewed is not None:
        entry["n_reviewed"] = int(n_reviewed)
    entries[audio_path.name] = entry
    data = {"format": FORMAT, "version": VERSION, "files": dict(sorted(entries.items()))}
    atomic_write_text(sidecar_path(folder), json.dumps(data, indent=1) + "\n")
    return parse_entry(entry, source=str(sidecar_path(folder)))


def add_reviewed_span(audio_path: str | os.PathLike, start_s: float, end_s: float) -> FileState:
    """Record [start_s, end_s) as reviewed (merged with the spans reviewed before)."""
    if not (math.isfinite(start_s) and math.isfinite(end_s) and start_s < end_s):
        raise ValueError(f"a reviewed span needs finite start < end, got [{start_s}, {end_s})")
    before = file_state(audio_path).reviewed_spans_s
    return update_file_state(audio_path, reviewed_spans_s=[*before, (start_s, end_s)])


def covered_fraction(start_s: float, end_s: float, reviewed_spans_s: tuple[Interval, ...] | list[Interval]) -> float:
    """How much of [start_s, end_s) the reviewed spans cover (0..1)."""
    if end_s <= start_s:
        return 0.0
    covered = sum(max(0.0, min(end_s, b) - max(start_s, a)) for a, b in reviewed_spans_s)
    return min(covered / (end_s - start_s), 1.0)


def file_states(audio_paths: list[Path]) -> dict[Path, FileState]:
    """``file_state`` of many files, reading each folder's sidecar once."""
    by_folder: dict[Path, dict[str, dict[str, Any]]] = {}
    out = {}
    for path in map(Path, audio_paths):
        if path.parent not in by_folder:
            by_folder[path.parent] = read_entries(path.parent)
        out[path] = _state_of(path, by_folder[path.parent].get(path.name))
    return out


def folder_totals(audio_paths: list[Path]) -> dict[str, int]:
    """How many of ``audio_paths`` are in each status."""
    totals = dict.fromkeys(STATUSES, 0)
    for state in file_states(audio_paths).values():
        totals[state.status] += 1
    return totals
