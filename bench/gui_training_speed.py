"""Training in the GUI: the longest event-loop stall while the dialog trains, and its speed against
calling ``engine.train.train`` directly on the same data in the same process.

Runs offscreen:  python bench/gui_training_speed.py [--updates 40] [--repeats 2] [--tiny]
A 5 ms QTimer ticks in the GUI thread while the dialog trains (inside the main window, demo song
open); the largest gap between two ticks is the longest stall. Speeds are updates per second over
the training loop (after WARMUP updates), from the progress records' own clock, alternating direct
runs (in the main thread as the command line does, and in a plain Python thread like the GUI's
worker) with GUI runs; each repeat's GUI speed is divided by its neighbouring direct runs' and the
median ratio is reported, because the machine's speed drifts between runs.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SVGUI_NO_AUDIO", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TICK_MS = 5
WARMUP = 3


def _write_data(root: Path, n_songs: int, seconds: float) -> None:
    import soundfile as sf

    from engine.bench import synth_music
    for split, count in (("train", n_songs), ("valid", 1)):
        for i in range(count):
            path = root / split / f"{split}{i}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), synth_music(seconds, 22050, seed=i + 100 * (split == "valid")), 22050)
            edges = [0.0] + [t for t in range(3, int(seconds), 3)] + [seconds]  # alternating 3 s spans
            lines = [f"{a:.3f} {b:.3f} {'sing' if k % 2 else 'nosing'}"
                     for k, (a, b) in enumerate(zip(edges, edges[1:]))]
            path.with_suffix(".lab").write_text("\n".join(lines) + "\n")


def _rate(records: list[tuple[int, float]]) -> float:
    """Updates per second between the WARMUP-th record and the last one."""
    (u0, t0), (u1, t1) = records[WARMUP], records[-1]
    return (u1 - u0) / (t1 - t0)


def run_direct(data_root: Path, out: Path, config, model_config, *, in_thread: bool = False) -> float:
    """``for p in train(...)`` in the main thread (as the command line does) or in a plain Python thread."""
    if in_thread:
        result = {}
        thread = threading.Thread(target=lambda: result.update(rate=run_direct(data_root, out, config, model_config)))
        thread.start()
        thread.join()
        return result["rate"]
    from engine.cache import SpectrogramCache
    from engine.config import FeatureConfig
    from engine.datasets import find_tracks, load_tracks
    from engine.train import train

    cache = SpectrogramCache()
    train_data = load_tracks(find_tracks(data_root / "train"), config=FeatureConfig(), cache=cache)
    valid_data = load_tracks(find_tracks(data_root / "valid"), config=FeatureConfig(), cache=cache)
    records = [(p.update, p.elapsed_s) for p in train(train_data=train_data, valid_data=valid_data, out_path=out,
                                                        config=config, model_config=model_config, device="cpu")
               if not p.finished]
    return _rate(records)


def run_gui(app, window, data_root: Path, out: Path, config, model_config, *, tick: bool = True) -> dict:
    from PySide6.QtCore import QEventLoop, QObject, Qt, QTimer

    from svgui.model_jobs import TrainingSteps

    dialog = window.show_training_dialog()
    deadline = time.perf_counter() + 1.0  # as a user would: the window is on screen before Start
    while time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.01)
    dialog.model_config = model_config
    dialog.form.folder_list.clear()
    dialog.form.add_folder(data_root / "train")
    dialog.form.set_validation("folder", folder=data_root / "valid")
    for spin, value in ((dialog.form.updates_spin, config.updates), (dialog.form.validate_spin, config.validate_every),
                        (dialog.form.checkpoint_spin, config.checkpoint_every)):
        spin.setValue(value)
    dialog.form.set_output(out)

    records: list[tuple[int, float]] = []
    gaps: list[float] = []
    state = {"last": None, "training": False}

    class Recorder(QObject):  # a QObject in the GUI thread, so Qt queues the worker's records to it
        def on_progress(self, item):
            for record in item.records if isinstance(item, TrainingSteps) else ():
                if not record.finished:
                    records.append((record.update, record.elapsed_s))
                state["training"] = not record.finished
    recorder = Recorder()
    registry, start = window.workers, window.workers.start

    def start_and_record(worker):  # listen to the training worker the dialog starts
        worker.progress.connect(recorder.on_progress)
        return start(worker)
    registry.start = start_and_record

    def tick():
        now = time.perf_counter()
        if state["last"] is not None and state["training"]:
            gaps.append((now - state["last"]) * 1000)
            if os.environ.get("BENCH_DEBUG") and gaps[-1] > 40:
                print(f"  stall {gaps[-1]:.0f} ms ending at update {records[-1][0] if records else None}",
                      file=sys.stderr)
        state["last"] = now
    timer = QTimer(interval=TICK_MS, timerType=Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)
    loop = QEventLoop()
    dialog.runningChanged.connect(loop.quit)  # from the GUI thread (start and end of the run)
    if tick:
        timer.start()
    if not dialog.start():
        raise SystemExit("the dialog refused to start")
    loop.exec()
    timer.stop()
    registry.start = start
    if dialog.result is None:
        raise SystemExit(f"training in the dialog did not finish: {dialog.status.text()}")
    gaps.sort()
    if not gaps:
        gaps = [math.nan]
    return {"rate": _rate(records), "max_gap_ms": gaps[-1], "p99_gap_ms": gaps[int(0.99 * (len(gaps) - 1))],
            "median_gap_ms": statistics.median(gaps), "ticks": len(gaps),
            "redraws": dialog.plots.redraw_count}  # counted from the run's start (the plots are cleared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="a tiny network (more updates per second: harder "
                                                             "on the GUI thread)")
    parser.add_argument("--songs", type=int, default=4)
    args = parser.parse_args()

    import torch

    from engine.config import ModelConfig, TrainConfig
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["SVGUI_CACHE_DIR"] = str(tmp / "cache")
        os.environ["SVGUI_SETTINGS_DIR"] = str(tmp / "settings")
        _write_data(tmp / "data", args.songs, 30.0)
        model_config = ModelConfig(conv_channels=(8, 8, 16, 8), dense_units=(32, 16)) if args.tiny else ModelConfig()
        config = TrainConfig(updates=args.updates, validate_every=max(1, args.updates // 2), checkpoint_every=0)

        from svgui.app import create_application, demo_paths
        app = create_application([sys.argv[0]])
        from svgui.dialogs import messages
        from svgui.main_window import MainWindow
        messages.NO_MODAL = True
        window = MainWindow()
        window.resize(1400, 860)
        window.show()
        _, demo = demo_paths()
        if demo is not None:
            window.open_file(demo)
            deadline = time.time() + 60
            while not window.document.is_open and time.time() < deadline:
                app.processEvents()
                time.sleep(0.01)

        direct, threaded, gui = [], [], []
        modes = ("direct", "thread", "gui")
        for repeat in range(args.repeats):
            for mode in modes[repeat % 3:] + modes[:repeat % 3]:  # rotated, so no mode always runs first
                out = tmp / f"{mode}{repeat}.safetensors"
                if mode == "gui":
                    gui.append(run_gui(app, window, tmp / "data", out, config, model_config))
                else:
                    (direct if mode == "direct" else threaded).append(
                        run_direct(tmp / "data", out, config, model_config, in_thread=mode == "thread"))
            print(f"repeat {repeat + 1}: direct {direct[-1]:.3f}, in a thread {threaded[-1]:.3f}, GUI "
                  f"{gui[-1]['rate']:.3f} updates/s, longest stall {gui[-1]['max_gap_ms']:.1f} ms", file=sys.stderr)
        window.workers.stop_all()

    rate_direct = statistics.median(direct)
    rate_threaded = statistics.median(threaded)
    rate_gui = statistics.median(g["rate"] for g in gui)  # medians of the runs, for scale
    print(f"network:                         {'tiny' if args.tiny else 'full (SPEC §3)'}, batch {config.batch_size}, "
          f"{args.updates} updates x {args.repeats} repeats, cpu ({torch.get_num_threads()} threads)")
    def runs(rates):
        return ", ".join(f"{r:.3f}" for r in rates)
    print(f"engine.train.train, main thread: {rate_direct:.3f} updates/s (median; runs: {runs(direct)})")
    print(f"engine.train.train, a thread:    {rate_threaded:.3f} updates/s (median; runs: {runs(threaded)})")
    print(f"training dialog (worker thread): {rate_gui:.3f} updates/s (median; runs: "
          f"{runs(g['rate'] for g in gui)})")
    to_main = [g["rate"] / d for g, d in zip(gui, direct)]  # each GUI run against its neighbours
    to_thread = [g["rate"] / t for g, t in zip(gui, threaded)]
    print(f"GUI / direct in the main thread: {100 * statistics.median(to_main):.1f} % (median of the repeats; "
          f"{100 * min(to_main):.0f}–{100 * max(to_main):.0f} %)")
    print(f"GUI / direct in a plain thread:  {100 * statistics.median(to_thread):.1f} % (median of the repeats; "
          f"{100 * min(to_thread):.0f}–{100 * max(to_thread):.0f} %)")
    print(f"event-loop stall while training: max {max(g['max_gap_ms'] for g in gui):.1f} ms, "
          f"p99 {max(g['p99_gap_ms'] for g in gui):.1f} ms, median tick gap "
          f"{statistics.median(g['median_gap_ms'] for g in gui):.1f} ms ({TICK_MS} ms timer, "
          f"{sum(g['ticks'] for g in gui)} ticks)")
    print(f"plot redraws per run:            {', '.join(str(g['redraws']) for g in gui)}")


if __name__ == "__main__":
    main()
