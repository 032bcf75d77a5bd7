"""Shape vocabulary, defined once.

Letters used in annotations across h0:

- ``b``: batch (``*b``: any number of batch dimensions, including none)
- ``t``: time
- ``f``: input features
- ``h``: hidden units (the carry's feature size)
- ``o``: output features
- ``c``: context features (``Conditional``)
"""

from __future__ import annotations

from typing import Any, TypeAlias

import jax

Array: TypeAlias = jax.Array
#: A carry: one array (GRU, MGU, simple cells) or a pytree of arrays (LSTM: ``(c, h)``).
Carry: TypeAlias = Any
#: A pytree of parameters or variables.
PyTree: TypeAlias = Any
