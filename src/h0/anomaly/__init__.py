"""Anomaly detection with a GRU encoder-decoder whose initial state is an h0 strategy.

Example:
    >>> import numpy as np, h0.anomaly
    >>> x = np.sin(np.arange(300) / 4)
    >>> det = h0.anomaly.GRUAutoencoderDetector(window=8, hidden=8, epochs=1).fit(x[:200])
    >>> det.score(x[200:]).shape
    (100,)
"""

from h0.anomaly._alarms import AlarmRule, AlarmState, decide, nab_shape
from h0.anomaly._config import (
    AlarmConfig,
    ConfigError,
    DetectorConfig,
    ModelConfig,
    ScoringConfig,
    TrainingConfig,
)
from h0.anomaly._detector import DetectorStream, GRUAutoencoderDetector, fit_independent
from h0.anomaly._model import EncDecAD
from h0.anomaly._names import STRATEGY_NAMES, detector_strategy
from h0.anomaly._reportdata import Event, ReportData
from h0.anomaly._run import DetectionRun, SeriesInput, detect

__all__ = [
    "STRATEGY_NAMES",
    "AlarmConfig",
    "AlarmRule",
    "AlarmState",
    "ConfigError",
    "DetectionRun",
    "DetectorConfig",
    "DetectorStream",
    "EncDecAD",
    "Event",
    "GRUAutoencoderDetector",
    "ModelConfig",
    "ReportData",
    "ScoringConfig",
    "SeriesInput",
    "TrainingConfig",
    "decide",
    "detect",
    "detector_strategy",
    "fit_independent",
    "nab_shape",
]
