"""Linen front-end of the runner: ``RNN``, ``Bidirectional`` and ``Stacked``.

The modules are thin shells: they hold the cell's and the strategy's parameters and hand a pure
step function to :func:`h0._scan.run_rnn`, which checks the arguments, reshapes and owns time
(masking, reversal, burn-in); :func:`h0._scan.run_bidirectional` and :func:`h0._scan.run_stacked`
compose runs. The NNX twins in :mod:`h0._nnx` call the same functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jaxtyping import Float, Int

from h0 import _fast, _scan
from h0._carry import carry_names, carry_template
from h0._scan import check_inputs, check_lengths, concat_outputs
from h0._strategies import CarryRequest, InitialState, Zeros, burn_in_steps, start_carry
from h0._typing import Array, Carry

# check_inputs, check_lengths and concat_outputs live in the pure core; importable from here too.
__all__ = ["RNN", "Bidirectional", "Stacked", "check_inputs", "check_lengths", "concat_outputs"]


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
        return burn_in_steps(self.initial_state, initial_carry)

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
        reverse: bool | None = None,
    ) -> tuple[Carry, Float[Array, "*b t h"]]:
        """Run the cell over ``inputs`` and return ``(final_carry, outputs)``.

        ``__call__`` takes the same arguments and returns the outputs alone unless
        ``return_carry=True``.

        Args:
            inputs: ``[*batch, time, features]``, or ``[time, features]`` for one sequence.
            seq_lengths: Valid steps per sequence, integers of the batch shape in ``[0, time]``.
            ids: Sequence ids for :class:`h0.PerSequence`, integers of the batch shape.
            context: Context features ``[*batch, c]`` for :class:`h0.Conditional`.
            initial_carry: A carry of the batch shape that replaces the strategy for this call.
            deterministic: ``False`` while training: noise-adding strategies add noise.
            reverse: Overrides the ``reverse`` attribute for this call (as
                :class:`flax.linen.RNN`'s does); :class:`h0.Bidirectional` uses it.

        Returns:
            ``(final_carry, outputs)``, outputs ``[*batch, time - warmup, hidden]``.

        Raises:
            ValueError: For inputs of rank < 2, ``seq_lengths``/``ids``/``context`` of the wrong
                shape, lengths outside ``[0, time]``, a carry that does not match the cell.
            TypeError: For integer inputs, float lengths or ids.
        """
        num_features = check_inputs(inputs).shape[-1]
        template = carry_template(self.cell, num_features)
        params = self._cell_params(num_features, template)
        names = carry_names(self.cell, template)
        cell = self.cell.clone(parent=None)

        def step(carry: Carry, x: Array) -> tuple[Carry, Array]:
            return cell.apply({"params": params}, carry, x)

        def start(batch_shape: tuple[int, ...]) -> Carry:
            request = CarryRequest(template, names, batch_shape, ids, context, deterministic)
            return start_carry(self.initial_state, request, initial_carry)

        return _scan.run_rnn(
            step,
            start,
            inputs,
            seq_lengths,
            reverse=self.reverse if reverse is None else reverse,
            warmup=self.warmup_steps(initial_carry),
            unroll=self.unroll,
            fast_scan=_fast.fast_scan(cell, params, remat=self.remat) if self.fast else None,
        )

    def __call__(
        self, inputs: Float[Array, "*b t f"], **kwargs: Any
    ) -> Float[Array, "*b t h"] | tuple[Carry, Float[Array, "*b t h"]]:
        """Run the cell over ``inputs``; keyword arguments as :meth:`scan`.

        Returns:
            Outputs ``[*batch, time - warmup, hidden]``; with ``return_carry=True``,
            ``(final_carry, outputs)``.
        """
        carry, ys = self.scan(inputs, **kwargs)
        return (carry, ys) if self.return_carry else ys


class Bidirectional(nn.Module):
    """Run one RNN forwards and the other backwards and merge their outputs.

    As in :class:`flax.linen.Bidirectional`, the second RNN runs backwards whatever its
    ``reverse`` (``reverse=True`` on it is accepted and changes nothing), and its outputs come
    back in input order. Each direction has its own initial-state strategy; with
    ``seq_lengths`` the backward RNN starts at each sequence's last valid step, not at the
    padding.

    Attributes:
        forward: The forward :class:`h0.RNN` (``reverse=False``).
        backward: The backward :class:`h0.RNN`.
        merge: ``merge(forward_outputs, backward_outputs)``; default concatenation.
        return_carry: Return ``((forward_carry, backward_carry), outputs)``.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> bi = h0.Bidirectional(h0.RNN(nn.GRUCell(4), h0.Learned()),
        ...                       h0.RNN(nn.GRUCell(4), h0.Learned()))
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
        initial_carry: tuple[Carry, Carry] | None = None,
        **kwargs: Any,
    ) -> tuple[tuple[Carry, Carry], Array]:
        """Run both directions; return ``((forward_carry, backward_carry), outputs)``.

        Keyword arguments as :meth:`h0.RNN.scan`, ``initial_carry`` a pair.
        """
        return _scan.run_bidirectional(
            self.forward, self.backward, self.merge, inputs, initial_carry=initial_carry, **kwargs
        )

    @nn.nowrap
    def warmup_steps(self, initial_carry: Any = None) -> int:
        """Steps the forward direction's strategy consumes."""
        return self.forward.warmup_steps(None if initial_carry is None else initial_carry[0])

    def __call__(
        self, inputs: Float[Array, "*b t f"], **kwargs: Any
    ) -> Array | tuple[tuple[Carry, Carry], Array]:
        """Run both directions; keyword arguments as :meth:`scan`."""
        carries, ys = self.scan(inputs, **kwargs)
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
        initial_carry: Sequence[Carry | None] | None = None,
        deterministic: bool = True,
        **kwargs: Any,
    ) -> Array | tuple[tuple[Carry, ...], Array]:
        """Run the layers.

        Args:
            inputs: ``[*batch, time, features]``.
            seq_lengths: Valid steps per sequence; each layer's burn-in is taken off for the
                layers after it.
            initial_carry: One carry (or ``None``) per layer.
            deterministic: ``False`` while training: dropout and noise-adding strategies on.
            **kwargs: Passed to every layer (``ids``, ``context``), as :meth:`h0.RNN.scan`.
        """

        def between(i: int, x: Array) -> Array:
            if self.dropout == 0:
                return x
            return nn.Dropout(self.dropout, name=f"dropout_{i}")(x, deterministic=deterministic)

        carries, x = _scan.run_stacked(
            self.layers,
            inputs,
            seq_lengths=seq_lengths,
            initial_carry=initial_carry,
            between=between,
            deterministic=deterministic,
            **kwargs,
        )
        return (carries, x) if self.return_carry else x
