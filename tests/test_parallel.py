"""Data-parallel training on 4 host devices equals the single-device run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import h0.parallel as hp

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import flax.linen as nn, jax, jax.numpy as jnp, numpy as np, optax
    import h0, h0.parallel as hp

    assert len(jax.devices()) == 4, jax.devices()
    model = h0.RNN(nn.GRUCell(8), h0.Learned(init='normal'))
    x = jax.random.normal(jax.random.key(0), (16, 12, 3))
    y = jnp.sin(jnp.cumsum(x, axis=1))[..., :1]
    lengths = jnp.asarray(np.random.default_rng(0).integers(1, 13, 16), jnp.int32)
    batch = {'x': x, 'y': y, 'lengths': lengths}
    params = model.init(jax.random.key(1), x)['params']
    readout = jax.random.normal(jax.random.key(2), (8, 1)) * 0.3

    def loss_fn(params, batch, key):
        out = model.apply({'params': params}, batch['x'], seq_lengths=batch['lengths'])
        return jnp.mean((out @ readout - batch['y']) ** 2)

    tx = optax.adam(1e-2)
    results = {}
    for name, mesh in [('single', hp.data_mesh(jax.devices()[:1])), ('sharded', hp.data_mesh())]:
        step = hp.make_train_step(loss_fn, tx, mesh)
        p, s = hp.replicate(params, mesh), hp.replicate(tx.init(params), mesh)
        b = hp.shard_batch(batch, mesh)
        shards = [tuple(sh.data.shape) for sh in b['x'].addressable_shards]
        losses = []
        for i in range(5):
            p, s, loss = step(p, s, b, jax.random.key(i))
            losses.append(float(loss))
        results[name] = {
            'losses': losses,
            'params': [np.asarray(l).ravel().tolist() for l in jax.tree.leaves(p)],
            'shards': shards,
            'spec': str(b['x'].sharding.spec),
        }
    json.dump(results, sys.stdout)
    """
)


def _four_device_env() -> dict[str, str]:
    """A child process with 4 host devices that imports this checkout's ``h0``."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    return dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=path,
    )


def test_sharded_training_matches_single_device():
    env = _four_device_env()
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)
    single, sharded = results["single"], results["sharded"]
    # The batch really is split: 4 shards of 4 sequences each, along the 'data' axis.
    assert sharded["shards"] == [[4, 12, 3]] * 4 and "data" in sharded["spec"]
    assert single["shards"] == [[16, 12, 3]]
    np.testing.assert_allclose(sharded["losses"], single["losses"], rtol=1e-5)
    for a, b in zip(sharded["params"], single["params"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert single["losses"][-1] < single["losses"][0]


def test_shard_batch_rejects_uneven_batches():
    mesh = hp.data_mesh()
    if mesh.shape["data"] == 1:
        mesh = jax.sharding.Mesh(np.asarray(jax.devices() * 1), ("data",))
    with pytest.raises(ValueError, match=r"batch leaf of shape \(\) cannot be split"):
        hp.shard_batch({"x": jnp.array(1.0)}, mesh)


def test_train_step_without_mesh_is_plain_jit():
    loss = lambda p, b, k: jnp.mean((b * p - 1.0) ** 2)
    step = hp.make_train_step(loss, optax.sgd(0.5))
    p, _, value = step(
        jnp.array(0.0), optax.sgd(0.5).init(jnp.array(0.0)), jnp.ones(4), jax.random.key(0)
    )
    assert float(value) == 1.0 and float(p) == 1.0


# ------------------------------------------------------------------------------- ensembles

N_MODELS = 3


def _ensemble_problem(hidden: int = 48):
    """A small detector-like regression per model: GRU + learned h0 + readout, clipped Adam."""
    import flax.linen as nn

    import h0

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, lengths):
            out = h0.RNN(nn.GRUCell(hidden), h0.Learned(init="normal"))(x, seq_lengths=lengths)
            return nn.Dense(1)(out)

    net = Net()

    def loss_fn(params, batch, key):
        noise = 0.01 * jax.random.normal(key, batch["y"].shape)
        out = net.apply({"params": params}, batch["x"], batch["lengths"])
        return jnp.mean((out - batch["y"] - noise) ** 2)

    keys = jax.random.split(jax.random.key(0), N_MODELS)
    x = jax.random.normal(jax.random.key(1), (N_MODELS, 4, 6, 2))
    batch = {
        "x": x,
        "y": jnp.cumsum(x, axis=2)[..., :1] * jnp.arange(1.0, N_MODELS + 1)[:, None, None, None],
        "lengths": jnp.array([[6, 3, 5, 1], [6, 6, 2, 4], [1, 6, 6, 6]]),
    }
    params = [net.init(k, batch["x"][0], batch["lengths"][0])["params"] for k in keys]
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-2))
    return loss_fn, tx, params, batch


def test_ensemble_equals_each_model_trained_alone():
    loss_fn, tx, params, batch = _ensemble_problem()
    steps = 4
    step_keys = [jax.random.split(jax.random.key(10 + i), N_MODELS) for i in range(steps)]

    ensemble = hp.make_ensemble_train_step(loss_fn, tx)
    p = hp.stack(params)
    s = jax.vmap(tx.init)(p)
    together = []
    for keys in step_keys:
        p, s, losses = ensemble(p, s, batch, keys)
        together.append(np.asarray(losses))
    assert np.asarray(together).shape == (steps, N_MODELS)

    single = hp.make_train_step(loss_fn, tx)
    for i, trained in enumerate(hp.unstack(p)):
        q, t = params[i], tx.init(params[i])
        batch_i = jax.tree.map(lambda leaf, i=i: leaf[i], batch)
        for k, keys in enumerate(step_keys):
            q, t, loss = single(q, t, batch_i, keys[i])
            np.testing.assert_allclose(together[k][i], loss, rtol=1e-5)
        for a, b in zip(jax.tree.leaves(trained), jax.tree.leaves(q), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The models really are different problems: per-model clipping and Adam statistics.
    assert len({round(float(v), 4) for v in together[-1]}) == N_MODELS


@pytest.mark.parametrize("vectorize", [1, 2])
def test_ensemble_in_groups_equals_vmapped(vectorize):
    # N_MODELS = 3 with groups of 2 leaves a remainder group of one: it must train as well.
    loss_fn, tx, params, batch = _ensemble_problem()
    keys = jax.random.split(jax.random.key(10), N_MODELS)
    results = {}
    for name, k in [("vmap", None), ("groups", vectorize)]:
        step = hp.make_ensemble_train_step(loss_fn, tx, vectorize=k)
        p = hp.stack(params)
        s = jax.vmap(tx.init)(p)
        for _ in range(3):
            p, s, losses = step(p, s, batch, keys)
        results[name] = (p, losses)
    np.testing.assert_allclose(results["groups"][1], results["vmap"][1], rtol=1e-5)
    for a, b in zip(*(jax.tree.leaves(results[n][0]) for n in results), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_ensemble_vectorize_is_checked():
    loss_fn, tx, _, _ = _ensemble_problem()
    with pytest.raises(ValueError, match="vectorize must be a positive"):
        hp.make_ensemble_train_step(loss_fn, tx, vectorize=0)


ENSEMBLE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np, optax
    import h0.parallel as hp

    assert len(jax.devices()) == 4, jax.devices()
    loss = lambda p, b, key: jnp.mean((jnp.tanh(b['x'] @ p['w']) - b['y']) ** 2)
    tx = optax.adam(0.05)
    x = jax.random.normal(jax.random.key(0), (8, 16, 3))              # N = 8 models
    batch = {'x': x, 'y': jnp.sin(x.sum(-1, keepdims=True) * jnp.arange(8.0)[:, None, None])}
    params = {'w': jax.random.normal(jax.random.key(1), (8, 3, 1))}
    keys = jax.random.split(jax.random.key(2), 8)
    out = {}
    for name, mesh in [('single', None), ('sharded', hp.data_mesh())]:
        step = hp.make_ensemble_train_step(loss, tx, mesh)
        p, s = params, jax.vmap(tx.init)(params)
        for _ in range(5):
            p, s, losses = step(p, s, batch, keys)
        out[name] = {'losses': np.asarray(losses).tolist(), 'w': np.asarray(p['w']).ravel().tolist(),
                     'shards': [tuple(sh.data.shape) for sh in p['w'].addressable_shards]}
    json.dump(out, sys.stdout)
    """
)


def test_sharded_ensemble_splits_the_models():
    env = _four_device_env()
    out = subprocess.run(
        [sys.executable, "-c", ENSEMBLE_SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)
    assert results["sharded"]["shards"] == [[2, 3, 1]] * 4  # two models per device
    np.testing.assert_allclose(results["sharded"]["losses"], results["single"]["losses"], rtol=1e-6)
    np.testing.assert_allclose(results["sharded"]["w"], results["single"]["w"], rtol=1e-6)
