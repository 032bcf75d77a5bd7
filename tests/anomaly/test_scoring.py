"""Scoring stages against brute-force references written from their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from h0.anomaly._scoring import (
    ScoringConfig,
    ScoringState,
    StageStream,
    alarms,
    gaussian_surprise,
    likelihood_surprise,
    log_chi2_sf,
    onset_filter,
    range_flags,
    run_stages,
)


def surprise_of(p):
    # L = -log10(p) decades, squashed as L / (L + 10): p = 1e-10 gives 1/2.
    decades = -np.log10(p)
    return decades / (decades + 10.0)


def test_surprise_scale_by_hand():
    history = np.random.default_rng(0).normal(size=(2000, 2))
    got, _ = gaussian_surprise(history, np.array([[0.0, 0.0]]), 4000)
    assert 0 <= got[0] < 0.01  # the centre is ordinary
    # Extreme points stay ordered (no ceiling) and below 1, where the range rule's 1 sits.
    far = np.array([[30.0, 0.0], [60.0, 0.0], [90.0, 0.0]])
    far, _ = gaussian_surprise(history, far, 4000)
    assert far[0] < far[1] < far[2] < 1.0


def test_log_chi2_sf_far_tail_by_hand():
    # Two dimensions: P(chi2 > d2) = exp(-d2 / 2). Four: exp(-x) (1 + x) with x = d2 / 2.
    d2 = np.array([1.0, 50.0, 2000.0, 20000.0])
    np.testing.assert_allclose(log_chi2_sf(d2, 2), -d2 / 2, rtol=1e-6)
    x = d2 / 2
    np.testing.assert_allclose(log_chi2_sf(d2, 4), -x + np.log1p(x), rtol=1e-6)
    np.testing.assert_allclose(log_chi2_sf(np.array([3.0, 30.0]), 1), stats.chi2.logsf([3, 30], 1))


def test_onset_filter_brute_force():
    rng = np.random.default_rng(2)
    history, scores = rng.uniform(size=6), rng.uniform(size=40)
    got, tail = onset_filter(history, scores, onset_window=5)
    everything = np.concatenate([history, scores])
    for i in range(40):
        k = 6 + i
        want = scores[i] if scores[i] > everything[k - 5 : k].max() else 0.0
        assert got[i] == want
    np.testing.assert_array_equal(tail, everything[-5:])
    # With no history, the first score has nothing to beat.
    first, _ = onset_filter(np.zeros(0), np.array([0.3, 0.2, 0.4]), onset_window=5)
    assert first.tolist() == [0.3, 0.0, 0.4]


def test_gaussian_surprise_matches_trailing_fit():
    rng = np.random.default_rng(0)
    history = rng.normal(size=(30, 2)) @ np.array([[1.0, 0.5], [0.0, 0.3]])
    feats = rng.normal(size=(15, 2))
    got, new_history = gaussian_surprise(history, feats, stats_window=20)
    everything = np.concatenate([history, feats])
    for i in range(15):
        past = everything[30 + i - 20 : 30 + i]
        mean, cov = past.mean(axis=0), np.cov(past.T)
        cov = cov + (1e-6 * np.trace(cov) / 2 + 1e-12) * np.eye(2)
        d2 = (feats[i] - mean) @ np.linalg.solve(cov, feats[i] - mean)
        np.testing.assert_allclose(got[i], surprise_of(stats.chi2.sf(d2, 2)), rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(new_history, everything[-20:])


def test_likelihood_matches_definition():
    cfg = ScoringConfig(long_window=12, short_window=3, min_history=5, sigma_floor=1e-3)
    rng = np.random.default_rng(1)
    history = rng.uniform(size=4)
    values = np.concatenate([rng.uniform(size=20) * 0.2, [0.9, 0.95, 1.0]])
    got, _ = likelihood_surprise(history, values, cfg)
    everything = np.concatenate([history, values])
    for i in range(values.size):
        k = 4 + i  # index of values[i]
        long = everything[max(0, k - 11) : k + 1]
        short = everything[max(0, k - 2) : k + 1]
        if k + 1 < cfg.min_history:
            want = surprise_of(0.5)
        else:
            z = (short.mean() - long.mean()) / max(long.std(), 1e-3)
            want = surprise_of(stats.norm.sf(z))
        np.testing.assert_allclose(got[i], want, rtol=1e-7, atol=1e-9)
    assert got[-1] > 3 * np.median(got[5:-3])  # the jump at the end is unusual


def test_range_rule_by_hand():
    cfg = ScoringConfig(range_margin=0.1, range_warmup=3)
    x = np.array([[5.0, 0], [7, 0], [6, 1], [7.3, 0.5], [4.7, 0], [9, 0], [3, 0]])
    flags, lo, hi = range_flags(np.array([np.inf, np.inf]), np.array([-np.inf, -np.inf]), 0, x, cfg)
    # Rows 0-2 are the warm-up. Row 3: range [5, 7], margin 0.2, 7.3 > 7.2. Row 4: range
    # [5, 7.3], margin 0.23, 4.7 < 4.77. Row 5: range [4.7, 7.3], margin 0.26, 9 > 7.56.
    # Row 6: range [4.7, 9], margin 0.43, 3 < 4.27. The second channel never leaves [0, 1].
    assert flags.tolist() == [False, False, False, True, True, True, True]
    np.testing.assert_array_equal(lo, [3, 0])
    np.testing.assert_array_equal(hi, [9, 1])


def test_alarms_refractory_and_carry_over():
    s = np.array([0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9])
    assert alarms(s, 0.5, 0).astype(int).tolist() == [1, 1, 0, 1, 1, 1, 1]
    assert alarms(s, 0.5, 2).astype(int).tolist() == [1, 0, 0, 1, 0, 0, 1]
    # the last alarm one point before index 0: indices 0 and 1 are still refractory
    assert alarms(s, 0.5, 2, since=1).astype(int).tolist() == [0, 0, 0, 1, 0, 0, 1]


CONFIGS = [
    ScoringConfig(stats_window=40, long_window=30, short_window=4, min_history=10, range_warmup=5),
    ScoringConfig(normalize=False, long_window=30, short_window=4, min_history=10),
    ScoringConfig(likelihood=False, stats_window=25, range_rule=False),
    ScoringConfig(normalize=False, likelihood=False, range_rule=True, range_warmup=1),
    ScoringConfig(stats_window=30, onset_window=7, range_warmup=5),
    ScoringConfig(likelihood=True, long_window=30, min_history=10, onset_window=3),
    ScoringConfig(onset=False, likelihood=True, long_window=30, min_history=10),
]


def series(n=120, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 2)) * 0.1
    feats[70:73] += 2.0
    values = np.cumsum(rng.normal(size=(n, 1)), axis=0)
    values[90] += 50
    feats[:3] = np.nan  # no full window yet
    return feats, values


@pytest.mark.parametrize("cfg", CONFIGS)
def test_split_batches_equal_one_batch_and_stream(cfg):
    feats, values = series()
    state = ScoringState.initial(np.random.default_rng(3).normal(size=(30, 2)) * 0.1, channels=1)
    whole, end = run_stages(state, feats, values, cfg)
    first, mid = run_stages(state, feats[:50], values[:50], cfg)
    second, end2 = run_stages(mid, feats[50:], values[50:], cfg)
    np.testing.assert_allclose(np.concatenate([first, second]), whole, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(end.features, end2.features)
    np.testing.assert_allclose(end.surprises, end2.surprises)
    np.testing.assert_allclose(end.recent, end2.recent)
    stream = StageStream(state, cfg)
    one = [
        stream.update(None if np.isnan(f).any() else f, v)
        for f, v in zip(feats, values, strict=True)
    ]
    np.testing.assert_allclose(one, whole, rtol=1e-7, atol=1e-9)
    assert (whole[:3] == 0).all() or cfg.range_rule
    assert np.argmax(whole[60:]) + 60 in (70, 71, 72, 73, 90)


def test_state_not_modified():
    feats, values = series()
    state = ScoringState.initial(np.zeros((5, 2)), channels=1)
    run_stages(state, feats, values, ScoringConfig())
    assert state.features.shape == (5, 2) and state.seen == 0
