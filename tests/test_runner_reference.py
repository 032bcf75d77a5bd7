"""Every strategy x cell x direction against Flax's cell stepped in a Python loop."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import h0
from reference import assert_tree_close, loop_batch, loop_one

B, T, F, H = 3, 6, 2, 5
LENGTHS = np.array([6, 3, 0])

CELLS = {
    "gru": lambda: nn.GRUCell(H),
    "lstm": lambda: nn.LSTMCell(H),
    "optimized_lstm": lambda: nn.OptimizedLSTMCell(H),
    "mgu": lambda: nn.MGUCell(H),
    "simple": lambda: nn.SimpleCell(H),
}


def _randomize(tree, key):
    """Replace every parameter by noise so zero-initialised states are not trivially zero."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [0.5 * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)],
    )


def _inputs():
    return jax.random.normal(jax.random.key(1), (B, T, F))


def _unbatched_zeros(cell):
    return cell.initialize_carry(jax.random.key(0), (F,))


def _stack(states, n):
    return jax.tree.map(lambda s: jnp.broadcast_to(s, (n, *s.shape)), states)


# Each case: strategy factory, call kwargs, and a function (params, kwargs) -> reference batched carry.
def _carry_zeros(cell, params, kwargs):
    return _stack(_unbatched_zeros(cell), B)


def _carry_learned(cell, params, kwargs):
    state = params["initial_state"]
    zeros = _unbatched_zeros(cell)
    if isinstance(zeros, tuple):
        return _stack((state["init_c"], state["init_h"]), B)
    return _stack(state["init_h"], B)


def _carry_per_sequence(cell, params, kwargs):
    ids = np.asarray(kwargs["ids"])
    state = params["initial_state"]

    def pick(table, fallback):
        rows = [table[i] if 0 <= i < table.shape[0] else fallback for i in ids]
        return jnp.stack(rows)

    if isinstance(_unbatched_zeros(cell), tuple):
        return (
            pick(state["init_c"], state["init_c_fallback"]),
            pick(state["init_h"], state["init_h_fallback"]),
        )
    return pick(state["init_h"], state["init_h_fallback"])


def _carry_conditional(cell, params, kwargs):
    state = params["initial_state"]
    hidden = jnp.tanh(
        kwargs["context"] @ state["init_mlp_0"]["kernel"] + state["init_mlp_0"]["bias"][None]
    )

    def head(name):
        return hidden @ state[name]["kernel"] + state[name]["bias"][None]

    if isinstance(_unbatched_zeros(cell), tuple):
        return head("init_c"), head("init_h")
    return head("init_h")


STRATEGIES = {
    "zeros": (lambda: h0.Zeros(), {}, _carry_zeros),
    "learned": (lambda: h0.Learned(init="normal"), {}, _carry_learned),
    "learned_noisy_eval": (lambda: h0.LearnedNoisy(stddev=0.3), {}, _carry_learned),
    "per_sequence": (
        lambda: h0.PerSequence(4, init="normal"),
        {"ids": jnp.array([2, 0, 9])},  # 9 is unknown: the fallback row
        _carry_per_sequence,
    ),
    "conditional": (
        lambda: h0.Conditional(hidden_sizes=(4,)),
        {"context": jax.random.normal(jax.random.key(7), (B, 3))},
        _carry_conditional,
    ),
}


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("strategy", list(STRATEGIES))
@pytest.mark.parametrize("cell_name", ["gru", "lstm"])
def test_strategy_cell_direction_matches_python_loop(cell_name, strategy, masked, reverse):
    make_strategy, kwargs, reference_carry = STRATEGIES[strategy]
    rnn = h0.RNN(CELLS[cell_name](), make_strategy(), reverse=reverse, return_carry=True)
    x = _inputs()
    variables = rnn.init(jax.random.key(0), x, **kwargs)
    params = _randomize(variables["params"], jax.random.key(3))
    lengths = jnp.asarray(LENGTHS) if masked else None

    carry, ys = jax.jit(lambda p: rnn.apply({"params": p}, x, seq_lengths=lengths, **kwargs))(
        params
    )

    carry0 = reference_carry(rnn.cell, params, kwargs)
    ref_carry, ref_ys = loop_batch(
        rnn.cell, params["cell"], carry0, x, LENGTHS if masked else None, reverse
    )
    assert_tree_close(ys, ref_ys)
    assert_tree_close(carry, ref_carry)


@pytest.mark.parametrize("cell_name", ["optimized_lstm", "mgu", "simple"])
def test_other_cells_match_python_loop(cell_name):
    rnn = h0.RNN(CELLS[cell_name](), h0.Learned(init="normal"), return_carry=True)
    x = _inputs()
    params = _randomize(rnn.init(jax.random.key(0), x)["params"], jax.random.key(4))
    carry, ys = rnn.apply({"params": params}, x, seq_lengths=jnp.asarray(LENGTHS))
    ref_carry, ref_ys = loop_batch(
        rnn.cell, params["cell"], _carry_learned(rnn.cell, params, {}), x, LENGTHS
    )
    assert_tree_close(ys, ref_ys)
    assert_tree_close(carry, ref_carry)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell_name", ["gru", "lstm"])
def test_warmup_matches_python_loop(cell_name, reverse):
    steps = 2
    rnn = h0.RNN(CELLS[cell_name](), h0.WarmUp(steps), reverse=reverse, return_carry=True)
    x = _inputs()
    params = _randomize(rnn.init(jax.random.key(0), x)["params"], jax.random.key(5))
    carry, ys = rnn.apply({"params": params}, x, seq_lengths=jnp.asarray(LENGTHS))
    assert ys.shape == (B, T - steps, H)
    cell, p = rnn.cell, params["cell"]
    for i, length in enumerate(LENGTHS):
        # Processing order: forward 0..L-1, reverse L-1..0. Burn in on the first `steps` of it.
        order = list(range(length - 1, -1, -1)) if reverse else list(range(length))
        c = _unbatched_zeros(cell)
        expected = np.zeros((T - steps, H), np.float32)
        for k, t in enumerate(order):
            c, y = cell.apply({"params": p}, c, x[i, t])
            if k >= steps:
                # Outputs are kept in input order, padding at the end: forward drops the first
                # `steps` positions, reverse the last `steps` valid ones.
                expected[t - steps if not reverse else t] = y
        assert_tree_close(jax.tree.map(lambda a, i=i: a[i], carry), c)
        np.testing.assert_allclose(ys[i], expected, rtol=1e-5, atol=1e-6)


def test_random_strategy_runs_from_its_noise_and_is_fresh_each_call():
    rnn = h0.RNN(nn.GRUCell(H), h0.Random(stddev=0.7), return_carry=True)
    x = _inputs()
    variables = rnn.init({"params": jax.random.key(0), "carry": jax.random.key(1)}, x)

    def run(key, lengths):
        return rnn.apply(variables, x, seq_lengths=lengths, rngs={"carry": key})

    # seq_lengths=0 returns the initial carry: the noise itself.
    noise_a, _ = run(jax.random.key(10), jnp.zeros((B,), jnp.int32))
    noise_b, _ = run(jax.random.key(11), jnp.zeros((B,), jnp.int32))
    assert not np.allclose(noise_a, noise_b)
    assert 0.3 < float(jnp.std(noise_a)) < 1.4  # stddev 0.7 over 15 numbers
    carry, ys = run(jax.random.key(10), None)
    ref_carry, ref_ys = loop_batch(rnn.cell, variables["params"]["cell"], noise_a, x)
    assert_tree_close(ys, ref_ys)
    assert_tree_close(carry, ref_carry)


def test_random_strategy_without_carry_rng_is_an_error():
    rnn = h0.RNN(nn.GRUCell(H), h0.Random())
    x = _inputs()
    with pytest.raises(ValueError, match="'carry' rng stream"):
        rnn.init(jax.random.key(0), x)


def test_learned_noisy_adds_noise_only_when_training():
    rnn = h0.RNN(nn.GRUCell(H), h0.LearnedNoisy(stddev=0.5, init="normal"), return_carry=True)
    x = jnp.zeros((400, 1, F))
    variables = rnn.init(jax.random.key(0), x)
    zero = jnp.zeros((400,), jnp.int32)
    learned = variables["params"]["initial_state"]["init_h"]
    c_eval, _ = rnn.apply(variables, x, seq_lengths=zero)
    np.testing.assert_allclose(c_eval, jnp.broadcast_to(learned, (400, H)), rtol=1e-6)
    c_train, _ = rnn.apply(
        variables, x, seq_lengths=zero, deterministic=False, rngs={"carry": jax.random.key(2)}
    )
    noise = np.asarray(c_train) - np.asarray(learned)
    assert abs(noise.std() - 0.5) < 0.05 and abs(noise.mean()) < 0.05
    with pytest.raises(ValueError, match="LearnedNoisy needs random numbers"):
        rnn.apply(variables, x, deterministic=False)


def test_learned_state_is_shared_across_batch_sizes_and_batch_dims():
    rnn = h0.RNN(nn.GRUCell(H), h0.Learned(init="normal"), return_carry=True)
    variables = rnn.init(jax.random.key(0), jnp.zeros((2, T, F)))
    assert variables["params"]["initial_state"]["init_h"].shape == (H,)
    one = jax.random.normal(jax.random.key(1), (T, F))
    c_one, y_one = rnn.apply(variables, one)
    for shape in [(1,), (3,), (7,), (2, 3), (2, 1, 2)]:
        xs = jnp.broadcast_to(one, (*shape, T, F))
        c, y = rnn.apply(variables, xs)
        assert y.shape == (*shape, T, H)
        np.testing.assert_allclose(y, jnp.broadcast_to(y_one, y.shape), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c, jnp.broadcast_to(c_one, c.shape), rtol=1e-5, atol=1e-6)


def test_extra_batch_dims_with_lengths_equal_flattened_batch():
    rnn = h0.RNN(nn.LSTMCell(H), h0.Learned(init="normal"), return_carry=True)
    x = jax.random.normal(jax.random.key(1), (2, 3, T, F))
    lengths = jnp.array([[6, 0, 2], [5, 1, 3]])
    variables = rnn.init(jax.random.key(0), x)
    carry, ys = rnn.apply(variables, x, seq_lengths=lengths)
    flat_carry, flat_ys = rnn.apply(variables, x.reshape(6, T, F), seq_lengths=lengths.reshape(6))
    np.testing.assert_allclose(ys.reshape(6, T, H), flat_ys, rtol=1e-6)
    assert_tree_close(jax.tree.map(lambda c: c.reshape(6, H), carry), flat_carry)


def test_unbatched_input():
    rnn = h0.RNN(nn.GRUCell(H), h0.Learned(init="normal"), return_carry=True)
    x = _inputs()
    variables = rnn.init(jax.random.key(0), x[0])
    carry, ys = rnn.apply(variables, x[0], seq_lengths=jnp.array(4))
    ref_c, ref_y = loop_one(
        rnn.cell,
        variables["params"]["cell"],
        variables["params"]["initial_state"]["init_h"],
        x[0],
        4,
    )
    assert ys.shape == (T, H) and carry.shape == (H,)
    np.testing.assert_allclose(ys, ref_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry, ref_c, rtol=1e-5, atol=1e-6)


def test_initial_carry_overrides_the_strategy():
    rnn = h0.RNN(nn.LSTMCell(H), h0.Learned(init="normal"), return_carry=True)
    x = _inputs()
    variables = rnn.init(jax.random.key(0), x)
    given = (jnp.full((B, H), 0.3), jnp.full((B, H), -0.2))
    carry, ys = rnn.apply(variables, x, initial_carry=given)
    ref_c, ref_y = loop_batch(rnn.cell, variables["params"]["cell"], given, x)
    assert_tree_close(ys, ref_y)
    assert_tree_close(carry, ref_c)


def test_flax_rnn_checkpoint_loads_into_h0_rnn():
    x = _inputs()
    flax_rnn = nn.RNN(nn.GRUCell(H))
    variables = flax_rnn.init(jax.random.key(0), x)
    ours = h0.RNN(nn.GRUCell(H))
    np.testing.assert_allclose(
        ours.apply(variables, x), flax_rnn.apply(variables, x), rtol=1e-5, atol=1e-6
    )
    assert jax.tree.structure(ours.init(jax.random.key(0), x)) == jax.tree.structure(variables)


def test_bidirectional_with_padding_matches_loops():
    bi = h0.Bidirectional(
        h0.RNN(nn.GRUCell(H), h0.Learned(init="normal")),
        h0.RNN(nn.LSTMCell(H), h0.Learned(init="normal"), reverse=True),
        return_carry=True,
    )
    x = _inputs()
    params = _randomize(bi.init(jax.random.key(0), x)["params"], jax.random.key(9))
    (cf, cb), ys = bi.apply({"params": params}, x, seq_lengths=jnp.asarray(LENGTHS))
    pf, pb = params["forward"], params["backward"]
    ref_cf, ref_yf = loop_batch(
        bi.forward.cell, pf["cell"], _stack(pf["initial_state"]["init_h"], B), x, LENGTHS
    )
    ref_cb, ref_yb = loop_batch(
        bi.backward.cell,
        pb["cell"],
        _stack((pb["initial_state"]["init_c"], pb["initial_state"]["init_h"]), B),
        x,
        LENGTHS,
        reverse=True,
    )
    np.testing.assert_allclose(ys, jnp.concatenate([ref_yf, ref_yb], -1), rtol=1e-5, atol=1e-6)
    assert_tree_close((cf, cb), (ref_cf, ref_cb))


def test_stacked_layers_have_their_own_states_and_dropout():
    stack = h0.Stacked(
        [
            h0.RNN(nn.GRUCell(H), h0.Learned(init="normal")),
            h0.RNN(nn.LSTMCell(4), h0.PerSequence(3, init="normal")),
        ],
        dropout=0.5,
        return_carry=True,
    )
    x = _inputs()
    ids = jnp.array([0, 1, 2])
    variables = stack.init(jax.random.key(0), x, ids=ids)
    params = variables["params"]
    assert params["layers_0"]["initial_state"]["init_h"].shape == (H,)
    assert params["layers_1"]["initial_state"]["init_h"].shape == (3, 4)
    lengths = jnp.asarray(LENGTHS)
    (c0, c1), ys = stack.apply(variables, x, ids=ids, seq_lengths=lengths)
    # Deterministic: the composition of two loops.
    ref_c0, ref_y0 = loop_batch(
        stack.layers[0].cell,
        params["layers_0"]["cell"],
        _stack(params["layers_0"]["initial_state"]["init_h"], B),
        x,
        LENGTHS,
    )
    s1 = params["layers_1"]["initial_state"]
    ref_c1, ref_y1 = loop_batch(
        stack.layers[1].cell,
        params["layers_1"]["cell"],
        (s1["init_c"], s1["init_h"]),
        ref_y0,
        LENGTHS,
    )
    np.testing.assert_allclose(ys, ref_y1, rtol=1e-5, atol=1e-6)
    assert_tree_close((c0, c1), (ref_c0, ref_c1))
    # Training: dropout changes the output, needs the 'dropout' stream, keeps padding at zero.
    _, y_train = stack.apply(
        variables,
        x,
        ids=ids,
        seq_lengths=lengths,
        deterministic=False,
        rngs={"dropout": jax.random.key(1)},
    )
    assert not np.allclose(y_train, ys)
    assert float(jnp.abs(y_train[1, 3:]).max()) == 0.0 and float(jnp.abs(y_train[2]).max()) == 0.0


def test_stacked_warmup_shortens_lengths_for_the_next_layer():
    stack = h0.Stacked([h0.RNN(nn.GRUCell(H), h0.WarmUp(2)), h0.RNN(nn.GRUCell(H))])
    x = _inputs()
    variables = stack.init(jax.random.key(0), x)
    ys = stack.apply(variables, x, seq_lengths=jnp.asarray(LENGTHS))
    assert ys.shape == (B, T - 2, H)
    # Sequence 1 has 3 steps: 1 kept after burn-in; the rest of its outputs are padding.
    assert float(jnp.abs(ys[1, 1:]).max()) == 0.0 and float(jnp.abs(ys[1, 0]).max()) > 0


@pytest.mark.parametrize(
    ("cell", "hidden", "backward_reverse", "padded"),
    [
        ("gru", H, False, True),
        ("lstm", H, True, True),
        ("lstm", H, False, False),
        ("gru", 48, False, True),  # the fast path
    ],
)
def test_bidirectional_matches_flax_bidirectional(cell, hidden, backward_reverse, padded):
    """``Bidirectional(RNN(f), RNN(b))`` runs ``b`` backwards, as ``flax.linen.Bidirectional``."""
    make = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}[cell]
    ours = h0.Bidirectional(
        h0.RNN(make(hidden)), h0.RNN(make(hidden), reverse=backward_reverse), return_carry=True
    )
    theirs = nn.Bidirectional(nn.RNN(make(hidden)), nn.RNN(make(hidden)), return_carry=True)
    x = _inputs()
    lengths = jnp.array([6, 3, 1]) if padded else None
    flax_params = _randomize(theirs.init(jax.random.key(0), x)["params"], jax.random.key(3))
    params = {"forward": flax_params["forward_rnn"], "backward": flax_params["backward_rnn"]}
    assert jax.tree.structure(params) == jax.tree.structure(
        ours.init(jax.random.key(0), x)["params"]
    )
    carry, ys = ours.apply({"params": params}, x, seq_lengths=lengths)
    ref_carry, ref_ys = theirs.apply({"params": flax_params}, x, seq_lengths=lengths)
    valid = (jnp.arange(T)[None, :] < (T if lengths is None else lengths[:, None]))[..., None]
    np.testing.assert_allclose(ys * valid, ref_ys * valid, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(jnp.where(valid, 0.0, ys)).max()) == 0.0  # and padding stays zero
    assert_tree_close(carry, ref_carry)
