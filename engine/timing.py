"""Wall-clock timing for benchmarks and the precision calibration: the best of a few runs."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_time_s(fn: Callable[[], object], repeats: int) -> float:
    """The shortest of ``repeats`` calls of ``fn``, in seconds (the least disturbed by other work)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
