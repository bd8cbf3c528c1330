"""GUI speed benchmark: start to a drawn demo, opening a 10-minute file, zoom/scroll redraws, memory.

Runs offscreen (no display needed):  python bench/gui_speed.py [--minutes 10] [--memory-hours 1]
Times are wall-clock on this machine; the redraw figures are medians of repeated redraws.
"""

from __future__ import annotations

import time

PROCESS_START = time.perf_counter()  # before the heavy imports (torch, Qt): "from start"

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _write_song(path: Path, minutes: float) -> None:
    import numpy as np
    import soundfile as sf

    from engine.bench import synth_music
    minute = synth_music(60.0, 44100)
    with sf.SoundFile(path, "w", samplerate=44100, channels=2, format="FLAC") as out:
        for _ in range(int(round(minutes))):
            out.write(np.repeat(minute[:, None], 2, axis=1))


def _wait(app, window, signal_name: str, timeout_s: float = 300.0) -> float:
    done = {"t": None}
    getattr(window, signal_name).connect(lambda *_: done.update(t=time.perf_counter()))
    start = time.perf_counter()
    while done["t"] is None and time.perf_counter() - start < timeout_s:
        app.processEvents()
        time.sleep(0.002)
    return done["t"]


def measure(minutes: float, model: Path | None = None) -> dict:
    from svgui.app import create_application, demo_paths
    app = create_application([sys.argv[0]])
    from svgui.main_window import MainWindow

    results = {}
    start = time.perf_counter()
    window = MainWindow(model_path=model)
    window.resize(1400, 860)
    window.show()
    _, demo = demo_paths()
    window.open_file(demo)
    _wait(app, window, "predictionsShown" if window.model else "fileShown")
    window.repaint()
    results["process_start_to_drawn_demo_s"] = time.perf_counter() - PROCESS_START
    results["window_to_drawn_demo_s"] = time.perf_counter() - start
    results["model"] = window.model.name if window.model else None
    if window.model:  # what Model > Precision resolved to for the open file's prediction
        from engine.precision import choose_precision
        from svgui.settings import precision
        results["precision"] = choose_precision(precision(window.settings), window.model.device).precision

    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "long.flac"
        _write_song(song, minutes)
        first_curve = []  # when the growing curve first shows (the first chunk's probabilities)
        window.predictions.partialPredictions.connect(
            lambda p: first_curve or p is None or first_curve.append(time.perf_counter()))
        start = time.perf_counter()
        window.open_file(song)
        _wait(app, window, "fileShown")
        window.repaint()
        results["open_long_file_spectrogram_s"] = time.perf_counter() - start
        if window.model:
            _wait(app, window, "predictionsShown")
            window.repaint()
            results["open_long_file_with_predictions_s"] = time.perf_counter() - start
            if first_curve:
                results["open_long_file_first_curve_s"] = first_curve[0] - start
        view = window.spectrogram
        redraws = []
        for i in range(20):
            t0 = time.perf_counter()
            if i % 2:
                view.zoom(1.5)
            else:
                view.scroll(0.25)
            app.processEvents()
            window.repaint()
            redraws.append(time.perf_counter() - t0)
        view.fit()
        t0 = time.perf_counter()
        app.processEvents()
        window.repaint()
        results["fit_whole_file_redraw_ms"] = 1000 * (time.perf_counter() - t0)
        results["zoom_scroll_redraw_ms_median"] = 1000 * statistics.median(redraws)
        results["zoom_scroll_redraw_ms_max"] = 1000 * max(redraws)
    results["long_file_minutes"] = minutes
    window.document.undo_stack.setClean()
    window.close()
    return results


def memory_with_file(hours: float, model: Path | None = None) -> float:
    """Peak resident memory of the app (fresh process) with an ``hours``-long file open."""
    with tempfile.TemporaryDirectory() as tmp:
        song = Path(tmp) / "hour.flac"
        _write_song(song, hours * 60)
        code = ("import os, sys, time, resource\n"
                "os.environ['QT_QPA_PLATFORM']='offscreen'\n"
                "from svgui.app import create_application\n"
                "app = create_application([])\n"
                "from svgui.main_window import MainWindow\n"
                "w = MainWindow(model_path=sys.argv[2] if len(sys.argv) > 2 else None); w.show(); done = []\n"
                "(w.predictionsShown if w.model else w.fileShown).connect(lambda *_: done.append(1))\n"
                "w.open_file(sys.argv[1])\n"
                "while not done: app.processEvents(); time.sleep(0.01)\n"
                "w.repaint(); app.processEvents()\n"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
                "w.document.undo_stack.setClean(); w.workers.stop_all()\n")
        extra = [str(model)] if model else []
        out = subprocess.run([sys.executable, "-c", code, str(song), *extra], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--memory-hours", type=float, default=1.0)
    parser.add_argument("--model", type=Path, help="model file (default: the bundled one)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                        help="Model > Precision for the run (default auto)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as settings_dir:
        os.environ.setdefault("SVGUI_SETTINGS_DIR", settings_dir)
        from svgui.settings import make_settings, set_precision
        settings = make_settings()
        set_precision(settings, args.precision)
        settings.sync()
        results = measure(args.minutes, args.model)
        if args.memory_hours > 0:
            results["peak_rss_mb_with_file_open"] = memory_with_file(args.memory_hours, args.model)
            results["memory_hours"] = args.memory_hours
    for key, value in results.items():
        print(f"{key:36s} {value:.2f}" if isinstance(value, float) else f"{key:36s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
