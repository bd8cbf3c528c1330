"""Augmentation preview speed: time from a value change to the redrawn picture, offscreen.

    python bench/preview_speed.py [--repeats 40]

For each view (one excerpt; the 3×3 grid of draws; each augmentation alone; the Figure 1 views)
a control is changed after the panel has been idle, the event loop runs until the panel has
redrawn, and the picture is painted synchronously (``repaint``): the figure is that whole span.
A simulated slider drag (a change every 5 ms for one second) then counts the redraws the rate
limit lets through and the lag from the last change to its picture.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SVGUI_NO_AUDIO", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEMO = "jamendolyrics_Fantasma_-_Los_Rombos_5-35s"
CHANGES = (("pitch", (20, 30, 40)), ("stretch", (20, 30, 40)), ("filter", (6, 10, 14)))


def _pump_until(app, predicate, timeout_s: float = 10.0) -> None:
    end = time.perf_counter() + timeout_s
    while not predicate() and time.perf_counter() < end:
        app.processEvents()


def measure_view(app, panel, mode: str, repeats: int) -> list[float]:
    """Milliseconds from a value change to the painted picture, ``repeats`` times."""
    from svgui.widgets.augment_preview import RATE_LIMIT_MS
    panel.set_mode(mode)
    panel.refresh_now()
    times = []
    for i in range(repeats):
        time.sleep(2 * RATE_LIMIT_MS / 1000)  # idle: the rate limit lets the first change through at once
        app.processEvents()
        short, values = CHANGES[i % len(CHANGES)]
        spin = panel.controls.spins[short]
        value = values[(values.index(spin.value()) + 1) % len(values)] if spin.value() in values else values[0]
        count = panel.recompute_count
        start = time.perf_counter()
        panel.controls.sliders[short].setValue(round(value / spin.singleStep()))
        _pump_until(app, lambda count=count: panel.recompute_count > count)
        panel.picture.repaint()
        times.append((time.perf_counter() - start) * 1000)
    return times


def measure_drag(app, panel, duration_s: float = 1.0, interval_s: float = 0.005) -> dict:
    """Move the pitch slider every 5 ms for a second: redraws let through, and each move's lag.

    A move's lag is the time until the end of the first redraw that started after it.
    """
    panel.set_mode("single")
    panel.refresh_now()
    slider = panel.controls.sliders["pitch"]
    redraws: list[tuple[float, float]] = []  # (start, end) of each redraw
    record = lambda: redraws.append((panel._last_flush, time.perf_counter()))  # noqa: E731
    panel.redrawn.connect(record)
    moves: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < duration_s:
        moves.append(time.perf_counter())
        slider.setValue(10 + len(moves) % 40)
        app.processEvents()
        time.sleep(interval_s)
    _pump_until(app, lambda: not panel._timer.isActive(), 2.0)
    app.processEvents()
    panel.redrawn.disconnect(record)
    lags = [next((end - m for s, end in redraws if s >= m), float("nan")) * 1000 for m in moves]
    lags = [lag for lag in lags if lag == lag]
    return {"moves": len(moves), "redraws": len(redraws), "lags_ms": lags}


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return f"median {statistics.median(times):6.1f} ms   p90 {p90:6.1f} ms   max {max(times):6.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args(argv)

    from svgui.app import create_application
    app = create_application([sys.argv[0]])
    import torch

    from engine.resources import resource_dir
    from svgui.document import Document
    from svgui.tasks import decode_and_analyse
    from svgui.widgets.augment_preview import RATE_LIMIT_MS, AugmentPreviewPanel

    decoded = decode_and_analyse(resource_dir() / "demo" / f"{DEMO}.flac")
    document = Document()
    document.set_audio(decoded.path, decoded.samples, decoded.log_mel)
    document.load_annotations(decoded.path.with_suffix(".lab"))
    panel = AugmentPreviewPanel(document)
    panel.resize(1300, 560)  # the dock's size in the README screenshots
    panel.show()
    panel.set_time(14.0)
    panel.controls.paper.click()
    _pump_until(app, lambda: panel.preview is not None)
    for mode in ("single", "draws", "alone", "figure1"):  # warm-up: first paints build caches
        panel.set_mode(mode)
        panel.refresh_now()
        panel.picture.repaint()

    print(f"augmentation preview, {DEMO} @ 14 s, paper's combination; {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads; the preview computes on 1), "
          f"rate limit {RATE_LIMIT_MS} ms, panel {panel.width()}×{panel.height()} px, offscreen")
    print("value change → redrawn picture:")
    for mode, label, target in (("single", "one excerpt (original | augmented)", 50),
                                ("draws", "3×3 grid of draws", 300), ("alone", "3×3 grid, each alone", 300),
                                ("figure1", "Figure 1 views (crop + 50 filters)", None)):
        times = measure_view(app, panel, mode, args.repeats)
        verdict = "" if target is None else f"   target < {target} ms: {'met' if max(times) < target else 'missed'}"
        print(f"  {label:<38} {summary(times)}{verdict}")
    drag = measure_drag(app, panel)
    print(f"slider drag for 1 s (a move every 5 ms): {drag['moves']} moves → {drag['redraws']} redraws; "
          f"move → its picture: {summary(drag['lags_ms'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
