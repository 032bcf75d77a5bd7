"""Metrics: hand-computed values on tiny arrays, and scikit-learn where the measures coincide."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from h0.evaluate import metrics


def _random_cases(count: int = 60):
    rng = np.random.default_rng(7)
    for _ in range(count):
        n = int(rng.integers(4, 50))
        y = (rng.random(n) < 0.3).astype(int)
        y[0], y[-1] = 0, 1  # both classes
        scores = np.round(rng.random(n), 1)  # ties on purpose
        yield y, scores


def test_auc_roc_by_hand() -> None:
    # Positives score 0.9 and 0.3; negatives 0.1, 0.2, 0.4, 0.0. Pairs won: 4 + 3 of 8.
    labels = np.array([0, 0, 1, 1, 0, 0])
    scores = np.array([0.1, 0.2, 0.9, 0.3, 0.4, 0.0])
    assert metrics.auc_roc(labels, scores) == pytest.approx(7 / 8)


def test_auc_roc_ties_count_half() -> None:
    # The positive ties with one negative and beats the other: (1 + 0.5) / 2.
    assert metrics.auc_roc(np.array([1, 0, 0]), np.array([0.5, 0.5, 0.1])) == pytest.approx(0.75)


def test_auc_pr_by_hand() -> None:
    # Descending: 0.8 (pos) P=1 R=.5; 0.3 (neg); 0.2 (pos) P=2/3 R=1. AP = .5*1 + .5*2/3.
    labels = np.array([0, 1, 0, 1])
    scores = np.array([0.1, 0.8, 0.3, 0.2])
    assert metrics.auc_pr(labels, scores) == pytest.approx(0.5 + 1 / 3)


def test_point_aucs_match_sklearn() -> None:
    for y, s in _random_cases():
        assert metrics.auc_roc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert metrics.auc_pr(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_zero_buffer_without_existence_is_the_point_measure() -> None:
    for y, s in _random_cases(20):
        assert metrics.range_auc_roc(y, s, 0, existence=False) == pytest.approx(
            roc_auc_score(y, s), abs=1e-12
        )
        assert metrics.vus_roc(y, s, max_buffer=0, existence=False) == pytest.approx(
            roc_auc_score(y, s), abs=1e-12
        )
        assert metrics.vus_pr(y, s, max_buffer=0, existence=False) == pytest.approx(
            average_precision_score(y, s), abs=1e-12
        )


def test_vus_with_zero_max_buffer_is_range_auc_at_zero() -> None:
    for y, s in _random_cases(20):
        assert metrics.vus_roc(y, s, max_buffer=0) == metrics.range_auc_roc(y, s, 0)
        assert metrics.vus_pr(y, s, max_buffer=0) == metrics.range_auc_pr(y, s, 0)


def test_soft_labels_by_hand() -> None:
    # buffer 2: distance 1 -> sqrt(1 - 1/3), distance 2 -> sqrt(1 - 2/3); overlaps take the max.
    got = metrics.soft_labels(np.array([0, 0, 1, 0, 0, 1, 0]), 2)
    a, b = math.sqrt(2 / 3), math.sqrt(1 / 3)
    np.testing.assert_allclose(got, [b, a, 1, a, a, 1, a])


def test_range_auc_with_buffer_by_hand() -> None:
    # labels [0,0,1,0,0], buffer 1: soft = [0, r, 1, r, 0], r = sqrt(1/2).
    # P = (1 + (1 + 2r)) / 2 = 1 + r, N = 5 - P.  Scores [0.2, 0.6, 0.5, 0.1, 0.0].
    # thr 0.6 (row 1): TP = r -> TPR t = r / P, FP = 1 - r -> FPR f = (1 - r) / N.
    # thr 0.5 (row 2): TP = 1 + r = P -> TPR 1, FPR still f; lower thresholds keep TPR 1.
    # ROC area = f * t / 2 + (1 - f).  PR (step-wise): t * r + (1 - t) * (1 + r) / 2.
    labels = np.array([0, 0, 1, 0, 0])
    scores = np.array([0.2, 0.6, 0.5, 0.1, 0.0])
    r = math.sqrt(0.5)
    positives = 1 + r
    t, f = r / positives, (1 - r) / (5 - positives)
    roc = f * t / 2 + (1 - f)
    pr = t * r + (1 - t) * (1 + r) / 2
    for existence in (False, True):  # one range, found from the first threshold on
        assert metrics.range_auc_roc(labels, scores, 1, existence) == pytest.approx(roc)
        assert metrics.range_auc_pr(labels, scores, 1, existence) == pytest.approx(pr)
    # Point AUC: the positive (0.5) beats 3 of 4 negatives. VUS over l = 0, 1 is the mean.
    assert metrics.vus_roc(labels, scores, max_buffer=1) == pytest.approx((0.75 + roc) / 2)
    # Point AP: 0.6 (neg) then 0.5 (pos): precision 1/2 at recall 1.
    assert metrics.vus_pr(labels, scores, max_buffer=1) == pytest.approx((0.5 + pr) / 2)


def test_existence_reward_by_hand() -> None:
    # Ranges {0} and {5}. Descending: 0.9 (range 1), 0.5 (neg), 0.1 (range 2), 0 (rest).
    # With existence the TPR is halved while only one of two ranges is found:
    # (0,0) -> (0,.25) -> (.25,.25) -> (.25,1) -> (1,1): area .25*.25 + .75 = .8125.
    # Without it: (0,.5) -> (.25,.5) -> (.25,1) -> (1,1): area .125 + .75 = .875.
    labels = np.array([1, 0, 0, 0, 0, 1])
    scores = np.array([0.9, 0.5, 0.0, 0.0, 0.0, 0.1])
    assert metrics.range_auc_roc(labels, scores, 0, existence=True) == pytest.approx(0.8125)
    assert metrics.range_auc_roc(labels, scores, 0, existence=False) == pytest.approx(0.875)


def test_point_f1_matches_sklearn() -> None:
    for y, s in _random_cases(30):
        for threshold in (0.0, 0.35, 0.7, 1.1):
            expected = f1_score(y, s >= threshold, zero_division=0.0)
            assert metrics.point_f1(y, s, threshold) == pytest.approx(expected)


def test_range_prf_flat_by_hand() -> None:
    # Real range [1,4]; predicted [2,3] (inside) and [6,6] (outside).
    # Recall: 2 of 4 positions covered -> 0.5. Precision: mean(1, 0) = 0.5. F1 = 0.5.
    # alpha = 0.5: recall = 0.5 * existence 1 + 0.5 * 0.5 = 0.75; F1 = 2*.5*.75/1.25 = 0.6.
    labels = np.array([0, 1, 1, 1, 1, 0, 0, 0])
    preds = np.array([0, 0, 1, 1, 0, 0, 1, 0])
    assert metrics.range_precision_recall_f1(labels, preds) == pytest.approx((0.5, 0.5, 0.5))
    got = metrics.range_precision_recall_f1(labels, preds, alpha=0.5)
    assert got == pytest.approx((0.5, 0.75, 0.6))


@pytest.mark.parametrize(
    ("bias", "recall"),
    [
        ("flat", 2 / 4),  # delta = 1,1,1,1; covered positions 1,2
        ("front", 7 / 10),  # delta = 4,3,2,1 -> (4 + 3) / 10
        ("back", 3 / 10),  # delta = 1,2,3,4 -> (1 + 2) / 10
        ("middle", 3 / 6),  # delta = 1,2,2,1 -> (1 + 2) / 6
    ],
)
def test_range_recall_positional_bias_by_hand(bias: str, recall: float) -> None:
    labels = np.array([0, 1, 1, 1, 1, 0])
    preds = np.array([0, 1, 1, 0, 0, 0])  # covers the first two positions of the range
    got = metrics.range_precision_recall_f1(labels, preds, bias=bias)
    assert got.recall == pytest.approx(recall)
    assert got.precision == pytest.approx(1.0)  # the prediction lies wholly inside


def test_range_cardinality_by_hand() -> None:
    # Real range [1,5] (L=5) hit by two predictions [1,1] and [3,3]: omega = 2/5.
    # "one": recall 0.4; "reciprocal": gamma = 1/2 -> 0.2. Each prediction is inside -> P = 1.
    labels = np.array([0, 1, 1, 1, 1, 1, 0])
    preds = np.array([0, 1, 0, 1, 0, 0, 0])
    one = metrics.range_precision_recall_f1(labels, preds, cardinality="one")
    rec = metrics.range_precision_recall_f1(labels, preds, cardinality="reciprocal")
    assert (one.precision, one.recall) == pytest.approx((1.0, 0.4))
    assert (rec.precision, rec.recall) == pytest.approx((1.0, 0.2))


def test_range_prf_equals_point_prf_for_isolated_points() -> None:
    labels = np.array([1, 0, 1, 0, 0, 1, 0, 1, 0, 0])
    preds = np.array([1, 0, 0, 0, 1, 0, 0, 1, 0, 1])
    # Point: TP 2, FP 2, FN 2 -> P = R = 0.5.
    assert metrics.range_precision_recall_f1(labels, preds) == pytest.approx((0.5, 0.5, 0.5))


def test_range_prf_without_predictions() -> None:
    got = metrics.range_precision_recall_f1(np.array([0, 1, 1, 0]), np.zeros(4, dtype=int))
    assert got == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.auc_roc(np.zeros(4), np.arange(4.0)), "both 0 and 1"),
        (lambda: metrics.auc_roc(np.array([0, 1]), np.arange(3.0)), r"shape \(2,\)"),
        (lambda: metrics.auc_pr(np.array([0, 2]), np.arange(2.0)), "0 or 1, got 2 at index 1"),
        (lambda: metrics.auc_roc(np.array([0, 1]), np.array([0.0, np.nan])), "finite"),
        (lambda: metrics.vus_roc(np.array([0, 1]), np.arange(2.0), -1), "max_buffer"),
        (lambda: metrics.range_precision_recall_f1(np.zeros(3), np.ones(3)), "no anomaly"),
        (
            lambda: metrics.range_precision_recall_f1(np.ones(3), np.ones(3), bias="end"),
            "bias must be",
        ),
    ],
)
def test_invalid_inputs_raise(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
