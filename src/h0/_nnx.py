"""Flax NNX front-end: the same strategies and runners as the Linen side, for ``flax.nnx`` cells.

NNX modules create their parameters eagerly, but a strategy's parameters take the carry's shape,
which only the cell knows. So a strategy is built in two steps: the user constructs it with its
settings (``Learned(init='normal')``) and the runner that adopts it calls :meth:`InitialState.build`
with the cell's carry template and the ``rngs`` given to the runner. Every check, message and the
whole time loop are shared with the Linen side: argument checks from :mod:`h0._runner` and
:mod:`h0._strategies`, carry checks from :mod:`h0._carry`, and time from
:func:`h0._scan.run_sequence`, which receives a pure step built from ``nnx.split(cell)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Float, Int

from h0 import _scan
from h0._carry import carry_names, check_carry, flatten_batch, unflatten_batch
from h0._runner import check_inputs, check_lengths, concat_outputs
from h0._strategies import (
    CarryRequest,
    InitSpec,
    _check_learn,
    check_context,
    check_ids,
    resolve_init,
)
from h0._typing import Array, Carry

RngsLike = nnx.Rngs | nnx.RngStream | None

_LSTM_CELLS = (nnx.LSTMCell, nnx.OptimizedLSTMCell)


class _Static:
    """Holds a setting (possibly an array) as a static, non-pytree attribute of an NNX module."""

    def __init__(self, value: Any):
        self.value = value


def cell_in_features(cell: nnx.Module, in_features: int | None) -> int:
    """The input size of an NNX cell: ``in_features`` when given, else ``cell.in_features``."""
    if in_features is None:
        in_features = getattr(cell, "in_features", None)
    if in_features is None:
        raise ValueError(
            f"{type(cell).__name__} has no in_features attribute: pass in_features=<input size> "
            "to the RNN."
        )
    return int(in_features)


def nnx_carry_template(cell: nnx.Module, in_features: int) -> Carry:
    """The carry of one unbatched sequence (``jax.ShapeDtypeStruct`` leaves) of an NNX cell.

    Only shapes are computed (under :func:`jax.eval_shape`), so the throwaway key never produces
    a value.
    """
    return jax.eval_shape(
        lambda: cell.initialize_carry((in_features,), rngs=nnx.Rngs(carry=jax.random.key(0)))
    )


def nnx_carry_names(cell: nnx.Module, template: Carry) -> Any:
    """Carry leaf names as on the Linen side: ``'h'``; ``('c', 'h')`` for NNX LSTM cells."""
    if isinstance(cell, _LSTM_CELLS) and isinstance(template, tuple) and len(template) == 2:
        return ("c", "h")
    return carry_names(cell, template)


def _stream(rngs: Any, name: str) -> Any:
    """The ``name`` stream of an ``nnx.Rngs`` (which falls back to ``'default'``), or ``None``."""
    if rngs is None:
        return None
    if isinstance(rngs, nnx.Rngs):
        try:
            return rngs[name]
        except (AttributeError, KeyError):
            return None
    return rngs


def _noise_key(call_rngs: Any, stored: Any, strategy: str) -> jax.Array:
    stream = _stream(call_rngs, "carry") or stored
    if stream is None:
        raise ValueError(
            f"{strategy} needs random numbers from the 'carry' rng stream, which is missing: pass "
            "rngs=nnx.Rngs(carry=key) to the RNN call, or to the strategy's constructor."
        )
    return stream() if isinstance(stream, nnx.RngStream) else stream


def _params_key(rngs: Any, strategy: str) -> jax.Array:
    stream = _stream(rngs, "params")
    if stream is None:
        raise ValueError(
            f"{strategy} creates parameters: pass rngs=nnx.Rngs(params=key) (or nnx.Rngs(seed)) to "
            "the RNN that adopts it."
        )
    return stream()


class InitialState(nnx.Module):
    """Base class of NNX initial-state strategies.

    Subclasses implement ``build(request, rngs)`` (create ``init_*`` parameters for the carry in
    ``request.template``; ``request.batch_shape`` is ``()``) and ``__call__(request, rngs=None)``
    returning a carry whose leaves have shape ``request.batch_shape + leaf.shape``.
    """

    def build(self, request: CarryRequest, rngs: RngsLike) -> None:
        """Create the strategy's parameters for the carry of ``request`` (none by default)."""
        del request, rngs

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return the carry at t = 0 for ``request``."""
        raise NotImplementedError

    def warmup_steps(self) -> int:
        """Input steps the runner burns in before keeping outputs (0 for most strategies)."""
        return 0


class Zeros(InitialState):
    """Start from zeros, as :class:`h0.Zeros`."""

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return zeros of the carry's shape."""
        return request.map(lambda _, s: jnp.zeros((*request.batch_shape, *s.shape), s.dtype))


class Random(InitialState):
    """Gaussian noise, fresh on every call, from the ``'carry'`` rng stream (as :class:`h0.Random`).

    The stream comes from the call's ``rngs`` or, failing that, from ``rngs`` given here; without
    either the call raises.

    Args:
        stddev: Standard deviation of the noise.
        rngs: Optional ``nnx.Rngs`` whose ``'carry'`` stream is forked and kept.
    """

    def __init__(self, stddev: float = 0.1, *, rngs: RngsLike = None):
        self.stddev = stddev
        stream = _stream(rngs, "carry")
        self.rngs = nnx.data(None if stream is None else stream.fork())

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return noise of the carry's shape."""
        key = _noise_key(rngs, self.rngs, "Random")
        keys = iter(jax.random.split(key, len(jax.tree.leaves(request.names))))
        return request.map(
            lambda _, s: (
                self.stddev
                * jax.random.normal(next(keys), (*request.batch_shape, *s.shape), s.dtype)
            )
        )


class Learned(InitialState):
    """One learnable state (``nnx.Param`` ``init_h``; LSTM ``init_c``/``init_h``), broadcast over the batch.

    Args:
        init: How to initialise the state (see :func:`h0.resolve_init`).
        learn: The carry leaves to learn (e.g. ``('h',)`` for an LSTM); ``None`` learns all.
    """

    def __init__(self, init: InitSpec = "zeros", learn: Sequence[str] | None = None):
        self.init = _Static(init)
        self.learn = None if learn is None else (learn if isinstance(learn, str) else tuple(learn))
        self.learned: tuple[str, ...] = ()

    def build(self, request: CarryRequest, rngs: RngsLike) -> None:
        """Create ``init_<leaf>`` parameters for the learned leaves."""
        learned = _check_learn(self.learn, request.names)
        names = jax.tree.leaves(request.names)
        specs = jax.tree.leaves(request.template)
        for name, spec in zip(names, specs, strict=True):
            if name in learned:
                value = resolve_init(self.init.value, name)(
                    _params_key(rngs, type(self).__name__), spec.shape, spec.dtype
                )
                setattr(self, f"init_{name}", nnx.Param(value))
        self.learned = tuple(n for n in names if n in learned)

    def _learned_state(self, request: CarryRequest) -> Carry:
        def leaf(name: str, spec: jax.ShapeDtypeStruct) -> Array:
            if name not in self.learned:
                return jnp.zeros(spec.shape, spec.dtype)
            return getattr(self, f"init_{name}")[...]

        return request.map(leaf)

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return the learned state broadcast to the batch shape."""
        return request.broadcast(self._learned_state(request))


class LearnedNoisy(Learned):
    """A learned state plus Gaussian noise while training only (as :class:`h0.LearnedNoisy`).

    Training means ``deterministic=False``: either passed to the call, or set on the module by
    ``model.train()`` (``model.eval()`` sets it back; the default is deterministic, like Linen's).

    Args:
        init: As :class:`Learned`.
        learn: As :class:`Learned`.
        stddev: Standard deviation of the training noise.
        deterministic: The default when the call does not say.
        rngs: Optional ``nnx.Rngs`` whose ``'carry'`` stream is forked and kept.
    """

    def __init__(
        self,
        init: InitSpec = "zeros",
        learn: Sequence[str] | None = None,
        stddev: float = 0.1,
        *,
        deterministic: bool = True,
        rngs: RngsLike = None,
    ):
        super().__init__(init, learn)
        self.stddev = stddev
        self.deterministic = deterministic
        stream = _stream(rngs, "carry")
        self.rngs = nnx.data(None if stream is None else stream.fork())

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return the learned state, with noise when not deterministic."""
        carry = request.broadcast(self._learned_state(request))
        deterministic = (
            self.deterministic if request.deterministic is None else request.deterministic
        )
        if deterministic or self.stddev == 0:
            return carry
        leaves, treedef = jax.tree.flatten(carry)
        keys = jax.random.split(_noise_key(rngs, self.rngs, "LearnedNoisy"), len(leaves))
        noisy = [
            x + self.stddev * jax.random.normal(k, x.shape, x.dtype)
            for x, k in zip(leaves, keys, strict=True)
        ]
        return jax.tree.unflatten(treedef, noisy)


class PerSequence(InitialState):
    """A learned state per sequence id, with a learned fallback for unknown ids (as :class:`h0.PerSequence`).

    Args:
        num_sequences: Number of sequence ids with their own state.
        init: Initialiser of each row; the fallback (``init_h_fallback``...) starts at zeros.
    """

    def __init__(self, num_sequences: int, init: InitSpec = "zeros"):
        self.num_sequences = int(num_sequences)
        self.init = _Static(init)

    def build(self, request: CarryRequest, rngs: RngsLike) -> None:
        """Create the ``init_<leaf>`` table and ``init_<leaf>_fallback`` parameters."""
        names = jax.tree.leaves(request.names)
        for name, spec in zip(names, jax.tree.leaves(request.template), strict=True):
            table = resolve_init(self.init.value, name)(
                _params_key(rngs, "PerSequence"), (self.num_sequences, *spec.shape), spec.dtype
            )
            setattr(self, f"init_{name}", nnx.Param(table))
            setattr(self, f"init_{name}_fallback", nnx.Param(jnp.zeros(spec.shape, spec.dtype)))

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return each sequence's state, the fallback for unknown ids."""
        ids = check_ids(request)
        known = (ids >= 0) & (ids < self.num_sequences)
        rows = jnp.clip(ids, 0, self.num_sequences - 1)

        def leaf(name: str, spec: jax.ShapeDtypeStruct) -> Array:
            looked_up = getattr(self, f"init_{name}")[...][rows]
            fallback = getattr(self, f"init_{name}_fallback")[...]
            mask = known.reshape(known.shape + (1,) * len(spec.shape))
            return jnp.where(mask, looked_up, jnp.broadcast_to(fallback, looked_up.shape))

        return request.map(leaf)


class Conditional(InitialState):
    """The carry computed from context features ``[*b, c]`` by an MLP (as :class:`h0.Conditional`).

    NNX creates weights eagerly, so the context size is an argument. The layers are
    ``init_mlp_0``, ``init_mlp_1``... and one output layer per carry leaf, ``init_h`` (LSTM
    ``init_c``/``init_h``), as in Linen.

    Args:
        context_features: The context's feature size ``c``.
        hidden_sizes: Widths of the MLP's hidden layers (``()`` for a linear map).
        activation: Activation of the hidden layers.
        output_activation: Applied to each carry leaf (``None``: linear output).
    """

    def __init__(
        self,
        context_features: int,
        hidden_sizes: Sequence[int] = (64,),
        activation: Callable[[Array], Array] = nnx.tanh,
        output_activation: Callable[[Array], Array] | None = None,
    ):
        self.context_features = int(context_features)
        self.hidden_sizes = tuple(int(w) for w in hidden_sizes)
        self.activation = activation
        self.output_activation = output_activation
        self.leaves: tuple[str, ...] = ()

    def build(self, request: CarryRequest, rngs: RngsLike) -> None:
        """Create the MLP's layers."""
        if rngs is None:
            _params_key(rngs, "Conditional")
        width = self.context_features
        for i, hidden in enumerate(self.hidden_sizes):
            setattr(self, f"init_mlp_{i}", nnx.Linear(width, hidden, rngs=rngs))
            width = hidden
        names = jax.tree.leaves(request.names)
        for name, spec in zip(names, jax.tree.leaves(request.template), strict=True):
            layer = nnx.Linear(width, math.prod(spec.shape), param_dtype=spec.dtype, rngs=rngs)
            setattr(self, f"init_{name}", layer)
        self.leaves = tuple(names)

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return the MLP's carry for each sequence's context."""
        x = check_context(request)
        if x.shape[-1] != self.context_features:
            raise ValueError(
                f"context has {x.shape[-1]} features (shape {x.shape}) but Conditional was built "
                f"with context_features={self.context_features}."
            )
        for i in range(len(self.hidden_sizes)):
            x = self.activation(getattr(self, f"init_mlp_{i}")(x))

        def leaf(name: str, spec: jax.ShapeDtypeStruct) -> Array:
            y = getattr(self, f"init_{name}")(x)
            y = y.reshape((*request.batch_shape, *spec.shape)).astype(spec.dtype)
            return y if self.output_activation is None else self.output_activation(y)

        return request.map(leaf)


class WarmUp(InitialState):
    """Burn-in over the first ``steps`` inputs from ``start``'s carry (as :class:`h0.WarmUp`).

    Args:
        steps: Number of burn-in steps; the output has ``time - steps`` steps.
        start: Strategy for the carry the burn-in starts from (default :class:`Zeros`).
    """

    def __init__(self, steps: int, start: InitialState | None = None):
        self.steps = int(steps)
        self.start = Zeros() if start is None else start

    def build(self, request: CarryRequest, rngs: RngsLike) -> None:
        """Build the ``start`` strategy."""
        self.start.build(request, rngs)

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return the carry the burn-in starts from."""
        return self.start(request, rngs=rngs)

    def warmup_steps(self) -> int:
        """The number of burn-in steps."""
        return self.steps


class RNN(nnx.Module):
    """Run an NNX cell over ``[*batch, time, features]`` inputs from a strategy's carry.

    The NNX twin of :class:`h0.RNN`: same arguments, masking, reversal, burn-in and errors. The
    strategy is built here (its parameters created with ``rngs``) and kept as the attribute
    ``initial_state``, so ``nnx.state(model, nnx.Param)`` holds ``...['initial_state']['init_h']``
    and :func:`h0.initial_state_mask` finds it.

    Args:
        cell: An NNX cell, ``cell(carry, x) -> (carry, y)`` with ``initialize_carry(input_shape,
            rngs)`` (``nnx.GRUCell``, ``nnx.LSTMCell``, ``nnx.OptimizedLSTMCell``,
            ``nnx.SimpleCell``...).
        initial_state: An NNX strategy (default :class:`Zeros`), not yet built.
        reverse: Run each sequence's valid part backwards.
        return_carry: Return ``(carry, outputs)`` instead of ``outputs``.
        unroll: Scan steps unrolled per loop iteration.
        in_features: The input size, for cells without an ``in_features`` attribute.
        rngs: ``nnx.Rngs`` for the strategy's parameters (stream ``'params'``).

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from h0 import nnx as h0nnx
        >>> rngs = nnx.Rngs(0)
        >>> rnn = h0nnx.RNN(nnx.GRUCell(2, 8, rngs=rngs), h0nnx.Learned(), rngs=rngs)
        >>> y = rnn(jnp.ones((3, 10, 2)), seq_lengths=jnp.array([10, 4, 0]))
        >>> y.shape, float(abs(y[1, 4:]).max()), rnn.initial_state.init_h.shape
        ((3, 10, 8), 0.0, (8,))
    """

    def __init__(
        self,
        cell: nnx.Module,
        initial_state: InitialState | None = None,
        *,
        reverse: bool = False,
        return_carry: bool = False,
        unroll: int = 1,
        in_features: int | None = None,
        rngs: nnx.Rngs | None = None,
    ):
        initial_state = Zeros() if initial_state is None else initial_state
        if not isinstance(initial_state, InitialState):
            raise TypeError(
                f"initial_state must be an h0.nnx strategy (h0.nnx.Learned()...), got "
                f"{type(initial_state).__module__}.{type(initial_state).__name__}; Linen strategies "
                "(h0.Learned) only work with h0.RNN."
            )
        self.cell = cell
        self.in_features = cell_in_features(cell, in_features)
        self.reverse = reverse
        self.return_carry = return_carry
        self.unroll = unroll
        template = nnx_carry_template(cell, self.in_features)
        self._template = _Static(template)
        self._names = _Static(nnx_carry_names(cell, template))
        if getattr(initial_state, "_h0_built", False):
            raise ValueError(
                f"This {type(initial_state).__name__} strategy already belongs to another RNN; "
                "give each RNN its own strategy instance."
            )
        initial_state.build(self._request(()), rngs)
        initial_state._h0_built = True
        self.initial_state = initial_state

    def _request(self, batch_shape: tuple[int, ...], **kwargs: Any) -> CarryRequest:
        return CarryRequest(
            template=self._template.value,
            names=self._names.value,
            batch_shape=batch_shape,
            **kwargs,
        )

    def warmup_steps(self, initial_carry: Carry | None = None) -> int:
        """Steps the initial-state strategy consumes (0 when ``initial_carry`` overrides it)."""
        return 0 if initial_carry is not None else self.initial_state.warmup_steps()

    def scan(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: Carry | None = None,
        deterministic: bool | None = None,
        rngs: RngsLike = None,
    ) -> tuple[Carry, Float[Array, "*b t h"]]:
        """Like ``__call__``, but always returns ``(carry, outputs)``."""
        inputs = check_inputs(inputs)
        *batch, time, num_features = inputs.shape
        batch_shape = tuple(batch)
        if num_features != self.in_features:
            raise ValueError(
                f"inputs have {num_features} features (shape {inputs.shape}) but the cell expects "
                f"in_features={self.in_features}."
            )
        lengths = check_lengths(seq_lengths, batch_shape, time)
        warmup = self.warmup_steps(initial_carry)
        if warmup > time:
            raise ValueError(
                f"WarmUp({warmup}) needs at least {warmup} time steps; inputs have shape "
                f"{inputs.shape} ({time} steps)."
            )
        template = self._template.value
        if initial_carry is None:
            request = self._request(
                batch_shape, ids=ids, context=context, deterministic=deterministic
            )
            carry = check_carry(
                self.initial_state(request, rngs=rngs),
                template,
                batch_shape,
                argument="The strategy's carry",
            )
        else:
            carry = check_carry(initial_carry, template, batch_shape, argument="initial_carry")

        graphdef, state = nnx.split(self.cell)

        def step(carry: Carry, x: Array) -> tuple[Carry, Array]:
            return nnx.merge(graphdef, state)(carry, x)

        size = math.prod(batch_shape)
        xs = jnp.swapaxes(inputs.reshape((size, time, num_features)), 0, 1)
        carry, ys = _scan.run_sequence(
            step,
            flatten_batch(carry, batch_shape),
            xs,
            None if lengths is None else lengths.reshape((size,)),
            reverse=self.reverse,
            warmup=warmup,
            unroll=self.unroll,
        )
        ys = jax.tree.map(lambda y: unflatten_batch(jnp.swapaxes(y, 0, 1), batch_shape), ys)
        return unflatten_batch(carry, batch_shape), ys

    def __call__(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: Carry | None = None,
        deterministic: bool | None = None,
        rngs: RngsLike = None,
    ) -> Float[Array, "*b t h"] | tuple[Carry, Float[Array, "*b t h"]]:
        """Run the cell over ``inputs``; arguments as :meth:`h0.RNN.__call__`.

        ``deterministic=None`` leaves it to the strategy (``model.train()``/``model.eval()``);
        ``rngs`` supplies the ``'carry'`` stream for :class:`Random`/:class:`LearnedNoisy`.
        """
        carry, ys = self.scan(
            inputs,
            seq_lengths=seq_lengths,
            ids=ids,
            context=context,
            initial_carry=initial_carry,
            deterministic=deterministic,
            rngs=rngs,
        )
        return (carry, ys) if self.return_carry else ys


class Bidirectional(nnx.Module):
    """One RNN forwards and one backwards (``reverse=True``), outputs merged (as :class:`h0.Bidirectional`).

    Args:
        forward: The forward :class:`RNN`.
        backward: The backward :class:`RNN`; must have ``reverse=True``.
        merge: ``merge(forward_outputs, backward_outputs)``; default concatenation.
        return_carry: Return ``((forward_carry, backward_carry), outputs)``.
    """

    def __init__(
        self,
        forward: RNN,
        backward: RNN,
        *,
        merge: Callable[[Array, Array], Array] = concat_outputs,
        return_carry: bool = False,
    ):
        if not backward.reverse:
            raise ValueError("Bidirectional's backward RNN must have reverse=True.")
        if forward.reverse:
            raise ValueError("Bidirectional's forward RNN must have reverse=False.")
        self.forward = forward
        self.backward = backward
        self.merge = merge
        self.return_carry = return_carry

    def warmup_steps(self, initial_carry: Any = None) -> int:
        """Steps the forward direction's strategy consumes."""
        return self.forward.warmup_steps(None if initial_carry is None else initial_carry[0])

    def scan(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: tuple[Carry, Carry] | None = None,
        deterministic: bool | None = None,
        rngs: RngsLike = None,
    ) -> tuple[tuple[Carry, Carry], Array]:
        """Like ``__call__``, but always returns ``((forward_carry, backward_carry), outputs)``."""
        fwd_carry, bwd_carry = (None, None) if initial_carry is None else initial_carry
        kwargs = dict(
            seq_lengths=seq_lengths,
            ids=ids,
            context=context,
            deterministic=deterministic,
            rngs=rngs,
        )
        carry_f, y_f = self.forward.scan(inputs, initial_carry=fwd_carry, **kwargs)
        carry_b, y_b = self.backward.scan(inputs, initial_carry=bwd_carry, **kwargs)
        if y_f.shape[:-1] != y_b.shape[:-1]:
            raise ValueError(
                f"The two directions' outputs differ in shape ({y_f.shape} vs {y_b.shape}): give "
                "both the same WarmUp steps."
            )
        return (carry_f, carry_b), self.merge(y_f, y_b)

    def __call__(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: tuple[Carry, Carry] | None = None,
        deterministic: bool | None = None,
        rngs: RngsLike = None,
    ) -> Array | tuple[tuple[Carry, Carry], Array]:
        """Run both directions; arguments as :meth:`RNN.__call__` (``initial_carry`` a pair)."""
        carries, ys = self.scan(
            inputs,
            seq_lengths=seq_lengths,
            ids=ids,
            context=context,
            initial_carry=initial_carry,
            deterministic=deterministic,
            rngs=rngs,
        )
        return (carries, ys) if self.return_carry else ys


class Stacked(nnx.Module):
    """Layers of RNNs with dropout between them (rng stream ``'dropout'``), as :class:`h0.Stacked`.

    Dropout is off by default (deterministic, like Linen's default); ``model.train()`` or
    ``deterministic=False`` turns it on.

    Args:
        layers: :class:`RNN` or :class:`Bidirectional` layers, applied in order (kept in
            ``self.layers``, an ``nnx.List``).
        dropout: Dropout rate between layers.
        return_carry: Return ``(carries, outputs)`` with every layer's final carry in a tuple.
        rngs: Optional ``nnx.Rngs`` whose ``'dropout'`` stream the dropout layers keep.
    """

    def __init__(
        self,
        layers: Sequence[RNN | Bidirectional],
        *,
        dropout: float = 0.0,
        return_carry: bool = False,
        rngs: RngsLike = None,
    ):
        self.layers = nnx.List(layers)
        self.dropout = dropout
        self.return_carry = return_carry
        self.dropouts = nnx.List(
            [nnx.Dropout(dropout, deterministic=True, rngs=rngs) for _ in layers[1:]]
            if dropout > 0
            else []
        )

    def __call__(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: Sequence[Carry | None] | None = None,
        deterministic: bool | None = None,
        rngs: RngsLike = None,
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
                x = self.dropouts[i - 1](x, deterministic=deterministic, rngs=rngs)
            layer_carry = None if initial_carry is None else initial_carry[i]
            kwargs = dict(ids=ids, context=context, deterministic=deterministic, rngs=rngs)
            carry, x = layer.scan(x, seq_lengths=lengths, initial_carry=layer_carry, **kwargs)
            warmup = layer.warmup_steps(layer_carry)
            if warmup and lengths is not None:
                lengths = jnp.maximum(jnp.asarray(lengths) - warmup, 0)
            carries.append(carry)
        return (tuple(carries), x) if self.return_carry else x


__all__ = [
    "RNN",
    "Bidirectional",
    "Conditional",
    "InitialState",
    "Learned",
    "LearnedNoisy",
    "PerSequence",
    "Random",
    "Stacked",
    "WarmUp",
    "Zeros",
]
