"""Initial-state strategies: each answers "what is the carry at t = 0 for this batch?".

A strategy is a small Linen module called with a :class:`CarryRequest`. It never runs the
recurrence; :class:`WarmUp` only declares how many steps the runner should burn in.
Every parameter a strategy creates is named ``init_*`` (after the carry's leaves: ``init_h``;
LSTM ``init_c`` and ``init_h``) and lives under the runner's ``initial_state`` scope, which is how
:func:`h0.initial_state_mask` finds them.

What the strategies compute is written once, as pure functions over a :class:`CarryRequest`
(:func:`zeros_carry`, :func:`noise_carry`, :func:`per_sequence_carry`...); the Linen modules here
and their NNX twins in :mod:`h0._nnx` only differ in how they hold parameters. What a caller may
ask a strategy (:class:`StrategyTraits`: burn-in steps, whether it needs ``ids``, ``context`` or
the ``'carry'`` rng stream, its deterministic mean) is answered the same way by both, and
:func:`strategy_from_name` is the one place that turns a name into a strategy.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from h0._carry import broadcast_state, check_carry, is_float
from h0._typing import Array, Carry, PyTree

Initializer = Callable[[jax.Array, tuple[int, ...], Any], Array]
InitSpec = str | Initializer | Array | np.ndarray | Mapping[str, Any]

_INIT_NAMES = ("zeros", "normal", "glorot", "xavier", "he", "kaiming")

#: The names :func:`strategy_from_name` accepts.
STRATEGY_NAMES = (
    "zeros",
    "random",
    "learned",
    "learned_noisy",
    "per_sequence",
    "conditional",
    "warmup",
)


@dataclasses.dataclass(frozen=True)
class CarryRequest:
    """What a strategy needs to know to produce the carry at t = 0.

    Attributes:
        template: The carry of one unbatched sequence (pytree of ``jax.ShapeDtypeStruct``).
        names: The carry leaves' names (same structure as ``template``; leaves are strings).
        batch_shape: The batch shape ``*b`` of the inputs (``()`` for one unbatched sequence).
        ids: Sequence ids ``[*b]`` (integers), or ``None``.
        context: Context features ``[*b, c]``, or ``None``.
        deterministic: ``False`` while training (noise-adding strategies add noise).
    """

    template: Carry
    names: PyTree
    batch_shape: tuple[int, ...]
    ids: Array | None = None
    context: Array | None = None
    deterministic: bool = True

    def map(self, fn: Callable[[str, jax.ShapeDtypeStruct], Array]) -> Carry:
        """Build a carry leaf by leaf from ``fn(name, spec)``."""
        return jax.tree.map(fn, self.names, self.template)

    def broadcast(self, state: Carry) -> Carry:
        """Broadcast an unbatched carry to the batch shape."""
        return broadcast_state(state, self.batch_shape)


def _scaled_normal(stddev_of: Callable[[int], float]) -> Initializer:
    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        return stddev_of(shape[-1]) * jax.random.normal(key, shape, dtype)

    return init


def resolve_init(init: InitSpec, name: str) -> Initializer:
    """Turn an ``init=`` argument into an initializer for the leaf called ``name``.

    Args:
        init: ``'zeros'``; ``'normal'`` (stddev 0.1); ``'glorot'``/``'xavier'`` (normal with
            variance ``1/h``, Glorot's rule for a square ``h x h`` layer); ``'he'``/``'kaiming'``
            (variance ``2/h``); a Flax initializer ``init(key, shape, dtype)`` called with the leaf's
            shape; a fixed array of the leaf's shape; or a mapping from leaf name to any of these
            (leaves not named start at zeros).
        name: The carry leaf's name (``'h'``, ``'c'``, ...).

    Returns:
        An initializer ``(key, shape, dtype) -> array``.

    Raises:
        ValueError: For an unknown initializer name.
    """
    if isinstance(init, Mapping):
        return resolve_init(init.get(name, "zeros"), name)
    if isinstance(init, str):
        key = init.lower()
        if key == "zeros":
            return nn.initializers.zeros
        if key == "normal":
            return nn.initializers.normal(stddev=0.1)
        if key in ("glorot", "xavier"):
            return _scaled_normal(lambda h: math.sqrt(1.0 / h))
        if key in ("he", "kaiming"):
            return _scaled_normal(lambda h: math.sqrt(2.0 / h))
        raise ValueError(f"init={init!r} is not an initializer name; choose one of {_INIT_NAMES}.")
    if callable(init):
        return init
    value = jnp.asarray(init)

    def fixed(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
        del key
        shape = tuple(shape)
        if value.ndim == 0 or value.shape != shape[len(shape) - value.ndim :]:
            raise ValueError(
                f"init for leaf {name!r} has shape {value.shape}, but the carry leaf has shape "
                f"{tuple(shape)}."
            )
        return jnp.broadcast_to(value.astype(dtype), shape)

    return fixed


def check_ids(request: CarryRequest) -> Array:
    """Check :class:`PerSequence`'s ``ids`` against the batch shape and return them as an array."""
    ids = request.ids
    if ids is None:
        raise ValueError(
            "PerSequence needs ids: pass ids=<int array of the batch shape "
            f"{request.batch_shape}> to the RNN call."
        )
    ids = jnp.asarray(ids)
    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError(f"ids must be integers, got dtype {ids.dtype}.")
    if ids.shape != request.batch_shape:
        raise ValueError(
            f"ids has shape {ids.shape} but inputs have batch shape {request.batch_shape}; "
            "pass one id per sequence."
        )
    return ids


def check_context(request: CarryRequest) -> Array:
    """Check :class:`Conditional`'s ``context`` (``[*b, c]``, float) and return it as an array."""
    context = request.context
    expected = str((*request.batch_shape, "c")).replace("'", "")
    if context is None:
        raise ValueError(
            f"Conditional needs context: pass context=<float array of shape {expected}> to the "
            "RNN call."
        )
    context = jnp.asarray(context)
    if context.ndim != len(request.batch_shape) + 1 or context.shape[:-1] != request.batch_shape:
        raise ValueError(
            f"context has shape {context.shape} but inputs have batch shape "
            f"{request.batch_shape}; expected {expected}."
        )
    if not is_float(context):
        raise TypeError(f"context must be floating point, got dtype {context.dtype}.")
    return context


def check_learn(learn: Sequence[str] | None, names: PyTree) -> set[str]:
    """The carry leaves a learned strategy learns: all for ``learn=None``, else the named ones.

    Raises:
        ValueError: When ``learn`` names a leaf the carry does not have.
    """
    all_names = set(jax.tree.leaves(names))
    if learn is None:
        return all_names
    chosen = {learn} if isinstance(learn, str) else set(learn)
    unknown = chosen - all_names
    if unknown:
        raise ValueError(
            f"learn={sorted(chosen)} names leaves {sorted(unknown)} that this cell's carry does not "
            f"have; its leaves are {sorted(all_names)}."
        )
    return chosen


def check_hidden_sizes(hidden_sizes: Any) -> tuple[int, ...]:
    """Check :class:`Conditional`'s ``hidden_sizes`` (a sequence of layer widths).

    Raises:
        TypeError: For a single number (``Conditional(6)``), which is not a list of widths.
    """
    if not isinstance(hidden_sizes, Sequence):
        raise TypeError(
            f"hidden_sizes must be a sequence of layer widths such as (64,) or () for a linear "
            f"map; got {hidden_sizes!r}."
        )
    return tuple(int(w) for w in hidden_sizes)


# --------------------------------------------------------------------------------------------
# What each strategy computes, once for Linen and NNX: pure functions of a request.


def zeros_carry(request: CarryRequest) -> Carry:
    """Zeros of the batched carry's shape."""
    return request.map(lambda _, s: jnp.zeros((*request.batch_shape, *s.shape), s.dtype))


def noise_carry(key: jax.Array, request: CarryRequest, stddev: float) -> Carry:
    """Gaussian noise of the batched carry's shape, one subkey per leaf."""
    keys = iter(jax.random.split(key, len(jax.tree.leaves(request.names))))
    return request.map(
        lambda _, s: (
            stddev * jax.random.normal(next(keys), (*request.batch_shape, *s.shape), s.dtype)
        )
    )


def add_noise(carry: Carry, key: jax.Array, stddev: float) -> Carry:
    """``carry`` plus Gaussian noise of standard deviation ``stddev``, one subkey per leaf."""
    leaves, treedef = jax.tree.flatten(carry)
    keys = jax.random.split(key, len(leaves))
    noisy = [
        x + stddev * jax.random.normal(k, x.shape, x.dtype)
        for x, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


def learned_carry(
    request: CarryRequest, learn: Sequence[str] | None, state: Callable[[str, Any], Array]
) -> Carry:
    """The learned state broadcast to the batch: ``state(name, spec)`` for learned leaves, else 0."""
    learned = check_learn(learn, request.names)

    def leaf(name: str, spec: jax.ShapeDtypeStruct) -> Array:
        if name not in learned:
            return jnp.zeros(spec.shape, spec.dtype)
        return state(name, spec)

    return request.broadcast(request.map(leaf))


def per_sequence_carry(
    request: CarryRequest,
    num_sequences: int,
    table: Callable[[str, Any], Array],
    fallback: Callable[[str, Any], Array],
) -> Carry:
    """Each sequence's row of ``table(name, spec)`` (``[n, ...]``), ``fallback`` for unknown ids.

    JAX clamps out-of-range gathers silently, so ids outside ``[0, num_sequences)`` are masked
    explicitly and get the fallback, never another sequence's row.
    """
    ids = check_ids(request)
    known = (ids >= 0) & (ids < num_sequences)
    rows = jnp.clip(ids, 0, num_sequences - 1)

    def leaf(name: str, spec: jax.ShapeDtypeStruct) -> Array:
        looked_up = table(name, spec)[rows]
        mask = known.reshape(known.shape + (1,) * len(spec.shape))
        return jnp.where(mask, looked_up, jnp.broadcast_to(fallback(name, spec), looked_up.shape))

    return request.map(leaf)


def conditional_carry(
    request: CarryRequest,
    hidden: Sequence[Callable[[Array], Array]],
    output: Callable[[str, Any], Callable[[Array], Array]],
    activation: Callable[[Array], Array],
    output_activation: Callable[[Array], Array] | None,
) -> Carry:
    """The MLP's carry, from ``request.context``.

    ``hidden`` layers with ``activation``, then one ``output(name, spec)`` layer per carry leaf,
    reshaped to the leaf and passed through ``output_activation``.
    """
    x = check_context(request)
    for layer in hidden:
        x = activation(layer(x))

    def leaf(name: str, spec: jax.ShapeDtypeStruct) -> Array:
        y = output(name, spec)(x)
        y = y.reshape((*request.batch_shape, *spec.shape)).astype(spec.dtype)
        return y if output_activation is None else output_activation(y)

    return request.map(leaf)


def start_carry(
    strategy: Callable[[CarryRequest], Carry], request: CarryRequest, initial_carry: Carry | None
) -> Carry:
    """The carry at t = 0: ``initial_carry`` when given, else the strategy's, checked either way.

    Raises:
        ValueError: When the carry's structure or shapes do not match the cell's for the batch.
    """
    if initial_carry is not None:
        return check_carry(
            initial_carry, request.template, request.batch_shape, argument="initial_carry"
        )
    return check_carry(
        strategy(request), request.template, request.batch_shape, argument="The strategy's carry"
    )


def burn_in_steps(strategy: StrategyTraits, initial_carry: Carry | None = None) -> int:
    """Steps the runner burns in (the warm-up length rule).

    The strategy's :attr:`~StrategyTraits.burn_in`, or 0 when ``initial_carry`` replaces the
    strategy for the call.
    """
    return 0 if initial_carry is not None else strategy.burn_in


# --------------------------------------------------------------------------------------------
# What a caller may ask a strategy (the same for Linen and NNX strategies).


class StrategyTraits:
    """What a caller may ask any strategy, instead of comparing strategy names.

    The defaults describe a strategy that needs nothing; strategies override what differs:
    :class:`WarmUp` burns in steps, :class:`PerSequence` needs ``ids``, :class:`Conditional`
    needs ``context``, :class:`Random` (and :class:`LearnedNoisy` while training) draw from the
    ``'carry'`` rng stream.

    Example:
        >>> import h0
        >>> s = h0.WarmUp(5, h0.PerSequence(3))
        >>> s.burn_in, s.needs_ids, s.needs_context, s.uses_rng()
        (5, True, False, False)
        >>> h0.LearnedNoisy(0.1).uses_rng(deterministic=False), h0.Random(0.5).uses_rng()
        (True, True)
    """

    @property
    def burn_in(self) -> int:
        """Input steps the runner consumes to warm the carry up before keeping outputs."""
        return 0

    @property
    def needs_ids(self) -> bool:
        """Whether the call needs ``ids=`` (one integer per sequence)."""
        return False

    @property
    def needs_context(self) -> bool:
        """Whether the call needs ``context=`` (features ``[*b, c]``)."""
        return False

    def uses_rng(self, deterministic: bool | None = True) -> bool:
        """Whether a call with this ``deterministic`` draws from the ``'carry'`` rng stream."""
        del deterministic
        return False

    def mean(self) -> Any:
        """The strategy that starts from this one's mean carry, for reproducible evaluation.

        Noise-free strategies return themselves; :class:`Random` returns :class:`Zeros` (its
        noise's mean); :class:`LearnedNoisy` a :class:`Learned` with the same settings (the same
        parameters, so variables carry over); :class:`WarmUp` the same burn-in from its start's
        mean.

        Example:
            >>> import h0
            >>> type(h0.Random(0.5).mean()).__name__, type(h0.WarmUp(3, h0.Random()).mean().start).__name__
            ('Zeros', 'Zeros')
        """
        return self


class _WarmUpTraits(StrategyTraits):
    """:class:`WarmUp`'s answers: its steps, the rest from its ``start``."""

    steps: int
    start: Any

    @property
    def burn_in(self) -> int:
        """The number of burn-in steps."""
        return int(self.steps)

    @property
    def needs_ids(self) -> bool:
        """Whether ``start`` needs ``ids``."""
        return self.start.needs_ids

    @property
    def needs_context(self) -> bool:
        """Whether ``start`` needs ``context``."""
        return self.start.needs_context

    def uses_rng(self, deterministic: bool | None = True) -> bool:
        """Whether ``start`` draws from the ``'carry'`` stream."""
        return self.start.uses_rng(deterministic)


def _noise_key(module: nn.Module, strategy: str) -> jax.Array:
    if not module.has_rng("carry"):
        raise ValueError(
            f"{strategy} needs random numbers from the 'carry' rng stream, which is missing: pass "
            "rngs={'carry': key} to init/apply (a new key per call gives fresh noise)."
        )
    return module.make_rng("carry")


# --------------------------------------------------------------------------------------------
# The Linen strategies.


class InitialState(StrategyTraits, nn.Module):
    """Base class of initial-state strategies.

    Subclasses implement ``__call__(request) -> carry`` returning a carry whose leaves have shape
    ``request.batch_shape + leaf.shape``, and override the :class:`StrategyTraits` that differ.
    """

    def __call__(self, request: CarryRequest) -> Carry:
        """Return the carry at t = 0 for ``request``."""
        raise NotImplementedError

    @nn.nowrap
    def mean(self) -> InitialState:
        """See :meth:`StrategyTraits.mean`."""
        return self


class Zeros(InitialState):
    """Start from zeros (Flax's default).

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(4), h0.Zeros(), return_carry=True)
        >>> x = jnp.zeros((2, 5, 3))
        >>> carry, y = rnn.apply(rnn.init(jax.random.key(0), x), x)
        >>> float(abs(carry).max())
        0.0
    """

    def __call__(self, request: CarryRequest) -> Carry:
        """Return zeros of the carry's shape."""
        return zeros_carry(request)


class Random(InitialState):
    """Gaussian noise, fresh on every call, from the ``'carry'`` rng stream.

    There is no default key: without a ``'carry'`` stream the call raises, rather than silently
    repeating the same "random" state. For reproducible evaluation start from the noise's mean
    instead: :meth:`mean` gives :class:`Zeros`.

    Attributes:
        stddev: Standard deviation of the noise.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(4), h0.Random(0.5), return_carry=True)
        >>> x = jnp.zeros((2, 5, 3))
        >>> v = rnn.init({'params': jax.random.key(0), 'carry': jax.random.key(1)}, x)
        >>> c1, _ = rnn.apply(v, x, rngs={'carry': jax.random.key(2)})
        >>> c2, _ = rnn.apply(v, x, rngs={'carry': jax.random.key(3)})
        >>> bool((c1 != c2).all())
        True
    """

    stddev: float = 0.1

    def __call__(self, request: CarryRequest) -> Carry:
        """Return noise of the carry's shape."""
        return noise_carry(_noise_key(self, "Random"), request, self.stddev)

    @nn.nowrap
    def uses_rng(self, deterministic: bool | None = True) -> bool:
        """Always: every call draws fresh noise."""
        return True

    @nn.nowrap
    def mean(self) -> Zeros:
        """:class:`Zeros`, the noise's mean."""
        return Zeros(parent=None)


class Learned(InitialState):
    """One learnable state, broadcast over any batch shape.

    Attributes:
        init: How to initialise the state (see :func:`h0.resolve_init`): ``'zeros'`` (default),
            ``'normal'``, ``'glorot'``/``'xavier'``, ``'he'``/``'kaiming'``, an initializer, an
            array, or a mapping from leaf name to one of these.
        learn: The carry leaves to learn (e.g. ``('h',)`` for an LSTM whose ``c`` stays zero);
            ``None`` learns all.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.LSTMCell(4), h0.Learned('normal', ('h',)))
        >>> v = rnn.init(jax.random.key(0), jnp.zeros((5, 3)))
        >>> jax.tree.map(jnp.shape, v['params']['initial_state'])
        {'init_h': (4,)}
    """

    init: InitSpec = "zeros"
    learn: Sequence[str] | None = None

    def _learned_state(self, request: CarryRequest) -> Carry:
        def state(name: str, spec: jax.ShapeDtypeStruct) -> Array:
            return self.param(f"init_{name}", resolve_init(self.init, name), spec.shape, spec.dtype)

        return learned_carry(request, self.learn, state)

    @nn.compact
    def __call__(self, request: CarryRequest) -> Carry:
        """Return the learned state broadcast to the batch shape."""
        return self._learned_state(request)


class LearnedNoisy(Learned):
    """A learned state plus Gaussian noise while training (``deterministic=False``) only.

    The noise comes from the ``'carry'`` rng stream. ``init`` and ``learn`` are those of
    :class:`Learned`, keyword-only: ``LearnedNoisy(0.5)`` is the noise's standard deviation.

    Attributes:
        stddev: Standard deviation of the training noise.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(6), h0.LearnedNoisy(0.5, init='normal'), return_carry=True)
        >>> x = jnp.zeros((2, 0, 3))                  # no steps: the carry is the initial state
        >>> v = rnn.init(jax.random.key(0), x)
        >>> clean, _ = rnn.apply(v, x)                # deterministic: the learned state
        >>> noisy, _ = rnn.apply(v, x, deterministic=False, rngs={'carry': jax.random.key(1)})
        >>> bool((clean == v['params']['initial_state']['init_h'][None]).all())
        True
        >>> bool((noisy != clean).all())
        True
    """

    stddev: float = 0.1
    init: InitSpec = dataclasses.field(default="zeros", kw_only=True)
    learn: Sequence[str] | None = dataclasses.field(default=None, kw_only=True)

    @nn.compact
    def __call__(self, request: CarryRequest) -> Carry:
        """Return the learned state, with noise when not deterministic."""
        carry = self._learned_state(request)
        if not self.uses_rng(request.deterministic):
            return carry
        return add_noise(carry, _noise_key(self, "LearnedNoisy"), self.stddev)

    @nn.nowrap
    def uses_rng(self, deterministic: bool | None = True) -> bool:
        """While training (``deterministic=False``) with a non-zero ``stddev``."""
        return not deterministic and self.stddev != 0

    @nn.nowrap
    def mean(self) -> Learned:
        """A :class:`Learned` with the same ``init`` and ``learn`` (and so the same parameters)."""
        return Learned(self.init, self.learn, parent=None)


class PerSequence(InitialState):
    """A learned state per sequence id, looked up from ``ids``.

    Ids outside ``[0, num_sequences)`` (a sequence never seen in training, or ``-1``) get a shared
    learned fallback state (``init_h_fallback``...), never another sequence's row: JAX clamps
    out-of-range gathers silently, so the lookup masks them explicitly.

    Attributes:
        num_sequences: Number of sequence ids with their own state.
        init: Initialiser of each row (see :class:`Learned`); the fallback starts at zeros.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(4), h0.PerSequence(10), return_carry=True)
        >>> x, ids = jnp.zeros((3, 5, 2)), jnp.array([0, 7, 12])
        >>> v = rnn.init(jax.random.key(0), x, ids=ids)
        >>> jax.tree.map(jnp.shape, v['params']['initial_state'])
        {'init_h': (10, 4), 'init_h_fallback': (4,)}
    """

    num_sequences: int
    init: InitSpec = "zeros"

    @property
    def needs_ids(self) -> bool:
        """Always: the state is looked up by id."""
        return True

    @nn.compact
    def __call__(self, request: CarryRequest) -> Carry:
        """Return each sequence's state, the fallback for unknown ids."""

        def table(name: str, spec: jax.ShapeDtypeStruct) -> Array:
            shape = (self.num_sequences, *spec.shape)
            return self.param(f"init_{name}", resolve_init(self.init, name), shape, spec.dtype)

        def fallback(name: str, spec: jax.ShapeDtypeStruct) -> Array:
            init = nn.initializers.zeros
            return self.param(f"init_{name}_fallback", init, spec.shape, spec.dtype)

        return per_sequence_carry(request, self.num_sequences, table, fallback)


class Conditional(InitialState):
    """The carry computed from context features by an MLP (``context: [*b, c]``).

    Attributes:
        hidden_sizes: Widths of the MLP's hidden layers (``()`` for a linear map).
        activation: Activation of the hidden layers.
        output_activation: Applied to each carry leaf (``None``: linear output).

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(4), h0.Conditional((8,)), return_carry=True)
        >>> x, ctx = jnp.zeros((3, 5, 2)), jnp.ones((3, 6))
        >>> v = rnn.init(jax.random.key(0), x, context=ctx)
        >>> rnn.apply(v, x, context=ctx)[0].shape
        (3, 4)
    """

    hidden_sizes: Sequence[int] = (64,)
    activation: Callable[[Array], Array] = nn.tanh
    output_activation: Callable[[Array], Array] | None = None

    @property
    def needs_context(self) -> bool:
        """Always: the carry is computed from the context."""
        return True

    @nn.compact
    def __call__(self, request: CarryRequest) -> Carry:
        """Return the MLP's carry for each sequence's context."""
        widths = check_hidden_sizes(self.hidden_sizes)
        hidden = [nn.Dense(w, name=f"init_mlp_{i}") for i, w in enumerate(widths)]

        def output(name: str, spec: jax.ShapeDtypeStruct) -> nn.Module:
            return nn.Dense(math.prod(spec.shape), name=f"init_{name}", param_dtype=spec.dtype)

        return conditional_carry(request, hidden, output, self.activation, self.output_activation)


class WarmUp(_WarmUpTraits, InitialState):
    """Burn-in: run the cell over the first ``steps`` inputs and start from the carry reached.

    The runner does the burn-in (from ``start``'s carry) and drops those steps' outputs, so the
    output has ``time - steps`` steps (:attr:`burn_in`). For ``reverse=True`` the burn-in covers
    the first steps in processing order (the last valid inputs). With ``seq_lengths``, each
    sequence's length counts the burn-in steps too.

    Attributes:
        steps: Number of burn-in steps.
        start: Strategy for the carry the burn-in starts from (default zeros).

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(4), h0.WarmUp(3))
        >>> x = jnp.ones((2, 10, 3))
        >>> rnn.apply(rnn.init(jax.random.key(0), x), x).shape
        (2, 7, 4)
    """

    steps: int
    start: InitialState = dataclasses.field(default_factory=Zeros)

    def __call__(self, request: CarryRequest) -> Carry:
        """Return the carry the burn-in starts from."""
        return self.start(request)

    @nn.nowrap
    def mean(self) -> WarmUp:
        """The same burn-in from ``start``'s mean."""
        return WarmUp(self.steps, self.start.mean(), parent=None)


# --------------------------------------------------------------------------------------------
# Strategies by name.


def strategy_from_name(
    name: str,
    *,
    num_sequences: int = 1,
    warmup_steps: int | None = None,
    stddev: float = 0.1,
    init: InitSpec = "zeros",
    hidden_sizes: Sequence[int] = (64,),
) -> InitialState:
    """Return the Linen strategy called ``name``, one of :data:`STRATEGY_NAMES`.

    Each keyword only applies to the strategies that have that setting; the others ignore it.

    Args:
        name: ``'zeros'``, ``'random'``, ``'learned'``, ``'learned_noisy'``, ``'per_sequence'``,
            ``'conditional'`` or ``'warmup'``.
        num_sequences: Rows of the ``'per_sequence'`` table (one per training series).
        warmup_steps: Burn-in steps of ``'warmup'`` (from zeros); required for it.
        stddev: Noise of ``'random'`` and ``'learned_noisy'``.
        init: Initialiser of ``'learned'``, ``'learned_noisy'`` and ``'per_sequence'``.
        hidden_sizes: Hidden widths of ``'conditional'``'s MLP.

    Returns:
        The strategy, e.g. ``h0.PerSequence(num_sequences, init)`` for ``'per_sequence'``.

    Raises:
        ValueError: For a name not in :data:`STRATEGY_NAMES` (the message lists them), or
            ``'warmup'`` without ``warmup_steps``.

    Example:
        >>> import h0
        >>> h0.strategy_from_name('warmup', warmup_steps=8).burn_in
        8
        >>> h0.strategy_from_name('lerned')
        Traceback (most recent call last):
        ...
        ValueError: initial_state='lerned' is not a strategy name; choose one of zeros, random, learned, learned_noisy, per_sequence, conditional, warmup.
    """
    factories: dict[str, Callable[[], InitialState]] = {
        "zeros": Zeros,
        "random": lambda: Random(stddev),
        "learned": lambda: Learned(init),
        "learned_noisy": lambda: LearnedNoisy(stddev, init=init),
        "per_sequence": lambda: PerSequence(num_sequences, init),
        "conditional": lambda: Conditional(hidden_sizes),
        "warmup": lambda: WarmUp(warmup_steps),
    }
    if name not in factories:
        raise ValueError(
            f"initial_state={name!r} is not a strategy name; choose one of "
            f"{', '.join(STRATEGY_NAMES)}."
        )
    if name == "warmup" and warmup_steps is None:
        raise ValueError("initial_state='warmup' needs warmup_steps=<number of burn-in steps>.")
    return factories[name]()
