"""The runner's pure core, shared by the Linen and NNX front-ends.

- :func:`masked_scan`, :func:`flip_sequences` and :func:`run_sequence` work on arrays with one
  flattened batch axis (``[t, b, ...]``, or ``[b, t, ...]`` for the fast path): masking,
  length-aware reversal, burn-in.
- :func:`run_rnn` is one RNN call in the user's layout ``[*b, t, f]``: it checks the arguments
  (:func:`check_inputs`, :func:`check_lengths`, the burn-in length), asks for the carry at t = 0
  for the batch shape, reshapes, runs, and reshapes back.
- :func:`run_bidirectional` and :func:`run_stacked` compose runs: the second direction backwards,
  layers with each one's burn-in taken off the lengths that follow.

The front-ends (:mod:`h0._runner`, :mod:`h0._nnx`) only hold parameters and build the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from h0._carry import flatten_batch, is_float, unflatten_batch
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


# --------------------------------------------------------------------------------------------
# One RNN call in the user's layout.


def check_inputs(inputs: Any, *, in_features: int | None = None) -> Array:
    """Check that ``inputs`` is a float array ``[*b, t, f]`` and return it as a JAX array.

    Args:
        inputs: The RNN's inputs.
        in_features: The feature size the cell expects, when it is fixed in advance (NNX).

    Raises:
        ValueError: For fewer than 2 dimensions, or ``f != in_features``.
        TypeError: For non-float inputs.
    """
    inputs = jnp.asarray(inputs)
    if inputs.ndim < 2:
        raise ValueError(
            f"inputs must have shape [*batch, time, features] (at least 2 dimensions); got shape "
            f"{inputs.shape}."
        )
    if not is_float(inputs):
        raise TypeError(
            f"inputs must be floating point, got dtype {inputs.dtype} with shape {inputs.shape}; "
            "cast them, e.g. inputs.astype(jnp.float32)."
        )
    if in_features is not None and inputs.shape[-1] != in_features:
        raise ValueError(
            f"inputs have {inputs.shape[-1]} features (shape {inputs.shape}) but the cell expects "
            f"in_features={in_features}."
        )
    return inputs


def check_lengths(seq_lengths: Any, batch_shape: tuple[int, ...], time: int) -> Array | None:
    """Check ``seq_lengths`` against the inputs' batch shape and time steps.

    Returns:
        The lengths as ``int32`` clipped to ``[0, time]`` (under ``jit`` the values cannot be
        checked; clipping keeps out-of-range lengths well defined), or ``None``.

    Raises:
        ValueError: For a shape other than ``batch_shape``, or concrete values outside
            ``[0, time]``.
        TypeError: For non-integer lengths.
    """
    if seq_lengths is None:
        return None
    lengths = jnp.asarray(seq_lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"seq_lengths must be integers, got dtype {lengths.dtype}.")
    if lengths.shape != batch_shape:
        raise ValueError(
            f"seq_lengths has shape {lengths.shape} but inputs have batch shape {batch_shape}; "
            "pass one length per sequence."
        )
    if not isinstance(lengths, jax.core.Tracer):
        values = np.asarray(lengths)
        bad = (values < 0) | (values > time)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"seq_lengths must lie in [0, {time}] (the inputs' time steps); got "
                f"{int(values[where])} at index {where}."
            )
    return jnp.clip(lengths, 0, time).astype(jnp.int32)


def run_rnn(
    step: Step,
    start: Callable[[tuple[int, ...]], Carry],
    inputs: Any,
    seq_lengths: Any = None,
    *,
    reverse: bool = False,
    warmup: int = 0,
    unroll: int = 1,
    in_features: int | None = None,
    fast_scan: Callable[..., tuple[Carry, Array]] | None = None,
) -> tuple[Carry, Array]:
    """One RNN call over ``[*b, t, f]`` inputs: checks, carry at t = 0, reshaping and the scan.

    Args:
        step: One time step ``step(carry, x_t) -> (carry, y_t)`` with one leading batch axis.
        start: ``start(batch_shape) -> carry``, the checked carry at t = 0 with leaves
            ``[*b, ...]`` (called after the arguments are checked).
        inputs: ``[*b, t, f]``.
        seq_lengths: Valid steps per sequence (integers of the batch shape), or ``None``.
        reverse: Run each sequence's valid part backwards (outputs in input order).
        warmup: Burn-in steps (see :func:`run_sequence`); at most ``t``.
        unroll: Passed to :func:`jax.lax.scan`.
        in_features: The feature size the cell expects, checked when given.
        fast_scan: A batch-major drop-in for :func:`masked_scan` (see :func:`h0._fast.fast_scan`),
            or ``None`` for the generic time-major scan of ``step``.

    Returns:
        ``(carry, ys)``: the final carry (leaves ``[*b, ...]``) and outputs
        ``[*b, t - warmup, o]``.

    Raises:
        ValueError, TypeError: From :func:`check_inputs` and :func:`check_lengths`, and for a
            burn-in longer than the inputs.

    Example:
        >>> import jax.numpy as jnp
        >>> step = lambda c, x: (c + x, c + x)                     # a running sum
        >>> start = lambda batch_shape: jnp.zeros((*batch_shape, 1))
        >>> carry, ys = run_rnn(step, start, jnp.ones((2, 3, 1)), jnp.array([3, 1]), warmup=1)
        >>> carry[:, 0].tolist(), ys[..., 0].tolist()
        ([3.0, 1.0], [[2.0, 3.0], [0.0, 0.0]])
    """
    inputs = check_inputs(inputs, in_features=in_features)
    *batch, time, features = inputs.shape
    batch_shape = tuple(batch)
    lengths = check_lengths(seq_lengths, batch_shape, time)
    if warmup > time:
        raise ValueError(
            f"WarmUp({warmup}) needs at least {warmup} time steps; inputs have shape "
            f"{inputs.shape} ({time} steps)."
        )
    carry = start(batch_shape)
    # The fast path works batch-major; the generic one scans time-major.
    time_axis = 0 if fast_scan is None else 1
    size = math.prod(batch_shape)
    xs = inputs.reshape((size, time, features))
    if time_axis == 0:
        xs = jnp.swapaxes(xs, 0, 1)
    carry, ys = run_sequence(
        step,
        flatten_batch(carry, batch_shape),
        xs,
        None if lengths is None else lengths.reshape((size,)),
        reverse=reverse,
        warmup=warmup,
        unroll=unroll,
        scan=fast_scan or masked_scan,
        time_axis=time_axis,
    )
    if time_axis == 0:
        ys = jax.tree.map(lambda y: jnp.swapaxes(y, 0, 1), ys)
    ys = jax.tree.map(lambda y: unflatten_batch(y, batch_shape), ys)
    return unflatten_batch(carry, batch_shape), ys


# --------------------------------------------------------------------------------------------
# Composing runs: two directions, stacked layers.


class Layer(Protocol):
    """What :func:`run_bidirectional` and :func:`run_stacked` need of a runner (Linen or NNX)."""

    def scan(self, inputs: Array, **kwargs: Any) -> tuple[Carry, Array]:
        """Run and return ``(carry, outputs)``."""
        ...

    def warmup_steps(self, initial_carry: Any = None) -> int:
        """Steps the run burns in."""
        ...


def concat_outputs(forward: Array, backward: Array) -> Array:
    """Concatenate two directions' outputs along the feature axis."""
    return jnp.concatenate([forward, backward], axis=-1)


def check_forward(forward: Layer) -> None:
    """Check that a bidirectional pair's forward runner does not have ``reverse=True``."""
    if getattr(forward, "reverse", False):
        raise ValueError(
            "Bidirectional's forward RNN must have reverse=False (the backward one runs "
            "backwards whatever its reverse)."
        )


def run_bidirectional(
    forward: Layer,
    backward: Layer,
    merge: Callable[[Array, Array], Array],
    inputs: Array,
    *,
    initial_carry: tuple[Carry, Carry] | None = None,
    **kwargs: Any,
) -> tuple[tuple[Carry, Carry], Array]:
    """Run ``forward`` forwards and ``backward`` backwards, as :class:`flax.linen.Bidirectional`.

    The backward runner is called with ``reverse=True`` whatever its own setting, and its
    outputs come back in input order (Flax's ``keep_order=True``).

    Args:
        forward: The forward runner; it must not have ``reverse=True``.
        backward: The backward runner.
        merge: ``merge(forward_outputs, backward_outputs)``.
        inputs: ``[*b, t, f]``.
        initial_carry: ``(forward_carry, backward_carry)``; either may be ``None``.
        **kwargs: Passed to both runners' ``scan`` (``seq_lengths``, ``ids``...).

    Returns:
        ``((forward_carry, backward_carry), merged_outputs)``.

    Raises:
        ValueError: For a forward runner with ``reverse=True``, or outputs of different lengths
            (different burn-in steps).
    """
    check_forward(forward)
    fwd_carry, bwd_carry = (None, None) if initial_carry is None else initial_carry
    carry_f, y_f = forward.scan(inputs, initial_carry=fwd_carry, reverse=False, **kwargs)
    carry_b, y_b = backward.scan(inputs, initial_carry=bwd_carry, reverse=True, **kwargs)
    if y_f.shape[:-1] != y_b.shape[:-1]:
        raise ValueError(
            f"The two directions' outputs differ in shape ({y_f.shape} vs {y_b.shape}): give "
            "both the same WarmUp steps."
        )
    return (carry_f, carry_b), merge(y_f, y_b)


def run_stacked(
    layers: Sequence[Layer],
    inputs: Array,
    *,
    seq_lengths: Any = None,
    initial_carry: Sequence[Carry | None] | None = None,
    between: Callable[[int, Array], Array] = lambda i, x: x,
    **kwargs: Any,
) -> tuple[tuple[Carry, ...], Array]:
    """Run ``layers`` in order; each layer's burn-in shortens the lengths the next one sees.

    Args:
        layers: Runners (RNNs or bidirectional pairs).
        inputs: ``[*b, t, f]``.
        seq_lengths: Valid steps per sequence, or ``None``.
        initial_carry: One carry (or ``None``) per layer.
        between: ``between(i, x)`` applied to the inputs of layer ``i > 0`` (dropout).
        **kwargs: Passed to every layer's ``scan`` (``ids``, ``context``...).

    Returns:
        ``(carries, outputs)`` with every layer's final carry.

    Raises:
        ValueError: When ``initial_carry`` does not have one entry per layer.
    """
    if initial_carry is not None and len(initial_carry) != len(layers):
        raise ValueError(
            f"initial_carry has {len(initial_carry)} entries but the stack has "
            f"{len(layers)} layers; pass one carry (or None) per layer."
        )
    carries = []
    x, lengths = inputs, seq_lengths
    for i, layer in enumerate(layers):
        if i > 0:
            x = between(i, x)
        layer_carry = None if initial_carry is None else initial_carry[i]
        carry, x = layer.scan(x, seq_lengths=lengths, initial_carry=layer_carry, **kwargs)
        warmup = layer.warmup_steps(layer_carry)
        if warmup and lengths is not None:
            lengths = jnp.maximum(jnp.asarray(lengths) - warmup, 0)
        carries.append(carry)
    return tuple(carries), x
