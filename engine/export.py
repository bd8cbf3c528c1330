"""Writers of one file's predictions in the formats users load elsewhere (UX.md, "Formats").

Every write is atomic and every number uses '.' whatever the locale. Formats with a place for
metadata (npz, JAMS) record the model and threshold inline; the plain-text ones (Audacity, .lab,
Sonic Visualiser CSVs, frame CSV, TextGrid) stay free of comments, which their readers would
misread, and are described by a manifest (``write_manifest``) or a sidecar (``write_sidecar``).
The Sonic Visualiser CSVs have no header row, as Sonic Visualiser writes them.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from engine.config import FRAMES_PER_SECOND, EvalConfig
from engine.errors import ConfigError
from engine.evaluate import smooth_probabilities
from engine.fileio import atomic_open, atomic_write_text
from engine.labels import Interval, format_audacity, format_lab

MANIFEST_NAME = "svgui-predictions.json"
MANIFEST_VERSION = 2  # 2: merged across runs, every entry describes itself
PREDICTION_TAG = ".pred"  # song.wav -> song.pred.lab: never the name of a ground-truth label file
VOICE_TEXT = "voice"

FORMATS: dict[str, str] = {
    "audacity": ".txt",
    "lab": ".lab",
    "csv": ".csv",
    "curve": ".curve.csv",
    "frames": ".frames.csv",
    "npz": ".npz",
    "jams": ".jams",
    "textgrid": ".TextGrid",
}


@dataclass(frozen=True)
class ExportInfo:
    """What produced a prediction; written with every export."""

    model_name: str
    threshold: float
    frames_per_second: float = FRAMES_PER_SECOND
    median_frames: int = EvalConfig.median_frames
    tta: bool = False
    model_sha256: str = ""
    software: str = "svgui"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def prediction_suffix(fmt: str) -> str:
    """'.pred' + the format's suffix: '.pred.lab', '.pred.txt', '.pred.curve.csv', ..."""
    _check_format(fmt)
    return PREDICTION_TAG + FORMATS[fmt]


def output_path(out_dir: str | os.PathLike, audio_path: str | os.PathLike, fmt: str) -> Path:
    """out_dir / (audio file stem + '.pred' + the format's suffix), e.g. out/song.pred.lab.

    The one place that names predictions: never song.lab or song.txt, the names of the
    ground-truth label files beside the audio.
    """
    return Path(out_dir) / (Path(audio_path).stem + prediction_suffix(fmt))


def is_prediction_file(path: str | os.PathLike) -> bool:
    """Whether a file name is a prediction's (``output_path``): song.pred.lab, song-2.pred.txt, ...

    Loaders of labelled folders skip these: a prediction is never ground truth.
    """
    name = Path(path).name.lower()
    return any(name.endswith(PREDICTION_TAG + suffix.lower()) for suffix in FORMATS.values())


def _region_means(intervals: list[Interval], probabilities: np.ndarray, frames_per_second: float) -> list[float]:
    """Mean raw probability of the frames i with start <= i/fps < end (labels.py's frame rule)."""
    times_s = np.arange(probabilities.size) / frames_per_second
    means = []
    for start_s, end_s in intervals:
        lo, hi = np.searchsorted(times_s, [start_s, end_s], side="left")
        if hi > lo:
            means.append(float(probabilities[lo:hi].mean()))
        else:  # a region shorter than a frame (hand-made): take the frame it falls in
            means.append(float(probabilities[min(lo, probabilities.size - 1)]) if probabilities.size else 0.0)
    return means


def _format_regions_csv(intervals, probabilities, info: ExportInfo) -> str:
    means = _region_means(intervals, probabilities, info.frames_per_second)
    return "".join(f"{a:.6f},{m:.6f},{b - a:.6f},{VOICE_TEXT}\n" for (a, b), m in zip(intervals, means))


def _format_curve_csv(probabilities, info: ExportInfo) -> str:
    smoothed = smooth_probabilities(probabilities, median_frames=info.median_frames)
    fps = info.frames_per_second
    return "".join(f"{i / fps:.6f},{p:.6f}\n" for i, p in enumerate(smoothed.tolist()))


def _format_frames_csv(probabilities, info: ExportInfo) -> str:
    fps = info.frames_per_second
    # Shortest digits that read back as the same float32, never scientific: the raw export is exact.
    rows = (f"{i},{i / fps:.6f},{np.format_float_positional(p, unique=True, trim='-')}\n"
            for i, p in enumerate(probabilities))
    return "frame,time_s,probability\n" + "".join(rows)


def _format_textgrid(intervals: list[Interval], duration_s: float) -> str:
    """Praat long TextGrid: one interval tier 'voice' tiling [0, duration_s], gaps with empty text."""
    tiles, cursor = [], 0.0
    for start_s, end_s in intervals:
        start_s, end_s = max(start_s, cursor), min(end_s, duration_s)
        if end_s <= start_s:
            continue
        if start_s > cursor:
            tiles.append((cursor, start_s, ""))
        tiles.append((start_s, end_s, VOICE_TEXT))
        cursor = end_s
    if duration_s > cursor or not tiles:
        tiles.append((cursor, duration_s, ""))
    head = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "",
            "xmin = 0", f"xmax = {duration_s:.6f}", "tiers? <exists>", "size = 1", "item []:",
            "    item [1]:", '        class = "IntervalTier"', f'        name = "{VOICE_TEXT}"',
            "        xmin = 0", f"        xmax = {duration_s:.6f}", f"        intervals: size = {len(tiles)}"]
    body = [line for k, (a, b, text) in enumerate(tiles, start=1) for line in (
        f"        intervals [{k}]:", f"            xmin = {a:.6f}", f"            xmax = {b:.6f}",
        f'            text = "{text}"')]
    return "\n".join(head + body) + "\n"


def _write_npz(handle: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed without its keyword arguments, so any file name can be a key."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            with archive.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def _write_jams(path: Path, intervals, probabilities, duration_s: float, info: ExportInfo, name: str) -> None:
    import jams  # takes ~1 s to import: only when asked for

    document = jams.JAMS()
    document.file_metadata.duration = float(duration_s)
    document.file_metadata.title = name
    annotation = jams.Annotation(namespace="segment_open", time=0.0, duration=float(duration_s))
    means = _region_means(intervals, probabilities, info.frames_per_second)
    for (start_s, end_s), mean in zip(intervals, means):
        annotation.append(time=float(start_s), duration=float(end_s - start_s), value=VOICE_TEXT,
                          confidence=mean)
    annotation.annotation_metadata.annotation_tools = f"{info.software}, model {info.model_name}"
    annotation.annotation_metadata.data_source = "machine prediction"
    annotation.annotation_metadata.annotation_rules = (
        f"voice where the {info.median_frames}-frame median of the probability > {info.threshold}")
    annotation.sandbox.update(**info.to_dict())
    document.annotations.append(annotation)
    with atomic_open(path, "w") as handle, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # jsonschema API warnings inside jams
        document.save(handle)


def write_prediction(path: str | os.PathLike, fmt: str, *, intervals: list[Interval],
                     probabilities: np.ndarray, duration_s: float, info: ExportInfo, name: str = "") -> Path:
    """Write one file's prediction in format ``fmt`` (a key of FORMATS); returns the path.

    Parameters
    ----------
    intervals : list of (start_s, end_s), sorted and disjoint: the predicted voice regions
    probabilities : np.ndarray [shape=(n_frames,)], raw (unsmoothed) voice probability per frame
    duration_s : float, length of the audio in seconds
    name : str, the audio file's name, stored where the format has a place for it
    """
    _check_format(fmt)
    path = Path(path)
    probabilities = np.asarray(probabilities, dtype=np.float32).reshape(-1)
    if fmt == "audacity":
        atomic_write_text(path, format_audacity(intervals))
    elif fmt == "lab":
        atomic_write_text(path, format_lab(intervals, duration_s=duration_s))
    elif fmt == "csv":
        atomic_write_text(path, _format_regions_csv(intervals, probabilities, info))
    elif fmt == "curve":
        atomic_write_text(path, _format_curve_csv(probabilities, info))
    elif fmt == "frames":
        atomic_write_text(path, _format_frames_csv(probabilities, info))
    elif fmt == "textgrid":
        atomic_write_text(path, _format_textgrid(intervals, duration_s))
    elif fmt == "jams":
        _write_jams(path, intervals, probabilities, duration_s, info, name)
    else:  # npz
        arrays = {"probabilities": probabilities,
                  "intervals_s": np.asarray(intervals, dtype=np.float64).reshape(-1, 2),
                  "duration_s": np.float64(duration_s), "name": np.str_(name),
                  "model": np.str_(info.model_name), **{k: np.asarray(v) for k, v in info.to_dict().items()
                                                        if k != "model_name"}}
        with atomic_open(path, "wb") as handle:
            _write_npz(handle, arrays)
    return path


def write_npz_bundle(path: str | os.PathLike, probabilities_by_name: dict[str, np.ndarray], *,
                     info: ExportInfo) -> Path:
    """One .npz of raw probabilities keyed by file name (the authors' evaluation input), plus
    ``__meta__``: a 0-d string array holding info.to_dict() as JSON."""
    if "__meta__" in probabilities_by_name:
        raise ConfigError("a file may not be called '__meta__' in an npz bundle")
    arrays = {str(k): np.asarray(v, dtype=np.float32) for k, v in probabilities_by_name.items()}
    arrays["__meta__"] = np.str_(json.dumps(info.to_dict()))
    with atomic_open(path, "wb") as handle:
        _write_npz(handle, arrays)
    return Path(path)


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def manifest_entry(source: str | os.PathLike, output: str | os.PathLike | None = None, *,
                   duration_s: float | None = None, voiced_fraction: float | None = None,
                   error: str | None = None) -> dict[str, Any]:
    """One input file's line of the manifest; a failed file has ``error`` and no output."""
    return {"source": os.fspath(source), "output": None if output is None else os.fspath(output),
            "duration_s": duration_s, "voiced_fraction": voiced_fraction, "error": error}


class ManifestWarning(UserWarning):
    """A folder's svgui-predictions.json could not be read: it may be someone else's file, kept unless overwriting."""


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """folder/svgui-predictions.json as a dict with a ``files`` list (empty when there is none).

    Every entry carries its own ``format``, ``info`` and ``created_utc``: entries of a version 1
    manifest (one run per file) get them from its top level. A damaged manifest warns and
    counts as empty, so it records no file as ours.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        manifest = _load_manifest(path)
    except (FileNotFoundError, NotADirectoryError):
        return {"files": []}
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        warnings.warn(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc}); "
                      "it records no outputs of ours and is replaced only when overwriting is asked for",
                      ManifestWarning, stacklevel=2)
        return {"files": []}
    run = {k: manifest[k] for k in ("format", "info", "created_utc") if k in manifest}
    manifest["files"] = [{**run, **entry} for entry in manifest.get("files", []) if isinstance(entry, dict)]
    return manifest


def _load_manifest(path: Path) -> dict[str, Any]:
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files", []), list):
        raise ValueError("not a manifest object with a 'files' list")
    return manifest


def manifest_is_ours(folder: str | os.PathLike) -> bool:
    """Whether folder/svgui-predictions.json is absent or a manifest we can read (and so may merge into)."""
    try:
        _load_manifest(Path(folder) / MANIFEST_NAME)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except (OSError, ValueError):
        return False
    return True


def recorded_outputs(folder: str | os.PathLike) -> frozenset[str]:
    """Names of the files in ``folder`` that its manifest records as our predictions: only
    these may be replaced without asking."""
    return frozenset(Path(e["output"]).name for e in read_manifest(folder)["files"]
                     if isinstance(e.get("output"), str))


def _entry_key(entry: dict[str, Any]) -> tuple:
    """An output file has one entry; a failure is one per source and format."""
    if isinstance(entry.get("output"), str):
        return ("output", Path(entry["output"]).name)
    return ("failed", entry.get("source"), entry.get("format"))


def write_manifest(folder: str | os.PathLike, *, info: ExportInfo, fmt: str,
                   entries: list[dict[str, Any]]) -> Path:
    """Merge this run's entries into folder/svgui-predictions.json and write it atomically.

    Each entry (see ``manifest_entry``) gets this run's ``format``, ``info`` and ``created_utc``.
    It replaces an earlier entry for the same output file, and a failure of the same source in
    the same format; every other earlier entry keeps its own description. The top-level
    ``format``, ``suffix`` and ``info`` describe the latest run.
    """
    _check_format(fmt)
    now = _utc_now()
    new = [{**entry, "format": fmt, "info": info.to_dict(), "created_utc": now} for entry in entries]
    replaced = {_entry_key(e) for e in new}
    replaced |= {("failed", e["source"], fmt) for e in new if e.get("output") is not None}
    kept = [e for e in read_manifest(folder)["files"] if _entry_key(e) not in replaced]
    manifest = {"version": MANIFEST_VERSION, "created_utc": now, "format": fmt, "suffix": prediction_suffix(fmt),
                "info": info.to_dict(), "files": kept + new}
    path = Path(folder) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest, indent=2, default=_jsonable) + "\n")
    return path


def sidecar_path(output: str | os.PathLike) -> Path:
    """song.lab -> song.lab.json."""
    return Path(os.fspath(output) + ".json")


def is_our_sidecar(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a sidecar ``write_sidecar`` wrote (a JSON object naming its output and model)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and isinstance(record.get("output"), str) and isinstance(record.get("info"), dict)


def write_sidecar(output: str | os.PathLike, info: ExportInfo, **extra: Any) -> Path:
    """Describe a single export (from the GUI) in a JSON file beside it; returns its path."""
    record = {"created_utc": _utc_now(), "output": Path(output).name, "info": info.to_dict(), **extra}
    path = sidecar_path(output)
    atomic_write_text(path, json.dumps(record, indent=2, default=_jsonable) + "\n")
    return path
