"""The common web recipe, a GRU with a learnable initial state, rebuilt on h0."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Float

from h0._runner import RNN
from h0._strategies import InitSpec, Learned
from h0._typing import Array


class GRUWithLearnableInitialState(nn.Module):
    """A GRU whose initial hidden state ``init_h`` (shape ``(hidden_size,)``) is learned.

    The module people copy from the web, done right: a ``lax.scan`` instead of a Python loop
    (compile time independent of length), one state vector shared by every sequence whatever
    the batch size (not a ``(batch, hidden)`` table tied to the batch size of ``init``), and
    the same input layouts as the recipe: unbatched ``(time, features)`` or time-major
    ``(time, batch, features)``.

    Attributes:
        hidden_size: Hidden units.
        state_init: Initialiser of ``init_h`` (see :class:`h0.Learned`).

    Example:
        >>> import jax, jax.numpy as jnp, h0
        >>> model = h0.GRUWithLearnableInitialState(16)
        >>> params = model.init(jax.random.key(0), jnp.ones((20, 3)))     # one sequence
        >>> model.apply(params, jnp.ones((20, 5, 3))).shape               # time-major batch of 5
        (20, 5, 16)
    """

    hidden_size: int
    state_init: InitSpec = "zeros"

    @nn.compact
    def __call__(self, inputs: Float[Array, "t *b f"]) -> Float[Array, "t *b h"]:
        """Run the GRU over ``(time, features)`` or ``(time, batch, features)`` inputs."""
        inputs = jnp.asarray(inputs)
        if inputs.ndim not in (2, 3):
            raise ValueError(
                "inputs must have shape (time, features) or (time, batch, features); got shape "
                f"{inputs.shape}."
            )
        # parent=None: the RNN adopts its cell and strategy, so the tree reads rnn/cell, rnn/initial_state.
        cell = nn.GRUCell(self.hidden_size, parent=None)
        rnn = RNN(cell, Learned(init=self.state_init, parent=None), name="rnn")
        if inputs.ndim == 2:
            return rnn(inputs)
        return jnp.swapaxes(rnn(jnp.swapaxes(inputs, 0, 1)), 0, 1)
