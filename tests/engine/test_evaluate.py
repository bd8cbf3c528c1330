"""Tests of median smoothing, counts, collar, threshold search and evaluation (SPEC §7)."""

import math

import numpy as np
import pytest

from engine.config import EvalConfig
from engine.evaluate import (
    Counts,
    Evaluation,
    FileResult,
    collar_mask,
    count_errors,
    evaluate,
    extend_smoothed,
    find_best_threshold,
    predicted_intervals,
    smooth_probabilities,
)


def brute_force_median(p: np.ndarray, window: int) -> np.ndarray:
    """Upper median of frames [i - window//2, i + (window-1)//2], edges repeating the nearest value."""
    n = p.size
    out = np.empty(n)
    for i in range(n):
        idx = np.clip(np.arange(i - window // 2, i + (window - 1) // 2 + 1), 0, n - 1)
        out[i] = np.sort(p[idx])[window // 2]
    return out


@pytest.mark.parametrize("window", [56, 5, 4, 1])
def test_smoothing_matches_brute_force_upper_median(window):
    p = np.random.default_rng(window).random(300).astype(np.float32)
    np.testing.assert_array_equal(smooth_probabilities(p, median_frames=window), brute_force_median(p, window))


@pytest.mark.parametrize("window", [56, 5, 4, 1])
@pytest.mark.parametrize("steps", [[2048, 4096, 4900], [3, 10, 11, 40, 100, 101, 300], [300]])
def test_a_growing_curve_smoothed_step_by_step_equals_smoothing_it_whole(window, steps):
    p = np.random.default_rng(window).random(300 if steps[-1] <= 300 else 4900).astype(np.float32)
    smoothed = None
    for stop in steps:
        smoothed = extend_smoothed(smoothed, p[:stop], median_frames=window)
        np.testing.assert_array_equal(smoothed, smooth_probabilities(p[:stop], median_frames=window))
    # a prefix as long or longer (another prediction starting over) is smoothed from scratch
    np.testing.assert_array_equal(extend_smoothed(smoothed, 1 - p[:stop], median_frames=window),
                                  smooth_probabilities(1 - p[:stop], median_frames=window))


def test_smoothing_edges_and_shapes():
    assert smooth_probabilities(np.zeros(0)).shape == (0,)
    # A falling step: the upper median of an even window keeps the high value one frame longer.
    step = np.r_[np.ones(10), np.zeros(10)]
    np.testing.assert_array_equal(smooth_probabilities(step, median_frames=4), np.r_[np.ones(11), np.zeros(9)])
    np.testing.assert_array_equal(smooth_probabilities(step, median_frames=5), step)
    batch = np.random.default_rng(0).random((3, 50))
    np.testing.assert_array_equal(smooth_probabilities(batch, median_frames=7)[2],
                                  smooth_probabilities(batch[2], median_frames=7))


def test_counts_and_ratios_on_a_hand_made_case():
    predicted = np.array([1, 1, 1, 0, 0, 0, 0, 1, 0, 0], bool)
    targets = np.array([1, 1, 0, 0, 0, 0, 1, 1, 1, 0], bool)
    c = count_errors(predicted, targets)
    assert c == Counts(tp=3, fp=1, tn=4, fn=2)
    assert c.n_frames == 10
    assert c.error == pytest.approx(0.3) and c.accuracy == pytest.approx(0.7)
    assert c.recall == pytest.approx(3 / 5) and c.specificity == pytest.approx(4 / 5)
    assert c.precision == pytest.approx(3 / 4) and c.f1 == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))
    d = c.to_dict()
    assert d["tp"] == 3 and d["n_frames"] == 10 and d["recall"] == pytest.approx(0.6)
    ignored = count_errors(predicted, targets, ignore=np.arange(10) < 5)
    assert ignored == Counts(tp=1, fp=0, tn=2, fn=2)


def test_counts_add_and_undefined_ratios():
    total = sum([Counts(1, 2, 3, 4), Counts(10, 20, 30, 40)])
    assert total == Counts(11, 22, 33, 44)
    no_voice = Counts(tp=0, fp=0, tn=5, fn=0)
    assert math.isnan(no_voice.recall) and math.isnan(no_voice.precision) and no_voice.specificity == 1.0
    assert no_voice.to_dict()["recall"] is None


def test_count_errors_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match="5.*7"):
        count_errors(np.zeros(5, bool), np.zeros(7, bool))


def test_collar_mask():
    targets = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0], bool)  # edges at 4 and 9
    expected = np.array([0, 0, 1, 1, 1, 1, 0, 1, 1, 1], bool)
    np.testing.assert_array_equal(collar_mask(targets, collar_frames=2), expected)
    assert not collar_mask(targets, collar_frames=0).any()
    assert not collar_mask(np.ones(8, bool), collar_frames=3).any()


def test_threshold_search_finds_the_known_optimum():
    # Constant probabilities so smoothing keeps them: voice frames at 0.7, non-voice frames at 0.3,
    # plus a short stretch of non-voice at 0.6 (wide enough to survive the median filter).
    p = np.r_[np.full(200, 0.3), np.full(100, 0.6), np.full(300, 0.7)]
    t = np.r_[np.zeros(300, bool), np.ones(300, bool)]
    threshold, counts = find_best_threshold([p], [t])
    assert threshold == 0.6  # lowest grid threshold with all frames right (0.6 > 0.6 is False)
    assert counts == Counts(tp=300, fp=0, tn=300, fn=0)


def test_threshold_search_equals_brute_force_on_random_data():
    rng = np.random.default_rng(1)
    config = EvalConfig(median_frames=9)
    probs = [rng.random(n) for n in (400, 250, 730)]
    targets = [rng.random(p.size) < 0.4 + 0.3 * p for p in probs]
    threshold, counts = find_best_threshold(probs, targets, config=config)
    smoothed = np.concatenate([smooth_probabilities(p, median_frames=9) for p in probs])
    truth = np.concatenate(targets)
    accuracy = {th: np.mean((smoothed > th) == truth) for th in config.thresholds}
    best = max(accuracy.values())
    assert threshold == min(th for th, a in accuracy.items() if a == best)
    assert counts == count_errors(smoothed > threshold, truth)


def test_threshold_search_with_collar_ignores_boundaries():
    # Probabilities lag the truth by 3 frames: with a 5-frame collar every scored frame is right.
    t = np.r_[np.zeros(100, bool), np.ones(100, bool)]
    p = np.r_[np.full(103, 0.2), np.full(97, 0.8)]
    config = EvalConfig(median_frames=1, collar_s=5 / 70)
    _, counts = find_best_threshold([p], [t], config=config)
    assert counts.error == 0 and counts.n_frames == 190


def test_evaluate_pools_the_per_file_counts():
    rng = np.random.default_rng(3)
    targets = [np.repeat(rng.random(n) < 0.5, 50) for n in (6, 10)]  # runs of 50 frames
    probs = [np.clip(0.3 + 0.4 * t + 0.3 * rng.standard_normal(t.size), 0, 1) for t in targets]
    config = EvalConfig(median_frames=5, collar_s=0.1)
    result = evaluate(probs, targets, ["a.wav", "b.wav"], threshold=0.5, config=config)
    assert isinstance(result, Evaluation) and result.threshold == 0.5 and result.collar_s == 0.1
    assert [r.name for r in result.per_file] == ["a.wav", "b.wav"]
    assert result.pooled == result.per_file[0].counts + result.per_file[1].counts
    first = result.per_file[0].counts
    expected = count_errors(smooth_probabilities(probs[0], median_frames=5) > 0.5, targets[0],
                            ignore=collar_mask(targets[0], collar_frames=7))
    assert first == expected and 0 < first.n_frames < 300 and 0 < first.error < 0.5
    d = result.to_dict()
    assert d["pooled"]["n_frames"] == result.pooled.n_frames and d["per_file"][1]["name"] == "b.wav"
    table = result.format_table()
    assert "a.wav" in table and f"{100 * result.pooled.error:.2f} %" in table


def test_format_table_shows_undefined_ratios():
    result = Evaluation(0.5, Counts(tn=10), (FileResult("quiet", Counts(tn=10)),), 0.0)
    assert "n/a" in result.format_table() and "quiet" in result.format_table()


def test_predicted_intervals():
    p = np.r_[np.zeros(70), np.ones(140), np.zeros(70)]
    # The upper median of the even window keeps a falling edge one frame longer.
    assert predicted_intervals(p, threshold=0.5) == [(1.0, 211 / 70)]
    assert predicted_intervals(p, threshold=0.5, median_frames=55) == [(1.0, 3.0)]
    assert predicted_intervals(np.zeros(100), threshold=0.5) == []
    # A 10-frame blip is removed by the 56-frame median but kept without smoothing.
    blip = np.r_[np.zeros(100), np.ones(10), np.zeros(100)]
    assert predicted_intervals(blip, threshold=0.5) == []
    assert predicted_intervals(blip, threshold=0.5, median_frames=1) == [(100 / 70, 110 / 70)]
