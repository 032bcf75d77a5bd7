"""Baseline detectors: hand-computed values, causality, and that they find an obvious spike."""

from __future__ import annotations

import math

import numpy as np
import pytest

from h0.evaluate import baselines

DETECTORS = [
    baselines.RandomDetector(seed=3),
    baselines.RollingZScore(window=10),
    baselines.IsolationForestDetector(window=4, n_estimators=50),
    baselines.PCADetector(window=8, n_components=3),
]


def _series(n: int = 240, channels: int | None = None) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(n)
    x = np.sin(t / 4.0) + 0.05 * rng.standard_normal(n)
    if channels:
        x = np.stack([x, np.cos(t / 6.0) + 0.05 * rng.standard_normal(n)][:channels], axis=1)
    return x


def test_sliding_windows_by_hand() -> None:
    x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    # Row t holds x[t-1], x[t] (time-major), the first padded with x[0].
    assert baselines.sliding_windows(x, 2).tolist() == [
        [1.0, 10.0, 1.0, 10.0],
        [1.0, 10.0, 2.0, 20.0],
        [2.0, 20.0, 3.0, 30.0],
    ]


def test_rolling_zscore_by_hand() -> None:
    # window 3. t=0: no past -> 0. t=1: one past value (< min_periods 2) -> 0.
    # t=2: past [1, 2], mean 1.5, std 0.5 -> |3 - 1.5| / 0.5 = 3.
    # t=3: past [1, 2, 3], mean 2, std sqrt(2/3) -> 8 / sqrt(2/3).
    # t=4: past [2, 3, 10], mean 5, std sqrt(38/3) -> |4 - 5| / sqrt(38/3).
    x = np.array([1.0, 2.0, 3.0, 10.0, 4.0])
    got = baselines.RollingZScore(window=3).score(x, train_end=1)
    expected = [0.0, 0.0, 3.0, 8 / math.sqrt(2 / 3), 1 / math.sqrt(38 / 3)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_rolling_zscore_takes_the_worst_channel() -> None:
    x = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 1.0], [2.0, 9.0]])
    got = baselines.RollingZScore(window=3).score(x, train_end=1)
    # t=3: channel 0 past [1,3,2] mean 2 -> 0; channel 1 past [0,0,1] mean 1/3,
    # std sqrt(2)/3 -> (9 - 1/3) / (sqrt(2)/3).
    assert got[3] == pytest.approx((9 - 1 / 3) / (math.sqrt(2) / 3))


def test_random_detector_is_seeded() -> None:
    a = baselines.RandomDetector(seed=5).score(np.zeros(100), 10)
    b = baselines.RandomDetector(seed=5).score(np.ones(100), 10)
    c = baselines.RandomDetector(seed=6).score(np.zeros(100), 10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0.0
    assert a.max() < 1.0


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: type(d).__name__)
@pytest.mark.parametrize("channels", [None, 2])
def test_causal(detector: baselines.Detector, channels: int | None) -> None:
    x = _series(channels=channels)
    train_end, cut = 120, 170
    full = detector.score(x, train_end)
    changed = x.copy()
    changed[cut:] += 100.0  # the future changes; the past scores must not
    np.testing.assert_allclose(detector.score(changed, train_end)[:cut], full[:cut])
    np.testing.assert_allclose(detector.score(x[:cut], train_end), full[:cut])
    assert full.shape == (len(x),)
    assert isinstance(detector, baselines.Detector)


@pytest.mark.parametrize("detector", DETECTORS[1:], ids=lambda d: type(d).__name__)
def test_finds_a_spike(detector: baselines.Detector) -> None:
    x = _series()
    x[200] += 3.0
    scores = detector.score(x, train_end=120)
    window = getattr(detector, "window", 1)
    # The highest score after training is on a window holding the spike: ending in [200, 200+w).
    assert 200 <= int(np.argmax(scores[120:])) + 120 < 200 + window
    if not isinstance(detector, baselines.IsolationForestDetector):  # its scores saturate
        assert scores[200:208].max() > 2 * np.quantile(scores[120:200], 0.99)


def test_pca_on_constant_training_data() -> None:
    # Training windows are all zeros (standardised constant): the score is the mean squared
    # distance of the window to zero. x = [2]*4 + [3]: the training std is 0 so no scaling;
    # standardised values [0, 0, 0, 0, 1]; window 2 ending at t=4 is [0, 1] -> (0 + 1) / 2.
    got = baselines.PCADetector(window=2).score(np.array([2.0, 2.0, 2.0, 2.0, 3.0]), 4)
    np.testing.assert_allclose(got, [0.0, 0.0, 0.0, 0.0, 0.5])


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: type(d).__name__)
def test_invalid_inputs(detector: baselines.Detector) -> None:
    with pytest.raises(ValueError, match="train_end must be in"):
        detector.score(np.zeros(10), 11)
    bad = np.zeros(10)
    bad[4] = np.nan
    with pytest.raises(ValueError, match="row 4"):
        detector.score(bad, 5)
