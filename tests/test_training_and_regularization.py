"""Gradients reach the initial state; penalties and masks select exactly it; learning it helps."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import h0

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_example(name):
    path = REPO_ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _model_and_params():
    model = h0.Stacked(
        [
            h0.RNN(nn.GRUCell(4), h0.Learned()),
            h0.Bidirectional(
                h0.RNN(nn.LSTMCell(3), h0.PerSequence(2)),
                h0.RNN(nn.GRUCell(3), h0.Conditional(hidden_sizes=(2,)), reverse=True),
            ),
        ]
    )
    x = jax.random.normal(jax.random.key(0), (2, 5, 3))
    kwargs = {"ids": jnp.array([0, 1]), "context": jnp.ones((2, 4))}
    return model, x, kwargs, model.init(jax.random.key(1), x, **kwargs)["params"]


def _paths(tree, selected):
    return {
        jax.tree_util.keystr(path)
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
        if bool(leaf) == selected
    }


def test_mask_selects_exactly_the_initial_state_parameters():
    _, _, _, params = _model_and_params()
    mask = h0.initial_state_mask(params)
    chosen = _paths(mask, True)
    assert chosen == {
        "['layers_0']['initial_state']['init_h']",
        "['layers_1']['forward']['initial_state']['init_c']",
        "['layers_1']['forward']['initial_state']['init_c_fallback']",
        "['layers_1']['forward']['initial_state']['init_h']",
        "['layers_1']['forward']['initial_state']['init_h_fallback']",
        "['layers_1']['backward']['initial_state']['init_mlp_0']['bias']",
        "['layers_1']['backward']['initial_state']['init_mlp_0']['kernel']",
        "['layers_1']['backward']['initial_state']['init_h']['bias']",
        "['layers_1']['backward']['initial_state']['init_h']['kernel']",
    }
    assert all("['cell']" in p for p in _paths(mask, False))


def test_gradients_reach_initial_state_and_penalty_matches_by_hand():
    model, x, kwargs, params = _model_and_params()
    params = jax.tree.map(lambda p: p + 0.1, params)
    mask = h0.initial_state_mask(params)

    def loss(p):
        return jnp.mean(model.apply({"params": p}, x, **kwargs) ** 2)

    grads = jax.grad(loss)(params)
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        if "init_" in jax.tree_util.keystr(path) and "fallback" not in jax.tree_util.keystr(path):
            assert float(jnp.abs(g).sum()) > 0, f"no gradient at {jax.tree_util.keystr(path)}"

    selected = [
        leaf for leaf, m in zip(jax.tree.leaves(params), jax.tree.leaves(mask), strict=True) if m
    ]
    by_hand = sum(0.3 * float(jnp.sum(p**2)) + 0.02 * float(jnp.sum(jnp.abs(p))) for p in selected)
    penalty = h0.initial_state_penalty(params, l2=0.3, l1=0.02)
    np.testing.assert_allclose(float(penalty), by_hand, rtol=1e-5)
    # The penalty's gradient is zero on the cells and 2*l2*p on the states.
    pg = jax.grad(lambda p: h0.initial_state_penalty(p, l2=0.5))(params)
    for g, p, m in zip(
        jax.tree.leaves(pg), jax.tree.leaves(params), jax.tree.leaves(mask), strict=True
    ):
        np.testing.assert_allclose(g, p if m else jnp.zeros_like(p), rtol=1e-6)


def test_mask_works_with_optax_weight_decay_on_states_only():
    _, _, _, params = _model_and_params()
    params = jax.tree.map(lambda p: p + 1.0, params)
    tx = optax.add_decayed_weights(0.5, mask=h0.initial_state_mask(params))
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    mask = h0.initial_state_mask(params)
    for u, p, m in zip(
        jax.tree.leaves(updates), jax.tree.leaves(params), jax.tree.leaves(mask), strict=True
    ):
        np.testing.assert_allclose(u, 0.5 * p if m else jnp.zeros_like(p))


def test_fit_initial_state_is_the_mean_final_carry_from_zeros():
    rnn = h0.RNN(nn.LSTMCell(4), h0.Learned())
    x = jax.random.normal(jax.random.key(0), (6, 9, 2))
    variables = rnn.init(jax.random.key(1), x)
    fitted = h0.fit_initial_state(rnn, variables, x)
    probe = h0.RNN(nn.LSTMCell(4), return_carry=True)
    (c, h), _ = probe.apply({"params": {"cell": variables["params"]["cell"]}}, x)
    state = fitted["params"]["initial_state"]
    np.testing.assert_allclose(state["init_c"], c.mean(0), rtol=1e-6)
    np.testing.assert_allclose(state["init_h"], h.mean(0), rtol=1e-6)
    assert jax.tree.structure(fitted) == jax.tree.structure(variables)
    with pytest.raises(ValueError, match="fit_initial_state needs an RNN with a Learned"):
        zeros_rnn = h0.RNN(nn.GRUCell(4))
        h0.fit_initial_state(zeros_rnn, zeros_rnn.init(jax.random.key(0), x), x)


def test_recipe_module_layouts_and_batch_sizes():
    model = h0.GRUWithLearnableInitialState(6)
    single = jax.random.normal(jax.random.key(0), (10, 3))
    params = model.init(jax.random.key(1), single)
    init_h = params["params"]["rnn"]["initial_state"]["init_h"]
    assert init_h.shape == (6,)
    params = jax.tree.map(lambda p: p + 0.2, params)
    out_single = model.apply(params, single)
    assert out_single.shape == (10, 6)
    for batch in (1, 3, 7):
        x = jnp.stack([single] * batch, axis=1)  # time-major
        out = model.apply(params, x)
        assert out.shape == (10, batch, 6)
        np.testing.assert_allclose(
            out, jnp.stack([out_single] * batch, axis=1), rtol=1e-5, atol=1e-6
        )
    # The recipe's Python loop, written out: same numbers.
    cell = nn.GRUCell(6)
    carry, outs = params["params"]["rnn"]["initial_state"]["init_h"], []
    for t in range(10):
        carry, y = cell.apply({"params": params["params"]["rnn"]["cell"]}, carry, single[t])
        outs.append(y)
    np.testing.assert_allclose(out_single, jnp.stack(outs), rtol=1e-5, atol=1e-6)


def test_recipe_example_runs():
    shapes = _load_example("recipe").main()
    assert shapes == {
        "single": (20, 8),
        "batch": (20, 3, 8),
        "zeros": (3, 20, 8),
        "random": (3, 20, 8),
    }


def test_learned_initial_state_beats_zeros_where_the_start_matters(capsys):
    example = _load_example("learned_vs_zeros")
    results = {
        seed: (example.train(h0.Zeros(), seed=seed), example.train(h0.Learned(), seed=seed))
        for seed in (0, 2)
    }
    with capsys.disabled():
        for seed, (zeros, learned) in results.items():
            print(
                f"\n[learned vs zeros] seed {seed}: zeros loss {zeros:.5f}, learned loss {learned:.5f}"
            )
    for zeros, learned in results.values():
        assert learned < zeros
