"""Review-span speed: ``engine.review.review_spans`` on a one-hour file (goal < 50 ms).

    python bench/review_speed.py [--hours 1] [--repeats 10]

The curve is a seeded random walk through a sigmoid (it wanders across the threshold often, so
there are many spans), with a ground truth of 20 s regions every 45 s; the figure is the best of
``repeats`` calls, and the median smoothing's own share is printed beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from engine.config import FRAMES_PER_SECOND  # noqa: E402
from engine.evaluate import smooth_probabilities  # noqa: E402
from engine.review import coverage_s, review_spans  # noqa: E402
from engine.timing import best_time_s  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    duration_s = args.hours * 3600
    n = round(duration_s * FRAMES_PER_SECOND)
    rng = np.random.default_rng(0)
    p = (1 / (1 + np.exp(-np.cumsum(rng.normal(0, 0.3, n))))).astype(np.float32)
    truth = [(float(t), float(t) + 20.0) for t in np.arange(0, duration_s, 45.0)]
    spans = review_spans(p, FRAMES_PER_SECOND, 0.5, truth=truth)
    total_s = best_time_s(lambda: review_spans(p, FRAMES_PER_SECOND, 0.5, truth=truth), args.repeats)
    median_s = best_time_s(lambda: smooth_probabilities(p), args.repeats)
    print(f"{n} frames ({duration_s / 60:.0f} min): {len(spans)} spans covering "
          f"{coverage_s(spans) / duration_s:.0%} of the audio")
    print(f"review_spans: {total_s * 1000:.1f} ms (best of {args.repeats}); of it median smoothing "
          f"{median_s * 1000:.1f} ms (goal < 50 ms)")


if __name__ == "__main__":
    main()
