"""Error against input gain per variant: the level-robustness table of a study and Figure 3 of
Schlüter & Lehner (ISMIR 2018) in shape, from the ``gains`` of the run records (issue 12).

Each run scored its test files at every gain at one threshold, the one chosen on the validation
files at 0 dB (``engine.experiments.run.score_gains``). A repetition's figures at a gain are pooled
over its folds (error weighted by frames, recall by voiced and specificity by unvoiced test
frames, which do not depend on the gain); the rows average them over repetitions.
"""

from __future__ import annotations

import csv
import io
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.experiments.stats import mean_ci
from engine.fileio import atomic_write_text, atomic_write_with

if TYPE_CHECKING:
    from engine.experiments.plan import RunSpec

_MARKERS = ("s", "^", "v", "D", "P", "X", "<", ">", "*", "h", "p", "d")


@dataclass(frozen=True)
class GainCell:
    """One variant at one input gain, over its repetitions; fractions (0.094 = 9.4 %)."""

    gain_db: float
    n: int                 # repetitions scored at this gain
    error_mean: float
    error_ci_low: float    # 95 % confidence interval of the mean error (nan for n < 2)
    error_ci_high: float
    recall_mean: float
    specificity_mean: float
    errors: tuple[float, ...]  # each repetition's error, in repetition order


@dataclass(frozen=True)
class GainRow:
    """One variant of a study: its figures at every gain and its error spread (worst − best)."""

    variant: str
    variant_key: str
    baseline: bool
    repetitions: tuple[int, ...]          # complete repetitions with gain figures
    cells: tuple[GainCell, ...]           # one per gain of the study, ascending
    spread_mean: float                    # per repetition: worst − best error over the gains; averaged
    spread_ci_low: float
    spread_ci_high: float
    spreads: tuple[float, ...]
    missing_runs: tuple[str, ...] = ()    # planned runs of this variant without gain figures (yet)
    incomplete_repetitions: tuple[int, ...] = ()  # left out: some of their folds are missing

    @property
    def n(self) -> int:
        return len(self.repetitions)

    def cell(self, gain_db: float) -> GainCell | None:
        return next((c for c in self.cells if c.gain_db == gain_db), None)


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _pool(values: Sequence[float], weights: Sequence[float]) -> float:
    """Weighted mean over the folds that define the figure (one fold: the figure itself)."""
    if len(values) == 1:
        return values[0]
    pairs = [(v, w) for v, w in zip(values, weights) if not math.isnan(v) and w > 0]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else math.nan


def _repetition_figures(folds: Sequence[Mapping]) -> dict[float, tuple[float, float, float]]:
    """gain (dB) -> (error, recall, specificity) of one repetition, pooled over its folds."""
    per_fold = [{float(level["gain_db"]): level for level in r["gains"]["levels"]} for r in folds]
    test = [r["evaluations"]["plain"]["test"] for r in folds]
    voiced = [t["tp"] + t["fn"] for t in test]
    unvoiced = [t["fp"] + t["tn"] for t in test]
    figures = {}
    for gain in set.intersection(*(set(levels) for levels in per_fold)):
        levels = [levels[gain] for levels in per_fold]
        figures[gain] = (_pool([_number(lv["error"]) for lv in levels], [lv["n_frames"] for lv in levels]),
                         _pool([_number(lv["recall"]) for lv in levels], voiced),
                         _pool([_number(lv["specificity"]) for lv in levels], unvoiced))
    return figures


def _nanmean(values: Sequence[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan


def summarize_gains(records: Sequence[Mapping], *, n_folds: int = 1, planned: Sequence[RunSpec] | None = None,
                    confidence: float = 0.95) -> list[GainRow]:
    """One row per variant from the records that have gain figures; [] when none has.

    ``planned``: the plan's runs. Its variants without any finished run get a row with n = 0, and
    each row lists its planned runs that have no gain figures yet (a study in progress).
    Rows come baseline first, then in plan order (else in the order of first appearance).
    """
    usable = [r for r in records if r.get("status") == "ok" and r.get("gains")]
    if not usable:
        return []
    gains_db = sorted({float(level["gain_db"]) for r in usable for level in r["gains"]["levels"]})
    names: dict[str, str] = {}
    baseline_keys: set[str] = set()
    groups: dict[str, dict[int, dict[int, Mapping]]] = {}  # variant key -> repetition -> fold -> record
    for run in planned or ():
        names.setdefault(run.variant.key, run.variant.name)
        if run.variant.is_baseline:
            baseline_keys.add(run.variant.key)
    for record in usable:
        key, fold = record["variant_key"], int(record.get("fold", 0))
        names.setdefault(key, record["variant"])
        if record.get("baseline"):
            baseline_keys.add(key)
        folds = groups.setdefault(key, {}).setdefault(int(record["repetition"]), {})
        if fold in folds:
            raise ValueError(f"runs {folds[fold]['run_id']!r} and {record['run_id']!r} are the same "
                             f"variant, repetition and fold")
        folds[fold] = record
    scored = {r["run_id"] for r in usable}
    missing = {key: tuple(run.run_id for run in planned or () if run.variant.key == key and run.run_id not in scored)
               for key in names}
    order = sorted(names, key=lambda k: k not in baseline_keys)  # stable: plan order, else first appearance
    return [_row(key, names[key], key in baseline_keys, groups.get(key, {}), gains_db, missing[key],
                 n_folds=n_folds, confidence=confidence) for key in order]


def _row(key: str, name: str, is_baseline: bool, repetitions: dict[int, dict[int, Mapping]],
         gains_db: Sequence[float], missing: tuple[str, ...], *, n_folds: int, confidence: float) -> GainRow:
    complete = sorted(r for r, folds in repetitions.items() if len(folds) == n_folds)
    figures = {r: _repetition_figures([repetitions[r][f] for f in sorted(repetitions[r])]) for r in complete}
    cells = []
    for gain in gains_db:
        at = [figures[r][gain] for r in complete if gain in figures[r]]
        errors = tuple(f[0] for f in at)
        mean, low, high = mean_ci(errors, confidence)
        cells.append(GainCell(gain, len(at), mean, low, high, _nanmean([f[1] for f in at]),
                              _nanmean([f[2] for f in at]), errors))
    spreads = tuple(max(e) - min(e) for r in complete
                    if len(e := [f[0] for f in figures[r].values() if not math.isnan(f[0])]) >= 2)
    spread_mean, spread_low, spread_high = mean_ci(spreads, confidence)
    return GainRow(name, key, is_baseline, tuple(complete), tuple(cells), spread_mean, spread_low, spread_high,
                   spreads, missing, tuple(sorted(r for r in repetitions if r not in complete)))


def gain_label(gain_db: float) -> str:
    """'−18 dB', '0 dB', '+6 dB' (a true minus sign, as in the evaluation tables)."""
    return f"{gain_db:+g} dB".replace("+0 ", "0 ").replace("-", "−")


def _with_ci(mean: float, low: float, high: float, unit: str) -> str:
    if math.isnan(mean):
        return "n/a"
    if math.isnan(low):
        return f"{100 * mean:.1f}{unit}"
    return f"{100 * mean:.1f} ± {100 * (high - low) / 2:.1f}{unit}"


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f} %"


def _recall_cell(row: GainRow, low_db: float) -> str:
    low, zero = row.cell(low_db), row.cell(0.0)
    if low is None or zero is None or not (low.n and zero.n):
        return "n/a"
    return f"{_percent(low.recall_mean)} → {_percent(zero.recall_mean)}"


def markdown_gains_table(rows: Sequence[GainRow]) -> str:
    """Variants × gains: mean error ± 95 % CI half width, the spread, recall at the lowest gain → 0 dB."""
    gains_db = [c.gain_db for c in rows[0].cells] if rows else []
    low_db = gains_db[0] if gains_db else 0.0
    header = (["variant", "n"] + [gain_label(g) for g in gains_db]
              + ["spread (worst − best)", f"recall {gain_label(low_db)} → 0 dB"])
    lines = []
    for row in rows:
        if not row.n:
            lines.append([row.variant, "0"] + ["not run yet"] + [""] * (len(gains_db) + 1))
            continue
        lines.append([row.variant, str(row.n)]
                     + [_with_ci(c.error_mean, c.error_ci_low, c.error_ci_high, " %") for c in row.cells]
                     + [_with_ci(row.spread_mean, row.spread_ci_low, row.spread_ci_high, " pts"),
                        _recall_cell(row, low_db)])
    out = ["| " + " | ".join(header) + " |", "|:---|" + "---:|" * (len(header) - 1)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in lines]
    return "\n".join(out) + "\n"


def gains_notes(rows: Sequence[GainRow], *, repetitions_planned: int | None = None) -> list[str]:
    """What the table shows, how many repetitions are behind each row, and which runs are missing."""
    if not rows:
        return []
    of = f" of {repetitions_planned} planned" if repetitions_planned else ""
    counts = ", ".join(f"{row.variant} {row.n}" for row in rows)
    notes = ["Classification error of the test files with the waveform scaled by each input gain, at one "
             "threshold per run: the one chosen on the validation files at 0 dB (as Schlüter & Lehner 2018). "
             "Mean ± half width of the 95 % confidence interval (Student's t) over n repetitions; spread: "
             "worst minus best error over the gains within each repetition, averaged (points); recall: means.",
             f"n per variant (repetitions{of}): {counts}."]
    missing = [row for row in rows if row.missing_runs]
    if missing:
        started = [row for row in missing if row.repetitions or row.incomplete_repetitions]
        listed = "; ".join(f"{row.variant}: {', '.join(row.missing_runs)}" for row in started)
        unstarted = [row for row in missing if row not in started]
        if unstarted:  # a variant none of whose runs finished: its name says enough
            listed += ("; " if listed else "") + "every run of " + ", ".join(row.variant for row in unstarted)
        total = sum(len(row.missing_runs) for row in missing)
        notes.append(f"Incomplete study: {total} planned run(s) have no gain figures yet, so these rows rest "
                     f"on the repetitions that finished. Missing: {listed}.")
    for row in rows:
        if row.incomplete_repetitions:
            notes.append(f"{row.variant}: repetition(s) {', '.join(map(str, row.incomplete_repetitions))} "
                         f"left out, some folds missing.")
    return notes


def _csv_number(value: float) -> str:
    return repr(float(value))  # shortest text that reads back to the same float; 'nan' when undefined


def _gain_field(gain_db: float) -> str:
    return f"{gain_db:g}db"


def write_gains_tables(rows: Sequence[GainRow], out_dir: str | os.PathLike, *,
                       repetitions_planned: int | None = None) -> list[Path]:
    """Write ``gains.csv`` (every figure, fractions at full precision) and ``gains.md``."""
    out_dir = Path(out_dir)
    gains_db = [c.gain_db for c in rows[0].cells] if rows else []
    per_gain = ("error_mean", "error_ci_low", "error_ci_high", "recall_mean", "specificity_mean", "n")
    header = (["variant", "variant_key", "baseline", "n", "repetitions"]
              + [f"{name}_{_gain_field(g)}" for g in gains_db for name in per_gain]
              + ["spread_mean", "spread_ci_low", "spread_ci_high", "spreads", "missing_runs"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        values = [row.variant, row.variant_key, row.baseline, row.n, ";".join(map(str, row.repetitions))]
        for cell in row.cells:
            values += [_csv_number(getattr(cell, name)) for name in per_gain[:-1]] + [cell.n]
        values += [_csv_number(v) for v in (row.spread_mean, row.spread_ci_low, row.spread_ci_high)]
        values += [";".join(map(_csv_number, row.spreads)), ";".join(row.missing_runs)]
        writer.writerow(values)
    csv_path, md_path = out_dir / "gains.csv", out_dir / "gains.md"
    atomic_write_text(csv_path, buffer.getvalue())
    notes = "".join(f"\n{line}\n" for line in gains_notes(rows, repetitions_planned=repetitions_planned))
    atomic_write_text(md_path, "# Error against input gain\n\n" + markdown_gains_table(rows) + notes)
    return [csv_path, md_path]


def plot_figure3(rows: Sequence[GainRow], out_dir: str | os.PathLike, *, title: str = "") -> list[Path]:
    """Write ``figure3.png`` and ``figure3.svg``: error (%) against input gain (dB), one line per
    variant with 95 % CI whiskers, the baseline dashed (Schlüter & Lehner 2018, Figure 3)."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    with rc_context({"svg.hashsalt": "svgui-figure3", "font.size": 9}):
        fig = Figure(figsize=(9.6, 4.8), dpi=120, layout="constrained")
        ax = fig.subplots()
        _draw_figure3(ax, rows)
        if title:
            ax.set_title(title)
        paths = [out_dir / "figure3.png", out_dir / "figure3.svg"]
        # No date or software version in the files: the same rows give the same bytes.
        atomic_write_with(paths[0], lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
        atomic_write_with(paths[1], lambda tmp: fig.savefig(tmp, format="svg", metadata={"Date": None}))
    return paths


def _draw_figure3(ax, rows: Sequence[GainRow]) -> None:
    """Mean error per gain joined by lines; each variant nudged sideways so its whiskers stay visible."""
    from matplotlib import colormaps

    gains_db = [c.gain_db for c in rows[0].cells] if rows else []
    shown = [row for row in rows if row.n]
    step_db = min((b - a for a, b in zip(gains_db, gains_db[1:])), default=1.0)
    nudge_db = step_db * min(0.3 / max(len(shown) - 1, 1), 0.04)  # all variants within 30 % of a step
    colours = colormaps["tab10"].colors
    top, others, clipped = 0.0, 0, False
    for i, row in enumerate(shown):
        x = [c.gain_db + (i - (len(shown) - 1) / 2) * nudge_db for c in row.cells if c.n]
        cells = [c for c in row.cells if c.n]
        means = [100 * c.error_mean for c in cells]
        # An error lies in 0..100 %: a wide interval (n = 2 has t = 12.7) is cut there, and the caption says so.
        lows = [100 * (c.error_mean if math.isnan(c.error_ci_low) else c.error_ci_low) for c in cells]
        highs = [100 * (c.error_mean if math.isnan(c.error_ci_high) else c.error_ci_high) for c in cells]
        clipped = clipped or min(lows) < 0 or max(highs) > 100
        lows, highs = [max(v, 0.0) for v in lows], [min(v, 100.0) for v in highs]
        if row.baseline:
            style = {"color": "black", "ls": "--", "marker": "o", "zorder": 4}
        else:
            # tab10 without its grey (index 7), kept apart from the black baseline
            colour = [c for j, c in enumerate(colours) if j != 7][others % 9]
            style = {"color": colour, "ls": "-", "marker": _MARKERS[others % len(_MARKERS)], "zorder": 3}
            others += 1
        label = textwrap.fill(f"{row.variant} (n={row.n})", 34)
        ax.errorbar(x, means, yerr=[[m - lo for m, lo in zip(means, lows)], [h - m for m, h in zip(means, highs)]],
                    lw=1.3, ms=5, elinewidth=0.9, capsize=2.5, label=label, **style)
        top = max([top, *highs])
    if not shown:
        ax.text(0.5, 0.5, "no complete repetition", transform=ax.transAxes, ha="center", color="#a03030")
    ax.set_xticks(gains_db, [gain_label(g).replace(" dB", "") for g in gains_db])
    if gains_db:
        ax.set_xlim(gains_db[0] - 0.6 * step_db, gains_db[-1] + 0.6 * step_db)
    ax.set_ylim(0.0, min(max(top * 1.05, 1.0), 100.0))  # from zero: the error's size, not only its shape
    ax.grid(color="#dddddd", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("input gain (dB)\nthreshold chosen on validation at 0 dB; markers: mean, whiskers: 95 % CI"
                  + (" (cut at 0 and 100 %)" if clipped else ""))
    ax.set_ylabel("classification error (%)")
    if shown:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=8, labelspacing=0.9)


def write_gains_report(records: Sequence[Mapping], out_dir: str | os.PathLike, *, n_folds: int = 1,
                       planned: Sequence[RunSpec] | None = None, title: str = "") -> list[Path]:
    """``gains.csv``, ``gains.md``, ``figure3.png`` and ``figure3.svg``; nothing when no record has gains."""
    rows = summarize_gains(records, n_folds=n_folds, planned=planned)
    if not rows:
        return []
    repetitions = max((run.repetition for run in planned), default=None) if planned else None
    return write_gains_tables(rows, out_dir, repetitions_planned=repetitions) + plot_figure3(rows, out_dir,
                                                                                           title=title)
