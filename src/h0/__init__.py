"""h0: initial states for Flax RNNs, a masked ``lax.scan`` runner, and an anomaly detector.

The public API is what ``__all__`` lists; modules starting with ``_`` are private.
"""

from h0._checkpoint import restore, save
from h0._fit import fit_initial_state
from h0._recipes import GRUWithLearnableInitialState
from h0._regularize import initial_state_mask, initial_state_penalty
from h0._runner import RNN, Bidirectional, Stacked
from h0._scan import flip_sequences, masked_scan
from h0._strategies import (
    STRATEGY_NAMES,
    CarryRequest,
    Conditional,
    InitialState,
    Learned,
    LearnedNoisy,
    PerSequence,
    Random,
    WarmUp,
    Zeros,
    resolve_init,
    strategy_from_name,
)

__version__ = "0.1.0"

__all__ = [
    "RNN",
    "STRATEGY_NAMES",
    "Bidirectional",
    "CarryRequest",
    "Conditional",
    "GRUWithLearnableInitialState",
    "InitialState",
    "Learned",
    "LearnedNoisy",
    "PerSequence",
    "Random",
    "Stacked",
    "WarmUp",
    "Zeros",
    "__version__",
    "fit_initial_state",
    "flip_sequences",
    "initial_state_mask",
    "initial_state_penalty",
    "masked_scan",
    "resolve_init",
    "restore",
    "save",
    "strategy_from_name",
]
