"""Bad input: each message names the argument and shows expected and actual shapes."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

import h0

X = jnp.zeros((3, 5, 2))


def _init_apply(rnn, x=X, **kwargs):
    variables = rnn.init(jax.random.key(0), X)
    return rnn.apply(variables, x, **kwargs)


def test_rank_one_inputs():
    with pytest.raises(
        ValueError, match=r"inputs must have shape \[\*batch, time, features\].*got shape \(5,\)"
    ):
        _init_apply(h0.RNN(nn.GRUCell(4)), x=jnp.zeros((5,)))


def test_integer_inputs():
    with pytest.raises(
        TypeError, match=r"inputs must be floating point, got dtype int32 with shape \(3, 5, 2\)"
    ):
        _init_apply(h0.RNN(nn.GRUCell(4)), x=jnp.zeros((3, 5, 2), jnp.int32))


def test_seq_lengths_wrong_shape():
    with pytest.raises(
        ValueError, match=r"seq_lengths has shape \(3, 2\) but inputs have batch shape \(3,\)"
    ):
        _init_apply(h0.RNN(nn.GRUCell(4)), seq_lengths=jnp.ones((3, 2), jnp.int32))


@pytest.mark.parametrize("bad", [-1, 6])
def test_seq_lengths_out_of_range(bad):
    with pytest.raises(
        ValueError, match=rf"seq_lengths must lie in \[0, 5\].*got {bad} at index \(1,\)"
    ):
        _init_apply(h0.RNN(nn.GRUCell(4)), seq_lengths=jnp.array([5, bad, 0]))


def test_seq_lengths_float():
    with pytest.raises(TypeError, match="seq_lengths must be integers, got dtype float32"):
        _init_apply(h0.RNN(nn.GRUCell(4)), seq_lengths=jnp.array([5.0, 1.0, 0.0]))


def test_seq_lengths_under_jit_are_clipped_not_wrong():
    rnn = h0.RNN(nn.GRUCell(4), return_carry=True)
    variables = rnn.init(jax.random.key(0), X)
    run = jax.jit(lambda lengths: rnn.apply(variables, jnp.ones((3, 5, 2)), seq_lengths=lengths))
    c_big, _ = run(jnp.array([9, 5, 5]))
    c_full, _ = run(jnp.array([5, 5, 5]))
    assert jnp.array_equal(c_big, c_full)


def test_initial_carry_wrong_shape():
    rnn = h0.RNN(nn.GRUCell(4))
    with pytest.raises(
        ValueError,
        match=r"initial_carry has shapes \(3, 5\) but the cell's carry for batch shape \(3,\) has shapes \(3, 4\)",
    ):
        _init_apply(rnn, initial_carry=jnp.zeros((3, 5)))


def test_initial_carry_wrong_structure():
    rnn = h0.RNN(nn.LSTMCell(4))
    with pytest.raises(
        ValueError,
        match=r"initial_carry does not match the cell's carry: expected a carry with shapes \(\(3, 4\), \(3, 4\)\), got \(3, 4\)",
    ):
        _init_apply(rnn, initial_carry=jnp.zeros((3, 4)))


def test_per_sequence_needs_ids():
    rnn = h0.RNN(nn.GRUCell(4), h0.PerSequence(5))
    with pytest.raises(
        ValueError, match=r"PerSequence needs ids: pass ids=<int array of the batch shape \(3,\)>"
    ):
        rnn.init(jax.random.key(0), X)


def test_per_sequence_ids_wrong_shape_and_dtype():
    rnn = h0.RNN(nn.GRUCell(4), h0.PerSequence(5))
    with pytest.raises(
        ValueError, match=r"ids has shape \(2,\) but inputs have batch shape \(3,\)"
    ):
        rnn.init(jax.random.key(0), X, ids=jnp.array([0, 1]))
    with pytest.raises(TypeError, match="ids must be integers, got dtype float32"):
        rnn.init(jax.random.key(0), X, ids=jnp.array([0.0, 1.0, 2.0]))


def test_conditional_needs_context_of_the_batch_shape():
    rnn = h0.RNN(nn.GRUCell(4), h0.Conditional())
    with pytest.raises(
        ValueError, match=r"Conditional needs context: pass context=<float array of shape \(3, c\)>"
    ):
        rnn.init(jax.random.key(0), X)
    with pytest.raises(
        ValueError,
        match=r"context has shape \(2, 6\) but inputs have batch shape \(3,\); expected \(3, c\)",
    ):
        rnn.init(jax.random.key(0), X, context=jnp.zeros((2, 6)))


def test_learned_unknown_leaf_and_init_name():
    with pytest.raises(
        ValueError,
        match=r"learn=\['x'\] names leaves \['x'\] that this cell's carry does not have; its leaves are \['c', 'h'\]",
    ):
        h0.RNN(nn.LSTMCell(4), h0.Learned(learn=("x",))).init(jax.random.key(0), X)
    with pytest.raises(ValueError, match=r"init='uniformish' is not an initializer name"):
        h0.RNN(nn.GRUCell(4), h0.Learned(init="uniformish")).init(jax.random.key(0), X)


def test_learned_init_array_of_the_wrong_shape():
    with pytest.raises(
        ValueError, match=r"init for leaf 'h' has shape \(3,\), but the carry leaf has shape \(4,\)"
    ):
        h0.RNN(nn.GRUCell(4), h0.Learned(init=jnp.zeros(3))).init(jax.random.key(0), X)


def test_warmup_longer_than_the_inputs():
    with pytest.raises(
        ValueError, match=r"WarmUp\(9\) needs at least 9 time steps; inputs have shape \(3, 5, 2\)"
    ):
        h0.RNN(nn.GRUCell(4), h0.WarmUp(9)).init(jax.random.key(0), X)


def test_bidirectional_forward_must_not_reverse():
    bi = h0.Bidirectional(h0.RNN(nn.GRUCell(4), reverse=True), h0.RNN(nn.GRUCell(4)))
    with pytest.raises(ValueError, match="forward RNN must have reverse=False"):
        bi.init(jax.random.key(0), X)


def test_stacked_initial_carry_count():
    stack = h0.Stacked([h0.RNN(nn.GRUCell(4)), h0.RNN(nn.GRUCell(4))])
    with pytest.raises(ValueError, match="initial_carry has 1 entries but the stack has 2 layers"):
        stack.init(jax.random.key(0), X, initial_carry=[None])


def test_recipe_rank():
    model = h0.GRUWithLearnableInitialState(4)
    with pytest.raises(
        ValueError,
        match=r"inputs must have shape \(time, features\) or \(time, batch, features\); got shape \(5,\)",
    ):
        model.init(jax.random.key(0), jnp.zeros((5,)))
