"""``calibration_cutoff``: an anomaly in the training part does not set the score's scale.

Without it, one spike in the latest training points (the calibration part) sits in the error
model's tail: the window errors of every window that holds it become the tail's start, the
exponential tail stretches to reach it, and the 0.9999 quantile of the calibration scores, which
sets the threshold, is the spike's own score. Later anomalies of ordinary size then score about
two decades and are never flagged (``benchmarks/contaminated_training.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from h0.anomaly import GRUAutoencoderDetector
from h0.anomaly._scoring import clean_rows, split_features

from . import STREAM_RTOL

SMALL = dict(window=8, hidden=8, epochs=3, batch_size=32, seed=0)
SPIKES = (100, 300, 500)


def series(spike: float, n: int = 1500, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = np.sin(2 * np.pi * np.arange(n + 600) / 30) + 0.05 * rng.normal(size=n + 600)
    x[n - 100] += spike  # inside the latest 20% of the training part
    test = x[n:].copy()
    for p in SPIKES:
        test[p] += 0.6
    return x[:n], test


@pytest.fixture(scope="module")
def contaminated():
    train, test = series(30.0)
    det = GRUAutoencoderDetector(**SMALL).fit(train)
    return det, det.with_scoring(calibration_cutoff=4.0), test


def test_clean_rows_matches_a_loop():
    rng = np.random.default_rng(0)
    scores = rng.exponential(size=300)
    for span in (1, 3, 8):
        want = np.array([not any(scores[max(0, t - span + 1) : t + 1] >= 3.0) for t in range(300)])
        np.testing.assert_array_equal(clean_rows(scores, 3.0, span), want)


def test_one_training_spike_no_longer_hides_later_anomalies(contaminated):
    plain, robust, test = contaminated
    assert plain.threshold_ > 6  # the training spike's own score (6.9)
    assert not plain.predict(test)[list(SPIKES)].any()
    assert robust.threshold_ == pytest.approx(4.0)  # the default rule's floor
    assert robust.predict(test)[list(SPIKES)].all()
    assert (robust.score(test)[list(SPIKES)] > 3 * plain.score(test)[list(SPIKES)]).all()


def test_the_calibration_is_the_one_fitted_on_the_rows_kept(contaminated):
    from h0.anomaly._scoring import fit_calibration

    _, robust, _ = contaminated
    keep = robust.calibration_kept_[0]
    span = robust.config.model.span
    assert (~keep).sum() == span  # the spike's window and the span - 1 after it
    features = robust._select(robust._train_features[0])[robust.window - 1 :]
    rows = features[-robust._held_out[0] :]
    want = fit_calibration(
        split_features(rows[keep], 1),
        robust._train_values[0],
        tail_quantile=robust.tail_quantile,
        one_sided=robust._one_sided(),
    )
    np.testing.assert_array_equal(robust.calibrations_[0].tail_scale, want.tail_scale)
    np.testing.assert_array_equal(robust.calibrations_[0].reference, want.reference)


def test_clean_training_is_scored_exactly_as_without_it():
    train, test = series(0.0)
    plain = GRUAutoencoderDetector(**SMALL).fit(train)
    robust = plain.with_scoring(calibration_cutoff=4.0)
    assert robust.calibration_kept_[0].all()
    np.testing.assert_array_equal(robust.score(test), plain.score(test))
    assert robust.threshold_ == plain.threshold_


def test_a_given_contamination_counts_every_training_point(contaminated):
    _, robust, _ = contaminated
    det = robust.with_scoring(contamination=0.002)
    held = det._held_out[0]
    want = max(float(np.quantile(det.series_decision_scores_[0][-held:], 0.998)), -np.log10(0.002))
    assert det.threshold_ == pytest.approx(want)


def test_fit_stream_and_checkpoint_agree(contaminated, tmp_path):
    _, robust, test = contaminated
    train, _ = series(30.0)
    fitted = GRUAutoencoderDetector(**SMALL, calibration_cutoff=4.0).fit(train)
    np.testing.assert_allclose(fitted.score(test), robust.score(test), rtol=1e-6, atol=1e-9)
    back = GRUAutoencoderDetector.load(fitted.save(tmp_path / "m"))
    np.testing.assert_array_equal(back.score(test), fitted.score(test))
    stream = fitted.stream()
    streamed = [stream.update(v) for v in test[:200]]
    np.testing.assert_allclose(streamed, fitted.score(test[:200]), rtol=STREAM_RTOL, atol=1e-6)


@pytest.mark.parametrize("bad", [0.5, -1.0, float("nan"), float("inf")])
def test_the_cutoff_is_checked(bad):
    from h0.anomaly import DetectorConfig
    from h0.anomaly._config import ConfigError

    with pytest.raises(ConfigError, match=r"calibration_cutoff must lie in \[1, 1e\+06\)"):
        DetectorConfig.from_flat(calibration_cutoff=bad)
