"""Statistics over repeated training runs: mean and 95 % confidence interval per variant (SPEC §7)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from engine.evaluate import Counts

THRESHOLD_RULES = ("validation", "oracle")
TEST_MODES = ("plain", "tta")
# Which counts of an evaluation each threshold rule reads.
_COUNTS_KEY = {"validation": "test", "oracle": "test_oracle"}


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student's t confidence interval of the mean.

    Parameters
    ----------
    values : iterable of float
        One figure per repetition (e.g. the classification error of each run).
    confidence : float
        Coverage of the interval, between 0 and 1.

    Returns
    -------
    mean, ci_low, ci_high : float
        ``mean ± t_{(1+c)/2, n-1} · s / √n`` with the sample standard deviation ``s`` (ddof=1).
        One value gives ``(x, nan, nan)``, none gives three nans.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie between 0 and 1, got {confidence!r}")
    x = np.asarray(list(values), dtype=float)
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, math.nan
    half_width = float(stats.t.ppf((1.0 + confidence) / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half_width, mean + half_width


@dataclass(frozen=True)
class Row:
    """One line of a study's results: a training variant under one test mode, over its repetitions.

    Error, recall, ... are fractions (0.094 = 9.4 %). Each repetition's figures come from its
    frame counts pooled over its folds; the ``*_mean`` fields average those over repetitions.
    """

    variant: str
    variant_key: str
    test_mode: str                # "plain" or "tta"
    label: str                    # "pitch ±30 %" or "pitch ±30 % + TTA"
    baseline: bool                # the plan's variant without augmentation
    threshold_rule: str           # "validation" (chosen on validation files) or "oracle" (best on test)
    n: int                        # complete repetitions
    error_mean: float
    error_ci_low: float           # 95 % confidence interval of the mean error
    error_ci_high: float
    recall_mean: float
    specificity_mean: float
    precision_mean: float
    f1_mean: float
    relative_change: float        # error_mean / baseline's plain error_mean - 1 (same threshold rule)
    errors: tuple[float, ...]     # error of each complete repetition, in repetition order
    repetitions: tuple[int, ...]  # the repetition numbers behind ``errors``
    oracle_error_mean: float      # the same at the best threshold on the test files
    oracle_error_ci_low: float
    oracle_error_ci_high: float
    incomplete_repetitions: tuple[int, ...] = ()  # left out: some of their folds are missing

    @property
    def error_ci_half_width(self) -> float:
        return (self.error_ci_high - self.error_ci_low) / 2.0


def summarize(records: Sequence[Mapping], *, n_folds: int = 1, threshold: str = "validation",
              confidence: float = 0.95) -> list[Row]:
    """Rows of a study from its run records, one per (variant, test mode).

    Parameters
    ----------
    records : sequence of dict
        The runner's run records (``run_id``, ``variant``, ``variant_key``, ``baseline``,
        ``repetition``, ``fold``, ``status``, ``evaluations``); those whose status is not
        ``"ok"`` are skipped.
    n_folds : int
        Folds per repetition. A repetition's counts are summed over its folds; a repetition
        missing any fold is left out and listed in ``Row.incomplete_repetitions``.
    threshold : {"validation", "oracle"}
        Read the test counts at the threshold chosen on the validation files, or at the best
        threshold on the test files themselves (the paper's Figure 2).
    confidence : float
        Coverage of the confidence intervals.

    Returns
    -------
    rows : list of Row
        All "plain" rows, then all "tta" rows; within each, the baseline first and the other
        variants in the order they first appear in ``records``.
    """
    if threshold not in THRESHOLD_RULES:
        raise ValueError(f"threshold must be one of {THRESHOLD_RULES}, got {threshold!r}")
    if n_folds < 1:
        raise ValueError(f"n_folds must be at least 1, got {n_folds!r}")
    usable = [r for r in records if r.get("status") == "ok" and r.get("evaluations")]
    if not usable:
        raise ValueError(f"no usable run records: none of the {len(records)} has status 'ok' "
                         f"and an evaluation")
    baseline_keys = {r["variant_key"] for r in usable if r.get("baseline")}
    if len(baseline_keys) > 1:
        raise ValueError(f"exactly one variant may be the baseline, got {sorted(baseline_keys)}")

    names: dict[str, str] = {}
    # (variant_key, test_mode) -> repetition -> fold -> (run_id, evaluation)
    groups: dict[tuple[str, str], dict[int, dict[int, tuple[str, Mapping]]]] = {}
    for record in usable:
        key, fold = record["variant_key"], int(record["fold"])
        if not 0 <= fold < n_folds:
            raise ValueError(f"run {record['run_id']!r} has fold {fold}, outside 0..{n_folds - 1} "
                             f"(n_folds={n_folds})")
        names.setdefault(key, record["variant"])
        for mode, evaluation in record["evaluations"].items():
            folds = groups.setdefault((key, mode), {}).setdefault(int(record["repetition"]), {})
            if fold in folds:
                raise ValueError(f"runs {folds[fold][0]!r} and {record['run_id']!r} are the same "
                                 f"variant, repetition, fold and test mode")
            folds[fold] = (record["run_id"], evaluation)

    # As in the paper's Figure 2: every plain row first, the TTA rows last; baseline first in each.
    order = sorted(names, key=lambda k: k not in baseline_keys)  # stable: first appearance otherwise
    modes = sorted({m for _, m in groups}, key=_mode_rank)
    rows = [_summarize_group(key, names[key], mode, groups[key, mode], key in baseline_keys,
                             n_folds=n_folds, threshold=threshold, confidence=confidence)
            for mode in modes for key in order if (key, mode) in groups]
    return _with_relative_change(rows)


def _mode_rank(mode: str) -> tuple[int, str]:
    return (TEST_MODES.index(mode) if mode in TEST_MODES else len(TEST_MODES), mode)


def _summarize_group(key: str, name: str, mode: str, repetitions: dict[int, dict[int, tuple[str, Mapping]]],
                     is_baseline: bool, *, n_folds: int, threshold: str, confidence: float) -> Row:
    complete = sorted(r for r, folds in repetitions.items() if len(folds) == n_folds)
    incomplete = tuple(sorted(r for r in repetitions if r not in complete))
    pooled = [_pooled_counts(repetitions[r], _COUNTS_KEY[threshold]) for r in complete]
    oracle = [_pooled_counts(repetitions[r], "test_oracle") for r in complete]
    errors = tuple(c.error for c in pooled)
    error_mean, error_low, error_high = mean_ci(errors, confidence)
    oracle_mean, oracle_low, oracle_high = mean_ci([c.error for c in oracle], confidence)
    return Row(
        variant=name, variant_key=key, test_mode=mode,
        label=name + (" + TTA" if mode == "tta" else "" if mode == "plain" else f" ({mode})"),
        baseline=is_baseline, threshold_rule=threshold, n=len(complete),
        error_mean=error_mean, error_ci_low=error_low, error_ci_high=error_high,
        recall_mean=_nanmean(c.recall for c in pooled),
        specificity_mean=_nanmean(c.specificity for c in pooled),
        precision_mean=_nanmean(c.precision for c in pooled),
        f1_mean=_nanmean(c.f1 for c in pooled),
        relative_change=math.nan, errors=errors, repetitions=tuple(complete),
        oracle_error_mean=oracle_mean, oracle_error_ci_low=oracle_low, oracle_error_ci_high=oracle_high,
        incomplete_repetitions=incomplete)


def _pooled_counts(folds: dict[int, tuple[str, Mapping]], counts_key: str) -> Counts:
    """Frame counts summed over the folds of one repetition; nan figures if a fold lacks them."""
    total = Counts()
    for _run_id, evaluation in folds.values():
        counts = evaluation.get(counts_key)
        if counts is None:
            return Counts()  # zero frames: every ratio is nan
        total = total + Counts(*(int(counts[name]) for name in ("tp", "fp", "tn", "fn")))
    return total


def _nanmean(values: Iterable[float]) -> float:
    """Mean over the defined values (a ratio is undefined for e.g. a fold without voice)."""
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def _with_relative_change(rows: list[Row]) -> list[Row]:
    """Each row's mean error against the baseline's plain mean error."""
    reference = next((r.error_mean for r in rows if r.baseline and r.test_mode == "plain"), math.nan)
    defined = reference > 0.0  # False for nan and for a flawless baseline
    return [replace(row, relative_change=row.error_mean / reference - 1.0 if defined else math.nan)
            for row in rows]
