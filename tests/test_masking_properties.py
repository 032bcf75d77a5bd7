"""Property tests: a padded batch equals each sequence run alone, truncated."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import h0

B, T, F, H = 4, 7, 3, 5


def _model(cell, reverse):
    rnn = h0.RNN(cell, h0.Learned(init="normal"), reverse=reverse, return_carry=True)
    x = jnp.zeros((B, T, F))
    variables = rnn.init(jax.random.key(0), x)
    batched = jax.jit(lambda x, lengths: rnn.apply(variables, x, seq_lengths=lengths))
    alone = jax.jit(lambda x: rnn.apply(variables, x))  # one unbatched sequence, no padding
    return variables, batched, alone


MODELS = {
    (kind, reverse): _model(nn.GRUCell(H) if kind == "gru" else nn.LSTMCell(H), reverse)
    for kind in ("gru", "lstm")
    for reverse in (False, True)
}


@settings(max_examples=25, deadline=None)
@given(
    lengths=st.lists(st.integers(0, T), min_size=B, max_size=B),
    seed=st.integers(0, 2**16),
    kind=st.sampled_from(["gru", "lstm"]),
    reverse=st.booleans(),
)
def test_padded_batch_equals_each_sequence_alone(lengths, seed, kind, reverse):
    variables, batched, alone = MODELS[(kind, reverse)]
    x = jax.random.normal(jax.random.key(seed), (B, T, F))
    # Garbage in the padding must not leak into anything.
    carry, ys = batched(x, jnp.array(lengths))
    learned = variables["params"]["initial_state"]
    for i, length in enumerate(lengths):
        y_i = np.asarray(ys[i])
        carry_i = jax.tree.map(lambda c, i=i: np.asarray(c[i]), carry)
        assert np.all(y_i[length:] == 0.0), "padded outputs must be exactly zero"
        if length == 0:
            expected = (
                (learned["init_c"], learned["init_h"]) if kind == "lstm" else learned["init_h"]
            )
            jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), carry_i, expected)
            continue
        ref_carry, ref_y = alone(x[i, :length])
        np.testing.assert_allclose(y_i[:length], ref_y, rtol=1e-5, atol=1e-6)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), carry_i, ref_carry
        )


@settings(max_examples=20, deadline=None)
@given(
    shape=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_any_batch_shape_equals_flattened(shape, seed):
    rnn = h0.RNN(nn.GRUCell(H), h0.Learned(init="normal"), return_carry=True)
    variables = rnn.init(jax.random.key(0), jnp.zeros((T, F)))
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(*shape, T, F)), jnp.float32)
    lengths = jnp.asarray(rng.integers(0, T + 1, size=tuple(shape)), jnp.int32)
    carry, ys = rnn.apply(variables, x, seq_lengths=lengths)
    n = int(np.prod(shape))
    flat_carry, flat_ys = rnn.apply(variables, x.reshape(n, T, F), seq_lengths=lengths.reshape(n))
    np.testing.assert_allclose(np.asarray(ys).reshape(n, T, H), flat_ys, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(carry).reshape(n, H), flat_carry, rtol=1e-6, atol=1e-7)


def test_flip_sequences_is_an_involution():
    xs = jnp.arange(12.0).reshape(4, 3)
    lengths = jnp.array([4, 2, 0])
    flipped = h0.flip_sequences(xs, lengths)
    np.testing.assert_array_equal(flipped[:, 0], [9, 6, 3, 0])
    np.testing.assert_array_equal(flipped[:, 1], [4, 1, 7, 10])
    np.testing.assert_array_equal(flipped[:, 2], xs[:, 2])
    np.testing.assert_array_equal(h0.flip_sequences(flipped, lengths), xs)
