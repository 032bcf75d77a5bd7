"""The detector's strategy names, resolved by :func:`h0.strategy_from_name` (the one resolver).

The detector offers every h0 strategy. ``'warmup'`` burns in ``window // 4`` points;
``'conditional'`` is :class:`h0.Conditional` on a summary of the ``history`` points before each
window (:func:`history_context`): the encoder starts from what the long past says, which a window
of ``window`` points cannot see.
"""

from __future__ import annotations

import jax.numpy as jnp

from h0._strategies import STRATEGY_NAMES as _ALL
from h0._strategies import InitialState, strategy_from_name
from h0._typing import Array

#: Names accepted by ``initial_state=``.
STRATEGY_NAMES: tuple[str, ...] = _ALL
#: Hidden widths of the ``'conditional'`` start's MLP.
CONDITIONAL_HIDDEN = (32,)


def detector_strategy(name: str, *, window: int, num_sequences: int = 1) -> InitialState:
    """The encoder's strategy for ``initial_state=name`` in a detector with ``window`` points.

    Example:
        >>> detector_strategy('warmup', window=32).burn_in
        8
        >>> detector_strategy('conditional', window=32).needs_context
        True
    """
    if name not in STRATEGY_NAMES:
        raise ValueError(
            f"initial_state={name!r} is not a strategy name; choose one of {STRATEGY_NAMES}."
        )
    strategy = strategy_from_name(
        name,
        num_sequences=num_sequences,
        warmup_steps=max(window // 4, 1),
        hidden_sizes=CONDITIONAL_HIDDEN,
    )
    if strategy.needs_context:  # a GRU's state lies in (-1, 1)
        strategy = strategy.clone(output_activation=jnp.tanh)
    return strategy


def burn_in_steps(name: str, window: int) -> int:
    """Points of each window the strategy ``name`` reads before reconstruction starts."""
    return detector_strategy(name, window=window).burn_in if name in STRATEGY_NAMES else 0


def history_context(history: Array, block: int) -> Array:
    """The summary ``[b, 3 * k * c]`` of ``history [b, k * block, c]`` that ``'conditional'`` reads.

    Per block of ``block`` points and channel, robustly (one extreme point in the history must
    not move the start of every window that sees it): the median, the median absolute
    deviation from it (times 1.4826: a standard deviation for Gaussian data) and the share of
    points known. Points before a series' start are NaN (they are not known) and count in none
    of the three, so a window near the start says how much history it has.

    Example:
        >>> import numpy as np
        >>> h = np.array([[[np.nan], [np.nan], [1.0], [3.0], [9.0], [2.0], [1.0], [1.0]]], np.float32)
        >>> [round(float(v), 3) for v in history_context(h, 4)[0]]
        [2.0, 1.483, 0.5, 1.5, 0.741, 1.0]
    """
    b, t, c = history.shape
    x = history.reshape(b, t // block, block, c)
    known = ~jnp.isnan(x)
    count = jnp.sum(known, axis=2)
    some = count > 0
    median = jnp.where(some, jnp.nanmedian(jnp.where(some[:, :, None], x, 0.0), axis=2), 0.0)
    deviation = jnp.abs(x - median[:, :, None])
    mad = jnp.where(some, jnp.nanmedian(jnp.where(some[:, :, None], deviation, 0.0), axis=2), 0.0)
    share = count / block
    summary = jnp.stack([median, 1.4826 * mad, share], axis=2)
    return summary.reshape(b, -1).astype(history.dtype)
