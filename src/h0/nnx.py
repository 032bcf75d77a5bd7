"""h0 for Flax NNX: initial-state strategies and runners for ``flax.nnx`` cells.

The NNX twins of :class:`h0.RNN`, :class:`h0.Bidirectional`, :class:`h0.Stacked` and the
strategies, with the same semantics (masking, reversal, padding, burn-in, errors). A strategy is
constructed with its settings and built by the runner that adopts it, which knows the carry's
shape; its parameters are ``nnx.Param`` named ``init_*`` under the runner's ``initial_state``.

Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from h0 import nnx as h0nnx
    >>> rngs = nnx.Rngs(0)
    >>> rnn = h0nnx.RNN(nnx.LSTMCell(3, 4, rngs=rngs), h0nnx.Learned(learn=('h',)), rngs=rngs)
    >>> rnn(jnp.ones((2, 5, 3))).shape
    (2, 5, 4)
"""

from h0 import _nnx
from h0._nnx import *  # noqa: F403 (the names in _nnx.__all__)

__all__ = _nnx.__all__
