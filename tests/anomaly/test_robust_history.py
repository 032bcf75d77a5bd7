"""Robust history (``robust_history``): an isolated outlier is read as its forecast afterwards.

Once a point's point-level score (newest-point and forecast errors) reaches the default
threshold, and no point of the window before it was replaced, the windows after it read its
one-step forecast instead of its value: neither their RMS errors nor the forecasts made after it
are disturbed by it. Checked on a spike (batch, stream, a point-by-point reference), against the
alarm settings, and as a setting.
"""

from __future__ import annotations

import numpy as np
import pytest

from h0.anomaly import DetectorConfig, GRUAutoencoderDetector
from h0.anomaly._detector import windows_of

from . import STREAM_RTOL

SMALL = dict(window=8, hidden=8, epochs=3, batch_size=16, seed=2)


@pytest.fixture(scope="module")
def spiked():
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(400) / 4) + 0.05 * rng.normal(size=400)
    test = x[300:].copy()
    test[40] += 4.0
    test[44] += 3.0  # within a window of the first: not replaced
    test[70] -= 4.0
    robust = GRUAutoencoderDetector(**SMALL).fit(x[:300])  # robust history is the default
    return test, robust.with_scoring(robust_history=False), robust


def reference(det, test):
    """The rule point by point: each window from scratch, on the points as replaced so far."""
    span = det.config.model.span
    points = np.concatenate([det._tails[0], det._standardize(test[:, None], 0)])
    rows, since = [], span
    for t in range(len(test)):
        raw = det._features(points[t : t + span][None], 0)
        rows.append(raw[0])
        point = det._point_level_of(0, raw)[0]
        ahead = det._replacement(raw[0], point, since)
        since = since + 1 if ahead is None else 1
        if ahead is not None:
            points[t + span - 1] -= ahead.astype(np.float32)
    features = det._select(np.array(rows))
    return det._score_features(det.calibrations_[0], features, test[:, None])[0]


def test_batch_equals_a_point_by_point_reference_and_the_stream(spiked):
    test, _, robust = spiked
    batch = robust.score(test)
    np.testing.assert_allclose(batch, reference(robust, test), rtol=STREAM_RTOL, atol=1e-6)
    stream = robust.stream()
    np.testing.assert_allclose([stream.update(v) for v in test], batch, rtol=STREAM_RTOL, atol=1e-6)


def test_a_spike_keeps_its_score_and_stops_disturbing_the_next_windows(spiked):
    test, plain, robust = spiked
    s_plain, s_robust = plain.score(test), robust.score(test)
    np.testing.assert_array_equal(s_robust[:41], s_plain[:41])  # up to the spike: the same
    after = slice(41, 44)  # windows that hold the first spike only
    assert np.all(s_robust[after] < s_plain[after])
    assert robust.predict(test)[after].sum() < plain.predict(test)[after].sum()
    assert int(np.argmax(s_robust)) in (40, 70)


def test_the_score_does_not_depend_on_the_alarm_settings(spiked):
    test, _, robust = spiked
    other = robust.with_scoring(threshold_quantile=0.9, hysteresis=1.0)
    np.testing.assert_array_equal(other.score(test), robust.score(test))
    assert other.threshold_ != robust.threshold_


def test_windows_of_the_reference_are_the_detectors(spiked):
    test, _, robust = spiked
    span = robust.config.model.span
    joined = np.concatenate([robust._tails[0], robust._standardize(test[:, None], 0)])
    np.testing.assert_array_equal(windows_of(joined, span), robust._continuation(test[:, None], 0))


def test_the_setting_survives_a_checkpoint(spiked, tmp_path):
    test, _, robust = spiked
    back = GRUAutoencoderDetector.load(robust.save(tmp_path / "model"))
    assert back.robust_history is True
    np.testing.assert_allclose(back.score(test), robust.score(test), rtol=1e-6, atol=1e-6)


def test_it_is_on_by_default_and_applies_only_with_a_forecasting_head_and_no_adaptation():
    assert DetectorConfig().robust_history_applies
    assert not DetectorConfig.from_flat(robust_history=False).robust_history_applies
    for settings in ({"forecast_horizon": 0}, {"adapt_every": 100, "adapt_history": 400}):
        assert not DetectorConfig.from_flat(**settings).robust_history_applies


def test_without_a_forecasting_head_the_setting_changes_nothing(spiked):
    test = spiked[0]
    rng = np.random.default_rng(0)
    x = np.sin(np.arange(300) / 4) + 0.05 * rng.normal(size=300)
    det = GRUAutoencoderDetector(**SMALL, forecast_horizon=0).fit(x)
    np.testing.assert_array_equal(
        det.score(test), det.with_scoring(robust_history=False).score(test)
    )


def test_a_model_saved_before_it_was_the_default_loads_without_it(spiked, tmp_path):
    from h0._checkpoint import restore, save

    test, plain, robust = spiked
    path = robust.save(tmp_path / "model")
    tree, meta = restore(path, with_metadata=True, kind="detector")
    del meta["settings"]["robust_history"]  # as format 4 wrote it before the setting existed
    meta["format"] = "h0-gru-autoencoder-detector/4"
    old = save(tmp_path / "old", tree, metadata=meta, kind="detector")
    back = GRUAutoencoderDetector.load(old)
    assert back.robust_history is False
    np.testing.assert_allclose(back.score(test), plain.score(test), rtol=1e-6, atol=1e-6)
