"""The history-conditioned encoder start (``initial_state='conditional'``).

Each model input holds ``history`` points before its window; :func:`history_context` summarises
them per block (median, robust spread, known share) and :class:`h0.Conditional` maps the
summary to the encoder's initial carry. Checked against numpy and a Python step loop, for
causality and scope (points before the history do not matter), and end to end: stream equals
batch, save/load, one program equals each alone, adaptation, short series, settings.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from h0.anomaly import DetectorConfig, EncDecAD, GRUAutoencoderDetector, detector_strategy
from h0.anomaly._config import ConfigError
from h0.anomaly._detector import fit_independent
from h0.anomaly._names import history_context

SMALL = dict(window=8, hidden=8, epochs=2, batch_size=16, seed=1)
COND = {**SMALL, "initial_state": "conditional", "history": 32}


def series(n=500, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.sin(t / 4) + 0.5 * np.sin(t / 37) + 0.05 * rng.normal(size=n)


def numpy_context(history, block):
    """Per block and channel: median, 1.4826 MAD (0 where nothing is known), the known share."""
    b, t, c = history.shape
    out = np.zeros((b, t // block, 3, c))
    for i in range(b):
        for k in range(t // block):
            part = history[i, k * block : (k + 1) * block]
            for ch in range(c):
                known = part[~np.isnan(part[:, ch]), ch]
                if known.size:
                    median = np.median(known)
                    mad = 1.4826 * np.median(np.abs(known - median))
                    out[i, k, :, ch] = median, mad, known.size / block
    return out.reshape(b, -1)


def test_history_context_matches_numpy():
    rng = np.random.default_rng(0)
    history = rng.normal(size=(4, 12, 2)).astype(np.float32)
    history[0, :5] = np.nan  # a window near the series' start: its first blocks are unknown
    history[1, :12] = np.nan
    got = np.asarray(history_context(jnp.asarray(history), 4))
    np.testing.assert_allclose(got, numpy_context(history, 4), rtol=1e-5, atol=1e-6)


def reference(params, inputs, *, context, hidden, features):
    """Python loop: the MLP's carry from the numpy summary, the encoder and decoder step by step."""
    summary = numpy_context(np.asarray(inputs[:, :context]), inputs.shape[1] - context)
    mlp = params["encoder"]["initial_state"]
    h = jnp.tanh(nn.Dense(32).apply({"params": mlp["init_mlp_0"]}, jnp.asarray(summary)))
    carry = jnp.tanh(nn.Dense(hidden).apply({"params": mlp["init_h"]}, h))
    cell = nn.GRUCell(hidden)
    window = inputs[:, context:]
    for t in range(window.shape[1]):
        carry, _ = cell.apply({"params": params["encoder"]["cell"]}, carry, window[:, t])
    outs = []
    for _ in range(window.shape[1]):
        carry, y = cell.apply(
            {"params": params["decoder"]["cell"]}, carry, jnp.zeros((inputs.shape[0], 1))
        )
        outs.append(nn.Dense(features).apply({"params": params["readout"]}, y))
    return jnp.stack(outs[::-1], axis=1)


def conditional_model(features=2, hidden=6, context=12):
    strategy = detector_strategy("conditional", window=4)
    return EncDecAD(features=features, hidden=hidden, strategy=strategy, context=context)


def test_conditional_model_matches_step_loop():
    model = conditional_model()
    inputs = np.array(jax.random.normal(jax.random.key(2), (3, 16, 2)))
    inputs[0, :7] = np.nan  # unknown history before the start
    params = model.init(jax.random.key(0), jnp.asarray(inputs))["params"]
    got = model.apply({"params": params}, jnp.asarray(inputs))
    assert got.shape == (3, 4, 2)
    want = reference(params, jnp.asarray(inputs), context=12, hidden=6, features=2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_history_matters_and_is_all_that_matters_before_the_window():
    model = conditional_model(features=1, context=12)
    x = np.array(jax.random.normal(jax.random.key(3), (2, 16, 1)))
    params = model.init(jax.random.key(0), jnp.asarray(x))["params"]
    base = np.asarray(model.apply({"params": params}, jnp.asarray(x)))
    shifted = x.copy()
    shifted[:, 2] += 5.0  # inside the history
    assert (
        np.abs(np.asarray(model.apply({"params": params}, jnp.asarray(shifted))) - base).max()
        > 1e-4
    )
    plain = EncDecAD(
        features=1, hidden=6, strategy=detector_strategy("learned", window=4), context=12
    )
    p_plain = plain.init(jax.random.key(0), jnp.asarray(x))["params"]
    # A strategy without context ignores the points before the window.
    np.testing.assert_array_equal(
        plain.apply({"params": p_plain}, jnp.asarray(x)),
        plain.apply({"params": p_plain}, jnp.asarray(shifted)),
    )


def test_model_refuses_conditional_without_context():
    model = conditional_model(context=0)
    with pytest.raises(ValueError, match="needs context points"):
        model.init(jax.random.key(0), jnp.ones((1, 4, 2)))


@pytest.fixture(scope="module")
def fitted():
    x = series()
    return GRUAutoencoderDetector(**COND).fit(x[:300]), x


def test_detector_scores_are_causal_and_the_stream_equals_batch(fitted):
    det, x = fitted
    test = x[300:].copy()
    scores = det.score(test)
    changed = test.copy()
    changed[120:] += 2.0
    np.testing.assert_array_equal(det.score(changed)[:120], scores[:120])
    stream = det.stream()
    streamed = np.array([stream.update(v) for v in test[:60]])
    np.testing.assert_allclose(streamed, scores[:60], rtol=1e-4, atol=1e-4)
    assert det._tails[0].shape == (32 + 8 - 1, 1)


def test_detector_reads_history_beyond_its_window(fitted):
    det, x = fitted
    test = x[300:].copy()
    changed = test.copy()
    changed[100:120] += 1.0  # 20 points, then 40 points untouched: outside any window
    later = slice(140, 150)  # windows end at 140..149, their histories reach back to 100
    assert np.abs(det.score(changed)[later] - det.score(test)[later]).max() > 0
    far = slice(180, 200)  # histories start after 140
    np.testing.assert_array_equal(det.score(changed)[far], det.score(test)[far])


def test_detector_saves_and_loads(fitted, tmp_path):
    det, x = fitted
    det.save(tmp_path / "m")
    again = GRUAutoencoderDetector.load(tmp_path / "m")
    assert again.get_params()["initial_state"] == "conditional" and again.history == 32
    np.testing.assert_array_equal(again.score(x[300:]), det.score(x[300:]))


def test_fit_independent_equals_each_alone():
    xs = [series(260, seed=s) for s in range(2)]
    together = fit_independent(xs, **COND)
    for x, det in zip(xs, together, strict=True):
        alone = GRUAutoencoderDetector(**COND).fit(x)
        np.testing.assert_allclose(det.loss_history_, alone.loss_history_, rtol=2e-4)


def test_series_shorter_than_the_history_fit():
    x = series(40)  # 40 points, history 64: every window's history is partly unknown
    det = GRUAutoencoderDetector(**{**COND, "history": 64}).fit(x)
    assert np.isfinite(det.score(series(60, seed=1))).all()
    assert np.isfinite(det.decision_scores_).all()


def test_adaptation_reads_history_too():
    x = series()
    det = GRUAutoencoderDetector(**COND, adapt_every=50, adapt_history=80, adapt_steps=2).fit(
        x[:300]
    )
    plain = det.with_scoring()
    plain.adapt_every = 0
    adapted = det.score(x[300:])
    # Nothing is adapted before the first block ends.
    np.testing.assert_allclose(adapted[:50], plain.score(x[300:])[:50], rtol=1e-5, atol=1e-5)
    assert np.isfinite(adapted).all() and np.abs(adapted[50:] - plain.score(x[300:])[50:]).max() > 0


def test_history_must_be_whole_windows():
    with pytest.raises(ConfigError, match="multiple of window") as info:
        DetectorConfig.from_flat(window=8, initial_state="conditional", history=12)
    assert info.value.field == "history"
    DetectorConfig.from_flat(window=8, history=12)  # unused without the conditional start
