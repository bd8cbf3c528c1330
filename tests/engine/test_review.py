"""Tests of the review spans on synthetic probability curves: unsure band, flicker, disagreement, boundaries."""

import time

import numpy as np
import pytest

from engine.review import ReviewConfig, coverage_s, relative_distance, review_spans, spans_in_time_order

FPS = 70.0


def curve(*pieces: tuple[float, float]) -> np.ndarray:
    """Piecewise-constant probabilities from (duration_s, probability) pieces."""
    return np.concatenate([np.full(round(d * FPS), p, dtype=np.float32) for d, p in pieces])


def containing(spans, start_s, end_s):
    found = [s for s in spans if s.start_s <= start_s and s.end_s >= end_s]
    assert len(found) == 1, (start_s, end_s, spans)
    return found[0]


def test_unsure_band_around_the_threshold():
    p = curve((10, 0.95), (3, 0.6), (7, 0.95))  # voice throughout, but doubtful for 3 s
    spans = review_spans(p, FPS, 0.5)
    assert len(spans) == 1
    span = spans[0]
    assert span.reason == "unsure" and span.reasons == ("unsure",)
    pad = ReviewConfig().padding_s
    assert span.start_s == pytest.approx(10 - pad, abs=2 / FPS) and span.end_s == pytest.approx(13 + pad, abs=2 / FPS)
    assert span.mean_probability == pytest.approx((3 * 0.6 + 2 * pad * 0.95) / (3 + 2 * pad), abs=0.01)
    # outside the band (0.75 is 0.25 from the threshold) nothing is unsure
    assert review_spans(curve((10, 0.95), (3, 0.75), (7, 0.95)), FPS, 0.5) == []


def test_the_band_is_relative_to_the_threshold_side():
    """A low threshold (the bundled model's is 0.07): quiet no-voice frames at 0.02 are not unsure."""
    quiet = review_spans(curve((10, 0.95), (10, 0.02), (10, 0.95)), FPS, 0.07)
    assert quiet and all("unsure" not in s.reasons for s in quiet)  # only the two boundaries
    near = review_spans(curve((10, 0.005), (3, 0.05), (7, 0.005)), FPS, 0.07)  # 0.05: 29 % of the way to 0
    assert [s.reason for s in near] == ["unsure"] and near[0].duration_s == pytest.approx(3.2, abs=0.05)
    assert relative_distance(np.array([0.07, 0.035, 0.0, 0.535, 1.0]), 0.07) == pytest.approx([0, 0.5, 1, 0.5, 1])


def test_flicker_is_a_brief_crossing_and_outranks_its_boundaries():
    p = curve((10, 0.1), (1, 0.9), (9, 0.1), (10, 0.9))
    spans = spans_in_time_order(review_spans(p, FPS, 0.5))
    flicker = containing(spans, 10, 11)
    assert flicker.reason == "flicker" and "boundary" in flicker.reasons
    onset = containing(spans, 19.9, 20.1)
    assert onset.reason == "boundary"  # a long voice after a long gap is no flicker
    assert len(spans) == 2
    # the silence before the first voice is not a flicker, however short
    assert all(s.reason != "flicker" for s in review_spans(curve((1, 0.1), (20, 0.9)), FPS, 0.5))


def test_disagreement_with_the_ground_truth():
    p = curve((5, 0.05), (10, 0.95), (5, 0.05))
    truth = [(5.0, 12.0)]  # the annotator ends the voice 3 s before the model does
    spans = review_spans(p, FPS, 0.5, truth=truth)
    late = containing(spans, 12, 15)
    assert late.reason == "disagreement"
    assert late.mean_probability > 0.8
    assert containing(spans, 4.9, 5.1).reason == "boundary"
    # agreement leaves only the boundaries
    assert {s.reason for s in review_spans(p, FPS, 0.5, truth=[(5.0, 15.0)])} == {"boundary"}
    # the given predicted regions are what the truth is compared with
    spans = review_spans(p, FPS, 0.5, truth=truth, predicted=[(5.0, 12.0)])
    assert {s.reason for s in spans} == {"boundary"}


def test_confirmed_boundaries_need_no_look():
    p = curve((5, 0.05), (10, 0.95), (5, 0.05))
    assert len(review_spans(p, FPS, 0.5)) == 2
    spans = review_spans(p, FPS, 0.5, confirmed_boundaries_s=[5.02])
    assert len(spans) == 1 and spans[0].start_s > 14
    assert review_spans(p, FPS, 0.5, confirmed_boundaries_s=[5.0, 15.0]) == []


def test_most_unsure_first_and_disjoint():
    p = curve((5, 0.95), (2, 0.65), (5, 0.95), (2, 0.52), (6, 0.95))
    spans = review_spans(p, FPS, 0.5)
    assert [s.reason for s in spans] == ["unsure", "unsure"]
    assert spans[0].unsureness > spans[1].unsureness
    assert spans[0].start_s > 10 > spans[1].start_s  # the 0.52 stretch is the more doubtful one
    assert 0 <= spans[1].unsureness <= spans[0].unsureness <= 1
    ordered = spans_in_time_order(spans)
    assert all(a.end_s <= b.start_s for a, b in zip(ordered, ordered[1:]))
    assert coverage_s(spans) == pytest.approx(sum(s.end_s - s.start_s for s in spans))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="1-D"):
        review_spans(np.zeros((2, 10)), FPS, 0.5)
    with pytest.raises(ValueError, match="threshold"):
        review_spans(np.zeros(10), FPS, 1.5)
    with pytest.raises(ValueError, match="non-finite"):
        review_spans(np.array([0.1, np.nan]), FPS, 0.5)
    with pytest.raises(ValueError, match="band"):
        ReviewConfig(band=-0.1)
    assert review_spans(np.zeros(0), FPS, 0.5) == []


def test_one_hour_is_fast():
    rng = np.random.default_rng(0)
    n = 3600 * 70
    p = 1 / (1 + np.exp(-np.cumsum(rng.normal(0, 0.3, n))))  # a wandering curve: many spans
    truth = [(float(t), float(t) + 20.0) for t in range(0, 3600, 45)]
    review_spans(p, FPS, 0.5, truth=truth)  # warm-up
    start = time.perf_counter()
    spans = review_spans(p, FPS, 0.5, truth=truth)
    elapsed_s = time.perf_counter() - start
    assert spans
    assert elapsed_s < 0.5, f"{elapsed_s:.3f} s for one hour (bench/review_speed.py: goal < 50 ms)"
