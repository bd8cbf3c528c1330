"""Result tables and the figure of an experiment study, in the shape of the paper's Table 1 and Figure 2."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.experiments.gains_report import write_gains_report
from engine.experiments.stats import Row, summarize
from engine.fileio import atomic_write_text, atomic_write_with

if TYPE_CHECKING:
    from engine.experiments.plan import RunSpec

CSV_FIELDS = ("label", "variant", "variant_key", "test_mode", "baseline", "threshold_rule", "n",
              "error_mean", "error_ci_low", "error_ci_high", "relative_change",
              "recall_mean", "specificity_mean", "precision_mean", "f1_mean",
              "oracle_error_mean", "oracle_error_ci_low", "oracle_error_ci_high",
              "errors", "repetitions", "incomplete_repetitions")
_RULE_TEXT = {"validation": "threshold chosen on the validation files",
              "oracle": "best threshold on the test files (oracle)"}
_RULE_SHORT = {"validation": "threshold from validation", "oracle": "oracle threshold on test"}


def _percent(value: float, decimals: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.{decimals}f} %"


def _error_text(row: Row) -> str:
    """'9.41 ± 0.35 %' (mean ± half-width of the 95 % CI), or the bare mean when n < 2."""
    if math.isnan(row.error_mean):
        return "n/a"
    if math.isnan(row.error_ci_low):
        return _percent(row.error_mean)
    return f"{100 * row.error_mean:.2f} ± {100 * row.error_ci_half_width:.2f} %"


def _change_text(row: Row) -> str:
    if row.baseline and row.test_mode == "plain":
        return "reference"
    if math.isnan(row.relative_change):
        return "n/a"
    return f"{100 * row.relative_change:+.1f} %"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(header: Sequence[str], lines: Sequence[Sequence[str]], align: str) -> str:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in line) + " |" for line in lines]
    return "\n".join(out) + "\n"


def markdown_table(rows: Sequence[Row]) -> str:
    """The study's results as a Markdown table: mean error with its 95 % CI, change vs. baseline."""
    header = ("variant", "test", "n", "error (mean ± 95 % CI)", "vs. baseline", "recall", "specificity")
    lines = [(row.variant, "TTA" if row.test_mode == "tta" else row.test_mode, str(row.n),
              _error_text(row), _change_text(row), _percent(row.recall_mean, 1),
              _percent(row.specificity_mean, 1)) for row in rows]
    return _table(header, lines, "llrrrrr")


def _notes(rows: Sequence[Row]) -> list[str]:
    """Lines saying which threshold rule was used and which repetitions were left out."""
    notes = []
    if rows:
        notes.append(f"Error at the {_RULE_TEXT[rows[0].threshold_rule]}; mean and 95 % confidence "
                     f"interval (Student's t) over n repetitions; recall and specificity are means.")
    for row in rows:
        if row.incomplete_repetitions:
            listed = ", ".join(str(r) for r in row.incomplete_repetitions)
            notes.append(f"{row.label}: repetition(s) {listed} left out, some folds missing.")
    return notes


def _csv_number(value: float) -> str:
    return repr(float(value))  # shortest text that reads back to the same float; 'nan' when undefined


def write_tables(rows: Sequence[Row], out_dir: str | os.PathLike) -> list[Path]:
    """Write ``results.csv`` (every figure, fractions at full precision) and ``results.md``."""
    out_dir = Path(out_dir)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in rows:
        values = []
        for name in CSV_FIELDS:
            value = getattr(row, name)
            if isinstance(value, tuple):
                value = ";".join(_csv_number(v) if isinstance(v, float) else str(v) for v in value)
            elif isinstance(value, float):
                value = _csv_number(value)
            values.append(value)
        writer.writerow(values)
    csv_path, md_path = out_dir / "results.csv", out_dir / "results.md"
    atomic_write_text(csv_path, buffer.getvalue())
    notes = "".join(f"\n{line}\n" for line in _notes(rows))
    atomic_write_text(md_path, "# Results\n\n" + markdown_table(rows) + notes)
    return [csv_path, md_path]


def _default_combined_key(rows: Sequence[Row]) -> str | None:
    """The last augmented variant evaluated with TTA, else the last augmented variant."""
    augmented = [r for r in rows if not r.baseline]
    with_tta = [r for r in augmented if r.test_mode == "tta"]
    chosen = (with_tta or augmented)[-1:] or [None]
    return chosen[0].variant_key if chosen[0] else None


def write_table1(rows: Sequence[Row], out_dir: str | os.PathLike, *, combined_key: str | None = None) -> Path:
    """Write ``table1.md``: baseline and one augmented variant, each without and with TTA (Table 1)."""
    keys = {r.variant_key for r in rows}
    if combined_key is not None and combined_key not in keys:
        raise ValueError(f"combined_key={combined_key!r} is not a variant of this study; "
                         f"its variants are {sorted(keys)}")
    combined_key = combined_key or _default_combined_key(rows)
    by_key = {(r.variant_key, r.test_mode): r for r in rows}
    baseline_key = next((r.variant_key for r in rows if r.baseline), None)
    cells = (("w/o augmentation", baseline_key, "plain"), ("train augmentation", combined_key, "plain"),
             ("test augmentation", baseline_key, "tta"), ("train/test augmentation", combined_key, "tta"))
    lines = []
    for method, key, mode in cells:
        row = by_key.get((key, mode))
        if row is None or row.n == 0:
            lines.append((method, "not run", "", "", "", "", ""))
            continue
        ci = ("n/a" if math.isnan(row.error_ci_low) else
              f"[{100 * row.error_ci_low:.2f}, {100 * row.error_ci_high:.2f}] %")
        lines.append((method, _percent(row.error_mean), ci, _percent(row.recall_mean, 1),
                      _percent(row.specificity_mean, 1), str(row.n), row.label))
    table = _table(("Method", "Error", "95 % CI", "Recall", "Spec.", "n", "variant"), lines, "lrrrrrl")
    combined = next((r.variant for r in rows if r.variant_key == combined_key), "none")
    rule = _RULE_TEXT[rows[0].threshold_rule] if rows else ""
    text = (f"# Table 1\n\nTrain augmentation: {combined}. Error at the {rule}; mean over n "
            f"repetitions with the 95 % confidence interval of the mean.\n\n{table}")
    path = Path(out_dir) / "table1.md"
    atomic_write_text(path, text)
    return path


def _row_colour(row: Row) -> str:
    if row.test_mode == "tta":
        return "#e08a3c"
    return "#9a9a9a" if row.baseline else "#4c78a8"


def plot_figure2(rows: Sequence[Row], out_dir: str | os.PathLike, *, title: str = "") -> list[Path]:
    """Write ``figure2.png`` and ``figure2.svg``: mean error per row with its 95 % CI (Figure 2)."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    out_dir = Path(out_dir)
    with rc_context({"svg.hashsalt": "svgui-figure2", "font.size": 9}):
        fig = Figure(figsize=(7.5, 1.3 + 0.27 * max(len(rows), 1)), dpi=120, layout="constrained")
        ax = fig.subplots()
        _draw_figure2(ax, rows)
        if title:
            ax.set_title(title)
        paths = [out_dir / "figure2.png", out_dir / "figure2.svg"]
        # No date or software version in the files: the same rows give the same bytes.
        atomic_write_with(paths[0], lambda tmp: fig.savefig(tmp, format="png", metadata={"Software": None}))
        atomic_write_with(paths[1], lambda tmp: fig.savefig(tmp, format="svg", metadata={"Date": None}))
    return paths


def _draw_figure2(ax, rows: Sequence[Row]) -> None:
    """Horizontal bars at the mean error in %, whiskers for the CI, first row at the top."""
    ys = list(range(len(rows)))
    means = [100 * r.error_mean for r in rows]
    shown = [(y, r) for y, r in zip(ys, rows) if not math.isnan(r.error_mean)]
    lows = [100 * (r.error_mean if math.isnan(r.error_ci_low) else r.error_ci_low) for _, r in shown]
    highs = [100 * (r.error_mean if math.isnan(r.error_ci_high) else r.error_ci_high) for _, r in shown]
    # A bar from zero hides differences of tenths of a percent: start the axis near the smallest low.
    if shown:
        span = max(max(highs) - min(lows), 0.5)
        left, right = max(0.0, min(lows) - 0.35 * span), max(highs) + 0.15 * span
    else:
        left, right = 0.0, 1.0
    ax.barh(ys, [0.0 if math.isnan(m) else m for m in means], height=0.62,
            color=[_row_colour(r) for r in rows], zorder=2)
    for (y, row), low, high in zip(shown, lows, highs):
        mean = 100 * row.error_mean
        if high > low:  # n = 1 has no interval
            ax.errorbar(mean, y, xerr=[[mean - low], [high - mean]], fmt="none", ecolor="black",
                        elinewidth=1.0, capsize=3, zorder=3)
    for y, row in zip(ys, rows):
        if math.isnan(row.error_mean):
            ax.text(left, y, "  no complete repetition", va="center", fontsize=8, color="#a03030")
    baseline = next((r for r in rows if r.baseline and r.test_mode == "plain"), None)
    if baseline is not None and not math.isnan(baseline.error_mean):
        ax.axvline(100 * baseline.error_mean, color="black", ls="--", lw=0.9, zorder=4)
    ax.set_xlim(left, right)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first row at the top
    ax.set_yticks(ys, [r.label for r in rows])
    ax.tick_params(axis="y", length=0)
    counts = ax.secondary_yaxis("right")
    counts.set_yticks(ys, [f"n={r.n}" for r in rows])
    counts.tick_params(axis="y", length=0, labelsize=8, labelcolor="#555555")
    ax.grid(axis="x", color="#dddddd", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    counts.spines["right"].set_visible(False)
    rule = rows[0].threshold_rule if rows else "validation"
    ax.set_xlabel(f"classification error (%)\n{_RULE_SHORT[rule]}; bars: mean, whiskers: 95 % CI")


def write_report(records: Sequence[Mapping], out_dir: str | os.PathLike, *, n_folds: int = 1,
                 threshold: str = "validation", combined_key: str | None = None,
                 title: str = "", planned: Sequence[RunSpec] | None = None) -> dict[str, Path]:
    """Summarize the run records and write every table and figure; file name -> path.

    With gain figures in the records, also error against gain (``gains.md``, ``gains.csv``,
    ``figure3.png``, ``figure3.svg``); ``planned`` (the plan's runs) names the runs still missing.
    """
    rows = summarize(records, n_folds=n_folds, threshold=threshold)
    paths = write_tables(rows, out_dir) + [write_table1(rows, out_dir, combined_key=combined_key)]
    paths += plot_figure2(rows, out_dir, title=title)
    paths += write_gains_report(records, out_dir, n_folds=n_folds, planned=planned, title=title)
    return {path.name: path for path in paths}
