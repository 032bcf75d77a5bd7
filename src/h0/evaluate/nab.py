"""NAB scoring (public API); see :mod:`h0.evaluate._nab` for the rules implemented.

The public names are those of the private module's ``__all__``, re-exported here without
repeating the list; ``help(h0.evaluate.nab)`` lists exactly them.
"""

from h0.evaluate import _nab
from h0.evaluate._nab import *  # noqa: F403 (the names in _nab.__all__)

__all__ = _nab.__all__
