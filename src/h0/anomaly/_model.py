"""The EncDec-AD network: a GRU encoder whose final carry starts a GRU decoder.

Malhotra et al. (2016) reconstruct a window in reverse order: the decoder's first step reproduces
the window's newest point, its last step the oldest. Here the decoder is unconditioned (its inputs
are zeros), so training and inference run the same computation and the encoder's final carry must
hold the whole window. The encoder's initial carry comes from an h0 strategy object.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Float, Int

from h0._runner import RNN
from h0._strategies import InitialState, Zeros
from h0._typing import Array


class EncDecAD(nn.Module):
    """GRU encoder-decoder that reconstructs each window (decoder in reverse order).

    Attributes:
        features: Channels ``C`` of the series.
        hidden: GRU hidden units of the encoder and the decoder.
        strategy: The encoder's initial-state strategy (any :class:`h0.InitialState`). Its
            burn-in steps (:class:`h0.WarmUp`) are read but not reconstructed.

    The decoder starts from the encoder's final carry (so no strategy applies to it) and reads
    zeros; a dense layer maps its outputs to the ``C`` channels. A noisy strategy draws from the
    ``'carry'`` rng stream while training; when ``deterministic`` the encoder starts from the
    noise's mean, so that scores are reproducible.

    Example:
        >>> import jax, jax.numpy as jnp, h0
        >>> model = EncDecAD(features=2, hidden=8, strategy=h0.Learned())
        >>> x = jnp.ones((3, 16, 2))
        >>> model.apply(model.init(jax.random.key(0), x), x).shape
        (3, 16, 2)
    """

    features: int
    hidden: int
    strategy: InitialState | None = None

    @nn.compact
    def __call__(
        self,
        windows: Float[Array, "b t f"],
        ids: Int[Array, " b"] | None = None,
        *,
        deterministic: bool = True,
    ) -> Float[Array, "b t f"]:
        """Reconstruct ``windows``; returns ``[b, t - burn_in, f]`` in input order."""
        strategy = self.strategy if self.strategy is not None else Zeros()
        if deterministic:
            strategy = (
                strategy.mean()
            )  # noisy strategies start from their mean: reproducible scores
        if not strategy.needs_ids:
            ids = None
        elif ids is None:
            ids = jnp.zeros(windows.shape[:1], jnp.int32)
        # parent=None lets each RNN adopt its cell and strategy: params['encoder']['cell'] and
        # params['encoder']['initial_state'], where h0.initial_state_mask looks for them.
        encoder = RNN(
            nn.GRUCell(self.hidden, parent=None),
            strategy.clone(parent=None),
            return_carry=True,
            name="encoder",
        )
        carry, _ = encoder(windows, ids=ids, deterministic=deterministic)
        steps = windows.shape[1] - strategy.burn_in
        decoder = RNN(nn.GRUCell(self.hidden, parent=None), Zeros(parent=None), name="decoder")
        hidden = decoder(
            jnp.zeros((windows.shape[0], steps, 1), windows.dtype), initial_carry=carry
        )
        reversed_reconstruction = nn.Dense(self.features, name="readout")(hidden)
        return reversed_reconstruction[:, ::-1]
