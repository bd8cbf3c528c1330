"""A study's folder: one record (and model) per run, written atomically, read back to resume.

    STUDY/plan.toml                          the plan as run
    STUDY/runs/<variant>/rep<r>[/fold<k>]/record.json   metrics, or the error of a failed run
    STUDY/runs/<variant>/rep<r>[/fold<k>]/model.safetensors
    STUDY/runs/<variant>/rep<r>[/fold<k>]/training-<fingerprint>/   an interrupted run's checkpoint
    STUDY/results.csv, results.md, table1.md, figure2.png, figure2.svg
    STUDY/gains.csv, gains.md, figure3.png, figure3.svg     error against input gain, when the plan has gains
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.errors import ConfigError
from engine.experiments.plan import RunSpec
from engine.fileio import atomic_open, atomic_write_text

RECORD_NAME = "record.json"
MODEL_NAME = "model.safetensors"


class StudyStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def run_dir(self, run: RunSpec | str) -> Path:
        run_id = run if isinstance(run, str) else run.run_id
        return self.root / "runs" / Path(*run_id.split("/"))

    def record(self, run: RunSpec) -> dict | None:
        """The stored record of a run, None when there is none (or it cannot be read: run it again)."""
        path = self.run_dir(run) / RECORD_NAME
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def is_finished(self, run: RunSpec, fingerprint: str) -> bool:
        """Finished with the same settings and its model on disk: a resumed study skips it."""
        record = self.record(run)
        return (record is not None and record.get("status") == "ok" and record.get("fingerprint") == fingerprint
                and (self.run_dir(run) / MODEL_NAME).is_file())

    def save(self, record: dict, model_bytes: bytes | None) -> Path:
        """The model first, then the record that says the run is finished (a crash between leaves it unfinished)."""
        folder = self.run_dir(record["run_id"])
        if model_bytes is not None:
            with atomic_open(folder / MODEL_NAME, "wb") as handle:
                handle.write(model_bytes)
        atomic_write_text(folder / RECORD_NAME, json.dumps(record, indent=1, default=_json_default) + "\n")
        return folder

    def records(self, runs: list[RunSpec]) -> list[dict]:
        """Records of the plan's runs that have one, in plan order."""
        return [r for r in (self.record(run) for run in runs) if r is not None]

    def save_plan(self, source: Path | None, text: str | None = None) -> None:
        """Keep the plan beside the results; refuse a folder that holds another study's plan."""
        if source is None and text is None:
            return
        text = text if text is not None else source.read_text(encoding="utf-8")
        path = self.root / "plan.toml"
        if path.is_file() and path.read_text(encoding="utf-8") != text:
            previous = self.root / "plan.previous.toml"
            atomic_write_text(previous, path.read_text(encoding="utf-8"))
        atomic_write_text(path, text)


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise ConfigError(f"cannot store {type(value).__name__} in a record")
