"""Wall-clock budgets that the tests used to assert (a loaded CI machine made them flaky there).

Run: python bench/wall_clock.py [--only NAME ...]
Prints one line per check, its time against its budget, and exits 1 if any is over budget:
- threshold-search: the threshold search over six hours of frames (budget 1 s);
- bundled-model: predicting the 30 s demo song with the bundled model (budget 5 s);
- study-stop: stopping a study of many-minute runs in two worker processes (budget 15 s, 3 s of it
  the wait for the first run to be under way);
- training-cancel: Cancel in the training dialog until it is idle again (budget 1 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SVGUI_NO_AUDIO", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def threshold_search() -> float:
    import numpy as np

    from engine.evaluate import find_best_threshold
    rng = np.random.default_rng(2)
    probabilities = [rng.random(150_000) for _ in range(10)]  # 1.5 M frames = 6 h at 70 frames/s
    targets = [p > 0.5 for p in probabilities]
    start = time.perf_counter()
    find_best_threshold(probabilities, targets)
    return time.perf_counter() - start


def bundled_model() -> float:
    from engine.checkpoint import load_model
    from engine.predict import predict_file
    from engine.resources import bundled_model_path, resource_dir
    model = load_model(bundled_model_path())
    start = time.perf_counter()
    predict_file(model, resource_dir() / "demo" / "jamendolyrics_Fantasma_-_Los_Rombos_5-35s.flac")
    return time.perf_counter() - start


def study_stop() -> float:
    import multiprocessing

    from engine.experiments.executors import run_in_processes
    from engine.experiments.plan import plan_from_dict
    from tests.synth import write_song
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for i in range(8):
            write_song(root / "songs" / f"song{i}.wav", 3.0, [(0.4 + 0.1 * i, 2.2)], seed=i)
        plan = plan_from_dict({
            "name": "stop", "repetitions": 2,
            "data": {"kind": "folder", "path": "songs", "valid_fraction": 0.25, "test_fraction": 0.25},
            "train": {"updates": 100_000, "batch_size": 8, "validate_every": 0, "checkpoint_every": 0},
            "model": {"conv_channels": [4, 4, 8, 4], "dense_units": [16, 8]},
            "variant": [{"name": "pitch and filter", "key": "pf", "augment": "pitch=0.2,filter=10"}]}, base=root)

        class Stop(Exception):
            pass

        started = []

        def on_start(run):
            started.append(run.run_id)
            if len(started) == 2:
                time.sleep(3)  # the first run is under way in its worker
                raise Stop
        began = time.perf_counter()
        try:
            next(run_in_processes(plan, plan.runs()[:3], plan.fingerprint, workers=2, threads=1, on_start=on_start))
        except Stop:
            pass
        elapsed = time.perf_counter() - began
        if multiprocessing.active_children():
            raise RuntimeError("worker processes outlived the stopped study")
        return elapsed


def training_cancel() -> float:
    import numpy as np
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from engine.config import ModelConfig
    from svgui.dialogs import messages
    from svgui.dialogs.training_dialog import TrainingDialog
    from svgui.workers import WorkerRegistry
    from tests.synth import random_voiced, write_song
    messages.NO_MODAL = True
    app = QApplication.instance() or QApplication([])

    def wait_until(condition, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError("the training dialog did not get there in time")
            app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        os.environ.setdefault("SVGUI_SETTINGS_DIR", str(root / "settings"))
        rng = np.random.default_rng(3)
        for i in range(4):
            write_song(root / "train" / f"song{i}.wav", 8.0, random_voiced(8.0, rng), seed=i)
        workers = WorkerRegistry()
        dialog = TrainingDialog(settings=QSettings(str(root / "dialog.ini"), QSettings.Format.IniFormat),
                                model_config=ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16)),
                                workers=workers)
        dialog.form.add_folder(root / "train")
        dialog.form.set_validation("none")
        dialog.form.updates_spin.setValue(1_000_000)
        dialog.form.validate_spin.setValue(0)
        dialog.form.checkpoint_spin.setValue(0)
        dialog.form.set_output(root / "long.safetensors")
        if not dialog.start():
            raise RuntimeError(f"the training dialog did not start: {messages.recorded[-1:]}")
        wait_until(lambda: dialog.progress_count >= 5)
        start = time.perf_counter()
        dialog.cancel_button.click()
        wait_until(lambda: dialog.state == "idle")
        elapsed = time.perf_counter() - start
        workers.stop_all()
        QTimer.singleShot(0, dialog.deleteLater)
        app.processEvents()
        return elapsed


CHECKS = {"threshold-search": (threshold_search, 1.0), "bundled-model": (bundled_model, 5.0),
          "study-stop": (study_stop, 15.0), "training-cancel": (training_cancel, 1.0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CHECKS), help="run only these checks")
    args = parser.parse_args()
    over = 0
    for name in args.only or CHECKS:
        check, budget_s = CHECKS[name]
        elapsed_s = check()
        over += elapsed_s > budget_s
        print(f"{name:18s} {elapsed_s:7.3f} s  (budget {budget_s:g} s){'  OVER' if elapsed_s > budget_s else ''}",
              flush=True)
    print(f"cpu: {os.cpu_count()} logical cores; {'all within budget' if not over else f'{over} over budget'}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
