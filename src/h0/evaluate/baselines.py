"""Baseline detectors (public API); see :mod:`h0.evaluate._baselines`."""

from h0.evaluate._baselines import (
    Detector,
    IsolationForestDetector,
    PCADetector,
    RandomDetector,
    RollingZScore,
    sliding_windows,
)

__all__ = [
    "Detector",
    "IsolationForestDetector",
    "PCADetector",
    "RandomDetector",
    "RollingZScore",
    "sliding_windows",
]
