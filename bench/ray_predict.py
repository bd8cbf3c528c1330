"""Throughput of folder prediction: plain `predict` against Ray with 1 and 2 workers (the README's table).

Run: python bench/ray_predict.py [--copies 8] [--configs plain,plain1,1x1,1x2,2x1] [--json]

Copies the bundled demo clips (3 x 30 s) ``--copies`` times into a temporary folder and predicts
them with the bundled model: in this process (``predict_files``; "plain" with torch's default
threads, "plainN" with N), then on a fresh local Ray instance per setting WORKERSxTHREADS.
"steady" is the audio after the first
finished file over the time from that file to the last (start-up excluded); "total" is all the
audio over the whole call, including Ray's start and the workers' model loading. Outputs are
checked to be identical to plain predict's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from engine.batch_predict import FileOutcome, export_info, find_audio_files, predict_files
from engine.checkpoint import load_model
from engine.cluster_predict import predict_files_on_ray
from engine.config import PredictConfig
from engine.export import MANIFEST_NAME
from engine.resources import bundled_model_path

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_corpus(folder: Path, copies: int) -> list[Path]:
    for k in range(copies):
        for clip in sorted(DEMO.glob("*.flac")):
            target = folder / f"copy{k}" / clip.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(clip, target)
    return find_audio_files([folder])[0]


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != MANIFEST_NAME}


class Clock:
    """Audio seconds done and the times of the first and last finished file."""

    def __init__(self):
        self.start = time.perf_counter()
        self.first = self.end = None
        self.audio_s = self.first_audio_s = 0.0

    def file_done(self, duration_s: float) -> None:
        self.end = time.perf_counter()
        self.audio_s += duration_s
        if self.first is None:
            self.first, self.first_audio_s = self.end, duration_s

    def row(self, setting: str, workers: int) -> dict:
        return {"setting": setting, "workers": workers, "audio_s": self.audio_s,
                "steady_s": self.end - self.first, "steady_audio_s": self.audio_s - self.first_audio_s,
                "total_s": time.perf_counter() - self.start}


def run_plain(model, files, out: Path, info, config, threads: int | None) -> dict:
    default = torch.get_num_threads()
    torch.set_num_threads(threads or default)
    clock = Clock()
    for record in predict_files(model, files, fmt="lab", out_dir=out, info=info, config=config):
        if isinstance(record, FileOutcome) and record.ok:
            clock.file_done(record.duration_s)
    row = clock.row(f"plain predict ({torch.get_num_threads()} threads)", 1)
    torch.set_num_threads(default)
    return row


def run_ray(model_path, files, out: Path, info, config, workers: int, threads: int) -> dict:
    clock = Clock()
    for record in predict_files_on_ray(model_path, files, fmt="lab", out_dir=out, info=info, config=config,
                                       address="local", workers=workers, threads=threads):
        if isinstance(record, FileOutcome) and record.ok:
            clock.file_done(record.duration_s)
    return clock.row(f"Ray, {workers} worker(s) x {threads} thread(s)", workers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8, help="copies of the 3 demo clips (default 8: 12 min)")
    parser.add_argument("--configs", default="plain,plain1,1x1,1x2,2x1",
                        help="comma-separated: plain (plainN: N threads), or WORKERSxTHREADS for Ray "
                             "(default plain,plain1,1x1,1x2,2x1)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model_path = bundled_model_path()
    model = load_model(model_path)
    info, config = export_info(model), PredictConfig(precision="fp32")
    rows = []
    with tempfile.TemporaryDirectory(prefix="svgui-ray-bench-") as tmp:
        files = make_corpus(Path(tmp) / "audio", args.copies)
        reference = None
        for setting in args.configs.split(","):
            out = Path(tmp) / f"out-{setting}"
            if setting.startswith("plain"):
                row = run_plain(model, files, out, info, config, int(setting[5:] or 0) or None)
            else:
                workers, threads = (int(x) for x in setting.split("x"))
                row = run_ray(model_path, files, out, info, config, workers, threads)
            got = outputs(out)
            reference = reference or got
            row["outputs_equal_plain"] = got == reference
            row["files"] = len(files)
            row["x_realtime_steady"] = row["steady_audio_s"] / row["steady_s"]
            row["x_realtime_per_worker"] = row["x_realtime_steady"] / row["workers"]
            row["x_realtime_total"] = row["audio_s"] / row["total_s"]
            rows.append(row)
            print(f"{row['setting']}: {row['x_realtime_steady']:.0f}x real time steady, "
                  f"{row['x_realtime_total']:.0f}x including start-up", file=sys.stderr)
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__}
    if args.json:
        print(json.dumps({"machine": machine, "runs": rows}, indent=2))
        return 0
    print(f"{len(files)} files, {rows[0]['audio_s'] / 60:.1f} min of audio; {machine['cpu']}, "
          f"{machine['cores']} cores, torch {machine['torch']}")
    print(f"{'setting':38} {'steady':>10} {'per worker':>11} {'with start-up':>14}  same outputs")
    for row in rows:
        print(f"{row['setting']:38} {row['x_realtime_steady']:>9.0f}x {row['x_realtime_per_worker']:>10.0f}x "
              f"{row['x_realtime_total']:>13.0f}x  {'yes' if row['outputs_equal_plain'] else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
