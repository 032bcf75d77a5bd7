"""Reference implementations the tests compare h0 against: Flax's own cells stepped in Python."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def loop_one(cell: nn.Module, params, carry, xs, length=None, reverse=False):
    """Step ``cell`` over one unbatched sequence ``xs [t, f]`` in a Python loop.

    Returns the final carry and outputs ``[t, h]`` with zeros at padded steps; in reverse the
    valid part runs from step ``length - 1`` down to 0 and outputs stay at their input positions.
    """
    time = xs.shape[0]
    length = time if length is None else int(length)
    order = range(length - 1, -1, -1) if reverse else range(length)
    outputs = [None] * time
    for t in order:
        carry, y = cell.apply({"params": params}, carry, xs[t])
        outputs[t] = y
    template = cell.apply({"params": params}, carry, xs[0])[1]
    outputs = [jnp.zeros_like(template) if y is None else y for y in outputs]
    return carry, jnp.stack(outputs)


def loop_batch(cell, params, carries, xs, lengths=None, reverse=False):
    """Run :func:`loop_one` on each sequence of ``xs [b, t, f]`` alone, then stack."""
    finals, outs = [], []
    for i in range(xs.shape[0]):
        carry_i = jax.tree.map(lambda c, i=i: c[i], carries)
        length = None if lengths is None else lengths[i]
        c, y = loop_one(cell, params, carry_i, xs[i], length, reverse)
        finals.append(c)
        outs.append(y)
    return jax.tree.map(lambda *cs: jnp.stack(cs), *finals), jnp.stack(outs)


def assert_tree_close(actual, expected, rtol=1e-5, atol=1e-6):
    """Assert two pytrees of arrays are equal within tolerance, leaf by leaf."""
    a_leaves, a_def = jax.tree.flatten(actual)
    e_leaves, e_def = jax.tree.flatten(expected)
    assert a_def == e_def, f"structures differ: {a_def} vs {e_def}"
    for a, e in zip(a_leaves, e_leaves, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)
