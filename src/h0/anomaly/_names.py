"""The detector's strategy names, resolved by :func:`h0.strategy_from_name` (the one resolver).

The detector offers every h0 strategy that needs no context features (``'conditional'`` needs a
context the windowed detector does not have); ``'warmup'`` burns in ``window // 4`` points.
"""

from __future__ import annotations

from h0._strategies import STRATEGY_NAMES as _ALL
from h0._strategies import InitialState, strategy_from_name


def _resolve(name: str, window: int, num_sequences: int = 1) -> InitialState:
    return strategy_from_name(name, num_sequences=num_sequences, warmup_steps=max(window // 4, 1))


#: Names accepted by ``initial_state=``.
STRATEGY_NAMES: tuple[str, ...] = tuple(n for n in _ALL if not _resolve(n, 8).needs_context)


def detector_strategy(name: str, *, window: int, num_sequences: int = 1) -> InitialState:
    """The encoder's strategy for ``initial_state=name`` in a detector with ``window`` points.

    Example:
        >>> detector_strategy('warmup', window=32).burn_in
        8
    """
    if name not in STRATEGY_NAMES:
        raise ValueError(
            f"initial_state={name!r} is not a strategy name; choose one of {STRATEGY_NAMES}."
        )
    return _resolve(name, window, num_sequences)


def burn_in_steps(name: str, window: int) -> int:
    """Points of each window the strategy ``name`` reads before reconstruction starts."""
    return detector_strategy(name, window=window).burn_in if name in STRATEGY_NAMES else 0
