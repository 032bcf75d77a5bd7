"""Port recurrent models between PyTorch and h0.

:func:`from_torch` turns an ``nn.GRU``/``nn.LSTM`` (any number of layers, bidirectional or not,
with a learned ``h0``/``c0`` when the model has one) into an h0 Linen model and its variables;
:func:`to_torch` goes back. PyTorch is an optional extra (``pip install h0[torch]``): importing
this module does not import it, and :func:`from_torch` also reads a state dict of NumPy arrays.

Example:
    >>> import numpy as np, jax.numpy as jnp
    >>> from h0.interop import from_torch
    >>> rng = np.random.default_rng(0)
    >>> state_dict = {'weight_ih_l0': rng.normal(size=(12, 2)), 'weight_hh_l0': rng.normal(size=(12, 4)),
    ...               'bias_ih_l0': rng.normal(size=12), 'bias_hh_l0': rng.normal(size=12)}
    >>> model, variables = from_torch(state_dict, h0=np.zeros((1, 1, 4)))   # a GRU: 3 * 4 rows
    >>> model.apply(variables, jnp.ones((5, 7, 2))).shape
    (5, 7, 4)
"""

from h0._interop import from_torch, to_torch

__all__ = ["from_torch", "to_torch"]
