"""What a cell's carry looks like: its shapes, its leaves' names, and checks against them."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from h0._typing import Array, Carry, PyTree

_LSTM_CELLS = (nn.LSTMCell, nn.OptimizedLSTMCell)


def carry_template(cell: nn.Module, num_features: int) -> Carry:
    """The carry of one unbatched sequence, as a pytree of :class:`jax.ShapeDtypeStruct`.

    Args:
        cell: A Flax cell with ``initialize_carry(rng, input_shape)``.
        num_features: The input's feature size.

    Returns:
        The shapes and dtypes of ``cell.initialize_carry`` for input shape ``(num_features,)``.

    Example:
        >>> import flax.linen as nn
        >>> carry_template(nn.LSTMCell(4), 3)
        (ShapeDtypeStruct(shape=(4,), dtype=float32), ShapeDtypeStruct(shape=(4,), dtype=float32))
    """
    return jax.eval_shape(lambda: cell.initialize_carry(jax.random.key(0), (num_features,)))


def _sanitize(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_") or "x"


def carry_names(cell: nn.Module, template: Carry) -> PyTree:
    """Name each leaf of a carry: ``'h'`` for single-array carries, ``('c', 'h')`` for LSTMs.

    Other pytree carries are named after their paths (``'0'``, ``'1'``, ``'state'``...).

    Returns:
        A pytree with the template's structure whose leaves are the names (strings).
    """
    leaves, treedef = jax.tree.flatten(template)
    if len(leaves) == 1 and treedef.num_nodes == 1:
        return "h"
    if isinstance(cell, _LSTM_CELLS) and isinstance(template, tuple) and len(template) == 2:
        return ("c", "h")
    paths = [
        jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(template)
    ]
    return jax.tree.unflatten(treedef, [_sanitize(p) for p in paths])


def describe(tree: PyTree) -> str:
    """Shapes of a pytree of arrays, for error messages: ``(3, 8)`` or ``((3, 8), (3, 8))``."""
    shapes = jax.tree.map(lambda x: tuple(jnp.shape(x)), tree)
    return str(shapes).replace("'", "")


def broadcast_state(state: Carry, batch_shape: Sequence[int]) -> Carry:
    """Broadcast an unbatched carry to ``batch_shape``."""
    return jax.tree.map(lambda s: jnp.broadcast_to(s, (*batch_shape, *jnp.shape(s))), state)


def check_carry(
    carry: Carry, template: Carry, batch_shape: Sequence[int], *, argument: str
) -> Carry:
    """Check a batched carry against the cell's template and return it with the template's dtypes.

    Raises:
        ValueError: When the structure or any shape differs; the message shows both.
    """
    expected = jax.tree.map(lambda s: (*batch_shape, *s.shape), template)
    try:
        carry_struct = jax.tree.structure(carry)
    except Exception:  # pragma: no cover - tree.structure accepts anything
        carry_struct = None
    if carry_struct != jax.tree.structure(template):
        raise ValueError(
            f"{argument} does not match the cell's carry: expected a carry with shapes "
            f"{str(expected).replace(chr(39), '')}, got {describe(carry)}."
        )
    actual = jax.tree.map(lambda x: tuple(jnp.shape(x)), carry)
    if jax.tree.leaves(actual, is_leaf=lambda x: isinstance(x, tuple)) != jax.tree.leaves(
        expected, is_leaf=lambda x: isinstance(x, tuple)
    ):
        raise ValueError(
            f"{argument} has shapes {describe(carry)} but the cell's carry for batch shape "
            f"{tuple(batch_shape)} has shapes {str(expected).replace(chr(39), '')}."
        )
    return jax.tree.map(lambda x, s: jnp.asarray(x, s.dtype), carry, template)


def flatten_batch(tree: PyTree, batch_shape: Sequence[int]) -> PyTree:
    """Merge the leading ``batch_shape`` axes of every leaf into one."""
    size = math.prod(batch_shape)
    n = len(batch_shape)
    return jax.tree.map(lambda x: x.reshape((size, *x.shape[n:])), tree)


def unflatten_batch(tree: PyTree, batch_shape: Sequence[int]) -> PyTree:
    """Split the leading axis of every leaf back into ``batch_shape``."""
    return jax.tree.map(lambda x: x.reshape((*batch_shape, *x.shape[1:])), tree)


def is_float(x: Array) -> bool:
    """Whether an array has a floating-point dtype."""
    return jnp.issubdtype(jnp.result_type(x), jnp.floating)
