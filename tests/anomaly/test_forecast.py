"""The forecasting head: a step-loop reference, its loss, causality, persistence, settings.

The forecast feature at point ``t`` is ``x_t - f(x_{t-w+1}, ..., x_{t-1})``: the prediction is made
from the encoder's state after ``x_{t-1}`` (the window ending at ``t`` minus its newest point), so
the prediction never depends on ``x_t`` or later points; the feature depends on ``x_t`` only through
the ``x_t`` it subtracts from. The tests below check exactly that.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import h0
from h0._checkpoint import read_metadata
from h0.anomaly import DetectorConfig, EncDecAD, GRUAutoencoderDetector
from h0.anomaly import _detector as detector_module
from h0.anomaly._config import ConfigError
from h0.anomaly._detector import fit_independent, windows_of
from h0.anomaly._scoring import fit_calibration, score_features, split_features
from h0.anomaly._train import forecast_loss, make_residual_fn, reconstruction_loss

SMALL = dict(window=8, hidden=8, epochs=3, batch_size=16, seed=3)
NO_HEAD = {**SMALL, "forecast_horizon": 0}


def series(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return np.sin(np.arange(n) / 4) + 0.05 * rng.normal(size=n)


def reference_forecast(params, windows, *, hidden, horizon, warmup=0):
    """Python loop: the encoder's GRU stepped from its learned state, the head after each step."""
    cell = nn.GRUCell(hidden)
    head = nn.Dense(horizon * windows.shape[2])
    out = []
    for b in range(windows.shape[0]):
        h = params["encoder"].get("initial_state", {}).get("init_h", jnp.zeros((hidden,)))
        rows = []
        for t in range(windows.shape[1]):
            h, y = cell.apply({"params": params["encoder"]["cell"]}, h, windows[b, t])
            if t >= warmup:
                rows.append(head.apply({"params": params["forecast"]}, y).reshape(horizon, -1))
        out.append(jnp.stack(rows))
    return jnp.stack(out)


@pytest.mark.parametrize(("strategy", "warmup"), [(h0.Learned(), 0), (h0.WarmUp(2), 2)])
def test_head_matches_step_loop(strategy, warmup):
    windows = jax.random.normal(jax.random.key(1), (3, 7, 2))
    model = EncDecAD(features=2, hidden=5, strategy=strategy, forecast_horizon=3)
    params = model.init(jax.random.key(0), windows)["params"]
    if "initial_state" in params["encoder"]:  # a non-trivial learned state
        params["encoder"]["initial_state"]["init_h"] = 0.3 + jnp.arange(5.0) / 5
    reconstruction, forecast = model.apply({"params": params}, windows)
    want = reference_forecast(params, windows, hidden=5, horizon=3, warmup=warmup)
    assert forecast.shape == (3, 7 - warmup, 3, 2)
    np.testing.assert_allclose(forecast, want, rtol=1e-5, atol=1e-6)
    # The reconstruction is the head-less model's with the same weights.
    plain = EncDecAD(features=2, hidden=5, strategy=strategy)
    without = {k: v for k, v in params.items() if k != "forecast"}
    np.testing.assert_array_equal(reconstruction, plain.apply({"params": without}, windows))


def test_forecast_loss_matches_loop():
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(2, 6, 3)).astype(np.float32)
    forecast = rng.normal(size=(2, 5, 2, 3)).astype(np.float32)  # burn-in 1, horizon 2
    errors = []
    for s in range(5):
        for j in range(2):
            target = 1 + s + j + 1
            if target < 6:
                errors.append((forecast[:, s, j] - windows[:, target]) ** 2)
    want = np.mean(np.stack(errors))
    np.testing.assert_allclose(
        forecast_loss(jnp.asarray(windows), jnp.asarray(forecast)), want, rtol=1e-6
    )


def test_joint_loss_weights_the_forecast():
    model = EncDecAD(features=1, hidden=4, strategy=h0.Learned(), forecast_horizon=1)
    windows = jnp.asarray(series(40)[:32].reshape(4, 8, 1), jnp.float32)
    params = model.init(jax.random.key(0), windows)["params"]
    batch, key = (windows, jnp.zeros((4,), jnp.int32)), jax.random.key(0)
    loss = lambda w: float(
        reconstruction_loss(model, params, batch, key, deterministic=True, forecast_weight=w)
    )
    recon, ahead = model.apply({"params": params}, windows)
    base = float(jnp.mean((recon - windows) ** 2))
    np.testing.assert_allclose(loss(1.0), base + float(forecast_loss(windows, ahead)), rtol=1e-6)
    np.testing.assert_allclose(
        loss(3.0) - loss(1.0), 2 * float(forecast_loss(windows, ahead)), rtol=1e-5
    )


@pytest.fixture(scope="module")
def with_head():
    x = series()
    return x, GRUAutoencoderDetector(**SMALL, forecast_horizon=2).fit(x[:300])


def test_forecast_of_a_point_does_not_read_it(with_head):
    x, det = with_head
    windows = windows_of(det._standardize(x[:, None], 0), 8)[:50]
    fn = make_residual_fn(det._model(), 1)
    ids = jnp.zeros((50,), jnp.int32)
    *_, ahead = fn(det.params_, jnp.asarray(windows, jnp.float32), ids)
    changed = np.array(windows, np.float32)
    changed[:, -1] += 5.0  # the newest point of every window
    *_, ahead2 = fn(det.params_, jnp.asarray(changed), ids)
    # The prediction (newest point minus the error) is the same; the error moves by exactly 5.
    np.testing.assert_allclose(
        windows[:, -1] - np.asarray(ahead), changed[:, -1] - np.asarray(ahead2), atol=1e-5
    )
    np.testing.assert_allclose(np.asarray(ahead2) - np.asarray(ahead), 5.0, atol=1e-5)


def test_score_is_causal_with_the_forecast_feature(with_head):
    x, det = with_head
    test = x[300:].copy()
    base = det.score(test)
    changed = test.copy()
    changed[60:] += np.linspace(0, 4, changed.size - 60)  # every point from 60 on
    other = det.score(changed)
    np.testing.assert_array_equal(base[:60], other[:60])
    assert not np.allclose(base[60:], other[60:])


def test_forecast_feature_is_scored_and_catches_a_spike(with_head):
    x, det = with_head
    assert det._train_features[0].shape[1] == 4  # newest point, window RMS, forecast, spread
    cal = det.calibrations_[0]
    np.testing.assert_array_equal(cal.one_sided, [False, True, False, False])
    test = x[300:].copy()
    test[50] += 2.0
    scores = det.score(test)
    assert int(np.argmax(scores)) == 50
    # Without the forecast feature, the same network scores the three other features.
    three = det.with_scoring(forecast_error=False)
    np.testing.assert_array_equal(three.calibrations_[0].one_sided, [False, True, False])
    assert not np.allclose(three.score(test), scores)


def test_stream_equals_batch_with_head(with_head):
    x, det = with_head
    test = x[300:360]
    stream = det.stream()
    np.testing.assert_allclose([stream.update(v) for v in test], det.score(test), atol=1e-4)


def test_off_is_the_two_feature_detector_bit_for_bit():
    """No head and no spread: two features, scored exactly as the plain calibration does."""
    x = series()
    det = GRUAutoencoderDetector(**NO_HEAD, spread_error=False).fit(x[:300])
    assert "forecast" not in det.params_ and det._train_features[0].shape[1] == 2
    # The old plumbing, written out: residuals -> [recent, whole] -> calibration -> score
    # (in the detector's padded power-of-two batches: XLA's results depend on the batch shape).
    fn = make_residual_fn(EncDecAD(features=1, hidden=8, strategy=h0.Learned()), 1)

    def old_features(windows):
        size = 1 << (len(windows) - 1).bit_length()
        padded = np.zeros((size, *windows.shape[1:]), np.float32)
        padded[: len(windows)] = windows
        recent, whole = fn(det.params_, jnp.asarray(padded), jnp.zeros((size,), jnp.int32))
        both = np.concatenate([np.asarray(recent), np.asarray(whole)], 1)
        return both[: len(windows)].astype(np.float64)

    feats = old_features(windows_of(det._standardize(x[:300, None], 0), 8))
    np.testing.assert_array_equal(det._train_features[0][7:], feats)
    held = det._held_out[0]
    rows = feats if held < 200 else feats[-held:]
    cal = fit_calibration(split_features(rows, 1), x[:300, None], tail_quantile=0.95)
    test = x[300:]
    joined = np.concatenate([det._tails[0], det._standardize(test[:, None], 0)])
    f2 = old_features(windows_of(joined, 8))
    want, _ = score_features(cal, split_features(f2, 1), test[:, None])
    np.testing.assert_array_equal(det.score(test), want)


def test_fit_independent_equals_alone_with_head():
    xs = [series(200, 1), series(260, 2)]
    settings = {**SMALL, "forecast_horizon": 2, "forecast_weight": 0.5}
    together = fit_independent(xs, **settings)
    for x, det in zip(xs, together, strict=True):
        alone = GRUAutoencoderDetector(**settings).fit(x)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
            det.params_,
            alone.params_,
        )
        assert "forecast" in det.params_
        np.testing.assert_allclose(det.score(x[:60]), alone.score(x[:60]), rtol=1e-3, atol=2e-3)


def test_save_load_round_trip_with_head(with_head, tmp_path):
    x, det = with_head
    loaded = GRUAutoencoderDetector.load(det.save(tmp_path / "m"))
    assert loaded.forecast_horizon == 2
    np.testing.assert_array_equal(loaded.score(x[300:]), det.score(x[300:]))


def test_format_2_models_load_without_a_head(tmp_path, monkeypatch):
    """A model saved before the head existed (format 2, no forecast settings) still loads."""
    x = series()
    det = GRUAutoencoderDetector(**NO_HEAD).fit(x[:300])
    monkeypatch.setattr(detector_module, "_FORMAT", "h0-gru-autoencoder-detector/2")
    old_params = det.get_params
    new = ("forecast_horizon", "forecast_weight", "forecast_error")
    monkeypatch.setattr(
        det, "get_params", lambda deep=True: {k: v for k, v in old_params().items() if k not in new}
    )
    path = det.save(tmp_path / "old")
    monkeypatch.undo()
    meta = read_metadata(path)
    assert meta["format"].endswith("/2") and "forecast_horizon" not in meta["settings"]
    loaded = GRUAutoencoderDetector.load(path)
    assert loaded.forecast_horizon == 0
    np.testing.assert_array_equal(loaded.score(x[300:]), det.score(x[300:]))


def test_format_3_models_load_without_the_spread_feature(tmp_path, monkeypatch):
    """Format 3 predates ``spread_error`` as the default: a file that does not name it loads off."""
    x = series()
    det = GRUAutoencoderDetector(**NO_HEAD, spread_error=False).fit(x[:300])
    monkeypatch.setattr(detector_module, "_FORMAT", "h0-gru-autoencoder-detector/3")
    old_params = det.get_params
    monkeypatch.setattr(
        det,
        "get_params",
        lambda deep=True: {k: v for k, v in old_params().items() if k != "spread_error"},
    )
    path = det.save(tmp_path / "old")
    monkeypatch.undo()
    meta = read_metadata(path)
    assert meta["format"].endswith("/3") and "spread_error" not in meta["settings"]
    loaded = GRUAutoencoderDetector.load(path)
    assert loaded.spread_error is False
    assert GRUAutoencoderDetector().spread_error is True  # today's default differs
    np.testing.assert_array_equal(loaded.score(x[300:]), det.score(x[300:]))


def test_unknown_format_is_one_clear_message(tmp_path, monkeypatch):
    det = GRUAutoencoderDetector(**NO_HEAD).fit(series()[:300])
    monkeypatch.setattr(detector_module, "_FORMAT", "h0-gru-autoencoder-detector/99")
    path = det.save(tmp_path / "future")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="not a saved h0 detector: unknown format"):
        GRUAutoencoderDetector.load(path)


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"forecast_horizon": -1}, "forecast_horizon", "non-negative integer"),
        ({"forecast_horizon": 1.5}, "forecast_horizon", "non-negative integer"),
        ({"window": 8, "forecast_horizon": 8}, "forecast_horizon", "use at most 7"),
        (
            {"window": 8, "initial_state": "warmup", "forecast_horizon": 6},
            "forecast_horizon",
            "use at most 5",
        ),
        ({"forecast_weight": 0.0}, "forecast_weight", "finite positive"),
        ({"forecast_weight": float("nan")}, "forecast_weight", "finite positive"),
        ({"forecast_error": "yes"}, "forecast_error", "True or False"),
    ],
)
def test_config_validation(settings, field, message):
    with pytest.raises(ConfigError, match=message) as caught:
        DetectorConfig.from_flat(**settings)
    assert caught.value.field == field
    with pytest.raises(ValueError, match=message):
        GRUAutoencoderDetector(**settings)


def test_cli_flags():
    import argparse

    from h0.anomaly import _config

    parser = argparse.ArgumentParser()
    _config.add_arguments(parser)
    args = parser.parse_args(
        ["--forecast-horizon", "2", "--forecast-weight", "0.5", "--no-forecast-error"]
    )
    assert _config.given(args) == {
        "forecast_horizon": 2,
        "forecast_weight": 0.5,
        "forecast_error": False,
    }
