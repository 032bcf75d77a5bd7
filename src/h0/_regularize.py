"""Penalties and optimiser masks for initial-state parameters.

A parameter is an initial-state parameter when its path passes through a module named
``initial_state`` (the attribute under which every h0 runner keeps its strategy) or through a
name starting with ``init_`` (every strategy names its parameters so, which also covers a
strategy built inline in a compact method and adopted by the enclosing module).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from h0._typing import Array, PyTree

SCOPE = "initial_state"
PREFIX = "init_"


def _key_name(key: object) -> object:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return getattr(key, attr)
    return key


def is_initial_state_path(path: tuple[object, ...]) -> bool:
    """Whether a pytree path (from :func:`jax.tree_util.tree_flatten_with_path`) is an initial state's."""
    for key in path:
        name = _key_name(key)
        if isinstance(name, str) and (name == SCOPE or name.startswith(PREFIX)):
            return True
    return False


def initial_state_mask(params: PyTree) -> PyTree:
    """A pytree of bools, ``True`` exactly at initial-state parameters.

    Use it with ``optax.masked`` (e.g. a separate learning rate) or as the ``mask`` of
    ``optax.add_decayed_weights`` (weight decay on the initial state only).

    Args:
        params: Parameters (or the whole variables dict) of a model containing h0 runners.

    Returns:
        A pytree like ``params`` with a bool at each leaf.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(4), h0.Learned())
        >>> params = rnn.init(jax.random.key(0), jnp.zeros((5, 3)))['params']
        >>> mask = h0.initial_state_mask(params)
        >>> mask['initial_state']['init_h'], mask['cell']['hn']['kernel']
        (True, False)
    """
    return jax.tree_util.tree_map_with_path(lambda path, _: is_initial_state_path(path), params)


def initial_state_penalty(params: PyTree, *, l2: float = 0.0, l1: float = 0.0) -> Array:
    """``l2 * sum(p**2) + l1 * sum(|p|)`` over the initial-state parameters (differentiable).

    Args:
        params: Parameters (or the whole variables dict).
        l2: Weight of the squared L2 norm.
        l1: Weight of the L1 norm.

    Returns:
        A scalar; zero when the model has no initial-state parameters.

    Example:
        >>> import jax.numpy as jnp, h0
        >>> params = {'cell': {'w': jnp.ones(3)}, 'initial_state': {'init_h': jnp.array([1., -2.])}}
        >>> float(h0.initial_state_penalty(params, l2=0.5, l1=1.0))
        5.5
    """
    total = jnp.zeros((), jnp.float32)
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if is_initial_state_path(path):
            if l2:
                total = total + l2 * jnp.sum(jnp.square(leaf))
            if l1:
                total = total + l1 * jnp.sum(jnp.abs(leaf))
    return total
