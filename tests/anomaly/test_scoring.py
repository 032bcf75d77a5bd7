"""The dense score against hand computations and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from h0.anomaly._scoring import (
    RANGE_DECADES,
    SCALE_FLOOR,
    feature_decades,
    fit_calibration,
    magnitudes,
    score_features,
    sidak,
)


def channel_decades(cal, features):
    return feature_decades(cal, features)[:, 0]


def test_robust_center_and_scale_by_hand():
    feats = np.array([1.0, 2.0, 3.0, 4.0, 100.0])[:, None, None]
    cal = fit_calibration(feats, np.zeros((5, 1)) + np.arange(5)[:, None], tail_quantile=0.8)
    assert cal.center[0, 0] == 3.0
    # |x - 3| = 2, 1, 0, 1, 97 -> MAD 1 -> scale 1.4826
    assert cal.scale[0, 0] == pytest.approx(1.4826)


def test_magnitude_is_the_larger_of_signed_and_rms_excess():
    center = np.array([[0.0], [1.0]])
    scale = np.array([[1.0], [0.5]])
    f = np.array([[[-2.0], [1.5]], [[0.5], [3.0]], [[0.0], [0.0]]])
    got = magnitudes(f, center, scale)[:, :, 0]
    assert got.tolist() == [[2.0, 1.0], [0.5, 4.0], [0.0, 0.0]]  # rms below its median: no excess


def test_body_is_the_empirical_survival_function():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(999, 1, 1))
    cal = fit_calibration(feats, rng.normal(size=(999, 1)), tail_quantile=0.99)
    ref = np.sort(magnitudes(feats, cal.center, cal.scale)[:, 0, 0])
    for i in (10, 300, 800):  # at a calibration point: P(A > a) = (n - i) / (n + 1)
        got = channel_decades(cal, (ref[i] * cal.scale + cal.center)[None])[0, 0]
        assert got == pytest.approx(-math.log10((999 - i) / 1000), rel=1e-9)


def test_tail_is_exponential_beyond_the_tail_quantile():
    rng = np.random.default_rng(1)
    feats = rng.exponential(size=(4000, 1, 1))
    cal = fit_calibration(feats, rng.normal(size=(4000, 1)), tail_quantile=0.9)
    a = magnitudes(feats, cal.center, cal.scale)[:, 0, 0]
    start = np.quantile(a, 0.9)
    beta = (a[a > start] - start).mean()
    mass = (a > start).mean()
    for extra in (0.5, 3.0, 40.0):
        x = start + extra
        want = -(math.log(mass) - extra / beta) / math.log(10)
        got = channel_decades(cal, (x * cal.scale + cal.center)[None])[0, 0]
        assert got == pytest.approx(want, rel=1e-9)
    # strictly increasing far into the tail, and finite however large
    far = channel_decades(cal, np.array([[[1e6]], [[1e12]], [[1e300]]]))[:, 0]
    assert np.all(np.diff(far) > 0) and np.isfinite(far).all()


def test_sidak_combination_by_hand():
    p = np.array([1e-3, 0.5, 0.2])
    best = (-np.log10(p)).max(keepdims=True)
    want = -math.log10(1 - (1 - 1e-3) ** 3)
    assert sidak(best, 3)[0] == pytest.approx(want, rel=1e-9)
    # far tail: K * p
    assert sidak(np.array([20.0]), 2)[0] == pytest.approx(20 - math.log10(2), rel=1e-12)
    # two features of two channels: four tests
    rng = np.random.default_rng(0)
    cal = fit_calibration(
        rng.normal(size=(400, 2, 2)), rng.normal(size=(400, 2)), tail_quantile=0.95
    )
    f = rng.normal(size=(5, 2, 2))
    scores, channels = score_features(cal, f, np.zeros((5, 2)))
    d = feature_decades(cal, f)
    np.testing.assert_allclose(scores, sidak(d.max(axis=(1, 2)), 4))
    np.testing.assert_allclose(channels[:, 1], sidak(d[:, :, 1].max(axis=1), 2))


def test_constant_training_channel_is_not_scored_unless_all_are():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(500, 1, 2))
    values = np.c_[rng.normal(size=500), np.full(500, 3.0)]
    cal = fit_calibration(feats, values, tail_quantile=0.95)
    assert cal.modelled.tolist() == [True, False]
    test = np.array([[[0.0, 50.0]]])
    scores, channels = score_features(cal, test, np.array([[0.0, 4.0]]))
    assert channels[0, 1] == 0.0 and scores[0] < 1.0
    alone = fit_calibration(feats[:, :, 1:], values[:, 1:], tail_quantile=0.95)
    assert alone.modelled.tolist() == [True]


def test_range_rule_lifts_values_outside_the_training_range():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(500, 1, 1))
    values = rng.uniform(0, 10, size=(500, 1))
    cal = fit_calibration(feats, values, tail_quantile=0.95)
    zero = np.zeros((3, 1, 1))
    inside, _ = score_features(cal, zero, np.array([[5.0], [10.2], [11.0]]), range_rule=True)
    assert inside[0] < 1 and inside[1] < 1  # within 5% of the range
    assert inside[2] >= RANGE_DECADES


def test_nan_rows_score_zero_and_scale_is_floored():
    feats = np.zeros((50, 1, 1))
    cal = fit_calibration(feats, np.arange(50.0)[:, None], tail_quantile=0.95)
    assert cal.scale[0, 0] == SCALE_FLOOR
    scores, _ = score_features(cal, np.array([[[np.nan]], [[0.0]], [[1.0]]]), np.zeros((3, 1)))
    assert scores[0] == 0.0 and scores[2] > scores[1]
