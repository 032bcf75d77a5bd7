"""h0.save / h0.restore: bit-exact round trips, resuming training, atomic writes, clear errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import h0
from h0 import _atomic, _checkpoint
from h0 import nnx as h0nnx

REPO = Path(__file__).resolve().parents[1]


def assert_bit_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def _linen_model():
    return h0.Stacked(
        [
            h0.Bidirectional(
                h0.RNN(nn.GRUCell(4), h0.Learned("normal")),
                h0.RNN(nn.GRUCell(4), h0.PerSequence(3, "normal"), reverse=True),
            ),
            h0.RNN(nn.LSTMCell(3), h0.Learned("normal")),
        ]
    )


def _data(batch: int, seed: int = 0):
    x = jax.random.normal(jax.random.key(seed), (batch, 5, 2))
    return x, {"ids": jnp.arange(batch) % 4}


def _random_like(tree, seed: int = 0):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(
        treedef, [jax.random.normal(k, s.shape, s.dtype) for s, k in zip(leaves, keys, strict=True)]
    )


def test_round_trip_is_bit_exact(tmp_path):
    model = _linen_model()
    x, kw = _data(3)
    variables = _random_like(jax.eval_shape(model.init, jax.random.key(0), x, **kw))
    tx = optax.adam(1e-2)
    tree = {
        "variables": variables,
        "opt_state": tx.init(variables["params"]),
        "step": 12,
        "rng": jax.random.key(5),
        "history": np.array([0.5, 0.25], np.float64),
    }
    path = h0.save(tmp_path / "ckpt", tree)
    like = jax.tree.map(jnp.zeros_like, {k: tree[k] for k in ("variables", "opt_state")})
    like |= {"step": 0, "rng": jax.random.key(0), "history": np.zeros(2, np.float64)}
    restored = h0.restore(path, like=like)
    assert restored["step"] == 12 and isinstance(restored["step"], int)
    assert type(restored["opt_state"][0]) is type(tree["opt_state"][0])
    np.testing.assert_array_equal(
        jax.random.key_data(restored["rng"]), jax.random.key_data(tree["rng"])
    )
    del restored["rng"], tree["rng"]
    assert_bit_equal(restored, tree)
    # Without like: the same numbers as nested dicts.
    raw = h0.restore(path)
    np.testing.assert_array_equal(
        raw["variables"]["params"]["layers_1"]["initial_state"]["init_h"],
        variables["params"]["layers_1"]["initial_state"]["init_h"],
    )


def test_restore_into_a_model_built_for_another_batch_size(tmp_path):
    model = h0.RNN(nn.GRUCell(4), h0.PerSequence(4, "normal"))
    x4, kw4 = _data(4)
    variables = model.init(jax.random.key(0), x4, **kw4)
    path = h0.save(tmp_path / "ckpt", variables)
    # A model set up for batch 7 has the same parameter shapes; its shapes alone are enough.
    x7, kw7 = _data(7, seed=1)
    like = jax.eval_shape(model.init, jax.random.key(1), x7, **kw7)
    restored = h0.restore(path, like=like)
    assert_bit_equal(restored, variables)
    y = jax.jit(lambda v: model.apply(v, x7, **kw7))
    np.testing.assert_array_equal(y(restored), y(variables))


def test_nnx_module_round_trip_and_other_batch_size(tmp_path):
    def build(seed):
        rngs = nnx.Rngs(seed)
        return h0nnx.RNN(nnx.LSTMCell(2, 3, rngs=rngs), h0nnx.Learned("normal"), rngs=rngs)

    model = build(0)
    path = h0.save(tmp_path / "nnx", model)
    other = build(1)
    x = jax.random.normal(jax.random.key(2), (6, 5, 2))  # saved without any batch at all
    assert not np.allclose(other(x), model(x))
    restored = h0.restore(path, like=other)
    assert restored is other  # updated in place
    assert_bit_equal(nnx.to_pure_dict(nnx.state(other)), nnx.to_pure_dict(nnx.state(model)))
    np.testing.assert_array_equal(other(x), model(x))


def test_nnx_rng_streams_are_saved_and_restored(tmp_path):
    def build(seed):
        rngs = nnx.Rngs(seed)
        strategy = h0nnx.Random(0.5, rngs=nnx.Rngs(carry=seed))  # keeps a 'carry' stream
        return h0nnx.RNN(nnx.GRUCell(2, 3, rngs=rngs), strategy, return_carry=True)

    x = jnp.ones((2, 1, 2))
    model = build(0)
    model(x)  # advance the kept stream
    path = h0.save(tmp_path / "ckpt", model)
    expected, _ = model(x)  # the next draw of the saved stream
    other = build(1)
    h0.restore(path, like=other)
    np.testing.assert_array_equal(other(x)[0], expected)


# --- Resuming training ---------------------------------------------------------------------


def _batch(step: int):
    key = jax.random.fold_in(jax.random.key(42), step)
    x = jax.random.normal(key, (3, 6, 2))
    return x, jnp.sin(jnp.cumsum(x, axis=1))[..., :1]


_MODEL = h0.RNN(nn.GRUCell(4), h0.Learned("normal"))
_HEAD = nn.Dense(1)
_TX = optax.adam(1e-2)


@jax.jit
def _linen_update(params, opt_state, x, y):
    def loss(p):
        h = _MODEL.apply({"params": p["rnn"]}, x)
        return jnp.mean((_HEAD.apply({"params": p["head"]}, h) - y) ** 2)

    grads = jax.grad(loss)(params)
    updates, opt_state = _TX.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def _linen_train(n_steps: int, state=None):
    if state is None:
        params = {
            "rnn": _MODEL.init(jax.random.key(0), jnp.zeros((3, 6, 2)))["params"],
            "head": _HEAD.init(jax.random.key(1), jnp.zeros((4,)))["params"],
        }
        state = {"params": params, "opt_state": _TX.init(params), "step": 0}
    params, opt_state, step = state["params"], state["opt_state"], state["step"]
    for _ in range(n_steps):
        params, opt_state = _linen_update(params, opt_state, *_batch(step))
        step += 1
    return {"params": params, "opt_state": opt_state, "step": step}


def test_linen_training_resumes_exactly(tmp_path):
    straight = _linen_train(6)
    first = _linen_train(3)
    path = h0.save(tmp_path / "train", first)
    fresh = _linen_train(0)  # a new process would build its state like this
    resumed = _linen_train(3, h0.restore(path, like=fresh))
    assert resumed["step"] == 6
    assert_bit_equal(resumed, straight)


def _nnx_setup():
    rngs = nnx.Rngs(0)
    model = h0nnx.RNN(nnx.GRUCell(2, 4, rngs=rngs), h0nnx.Learned("normal"), rngs=rngs)
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    return model, optimizer


@nnx.jit
def _nnx_step(model, optimizer, x, y):
    grads = nnx.grad(lambda m: jnp.mean((m(x)[..., :1] - y) ** 2))(model)
    optimizer.update(model, grads)


def test_nnx_training_resumes_exactly(tmp_path):
    model, optimizer = _nnx_setup()
    for step in range(6):
        _nnx_step(model, optimizer, *_batch(step))
    straight = nnx.to_pure_dict(nnx.state((model, optimizer)))

    model, optimizer = _nnx_setup()
    for step in range(3):
        _nnx_step(model, optimizer, *_batch(step))
    path = h0.save(tmp_path / "train", {"model": model, "optimizer": optimizer})
    model, optimizer = _nnx_setup()
    restored = h0.restore(path, like={"model": model, "optimizer": optimizer})
    assert restored["model"] is model and restored["optimizer"] is optimizer
    assert int(optimizer.step[...]) == 3
    for step in range(3, 6):
        _nnx_step(model, optimizer, *_batch(step))
    assert_bit_equal(nnx.to_pure_dict(nnx.state((model, optimizer))), straight)


# --- Atomic writes -------------------------------------------------------------------------

OLD = {"w": jnp.arange(4.0), "step": 1}
NEW = {"w": jnp.arange(4.0) + 10, "step": 2}
LIKE = {"w": jnp.zeros(4), "step": 0}


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = h0.save(tmp_path / "ckpt", OLD)

    def crash(root, *_):
        (root / "partial").write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(_checkpoint, "_write_manifest", crash)
    with pytest.raises(OSError, match="disk full"):
        h0.save(path, NEW)
    assert h0.restore(path, like=LIKE)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # the temp dir is gone


def test_a_crash_between_the_renames_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    """Without renameat2's exchange, the old checkpoint is renamed aside before the new one is
    renamed in. An exception in between puts it back; a kill in between (see test_atomic.py)
    leaves it aside, and restore puts it back."""
    path = h0.save(tmp_path / "ckpt", OLD)
    monkeypatch.setattr(_atomic, "_exchange", lambda a, b: False)

    def stage(name):
        if name == "aside":  # old moved aside, new not yet in place
            assert not path.exists()
            assert [p.name[:13] for p in tmp_path.iterdir() if p.name != "ckpt"].count(
                ".ckpt.h0-old-"
            ) == 1
            raise KeyboardInterrupt

    monkeypatch.setattr(_atomic, "_stage", stage)
    with pytest.raises(KeyboardInterrupt):
        h0.save(path, NEW)
    monkeypatch.setattr(_atomic, "_stage", lambda name: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # renamed back
    assert h0.restore(path, like=LIKE)["step"] == 1
    h0.save(path, NEW)
    assert h0.restore(path, like=LIKE)["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint(tmp_path):
    path = h0.save(tmp_path / "ckpt", OLD)
    script = textwrap.dedent(
        f"""
        import os, jax.numpy as jnp, h0
        from h0 import _atomic, _checkpoint
        def die(root, *_):
            (root / "partial").write_bytes(b"x")
            os._exit(9)  # killed: no cleanup, no exception handling
        _checkpoint._write_manifest = die
        h0.save({str(path)!r}, {{"w": jnp.arange(4.0) + 10, "step": 2}})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], env=env, timeout=120)
    assert result.returncode == 9
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "ckpt"]
    assert leftovers and all(name.startswith(".ckpt.h0-tmp-") for name in leftovers)
    np.testing.assert_array_equal(h0.restore(path, like=LIKE)["w"], OLD["w"])
    h0.save(path, NEW)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


# --- Clear errors --------------------------------------------------------------------------


def _data_file(path: Path) -> Path:
    files = [p for p in path.rglob("*") if p.is_file() and "/d/" in p.as_posix()]
    return max(files, key=lambda p: p.stat().st_size)


def test_truncated_or_corrupted_files_are_reported(tmp_path):
    path = h0.save(tmp_path / "ckpt", OLD)
    target = _data_file(path)
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"ckpt is corrupted: file .* has \d+ bytes, expected"):
        h0.restore(path, like=LIKE)
    target.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(ValueError, match="fails its checksum"):
        h0.restore(path, like=LIKE)
    target.unlink()
    with pytest.raises(ValueError, match=r"is incomplete: file .* is missing"):
        h0.restore(path, like=LIKE)
    (path / _checkpoint.MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match=r"ckpt has a corrupted h0_checkpoint\.json"):
        h0.restore(path, like=LIKE)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(ValueError, match=r"nothing is not a checkpoint: no such directory"):
        h0.restore(tmp_path / "nothing", like=LIKE)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="plain is not an h0 checkpoint: it has no"):
        h0.restore(tmp_path / "plain", like=LIKE)
    (tmp_path / "plain" / "keep.txt").write_text("user data")
    with pytest.raises(ValueError, match=r"not an h0 checkpoint .*refusing to replace"):
        h0.save(tmp_path / "plain", OLD)
    assert (tmp_path / "plain" / "keep.txt").read_text() == "user data"
    path = h0.save(tmp_path / "ckpt", OLD)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        h0.save(path, NEW, overwrite=False)


def test_mismatched_structure_shapes_and_dtypes_are_named(tmp_path):
    model = h0.RNN(nn.GRUCell(4), h0.Learned())
    x = jnp.zeros((2, 5, 3))
    path = h0.save(tmp_path / "ckpt", model.init(jax.random.key(0), x))
    wider = h0.RNN(nn.GRUCell(8), h0.Learned()).init(jax.random.key(0), x)
    with pytest.raises(
        ValueError,
        match=r"ckpt does not match like: \['params'\]\['cell'\]\['hn'\]\['bias'\] has shape \(4,\) "
        r"in the checkpoint but \(8,\) in like",
    ):
        h0.restore(path, like=wider)
    zeros = h0.RNN(nn.GRUCell(4), h0.Zeros()).init(jax.random.key(0), x)
    with pytest.raises(
        ValueError,
        match=r"leaves in the checkpoint but not in like: \['params'\]\['initial_state'\]\['init_h'\]",
    ):
        h0.restore(path, like=zeros)
    half = jax.tree.map(lambda p: p.astype(jnp.float16), model.init(jax.random.key(0), x))
    with pytest.raises(ValueError, match="has dtype float32 in the checkpoint but float16 in like"):
        h0.restore(path, like=half)


def test_docs_examples_run():
    """Every python block of docs/checkpoints.md, run in order in one namespace."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "checkpoints.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/checkpoints.md", "exec"), namespace)
