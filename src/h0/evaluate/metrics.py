"""Anomaly-detection metrics (public API); definitions in :mod:`h0.evaluate._metrics`.

The public names are those of the private module's ``__all__``, re-exported here without
repeating the list; ``help(h0.evaluate.metrics)`` lists exactly them.
"""

from h0.evaluate import _metrics
from h0.evaluate._metrics import *  # noqa: F403 (the names in _metrics.__all__)

__all__ = _metrics.__all__
