"""Initial-state strategies: each answers "what is the carry at t = 0 for this batch?".

A strategy is a small Linen module called with a :class:`CarryRequest`. It never runs the
recurrence; :class:`WarmUp` only declares how many steps the runner should burn in.
Every parameter a strategy creates is named ``init_*`` (after the carry's leaves: ``init_h``;
LSTM ``init_c`` and ``init_h``) and lives under the runner's ``initial_state`` scope, which is how
:func:`h0.initial_state_mask` finds them.
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

from h0._carry import broadcast_state, is_float
from h0._typing import Array, Carry, PyTree

Initializer = Callable[[jax.Array, tuple[int, ...], Any], Array]
InitSpec = str | Initializer | Array | np.ndarray | Mapping[str, Any]

_INIT_NAMES = ("zeros", "normal", "glorot", "xavier", "he", "kaiming")


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


def _check_learn(learn: Sequence[str] | None, names: PyTree) -> set[str]:
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


def _noise_key(module: nn.Module, strategy: str) -> jax.Array:
    if not module.has_rng("carry"):
        raise ValueError(
            f"{strategy} needs random numbers from the 'carry' rng stream, which is missing: pass "
            "rngs={'carry': key} to init/apply (a new key per call gives fresh noise)."
        )
    return module.make_rng("carry")


class InitialState(nn.Module):
    """Base class of initial-state strategies.

    Subclasses implement ``__call__(request) -> carry`` returning a carry whose leaves have shape
    ``request.batch_shape + leaf.shape``.
    """

    def __call__(self, request: CarryRequest) -> Carry:
        """Return the carry at t = 0 for ``request``."""
        raise NotImplementedError

    @nn.nowrap
    def warmup_steps(self) -> int:
        """Input steps the runner burns in before keeping outputs (0 for most strategies)."""
        return 0


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
        return request.map(lambda _, s: jnp.zeros((*request.batch_shape, *s.shape), s.dtype))


class Random(InitialState):
    """Gaussian noise, fresh on every call, from the ``'carry'`` rng stream.

    There is no default key: without a ``'carry'`` stream the call raises, rather than silently
    repeating the same "random" state.

    Attributes:
        stddev: Standard deviation of the noise.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(4), h0.Random(stddev=0.5), return_carry=True)
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
        keys = iter(
            jax.random.split(_noise_key(self, "Random"), len(jax.tree.leaves(request.names)))
        )
        return request.map(
            lambda _, s: (
                self.stddev
                * jax.random.normal(next(keys), (*request.batch_shape, *s.shape), s.dtype)
            )
        )


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
        >>> rnn = h0.RNN(nn.LSTMCell(4), h0.Learned(init='normal', learn=('h',)))
        >>> v = rnn.init(jax.random.key(0), jnp.zeros((5, 3)))
        >>> jax.tree.map(jnp.shape, v['params']['initial_state'])
        {'init_h': (4,)}
    """

    init: InitSpec = "zeros"
    learn: Sequence[str] | None = None

    def _learned_state(self, request: CarryRequest) -> Carry:
        learned = _check_learn(self.learn, request.names)

        def leaf(name: str, spec: jax.ShapeDtypeStruct) -> Array:
            if name not in learned:
                return jnp.zeros(spec.shape, spec.dtype)
            return self.param(f"init_{name}", resolve_init(self.init, name), spec.shape, spec.dtype)

        return request.map(leaf)

    @nn.compact
    def __call__(self, request: CarryRequest) -> Carry:
        """Return the learned state broadcast to the batch shape."""
        return request.broadcast(self._learned_state(request))


class LearnedNoisy(Learned):
    """A learned state plus Gaussian noise while training (``deterministic=False``) only.

    The noise comes from the ``'carry'`` rng stream. Parameters are those of :class:`Learned`.

    Attributes:
        stddev: Standard deviation of the training noise.
    """

    stddev: float = 0.1

    @nn.compact
    def __call__(self, request: CarryRequest) -> Carry:
        """Return the learned state, with noise when not deterministic."""
        carry = request.broadcast(self._learned_state(request))
        if request.deterministic or self.stddev == 0:
            return carry
        leaves, treedef = jax.tree.flatten(carry)
        keys = jax.random.split(_noise_key(self, "LearnedNoisy"), len(leaves))
        noisy = [
            x + self.stddev * jax.random.normal(k, x.shape, x.dtype)
            for x, k in zip(leaves, keys, strict=True)
        ]
        return jax.tree.unflatten(treedef, noisy)


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

    @nn.compact
    def __call__(self, request: CarryRequest) -> Carry:
        """Return each sequence's state, the fallback for unknown ids."""
        ids = check_ids(request)
        known = (ids >= 0) & (ids < self.num_sequences)
        rows = jnp.clip(ids, 0, self.num_sequences - 1)

        def leaf(name: str, spec: jax.ShapeDtypeStruct) -> Array:
            table = self.param(
                f"init_{name}",
                resolve_init(self.init, name),
                (self.num_sequences, *spec.shape),
                spec.dtype,
            )
            fallback = self.param(
                f"init_{name}_fallback", nn.initializers.zeros, spec.shape, spec.dtype
            )
            looked_up = table[rows]
            mask = known.reshape(known.shape + (1,) * len(spec.shape))
            return jnp.where(mask, looked_up, jnp.broadcast_to(fallback, looked_up.shape))

        return request.map(leaf)


class Conditional(InitialState):
    """The carry computed from context features by an MLP (``context: [*b, c]``).

    Attributes:
        hidden_sizes: Widths of the MLP's hidden layers (``()`` for a linear map).
        activation: Activation of the hidden layers.
        output_activation: Applied to each carry leaf (``None``: linear output).

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp, h0
        >>> rnn = h0.RNN(nn.GRUCell(4), h0.Conditional(hidden_sizes=(8,)), return_carry=True)
        >>> x, ctx = jnp.zeros((3, 5, 2)), jnp.ones((3, 6))
        >>> v = rnn.init(jax.random.key(0), x, context=ctx)
        >>> rnn.apply(v, x, context=ctx)[0].shape
        (3, 4)
    """

    hidden_sizes: Sequence[int] = (64,)
    activation: Callable[[Array], Array] = nn.tanh
    output_activation: Callable[[Array], Array] | None = None

    @nn.compact
    def __call__(self, request: CarryRequest) -> Carry:
        """Return the MLP's carry for each sequence's context."""
        x = check_context(request)
        for i, width in enumerate(self.hidden_sizes):
            x = self.activation(nn.Dense(width, name=f"init_mlp_{i}")(x))

        def leaf(name: str, spec: jax.ShapeDtypeStruct) -> Array:
            y = nn.Dense(math.prod(spec.shape), name=f"init_{name}", param_dtype=spec.dtype)(x)
            y = y.reshape((*request.batch_shape, *spec.shape)).astype(spec.dtype)
            return y if self.output_activation is None else self.output_activation(y)

        return request.map(leaf)


class WarmUp(InitialState):
    """Burn-in: run the cell over the first ``steps`` inputs and start from the carry reached.

    The runner does the burn-in (from ``start``'s carry) and drops those steps' outputs, so the
    output has ``time - steps`` steps. For ``reverse=True`` the burn-in covers the first steps in
    processing order (the last valid inputs). With ``seq_lengths``, each sequence's length
    counts the burn-in steps too.

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
    def warmup_steps(self) -> int:
        """The number of burn-in steps."""
        return int(self.steps)
