"""EncDecAD against a step-by-step reference built from Flax's own GRUCell and Dense."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import h0
from h0.anomaly import STRATEGY_NAMES, EncDecAD, detector_strategy
from h0.anomaly._train import make_residual_fn, optimizer, reconstruction_loss, train_step


def reference(params, windows, ids, *, hidden, strategy, warmup=0):
    """Python loop: encoder steps from the strategy's state, decoder steps from its final carry."""
    cell = nn.GRUCell(hidden)
    enc, dec = params["encoder"], params["decoder"]
    out = []
    for b in range(windows.shape[0]):
        if strategy == "learned":
            h = enc["initial_state"]["init_h"]
        elif strategy == "per_sequence":
            h = enc["initial_state"]["init_h"][ids[b]]
        else:  # zeros, random at inference, warmup's start
            h = jnp.zeros((hidden,))
        for t in range(windows.shape[1]):
            h, _ = cell.apply({"params": enc["cell"]}, h, windows[b, t])
        ys = []
        for _ in range(windows.shape[1] - warmup):
            h, y = cell.apply({"params": dec["cell"]}, h, jnp.zeros((1,)))
            ys.append(y)
        dense = nn.Dense(windows.shape[2])
        recon = dense.apply({"params": params["readout"]}, jnp.stack(ys))
        out.append(recon[::-1])
    return jnp.stack(out)


@pytest.mark.parametrize("strategy", ["zeros", "learned", "per_sequence", "random", "warmup"])
def test_matches_step_loop(strategy):
    windows = jax.random.normal(jax.random.key(1), (3, 7, 2))
    ids = jnp.array([0, 2, 1])
    made = {
        "zeros": h0.Zeros(),
        "learned": h0.Learned(),
        "per_sequence": h0.PerSequence(num_sequences=3),
        "random": h0.Random(stddev=0.1),
        "warmup": h0.WarmUp(2),
    }[strategy]
    model = EncDecAD(features=2, hidden=5, strategy=made)
    keys = {"params": jax.random.key(0), "carry": jax.random.key(9)}
    params = model.init(keys, windows, ids)["params"]
    if strategy in ("learned", "per_sequence"):  # make the learned state non-trivial
        init = params["encoder"]["initial_state"]["init_h"]
        params["encoder"]["initial_state"]["init_h"] = (
            0.5 + jnp.arange(init.size).reshape(init.shape) / init.size
        )
    got = model.apply({"params": params}, windows, ids)
    warmup = 2 if strategy == "warmup" else 0
    want = reference(params, windows, ids, hidden=5, strategy=strategy, warmup=warmup)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_random_trains_with_noise_and_scores_without():
    model = EncDecAD(features=1, hidden=4, strategy=h0.Random(stddev=0.1))
    x = jnp.ones((2, 6, 1))
    params = model.init({"params": jax.random.key(0), "carry": jax.random.key(1)}, x)["params"]
    a = model.apply({"params": params}, x, deterministic=False, rngs={"carry": jax.random.key(2)})
    b = model.apply({"params": params}, x, deterministic=False, rngs={"carry": jax.random.key(3)})
    assert not np.allclose(a, b)
    c = model.apply({"params": params}, x)
    zero = model.apply({"params": params}, x, deterministic=True, rngs={"carry": jax.random.key(4)})
    np.testing.assert_array_equal(c, zero)


def test_strategy_names():
    assert isinstance(detector_strategy("learned", window=8), h0.Learned)
    assert isinstance(detector_strategy("learned_noisy", window=8), h0.LearnedNoisy)
    assert detector_strategy("per_sequence", window=8, num_sequences=4).num_sequences == 4
    assert detector_strategy("warmup", window=12).steps == 3
    assert set(STRATEGY_NAMES) >= {"zeros", "random", "learned", "learned_noisy", "per_sequence"}
    with pytest.raises(ValueError, match="initial_state='lerned' is not a strategy name"):
        detector_strategy("lerned", window=8)


def test_train_step_is_h0_parallel_step_of_the_loss():
    model = EncDecAD(features=1, hidden=4, strategy=h0.Learned())
    windows = jax.random.normal(jax.random.key(0), (3, 4, 6, 1))
    ids = jnp.zeros((3, 4), jnp.int32)
    params = model.init(jax.random.key(1), windows[0])["params"]
    opt = optimizer(1e-2)
    step = train_step(model, 1e-2)
    p, s = params, opt.init(params)
    q, r = params, opt.init(params)
    for i, k in enumerate(jax.random.split(jax.random.key(5), 3)):
        p, s, loss = step(p, s, (windows[i], ids[i]), k)
        # The same update written out with optax.
        want, grads = jax.value_and_grad(
            lambda w, i=i, k=k: reconstruction_loss(
                model, w, (windows[i], ids[i]), k, deterministic=False
            )
        )(q)
        updates, r = opt.update(grads, r, q)
        q = optax.apply_updates(q, updates)
        np.testing.assert_allclose(loss, want, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p, q)


def test_training_reduces_reconstruction_loss():
    t = jnp.arange(200.0)
    series = jnp.sin(t / 3.0)[:, None]
    windows = jnp.stack([series[i : i + 8] for i in range(192)])
    model = EncDecAD(features=1, hidden=8, strategy=h0.Learned())
    params = model.init(jax.random.key(0), windows[:16])["params"]
    step = train_step(model, 1e-2)
    ids = jnp.zeros((12, 16), jnp.int32)
    batches = windows.reshape(12, 16, 8, 1)
    key = jax.random.key(0)
    before = reconstruction_loss(model, params, (windows, ids.reshape(-1)), key, deterministic=True)
    s = optimizer(1e-2).init(params)
    for e in range(8):
        for b in range(12):
            params, s, _ = step(params, s, (batches[b], ids[b]), jax.random.fold_in(key, e))
    after = reconstruction_loss(model, params, (windows, ids.reshape(-1)), key, deterministic=True)
    assert after < 0.5 * before


def test_residuals_are_newest_error_and_window_rms():
    model = EncDecAD(features=2, hidden=4, strategy=h0.Zeros())
    x = jax.random.normal(jax.random.key(0), (3, 6, 2))
    params = model.init(jax.random.key(1), x)["params"]
    recon = np.asarray(model.apply({"params": params}, x))
    recent, whole = make_residual_fn(model, 2)(params, x, jnp.zeros((3,), jnp.int32))
    err = np.asarray(x) - recon
    np.testing.assert_allclose(recent, err[:, -2:].mean(axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole, np.sqrt((err**2).mean(axis=1)), rtol=1e-5, atol=1e-6)
