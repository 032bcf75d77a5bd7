"""Baseline detectors (public API); see :mod:`h0.evaluate._baselines`.

The public names are those of the private module's ``__all__``, re-exported here without
repeating the list; ``help(h0.evaluate.baselines)`` lists exactly them.
"""

from h0.evaluate import _baselines
from h0.evaluate._baselines import *  # noqa: F403 (the names in _baselines.__all__)

__all__ = _baselines.__all__
