"""Evaluation of anomaly detectors: NAB scoring, threshold-free metrics and baseline detectors.

Public modules:

* :mod:`h0.evaluate.nab`: the Numenta Anomaly Benchmark scorer (windows, profiles, sweep).
* :mod:`h0.evaluate.metrics`: point and range metrics (AUC-ROC/PR, VUS, range P/R/F1).
* :mod:`h0.evaluate.baselines`: simple causal detectors to compare against.
"""

from h0.evaluate import baselines, metrics, nab

__all__ = ["baselines", "metrics", "nab"]
