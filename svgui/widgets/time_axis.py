"""The time ruler every time axis of the app uses: seconds, written m:ss once the view reaches a minute.

One format per axis at a time (decided from the visible range, not per tick), so a view from 50 s
to 70 s reads "0:50 … 1:10" rather than mixing "55" and "1:05"; the axis label names the unit
shown ("time (s)" or "time (m:ss)"), as Audacity's and Sonic Visualiser's rulers do.
"""

from __future__ import annotations

import math

import pyqtgraph as pg

SECONDS_LABEL = "time (s)"
MINUTES_LABEL = "time (m:ss)"

# Tick steps a person reads easily on a time ruler: decimal below a second, then 5 s, 15 s, minutes.
_TIME_STEPS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
                 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
_PX_PER_LABEL = 90.0


def uses_minutes(start_s: float, end_s: float) -> bool:
    """Whether a view of [start_s, end_s] is labelled m:ss (it reaches a minute)."""
    return max(abs(start_s), abs(end_s)) >= 60.0


def format_time(time_s: float, decimals: int = 2, as_minutes: bool = True) -> str:
    """'1:02.50' (m:ss) or '62.50' (seconds); used for ticks and status text."""
    if not as_minutes:
        return f"{time_s:.{decimals}f}"
    sign = "-" if time_s < 0 else ""
    minutes, seconds = divmod(abs(time_s), 60.0)
    width = 2 + (decimals + 1 if decimals else 0)
    text = f"{seconds:0{width}.{decimals}f}"
    if text.startswith("60"):  # rounding carried into the next minute
        minutes, text = minutes + 1, f"{0.0:0{width}.{decimals}f}"
    return f"{sign}{int(minutes)}:{text}"


class TimeAxisItem(pg.AxisItem):
    """A time ruler in seconds ("time (s)"), written m:ss ("time (m:ss)") once the view reaches a minute.

    ``label=False`` leaves the axis without a title (ticks only), for a ruler that another one repeats.
    """

    def __init__(self, orientation: str = "bottom", *, label: bool = True, **kwargs):
        self._titled, self.as_minutes = False, False  # AxisItem.__init__ calls setRange
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)
        self._titled = label
        if label:
            self.setLabel(SECONDS_LABEL)

    def setRange(self, mn: float, mx: float) -> None:
        as_minutes = uses_minutes(mn, mx)
        if as_minutes != self.as_minutes:
            self.as_minutes = as_minutes
            if self._titled:
                self.setLabel(MINUTES_LABEL if as_minutes else SECONDS_LABEL)
        super().setRange(mn, mx)

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:
        span = maxVal - minVal
        if span <= 0 or size <= 0:
            return super().tickSpacing(minVal, maxVal, size)
        wanted = span / max(size / _PX_PER_LABEL, 1.0)
        index = next((i for i, step in enumerate(_TIME_STEPS_S) if step >= wanted), len(_TIME_STEPS_S) - 1)
        major = _TIME_STEPS_S[index]
        minor = _TIME_STEPS_S[max(index - 2, 0)] if index >= 2 else major / 5
        return [(major, 0.0), (minor, 0.0)]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        decimals = max(0, -math.floor(math.log10(spacing) + 1e-9)) if spacing > 0 else 0
        return [format_time(v, decimals, self.as_minutes) for v in values]
