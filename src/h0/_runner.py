"""Linen front-end of the runner: ``RNN``, ``Bidirectional`` and ``Stacked``.

The modules are thin shells: they check arguments, ask the initial-state strategy for the carry,
reshape to time-major with one batch axis, and hand a pure step function to
:func:`h0._scan.run_sequence`, which owns time (masking, reversal, burn-in).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, Int

from h0 import _fast, _scan
from h0._carry import (
    carry_names,
    carry_template,
    check_carry,
    flatten_batch,
    is_float,
    unflatten_batch,
)
from h0._strategies import CarryRequest, InitialState, Zeros
from h0._typing import Array, Carry


def check_inputs(inputs: Any) -> Array:
    """Check that ``inputs`` is a float array ``[*b, t, f]`` and return it as a JAX array."""
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
    return inputs


def check_lengths(seq_lengths: Any, batch_shape: tuple[int, ...], time: int) -> Array | None:
    """Check ``seq_lengths`` against the inputs' batch shape and time steps."""
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
    # Under jit the values cannot be checked; clipping keeps out-of-range lengths well defined.
    return jnp.clip(lengths, 0, time).astype(jnp.int32)


class RNN(nn.Module):
    """Run a Flax cell over ``[*batch, time, features]`` inputs, starting from a strategy's carry.

    Built on :func:`jax.lax.scan` (compile time does not grow with sequence length). With
    ``seq_lengths`` each sequence's carry is frozen after its last valid step and outputs at
    padded steps are exactly zero; a length of 0 returns the initial carry. The cell's
    parameters live under ``'cell'``, as in :class:`flax.linen.RNN`; the strategy's under
    ``'initial_state'``.

    Attributes:
        cell: A Flax cell, ``cell(carry, x) -> (carry, y)`` (``nn.GRUCell``, ``nn.LSTMCell``...).
        initial_state: The initial-state strategy (default :class:`h0.Zeros`).
        reverse: Run each sequence's valid part backwards (outputs in input order, padding kept
            at the end).
        return_carry: Return ``(carry, outputs)`` instead of ``outputs``.
        unroll: Scan steps unrolled per loop iteration (:func:`jax.lax.scan`'s ``unroll``).
        fast: Run Flax's ``GRUCell``/``LSTMCell``/``OptimizedLSTMCell`` (default activations)
            with a dedicated recurrence on the same parameters (see :mod:`h0._fast`); ``False``
            always steps the cell generically.
        remat: With the fast path, keep only the outputs (and the LSTM memory) for the backward
            pass and recompute the gates there: ``t * b * 4h`` fewer floats of memory, one more recurrent matmul per step. For long sequences.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(8), h0.Learned())
        >>> x = jnp.ones((3, 10, 2))                     # [batch, time, features]
        >>> variables = rnn.init(jax.random.key(0), x)
        >>> y = rnn.apply(variables, x, seq_lengths=jnp.array([10, 4, 0]))
        >>> y.shape, float(abs(y[1, 4:]).max()), float(abs(y[2]).max())
        ((3, 10, 8), 0.0, 0.0)
    """

    cell: nn.Module
    initial_state: InitialState = dataclasses.field(default_factory=Zeros)
    reverse: bool = False
    return_carry: bool = False
    unroll: int = 1
    fast: bool = True
    remat: bool = False

    @nn.nowrap
    def warmup_steps(self, initial_carry: Carry | None = None) -> int:
        """Steps the initial-state strategy consumes (0 when ``initial_carry`` overrides it)."""
        return 0 if initial_carry is not None else self.initial_state.warmup_steps()

    def _cell_params(self, num_features: int, template: Carry) -> Any:
        # The cell's own scope holds its parameters: under 'cell' when the RNN adopted it, or
        # under the enclosing module (e.g. 'GRUCell_0') when it was built in a compact method,
        # exactly where flax.linen.RNN keeps them.
        if "params" not in self.cell.variables:
            if not self.is_initializing():
                raise ValueError("The RNN's cell has no parameters: initialise the model first.")
            zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template)
            self.cell(zeros, jnp.zeros((num_features,), jax.tree.leaves(template)[0].dtype))
        return self.cell.variables["params"]

    def scan(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: Carry | None = None,
        deterministic: bool = True,
    ) -> tuple[Carry, Float[Array, "*b t h"]]:
        """Like ``__call__``, but always returns ``(carry, outputs)``."""
        inputs = check_inputs(inputs)
        *batch, time, num_features = inputs.shape
        batch_shape = tuple(batch)
        lengths = check_lengths(seq_lengths, batch_shape, time)
        warmup = self.warmup_steps(initial_carry)
        if warmup > time:
            raise ValueError(
                f"WarmUp({warmup}) needs at least {warmup} time steps; inputs have shape "
                f"{inputs.shape} ({time} steps)."
            )

        template = carry_template(self.cell, num_features)
        params = self._cell_params(num_features, template)
        if initial_carry is None:
            request = CarryRequest(
                template=template,
                names=carry_names(self.cell, template),
                batch_shape=batch_shape,
                ids=ids,
                context=context,
                deterministic=deterministic,
            )
            carry = check_carry(
                self.initial_state(request), template, batch_shape, argument="The strategy's carry"
            )
        else:
            carry = check_carry(initial_carry, template, batch_shape, argument="initial_carry")

        cell = self.cell.clone(parent=None)

        def step(carry: Carry, x: Array) -> tuple[Carry, Array]:
            return cell.apply({"params": params}, carry, x)

        fast_scan = _fast.fast_scan(cell, params, remat=self.remat) if self.fast else None
        # The fast path works batch-major; the generic one scans time-major.
        time_axis = 0 if fast_scan is None else 1
        size = math.prod(batch_shape)
        xs = inputs.reshape((size, time, num_features))
        if time_axis == 0:
            xs = jnp.swapaxes(xs, 0, 1)
        carry, ys = _scan.run_sequence(
            step,
            flatten_batch(carry, batch_shape),
            xs,
            None if lengths is None else lengths.reshape((size,)),
            reverse=self.reverse,
            warmup=warmup,
            unroll=self.unroll,
            scan=fast_scan or _scan.masked_scan,
            time_axis=time_axis,
        )
        if time_axis == 0:
            ys = jax.tree.map(lambda y: jnp.swapaxes(y, 0, 1), ys)
        ys = jax.tree.map(lambda y: unflatten_batch(y, batch_shape), ys)
        return unflatten_batch(carry, batch_shape), ys

    def __call__(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: Carry | None = None,
        deterministic: bool = True,
    ) -> Float[Array, "*b t h"] | tuple[Carry, Float[Array, "*b t h"]]:
        """Run the cell over ``inputs``.

        Args:
            inputs: ``[*batch, time, features]``, or ``[time, features]`` for one sequence.
            seq_lengths: Valid steps per sequence, integers of the batch shape in ``[0, time]``.
            ids: Sequence ids for :class:`h0.PerSequence`, integers of the batch shape.
            context: Context features ``[*batch, c]`` for :class:`h0.Conditional`.
            initial_carry: A carry of the batch shape that replaces the strategy for this call.
            deterministic: ``False`` while training: noise-adding strategies add noise.

        Returns:
            Outputs ``[*batch, time - warmup, hidden]``; with ``return_carry=True``,
            ``(final_carry, outputs)``.

        Raises:
            ValueError: For inputs of rank < 2, ``seq_lengths``/``ids``/``context`` of the wrong
                shape, lengths outside ``[0, time]``, a carry that does not match the cell.
            TypeError: For integer inputs, float lengths or ids.
        """
        carry, ys = self.scan(
            inputs,
            seq_lengths=seq_lengths,
            ids=ids,
            context=context,
            initial_carry=initial_carry,
            deterministic=deterministic,
        )
        return (carry, ys) if self.return_carry else ys


def concat_outputs(forward: Array, backward: Array) -> Array:
    """Concatenate two directions' outputs along the feature axis."""
    return jnp.concatenate([forward, backward], axis=-1)


class Bidirectional(nn.Module):
    """Run one RNN forwards and one backwards (``reverse=True``) and merge their outputs.

    Each direction has its own initial-state strategy; with ``seq_lengths`` the backward RNN
    starts at each sequence's last valid step, not at the padding.

    Attributes:
        forward: The forward :class:`h0.RNN`.
        backward: The backward :class:`h0.RNN`; must have ``reverse=True``.
        merge: ``merge(forward_outputs, backward_outputs)``; default concatenation.
        return_carry: Return ``((forward_carry, backward_carry), outputs)``.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> bi = h0.Bidirectional(h0.RNN(nn.GRUCell(4), h0.Learned()),
        ...                       h0.RNN(nn.GRUCell(4), h0.Learned(), reverse=True))
        >>> x = jnp.ones((2, 6, 3))
        >>> bi.apply(bi.init(jax.random.key(0), x), x, seq_lengths=jnp.array([6, 3])).shape
        (2, 6, 8)
    """

    forward: RNN
    backward: RNN
    merge: Callable[[Array, Array], Array] = concat_outputs
    return_carry: bool = False

    def scan(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: tuple[Carry, Carry] | None = None,
        deterministic: bool = True,
    ) -> tuple[tuple[Carry, Carry], Array]:
        """Like ``__call__``, but always returns ``((forward_carry, backward_carry), outputs)``."""
        if not self.backward.reverse:
            raise ValueError("Bidirectional's backward RNN must have reverse=True.")
        if self.forward.reverse:
            raise ValueError("Bidirectional's forward RNN must have reverse=False.")
        fwd_carry, bwd_carry = (None, None) if initial_carry is None else initial_carry
        kwargs = dict(
            seq_lengths=seq_lengths, ids=ids, context=context, deterministic=deterministic
        )
        carry_f, y_f = self.forward.scan(inputs, initial_carry=fwd_carry, **kwargs)
        carry_b, y_b = self.backward.scan(inputs, initial_carry=bwd_carry, **kwargs)
        if y_f.shape[:-1] != y_b.shape[:-1]:
            raise ValueError(
                f"The two directions' outputs differ in shape ({y_f.shape} vs {y_b.shape}): give "
                "both the same WarmUp steps."
            )
        return (carry_f, carry_b), self.merge(y_f, y_b)

    @nn.nowrap
    def warmup_steps(self, initial_carry: Any = None) -> int:
        """Steps the forward direction's strategy consumes."""
        return self.forward.warmup_steps(None if initial_carry is None else initial_carry[0])

    def __call__(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: tuple[Carry, Carry] | None = None,
        deterministic: bool = True,
    ) -> Array | tuple[tuple[Carry, Carry], Array]:
        """Run both directions; arguments as :meth:`h0.RNN.__call__` (``initial_carry`` a pair)."""
        carries, ys = self.scan(
            inputs,
            seq_lengths=seq_lengths,
            ids=ids,
            context=context,
            initial_carry=initial_carry,
            deterministic=deterministic,
        )
        return (carries, ys) if self.return_carry else ys


class Stacked(nn.Module):
    """Layers of RNNs, each with its own initial-state strategy, dropout between layers.

    Attributes:
        layers: The layers (:class:`h0.RNN` or :class:`h0.Bidirectional`), applied in order.
        dropout: Dropout rate between layers (rng stream ``'dropout'``; off when deterministic).
        return_carry: Return ``(carries, outputs)`` with every layer's final carry in a tuple.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> stack = h0.Stacked([h0.RNN(nn.GRUCell(8), h0.Learned()),
        ...                     h0.RNN(nn.LSTMCell(4), h0.Zeros())], dropout=0.1, return_carry=True)
        >>> x = jnp.ones((2, 6, 3))
        >>> carries, y = stack.apply(stack.init(jax.random.key(0), x), x)
        >>> y.shape, carries[0].shape, len(carries[1])
        ((2, 6, 4), (2, 8), 2)
    """

    layers: Sequence[nn.Module]
    dropout: float = 0.0
    return_carry: bool = False

    @nn.compact
    def __call__(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: Sequence[Carry | None] | None = None,
        deterministic: bool = True,
    ) -> Array | tuple[tuple[Carry, ...], Array]:
        """Run the layers; ``initial_carry`` is one carry (or ``None``) per layer."""
        if initial_carry is not None and len(initial_carry) != len(self.layers):
            raise ValueError(
                f"initial_carry has {len(initial_carry)} entries but the stack has "
                f"{len(self.layers)} layers; pass one carry (or None) per layer."
            )
        carries = []
        x = inputs
        lengths = seq_lengths
        for i, layer in enumerate(self.layers):
            if i > 0 and self.dropout > 0:
                x = nn.Dropout(self.dropout, name=f"dropout_{i}")(x, deterministic=deterministic)
            layer_carry = None if initial_carry is None else initial_carry[i]
            kwargs = dict(ids=ids, context=context, deterministic=deterministic)
            carry, x = layer.scan(x, seq_lengths=lengths, initial_carry=layer_carry, **kwargs)
            warmup = layer.warmup_steps(layer_carry)
            if warmup and lengths is not None:
                lengths = jnp.maximum(jnp.asarray(lengths) - warmup, 0)
            carries.append(carry)
        return (tuple(carries), x) if self.return_carry else x
