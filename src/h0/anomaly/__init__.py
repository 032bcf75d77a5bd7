"""Anomaly detection with a GRU encoder-decoder whose initial state is an h0 strategy.

Example:
    >>> import numpy as np, h0.anomaly
    >>> x = np.sin(np.arange(300) / 4)
    >>> det = h0.anomaly.GRUAutoencoderDetector(window=8, hidden=8, epochs=1).fit(x[:200])
    >>> det.score(x[200:]).shape
    (100,)
"""

from h0.anomaly._detector import (
    SCORING_FIELDS,
    DetectorConfig,
    DetectorStream,
    GRUAutoencoderDetector,
)
from h0.anomaly._model import STRATEGIES, EncDecAD, make_strategy
from h0.anomaly._scoring import ScoringConfig, alarms

__all__ = [
    "SCORING_FIELDS",
    "STRATEGIES",
    "DetectorConfig",
    "DetectorStream",
    "EncDecAD",
    "GRUAutoencoderDetector",
    "ScoringConfig",
    "alarms",
    "make_strategy",
]
