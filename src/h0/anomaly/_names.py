"""Strategy names for the detector, resolved in one place (the detector, its CLI and the study)."""

from __future__ import annotations

from h0._strategies import InitialState, Learned, LearnedNoisy, PerSequence, Random, WarmUp, Zeros

#: Names accepted by ``initial_state=``.
STRATEGY_NAMES = ("zeros", "random", "learned", "learned_noisy", "per_sequence", "warmup")


def detector_strategy(name: str, *, window: int, num_sequences: int = 1) -> InitialState:
    """The encoder's strategy for ``initial_state=name`` in a detector with ``window`` points.

    ``'warmup'`` burns in ``window // 4`` points; ``'per_sequence'`` has ``num_sequences`` rows.

    Example:
        >>> detector_strategy('warmup', window=32).steps
        8
    """
    if name == "zeros":
        return Zeros()
    if name == "random":
        return Random(stddev=0.1)
    if name == "learned":
        return Learned()
    if name == "learned_noisy":
        return LearnedNoisy(stddev=0.1)
    if name == "per_sequence":
        return PerSequence(num_sequences=num_sequences)
    if name == "warmup":
        return WarmUp(window // 4)
    raise ValueError(
        f"initial_state={name!r} is not a strategy name; choose one of {STRATEGY_NAMES}."
    )


def burn_in_steps(name: str, window: int) -> int:
    """Points of each window the strategy ``name`` reads before reconstruction starts."""
    if name not in STRATEGY_NAMES:
        return 0
    strategy = detector_strategy(name, window=window)
    return int(strategy.steps) if isinstance(strategy, WarmUp) else 0
