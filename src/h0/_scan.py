"""The runner's pure core: a masked ``lax.scan`` over time, and length-aware reversal.

Everything here works on time-major arrays with one flattened batch axis (``[t, b, ...]``);
the modules in :mod:`h0._runner` reshape to and from the user's layout.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from h0._typing import Array, Carry

Step = Callable[[Carry, Array], tuple[Carry, Array]]


def _expand(mask: Array, like: Array) -> Array:
    """Reshape a ``[b]`` mask so it broadcasts against ``like`` (``[b, ...]``) without rank promotion."""
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


def masked_scan(
    step: Step,
    carry: Carry,
    xs: Array,
    lengths: Array | None = None,
    *,
    unroll: int = 1,
) -> tuple[Carry, Array]:
    """Run ``step`` over time with each sequence's carry frozen after its end.

    Args:
        step: One time step, ``step(carry, x_t) -> (carry, y_t)``, with a leading batch axis.
        carry: The carry at t = 0, leaves ``[b, ...]``.
        xs: Inputs ``[t, b, f]``, time-major.
        lengths: Valid steps per sequence ``[b]``, or ``None`` when every sequence is full.
        unroll: Passed to :func:`jax.lax.scan`.

    Returns:
        ``(carry, ys)``: the carry after each sequence's last valid step and the outputs
        ``[t, b, o]``, exactly zero at padded steps.

    Example:
        >>> import jax.numpy as jnp
        >>> step = lambda c, x: (c + x, c + x)
        >>> carry, ys = masked_scan(step, jnp.zeros((2, 1)), jnp.ones((3, 2, 1)), jnp.array([1, 3]))
        >>> carry[:, 0].tolist(), ys[:, 0, 0].tolist()
        ([1.0, 3.0], [1.0, 0.0, 0.0])
    """
    if lengths is None:
        return jax.lax.scan(step, carry, xs, unroll=unroll)

    def body(carry: Carry, inputs: tuple[Array, Array]) -> tuple[Carry, Array]:
        x, t = inputs
        valid = t < lengths
        new_carry, y = step(carry, x)
        new_carry = jax.tree.map(
            lambda new, old: jnp.where(_expand(valid, new), new, old), new_carry, carry
        )
        y = jax.tree.map(lambda y: jnp.where(_expand(valid, y), y, jnp.zeros_like(y)), y)
        return new_carry, y

    steps = jnp.arange(xs.shape[0], dtype=lengths.dtype)
    return jax.lax.scan(body, carry, (xs, steps), unroll=unroll)


def flip_sequences(xs: Array, lengths: Array | None, *, time_axis: int = 0) -> Array:
    """Reverse each sequence's valid part in time, keeping padding at the end.

    Applying it twice with the same lengths gives back ``xs``.

    Args:
        xs: Time-major array ``[t, b, ...]`` (or batch-major ``[b, t, ...]`` with
            ``time_axis=1``).
        lengths: Valid steps per sequence ``[b]``, or ``None`` to reverse every sequence fully.
        time_axis: 0 for time-major ``xs``, 1 for batch-major.

    Returns:
        An array like ``xs`` where, for each sequence ``i`` of length ``L``, step ``k < L`` holds
        the input's step ``L - 1 - k`` and steps ``k >= L`` are unchanged.

    Example:
        >>> import jax.numpy as jnp
        >>> xs = jnp.array([[1, 2], [0, 3], [0, 4]])  # [t=3, b=2]: lengths 1 and 3
        >>> flip_sequences(xs, jnp.array([1, 3])).T.tolist()
        [[1, 0, 0], [4, 3, 2]]
    """
    if time_axis not in (0, 1):
        raise ValueError(f"time_axis must be 0 or 1, got {time_axis}.")
    if lengths is None:
        return jnp.flip(xs, axis=time_axis)
    t = jnp.arange(xs.shape[time_axis], dtype=lengths.dtype)[:, None]
    index = jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)
    if time_axis == 1:
        index = index.T
    index = index.reshape(index.shape + (1,) * (xs.ndim - 2))
    return jnp.take_along_axis(xs, index, axis=time_axis)


def run_sequence(
    step: Step,
    carry: Carry,
    xs: Array,
    lengths: Array | None = None,
    *,
    reverse: bool = False,
    warmup: int = 0,
    unroll: int = 1,
    scan: Callable[..., tuple[Carry, Array]] = masked_scan,
    time_axis: int = 0,
) -> tuple[Carry, Array]:
    """Run a recurrence over padded sequences: direction, burn-in and masking in one place.

    Args:
        step: One time step, ``step(carry, x_t) -> (carry, y_t)``.
        carry: The carry at t = 0, leaves ``[b, ...]``.
        xs: Inputs ``[t, b, f]``, time-major.
        lengths: Valid steps per sequence ``[b]``, or ``None``.
        reverse: Run each sequence's valid part from its last step to its first. Outputs come
            back in input order, padding at the end.
        warmup: Steps consumed (in processing order) to warm the carry up before outputs are
            kept; the outputs then have ``t - warmup`` steps.
        unroll: Passed to :func:`jax.lax.scan`.
        scan: The masked scan to use (a fast path may substitute its own with the same contract).
        time_axis: 1 when ``xs`` (and what ``scan`` takes and returns) is batch-major
            ``[b, t, f]``; the fast path works batch-major and so spares two transposes.

    Returns:
        ``(carry, ys)`` with ys ``[t - warmup, b, o]`` (``[b, t - warmup, o]`` with
        ``time_axis=1``).
    """
    if reverse:
        xs = flip_sequences(xs, lengths, time_axis=time_axis)
    if warmup:
        head = jax.lax.slice_in_dim(xs, 0, warmup, axis=time_axis)
        carry, _ = scan(step, carry, head, lengths, unroll=unroll)
        xs = jax.lax.slice_in_dim(xs, warmup, xs.shape[time_axis], axis=time_axis)
        if lengths is not None:
            lengths = jnp.maximum(lengths - warmup, 0)
    carry, ys = scan(step, carry, xs, lengths, unroll=unroll)
    if reverse:
        ys = flip_sequences(ys, lengths, time_axis=time_axis)
    return carry, ys
