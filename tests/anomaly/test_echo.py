"""The echo rule (``echo_keep``): a window RMS error that only echoes an earlier point's score.

After one extreme point every window that still holds it has a large RMS error, so without the
rule the points after a spike score as high as the spike. With ``echo_keep < 1`` the window RMS
test at ``t``, where it does not exceed the point-level score of one of the window's earlier
points, is scaled by ``echo_keep``. Checked against a plain Python loop over the points,
on a detector (batch, stream, ``with_scoring``, adaptation, a checkpoint), and as a setting.
"""

from __future__ import annotations

import numpy as np
import pytest

from h0.anomaly import DetectorConfig, GRUAutoencoderDetector
from h0.anomaly._config import ConfigError
from h0.anomaly._scoring import (
    Echo,
    feature_decades,
    fit_calibration,
    score_features,
    sidak,
)

from . import STREAM_RTOL

#: Robust history off: it removes the echo at its source, and these tests are about the echo.
SMALL = dict(window=8, hidden=8, epochs=3, batch_size=16, seed=2, robust_history=False)


def series(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return np.sin(np.arange(n) / 4) + 0.05 * rng.normal(size=n)


def loop_reference(decades, point_level, echoing, keep, window, before):
    """The rule written point by point: decades [N, F, C] of modelled channels -> scores [N]."""
    n, f, c = decades.shape
    history = list(before)
    out = []
    for t in range(n):
        d = decades[t].copy()
        prior = max(history[-(window - 1) :], default=0.0) if window > 1 else 0.0
        for j in range(f):
            for ch in range(c):
                if echoing[j] and d[j, ch] <= prior:
                    d[j, ch] *= keep
        out.append(float(sidak(np.array([d.max()]), f * c)[0]))
        own = decades[t][point_level].max()
        history.append(float(sidak(np.array([own]), int(point_level.sum()) * c)[0]))
    return np.array(out)


@pytest.mark.parametrize("keep", [0.0, 0.5])
@pytest.mark.parametrize("before", [[], [7.0, 0.1]])
def test_echo_rule_matches_a_point_by_point_loop(keep, before):
    rng = np.random.default_rng(3)
    cal = fit_calibration(
        rng.normal(size=(3000, 4, 2)), rng.normal(size=(3000, 2)), tail_quantile=0.95
    )
    features = rng.normal(size=(120, 4, 2))
    features[[10, 50, 51]] *= 6.0  # a few large errors, whose windows then echo them
    features[11:20, 1] = 5.0  # window-level evidence just after a point
    features[11:20, 3] = 5.0  # and a window-level test the rule leaves alone (the spread)
    point = np.array([True, False, True, False])  # newest point, window, forecast, spread
    echoing = np.array([False, True, False, False])
    rule = Echo(keep, 5, point, echoing, np.array(before))
    got, _ = score_features(cal, features, np.zeros((120, 2)), echo=rule)
    want = loop_reference(feature_decades(cal, features), point, echoing, keep, 5, before)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.all(got[11:20] >= sidak(feature_decades(cal, features)[11:20, 3].max(axis=1), 8))


def test_keep_one_is_the_plain_score():
    rng = np.random.default_rng(0)
    cal = fit_calibration(rng.normal(size=(500, 2, 1)), np.zeros((500, 1)), tail_quantile=0.95)
    f = rng.normal(size=(50, 2, 1)) * 4
    plain, _ = score_features(cal, f, np.zeros((50, 1)))
    rule = Echo(1.0, 8, np.array([True, False]), np.array([False, True]))
    same, _ = score_features(cal, f, np.zeros((50, 1)), echo=rule)
    np.testing.assert_array_equal(plain, same)


@pytest.fixture(scope="module")
def spiked():
    x = series()
    test = x[300:].copy()
    test[40] += 4.0
    return x, test


def test_a_spike_keeps_its_score_and_its_echo_is_dropped(spiked):
    x, test = spiked
    # Without the spread feature, whose own echo (the spike widens each window's spread) the
    # rule leaves alone, the window RMS error is the only window-level test.
    plain = GRUAutoencoderDetector(**SMALL, spread_error=False).fit(x[:300])
    echo = plain.with_scoring(echo_keep=0.0)
    s_plain, s_echo = plain.score(test), echo.score(test)
    assert s_echo[40] == pytest.approx(s_plain[40])  # no earlier point explains the spike
    # Windows of 8 that still hold the spike (point 41's own forecast, made from a state that
    # read the spike, is point-level: the rule leaves it).
    after = slice(42, 48)
    assert s_plain[after].min() > plain.threshold_  # the echo, without the rule
    assert np.all(s_echo[after] < s_plain[after])
    assert echo.predict(test)[after].sum() < plain.predict(test)[after].sum()


def test_with_scoring_equals_fitting_with_the_setting(spiked):
    x, test = spiked
    fitted = GRUAutoencoderDetector(**SMALL, echo_keep=0.5).fit(x[:300])
    rescored = GRUAutoencoderDetector(**SMALL).fit(x[:300]).with_scoring(echo_keep=0.5)
    np.testing.assert_array_equal(fitted.score(test), rescored.score(test))
    np.testing.assert_array_equal(fitted.decision_scores_, rescored.decision_scores_)
    assert fitted.threshold_ == rescored.threshold_


def test_stream_equals_batch_with_the_echo_rule(spiked):
    x, test = spiked
    det = GRUAutoencoderDetector(**SMALL, echo_keep=0.0).fit(x[:300])
    stream = det.stream()
    streamed = np.array([stream.update(v) for v in test])
    np.testing.assert_allclose(streamed, det.score(test), rtol=STREAM_RTOL, atol=1e-6)


def test_adaptation_without_steps_equals_plain_scoring_with_the_echo_rule(spiked):
    x, test = spiked
    det = GRUAutoencoderDetector(**SMALL, echo_keep=0.0).fit(x[:300])
    adapting = GRUAutoencoderDetector(**SMALL, echo_keep=0.0, adapt_every=25, adapt_steps=0)
    adapting.fit(x[:300])
    np.testing.assert_allclose(adapting.score(test), det.score(test), rtol=STREAM_RTOL, atol=1e-6)


def test_the_setting_survives_a_checkpoint(spiked, tmp_path):
    x, test = spiked
    det = GRUAutoencoderDetector(**SMALL, echo_keep=0.25).fit(x[:300])
    back = GRUAutoencoderDetector.load(det.save(tmp_path / "model"))
    assert back.echo_keep == 0.25
    np.testing.assert_allclose(back.score(test), det.score(test), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_echo_keep_is_checked(bad):
    with pytest.raises(ConfigError, match="echo_keep must lie in \\[0, 1\\]"):
        DetectorConfig.from_flat(echo_keep=bad)


def test_the_bench_harness_scores_with_the_echo_rule(spiked):
    from h0.evaluate import _bench

    x, test = spiked
    labels = np.zeros(len(test), np.int8)
    labels[40] = 1
    ds = _bench._devdata.Dataset(
        "toy/spike", "toy", "dev", x[:300, None], test[:, None], labels, "prefix"
    )
    # Without the spread feature, as above: the window RMS is the only window-level test.
    settings = {k: v for k, v in SMALL.items() if k != "seed"} | {"spread_error": False}
    rows = {
        keep: _bench.evaluate(
            ds, _bench.make_detector("h0", 2, h0_options={**settings, "echo_keep": keep})
        )
        for keep in (1.0, 0.0)
    }
    direct = GRUAutoencoderDetector(**settings, seed=2, echo_keep=0.0).fit(x[:300]).score(test)
    np.testing.assert_allclose(rows[0.0]["scores"], direct, rtol=1e-6, atol=1e-6)
    assert rows[0.0]["point_f1"] > rows[1.0]["point_f1"]
