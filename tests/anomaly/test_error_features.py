"""Settings of the error features: ``window_trim``, ``spread_error``, ``level_error``, ``roughness_error``.

``window_trim`` leaves a window's largest errors out of its RMS error, so one extreme point does not
keep the next ``window`` points' window error high. ``spread_error`` scores each window's spread
(log standard deviation of its values), which catches a segment that goes flat or changes its
variance: what a network reconstructs and forecasts only too well. ``level_error`` scores each
window's mean, which catches a channel that shifts while keeping its shape. ``roughness_error``
scores each window's noise level (log median absolute second difference), which a pattern's few
sharp features (an ECG's beats) do not move.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import h0
from h0.anomaly import DetectorConfig, EncDecAD, GRUAutoencoderDetector
from h0.anomaly._config import ConfigError
from h0.anomaly._train import make_residual_fn

from . import STREAM_RTOL

SMALL = dict(window=8, hidden=8, epochs=3, batch_size=16, seed=2)


def series(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return np.sin(np.arange(n) / 4) + 0.05 * rng.normal(size=n)


@pytest.fixture(scope="module")
def pair():
    x = series()
    return x, GRUAutoencoderDetector(**SMALL).fit(x[:300])


@pytest.mark.parametrize("trim", [0, 1, 3])
def test_window_trim_matches_numpy(trim):
    import jax

    model = EncDecAD(features=2, hidden=5, strategy=h0.Learned())
    windows = jax.random.normal(jax.random.key(4), (3, 9, 2))
    params = model.init(jax.random.key(0), windows)["params"]
    error = np.asarray(windows) - np.asarray(model.apply({"params": params}, windows))
    size = np.sort(np.abs(error), axis=1)[:, : 9 - trim]
    want = np.sqrt(np.mean(size**2, axis=1))
    _, whole = make_residual_fn(model, 1, trim)(params, windows, jnp.zeros((3,), jnp.int32))
    np.testing.assert_allclose(whole, want, rtol=1e-5)


def test_window_trim_is_checked_and_not_a_scoring_change(pair):
    _, plain = pair
    with pytest.raises(ConfigError, match="window_trim=8 leaves no error"):
        DetectorConfig.from_flat(window=8, window_trim=8)
    with pytest.raises(ValueError, match="with_scoring cannot change"):
        plain.with_scoring(window_trim=1)


def test_one_extreme_point_weighs_less_in_a_trimmed_window_error():
    x = series()
    det = GRUAutoencoderDetector(**SMALL, window_trim=1).fit(x[:300])
    test = x[300:].copy()
    test[40] += 3.0
    windows = jnp.asarray(det._continuation(test[:, None], 0))
    ids = jnp.zeros((windows.shape[0],), jnp.int32)
    trimmed = np.asarray(det._residual_fn()(det.params_, windows, ids)[1][:, 0])
    plain = make_residual_fn(det._model(), 1, 0)(det.params_, windows, ids)[1][:, 0]
    # Windows ending at 41..47 hold the point but not as their newest.
    assert (trimmed[41:48] < 0.8 * np.asarray(plain)[41:48]).all(), (trimmed[41:48], plain[41:48])


def test_spread_feature_matches_numpy_and_is_signed():
    import jax

    from h0.anomaly._train import SPREAD_FLOOR

    model = EncDecAD(features=2, hidden=5, strategy=h0.Learned(), forecast_horizon=1)
    windows = jax.random.normal(jax.random.key(5), (3, 9, 2))
    params = model.init(jax.random.key(0), windows)["params"]
    blocks = make_residual_fn(model, 1, 0, True)(params, windows, jnp.zeros((3,), jnp.int32))
    assert len(blocks) == 4  # point, window, forecast, spread
    want = np.log(np.std(np.asarray(windows), axis=1) + SPREAD_FLOOR)
    np.testing.assert_allclose(blocks[3], want, rtol=1e-5, atol=1e-6)
    det = GRUAutoencoderDetector(spread_error=True)
    det.n_features_ = 1
    assert det._block_names() == ["point", "window", "forecast", "spread"]
    # Signed: a window flatter than usual counts as much as a wilder one; the window RMS upwards.
    assert det._one_sided().tolist() == [False, True, False, False]


def test_a_flat_segment_scores_with_the_spread_feature_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=700)
    test = x[400:].copy()
    test[150:250] = 0.0  # the sensor freezes at its mean: small errors, no spread
    settings = {**SMALL, "window": 16}
    with_spread = GRUAutoencoderDetector(**settings, spread_error=True).fit(x[:400])
    without = GRUAutoencoderDetector(**settings, spread_error=False).fit(x[:400])
    inside = slice(170, 250)  # windows wholly inside the flat part
    assert with_spread.predict(test)[inside].mean() > 0.9
    assert without.predict(test)[inside].mean() < 0.5
    with pytest.raises(ValueError, match="with_scoring cannot change"):
        with_spread.with_scoring(spread_error=False)


def test_level_feature_matches_numpy_and_comes_last():
    import jax

    model = EncDecAD(features=2, hidden=5, strategy=h0.Learned(), forecast_horizon=1)
    windows = jax.random.normal(jax.random.key(6), (3, 9, 2))
    params = model.init(jax.random.key(0), windows)["params"]
    ids = jnp.zeros((3,), jnp.int32)
    both = make_residual_fn(model, 1, 0, True, True)(params, windows, ids)
    assert len(both) == 5  # point, window, forecast, spread, level
    np.testing.assert_allclose(both[4], np.mean(np.asarray(windows), axis=1), rtol=1e-5, atol=1e-6)
    spread_only = make_residual_fn(model, 1, 0, True)(params, windows, ids)
    for a, b in zip(spread_only, both[:4], strict=True):
        np.testing.assert_array_equal(a, b)
    det = GRUAutoencoderDetector(level_error=True)
    det.n_features_ = 1
    assert det._block_names() == ["point", "window", "forecast", "spread", "level"]
    assert det._one_sided().tolist() == [False, True, False, False, False]  # both ways


def test_a_shifted_channel_scores_with_the_level_feature():
    # Two channels; the first shifts by 1.5 standard deviations for 150 points, keeping its shape.
    rng = np.random.default_rng(1)
    t = np.arange(900)[:, None]
    x = np.sin(t / np.array([5.0, 7.0])) + 0.05 * rng.normal(size=(900, 2))
    test = x[600:].copy()
    test[100:250, 0] += 1.5 * x[:600, 0].std()
    settings = {**SMALL, "window": 16}
    level = GRUAutoencoderDetector(**settings, level_error=True).fit(x[:600])
    scores = level.score(test)
    inside = slice(120, 250)  # windows wholly inside the shift
    assert np.median(scores[inside]) > 2 * level.threshold_ > 2 * np.quantile(scores[:90], 0.9)
    plain = GRUAutoencoderDetector(**settings).fit(x[:600]).score(test)
    assert np.median(scores[inside]) > 2 * np.median(plain[inside])  # measured: 19.8 vs 4.3
    assert (level.score_channels(test)[inside].argmax(axis=1) == 0).mean() > 0.9
    stream = level.stream()
    np.testing.assert_allclose(
        [stream.update(v) for v in test], scores, rtol=STREAM_RTOL, atol=1e-6
    )
    with pytest.raises(ValueError, match="with_scoring cannot change"):
        level.with_scoring(level_error=False)


def test_the_level_setting_survives_a_checkpoint_and_is_offered_by_the_harness(tmp_path, capsys):
    from h0._cli import main

    x = series()
    det = GRUAutoencoderDetector(**SMALL, level_error=True).fit(x[:300])
    back = GRUAutoencoderDetector.load(det.save(tmp_path / "model"))
    assert back.level_error is True
    np.testing.assert_allclose(back.score(x[300:]), det.score(x[300:]), rtol=1e-6, atol=1e-6)
    for command in (["bench"], ["nab", "run"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        text = capsys.readouterr().out
        assert "--level-error" in text and "--roughness-error" in text


def test_roughness_feature_matches_numpy_and_comes_last():
    import jax

    model = EncDecAD(features=2, hidden=5, strategy=h0.Learned(), forecast_horizon=1)
    windows = jax.random.normal(jax.random.key(7), (3, 9, 2))
    params = model.init(jax.random.key(0), windows)["params"]
    ids = jnp.zeros((3,), jnp.int32)
    out = make_residual_fn(model, 1, 0, True, False, True)(params, windows, ids)
    assert len(out) == 5  # point, window, forecast, spread, roughness
    w = np.asarray(windows, np.float64)
    bends = np.abs(w[:, 2:] - 2 * w[:, 1:-1] + w[:, :-2])
    expected = np.log(np.median(bends, axis=1) + 1e-3)
    np.testing.assert_allclose(out[4], expected, rtol=1e-5, atol=1e-5)
    det = GRUAutoencoderDetector(roughness_error=True, level_error=True)
    det.n_features_ = 1
    assert det._block_names() == ["point", "window", "forecast", "spread", "level", "roughness"]
    assert det._one_sided().tolist() == [False, True, False, False, False, False]  # both ways


def test_a_noise_burst_between_sharp_beats_scores_with_the_roughness_feature(tmp_path):
    # Sharp beats every 20 points over quiet noise; the noise grows sixfold for 150 points.
    rng = np.random.default_rng(3)
    n = 900
    beats = np.where(np.arange(n) % 20 == 0, 6.0, 0.0)
    noise = 0.05 * rng.normal(size=n)
    x = beats + noise
    test = x[600:].copy()
    test[100:250] += 0.25 * rng.normal(size=150)
    settings = {**SMALL, "window": 16}
    rough = GRUAutoencoderDetector(**settings, roughness_error=True).fit(x[:600])
    scores = rough.score(test)
    inside = slice(120, 250)  # windows wholly inside the burst
    assert np.median(scores[inside]) > rough.threshold_ > np.quantile(scores[:90], 0.9)
    plain = GRUAutoencoderDetector(**settings).fit(x[:600]).score(test)
    assert np.median(scores[inside]) > 2 * np.median(plain[inside])
    stream = rough.stream()
    # One window at a time against batches: float32 rounding of the network's errors, read
    # through a steep part of the calibration near 0 decades (measured: 9e-6 decades at most).
    np.testing.assert_allclose(
        [stream.update(v) for v in test], scores, rtol=STREAM_RTOL, atol=1e-4
    )
    back = GRUAutoencoderDetector.load(rough.save(tmp_path / "model"))
    assert back.roughness_error is True
    np.testing.assert_allclose(back.score(test), scores, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="with_scoring cannot change"):
        rough.with_scoring(roughness_error=False)
