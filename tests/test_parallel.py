"""Data-parallel training on 4 host devices equals the single-device run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

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


def test_sharded_training_matches_single_device():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
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
