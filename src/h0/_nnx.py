"""Flax NNX front-end: the same strategies and runners as the Linen side, for ``flax.nnx`` cells.

NNX modules create their parameters eagerly, but a strategy's parameters take the carry's shape,
which only the cell knows. So a strategy is built in two steps: the user constructs it with its
settings (``Learned(init='normal')``) and the runner that adopts it calls :meth:`InitialState.build`
with the cell's carry template and the ``rngs`` given to the runner. What the strategies compute,
what callers may ask them (:class:`h0._strategies.StrategyTraits`), every check and message and
the whole run are shared with the Linen side: the strategies' pure functions in
:mod:`h0._strategies`, and :func:`h0._scan.run_rnn` (with :func:`~h0._scan.run_bidirectional`
and :func:`~h0._scan.run_stacked`), which receives a pure step built from ``nnx.split(cell)``.
Flax's GRU and LSTM cells take the same fast recurrence as on the Linen side
(:mod:`h0._fast`), on their parameters mapped to the Linen layout.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Float, Int

from h0 import _fast, _scan
from h0._carry import carry_names
from h0._scan import concat_outputs
from h0._strategies import (
    CarryRequest,
    InitSpec,
    StrategyTraits,
    _WarmUpTraits,
    add_noise,
    burn_in_steps,
    check_context,
    check_hidden_sizes,
    check_learn,
    conditional_carry,
    learned_carry,
    noise_carry,
    per_sequence_carry,
    resolve_init,
    start_carry,
    zeros_carry,
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


class InitialState(StrategyTraits, nnx.Module):
    """Base class of NNX initial-state strategies.

    Subclasses implement ``build(request, rngs)`` (create ``init_*`` parameters for the carry in
    ``request.template``; ``request.batch_shape`` is ``()``) and ``__call__(request, rngs=None)``
    returning a carry whose leaves have shape ``request.batch_shape + leaf.shape``, and override
    the :class:`~h0._strategies.StrategyTraits` that differ (as the Linen strategies do).
    """

    def build(self, request: CarryRequest, rngs: RngsLike) -> None:
        """Create the strategy's parameters for the carry of ``request`` (none by default)."""
        del request, rngs

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return the carry at t = 0 for ``request``."""
        raise NotImplementedError


class Zeros(InitialState):
    """Start from zeros, as :class:`h0.Zeros`."""

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return zeros of the carry's shape."""
        return zeros_carry(request)


class Random(InitialState):
    """Gaussian noise, fresh on every call, from the ``'carry'`` rng stream (as :class:`h0.Random`).

    The stream comes from the call's ``rngs`` or, failing that, from ``rngs`` given here; without
    either the call raises. :meth:`mean` gives :class:`Zeros`, the noise's mean.

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
        return noise_carry(_noise_key(rngs, self.rngs, "Random"), request, self.stddev)

    def uses_rng(self, deterministic: bool | None = True) -> bool:
        """Always: every call draws fresh noise."""
        return True

    def mean(self) -> Zeros:
        """:class:`Zeros`, the noise's mean."""
        return Zeros()


class Learned(InitialState):
    """One learnable state (``nnx.Param`` ``init_h``; LSTM ``init_c``/``init_h``), broadcast over the batch.

    Args:
        init: How to initialise the state (see :func:`h0.resolve_init`).
        learn: The carry leaves to learn (e.g. ``('h',)`` for an LSTM); ``None`` learns all.
    """

    def __init__(self, init: InitSpec = "zeros", learn: Sequence[str] | None = None):
        self.init = _Static(init)
        self.learn = None if learn is None else (learn if isinstance(learn, str) else tuple(learn))

    def build(self, request: CarryRequest, rngs: RngsLike) -> None:
        """Create ``init_<leaf>`` parameters for the learned leaves."""
        learned = check_learn(self.learn, request.names)
        for name, spec in zip(
            jax.tree.leaves(request.names), jax.tree.leaves(request.template), strict=True
        ):
            if name in learned:
                key = _params_key(rngs, type(self).__name__)
                value = resolve_init(self.init.value, name)(key, spec.shape, spec.dtype)
                setattr(self, f"init_{name}", nnx.Param(value))

    def _learned_state(self, request: CarryRequest) -> Carry:
        return learned_carry(
            request, self.learn, lambda name, _: getattr(self, f"init_{name}")[...]
        )

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return the learned state broadcast to the batch shape."""
        return self._learned_state(request)


class LearnedNoisy(Learned):
    """A learned state plus Gaussian noise while training only (as :class:`h0.LearnedNoisy`).

    Training means ``deterministic=False``: either passed to the call, or set on the module by
    ``model.train()`` (``model.eval()`` sets it back; the default is deterministic, like Linen's).

    Args:
        stddev: Standard deviation of the training noise.
        init: As :class:`Learned` (keyword-only, as in Linen).
        learn: As :class:`Learned` (keyword-only).
        deterministic: The default when the call does not say.
        rngs: Optional ``nnx.Rngs`` whose ``'carry'`` stream is forked and kept.
    """

    def __init__(
        self,
        stddev: float = 0.1,
        *,
        init: InitSpec = "zeros",
        learn: Sequence[str] | None = None,
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
        carry = self._learned_state(request)
        if not self.uses_rng(request.deterministic):
            return carry
        return add_noise(carry, _noise_key(rngs, self.rngs, "LearnedNoisy"), self.stddev)

    def uses_rng(self, deterministic: bool | None = True) -> bool:
        """While training (``deterministic=False``, or ``None`` after ``train()``), ``stddev > 0``."""
        deterministic = self.deterministic if deterministic is None else deterministic
        return not deterministic and self.stddev != 0

    def mean(self) -> Learned:
        """A :class:`Learned` with the same settings (before an RNN builds this strategy)."""
        if getattr(self, "_h0_built", False):
            raise ValueError(
                "mean() makes a new strategy from this one's settings: call it before an RNN "
                "adopts the strategy."
            )
        return Learned(self.init.value, self.learn)


class PerSequence(InitialState):
    """A learned state per sequence id, with a learned fallback for unknown ids (as :class:`h0.PerSequence`).

    Args:
        num_sequences: Number of sequence ids with their own state.
        init: Initialiser of each row; the fallback (``init_h_fallback``...) starts at zeros.
    """

    def __init__(self, num_sequences: int, init: InitSpec = "zeros"):
        self.num_sequences = int(num_sequences)
        self.init = _Static(init)

    @property
    def needs_ids(self) -> bool:
        """Always: the state is looked up by id."""
        return True

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
        return per_sequence_carry(
            request,
            self.num_sequences,
            lambda name, _: getattr(self, f"init_{name}")[...],
            lambda name, _: getattr(self, f"init_{name}_fallback")[...],
        )


class Conditional(InitialState):
    """The carry computed from context features ``[*b, c]`` by an MLP (as :class:`h0.Conditional`).

    NNX creates weights eagerly, so the context size is a (keyword) argument. The layers are
    ``init_mlp_0``, ``init_mlp_1``... and one output layer per carry leaf, ``init_h`` (LSTM
    ``init_c``/``init_h``), as in Linen.

    Args:
        hidden_sizes: Widths of the MLP's hidden layers (``()`` for a linear map).
        activation: Activation of the hidden layers.
        output_activation: Applied to each carry leaf (``None``: linear output).
        context_features: The context's feature size ``c``.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> from h0 import nnx as h0nnx
        >>> rngs = nnx.Rngs(0)
        >>> s = h0nnx.Conditional((8,), context_features=6)
        >>> rnn = h0nnx.RNN(nnx.GRUCell(2, 4, rngs=rngs), s, return_carry=True, rngs=rngs)
        >>> rnn(jnp.zeros((3, 5, 2)), context=jnp.ones((3, 6)))[0].shape
        (3, 4)
    """

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (64,),
        activation: Callable[[Array], Array] = nnx.tanh,
        output_activation: Callable[[Array], Array] | None = None,
        *,
        context_features: int,
    ):
        self.context_features = int(context_features)
        self.hidden_sizes = check_hidden_sizes(hidden_sizes)
        self.activation = activation
        self.output_activation = output_activation

    @property
    def needs_context(self) -> bool:
        """Always: the carry is computed from the context."""
        return True

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

    def __call__(self, request: CarryRequest, *, rngs: RngsLike = None) -> Carry:
        """Return the MLP's carry for each sequence's context."""
        features = check_context(request).shape[-1]
        if features != self.context_features:
            raise ValueError(
                f"context has {features} features (shape {request.context.shape}) but "
                f"Conditional was built with context_features={self.context_features}."
            )
        hidden = [getattr(self, f"init_mlp_{i}") for i in range(len(self.hidden_sizes))]
        return conditional_carry(
            request,
            hidden,
            lambda name, _: getattr(self, f"init_{name}"),
            self.activation,
            self.output_activation,
        )


class WarmUp(_WarmUpTraits, InitialState):
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

    def mean(self) -> WarmUp:
        """The same burn-in from ``start``'s mean."""
        return WarmUp(self.steps, self.start.mean())


def _linen_twin(cell: nnx.Module) -> tuple[nn.Module, Callable[[], dict[str, Any]]] | None:
    """The Linen cell computing what ``cell`` computes, and its parameters from ``cell``'s.

    For Flax's NNX ``GRUCell``, ``LSTMCell`` and ``OptimizedLSTMCell`` with default activations
    and dtype, so that :func:`h0._fast.fast_scan` can run them; ``None`` for other cells. The
    parameters are read (and sliced) when called, so gradients flow back to ``cell``'s.
    """
    kind = type(cell)
    if kind not in (nnx.GRUCell, nnx.LSTMCell, nnx.OptimizedLSTMCell) or not (
        cell.gate_fn is nn.sigmoid and cell.activation_fn is nn.tanh and cell.dtype is None
    ):
        return None
    hidden = cell.hidden_features

    def split(layer: nnx.Linear, gates: str, field: str) -> dict[str, Array]:
        return dict(zip(gates, jnp.split(getattr(layer, field)[...], len(gates), -1), strict=True))

    if kind is nnx.GRUCell:

        def gru_params() -> dict[str, Any]:
            ki, bi = split(cell.dense_i, "rzn", "kernel"), split(cell.dense_i, "rzn", "bias")
            kh = split(cell.dense_h, "rzn", "kernel")
            params = {f"i{g}": {"kernel": ki[g], "bias": bi[g]} for g in "rzn"}
            params |= {f"h{g}": {"kernel": kh[g]} for g in "rzn"}
            params["hn"]["bias"] = jnp.zeros_like(bi["n"])  # NNX has no bias on W_hn h
            return params

        return nn.GRUCell(hidden), gru_params
    if kind is nnx.LSTMCell:

        def lstm_params() -> dict[str, Any]:
            inputs = {
                f"i{g}": {"kernel": getattr(cell, "if_" if g == "f" else f"i{g}").kernel[...]}
                for g in "ifgo"
            }
            recurrent = {
                f"h{g}": {
                    "kernel": getattr(cell, f"h{g}").kernel[...],
                    "bias": getattr(cell, f"h{g}").bias[...],
                }
                for g in "ifgo"
            }
            return inputs | recurrent

        return nn.LSTMCell(hidden), lstm_params

    def optimized_lstm_params() -> dict[str, Any]:
        ki, kh = split(cell.dense_i, "ifgo", "kernel"), split(cell.dense_h, "ifgo", "kernel")
        bh = split(cell.dense_h, "ifgo", "bias")
        return {f"i{g}": {"kernel": ki[g]} for g in "ifgo"} | {
            f"h{g}": {"kernel": kh[g], "bias": bh[g]} for g in "ifgo"
        }

    return nn.OptimizedLSTMCell(hidden), optimized_lstm_params


class RNN(nnx.Module):
    """Run an NNX cell over ``[*batch, time, features]`` inputs from a strategy's carry.

    The NNX twin of :class:`h0.RNN`: same arguments (``fast`` and ``remat`` included), masking,
    reversal, burn-in and errors. The strategy is built here (its parameters created with
    ``rngs``) and kept as the attribute ``initial_state``, so ``nnx.state(model, nnx.Param)``
    holds ``...['initial_state']['init_h']`` and :func:`h0.initial_state_mask` finds it.

    Args:
        cell: An NNX cell, ``cell(carry, x) -> (carry, y)`` with ``initialize_carry(input_shape,
            rngs)`` (``nnx.GRUCell``, ``nnx.LSTMCell``, ``nnx.OptimizedLSTMCell``,
            ``nnx.SimpleCell``...).
        initial_state: An NNX strategy (default :class:`Zeros`), not yet built.
        reverse: Run each sequence's valid part backwards.
        return_carry: Return ``(carry, outputs)`` instead of ``outputs``.
        unroll: Scan steps unrolled per loop iteration.
        fast: Run ``nnx.GRUCell``/``nnx.LSTMCell``/``nnx.OptimizedLSTMCell`` (default
            activations) with the same dedicated recurrence as :class:`h0.RNN` (see
            :mod:`h0._fast`), on the cell's parameters; ``False`` always steps the cell.
        remat: With the fast path, recompute the gates in the backward pass instead of saving
            them (as :class:`h0.RNN`).
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
        fast: bool = True,
        remat: bool = False,
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
        self.fast = fast
        self.remat = remat
        template = nnx_carry_template(cell, self.in_features)
        self._template = _Static(template)
        self._names = _Static(nnx_carry_names(cell, template))
        if getattr(initial_state, "_h0_built", False):
            raise ValueError(
                f"This {type(initial_state).__name__} strategy already belongs to another RNN; "
                "give each RNN its own strategy instance."
            )
        initial_state.build(CarryRequest(template, self._names.value, ()), rngs)
        initial_state._h0_built = True
        self.initial_state = initial_state

    def warmup_steps(self, initial_carry: Carry | None = None) -> int:
        """Steps the initial-state strategy consumes (0 when ``initial_carry`` overrides it)."""
        return burn_in_steps(self.initial_state, initial_carry)

    def _fast_scan(self) -> Callable[..., tuple[Carry, Array]] | None:
        twin = _linen_twin(self.cell) if self.fast else None
        return None if twin is None else _fast.fast_scan(twin[0], twin[1](), remat=self.remat)

    def scan(
        self,
        inputs: Float[Array, "*b t f"],
        *,
        seq_lengths: Int[Array, "*b"] | None = None,
        ids: Int[Array, "*b"] | None = None,
        context: Float[Array, "*b c"] | None = None,
        initial_carry: Carry | None = None,
        deterministic: bool | None = None,
        reverse: bool | None = None,
        rngs: RngsLike = None,
    ) -> tuple[Carry, Float[Array, "*b t h"]]:
        """Run the cell and return ``(final_carry, outputs)``; arguments as :meth:`h0.RNN.scan`.

        ``deterministic=None`` leaves it to the strategy (``model.train()``/``model.eval()``);
        ``rngs`` supplies the ``'carry'`` stream for :class:`Random`/:class:`LearnedNoisy`.
        ``__call__`` takes the same arguments.
        """
        graphdef, state = nnx.split(self.cell)

        def step(carry: Carry, x: Array) -> tuple[Carry, Array]:
            return nnx.merge(graphdef, state)(carry, x)

        def start(batch_shape: tuple[int, ...]) -> Carry:
            request = CarryRequest(
                self._template.value, self._names.value, batch_shape, ids, context, deterministic
            )
            return start_carry(lambda r: self.initial_state(r, rngs=rngs), request, initial_carry)

        return _scan.run_rnn(
            step,
            start,
            inputs,
            seq_lengths,
            reverse=self.reverse if reverse is None else reverse,
            warmup=self.warmup_steps(initial_carry),
            unroll=self.unroll,
            in_features=self.in_features,
            fast_scan=self._fast_scan(),
        )

    def __call__(
        self, inputs: Float[Array, "*b t f"], **kwargs: Any
    ) -> Float[Array, "*b t h"] | tuple[Carry, Float[Array, "*b t h"]]:
        """Run the cell over ``inputs``; keyword arguments as :meth:`scan`."""
        carry, ys = self.scan(inputs, **kwargs)
        return (carry, ys) if self.return_carry else ys


class Bidirectional(nnx.Module):
    """One RNN forwards and the other backwards, outputs merged (as :class:`h0.Bidirectional`).

    As in :class:`flax.linen.Bidirectional`, the second RNN runs backwards whatever its
    ``reverse`` (``reverse=True`` on it is accepted), outputs in input order.

    Args:
        forward: The forward :class:`RNN` (``reverse=False``).
        backward: The backward :class:`RNN`.
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
        _scan.check_forward(forward)
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
        initial_carry: tuple[Carry, Carry] | None = None,
        **kwargs: Any,
    ) -> tuple[tuple[Carry, Carry], Array]:
        """Run both directions; return ``((forward_carry, backward_carry), outputs)``.

        Keyword arguments as :meth:`RNN.scan`, ``initial_carry`` a pair.
        """
        return _scan.run_bidirectional(
            self.forward, self.backward, self.merge, inputs, initial_carry=initial_carry, **kwargs
        )

    def __call__(
        self, inputs: Float[Array, "*b t f"], **kwargs: Any
    ) -> Array | tuple[tuple[Carry, Carry], Array]:
        """Run both directions; keyword arguments as :meth:`scan`."""
        carries, ys = self.scan(inputs, **kwargs)
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
        initial_carry: Sequence[Carry | None] | None = None,
        deterministic: bool | None = None,
        rngs: RngsLike = None,
        **kwargs: Any,
    ) -> Array | tuple[tuple[Carry, ...], Array]:
        """Run the layers; arguments as :meth:`h0.Stacked.__call__`, plus ``rngs``."""

        def between(i: int, x: Array) -> Array:
            if not self.dropouts:
                return x
            return self.dropouts[i - 1](x, deterministic=deterministic, rngs=rngs)

        carries, x = _scan.run_stacked(
            list(self.layers),
            inputs,
            initial_carry=initial_carry,
            between=between,
            deterministic=deterministic,
            rngs=rngs,
            **kwargs,
        )
        return (carries, x) if self.return_carry else x


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
