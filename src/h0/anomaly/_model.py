"""The EncDec-AD network: a GRU encoder whose final carry starts a GRU decoder.

Malhotra et al. (2016) reconstruct a window in reverse order: the decoder's first step reproduces
the window's newest point, its last step the oldest. Here the decoder is unconditioned (its inputs
are zeros), so training and inference run the same computation and the encoder's final carry must
hold the whole window. The encoder's initial carry comes from an h0 strategy object.

With ``forecast_horizon > 0`` a forecasting head (one dense layer) reads the encoder's state after
each step and predicts the next ``forecast_horizon`` points. The encoder runs forward in time, so
the forecast of a window's newest point uses the window's earlier points only: the causal
one-step forecast error that the detector scores beside the reconstruction error.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Float, Int

from h0._runner import RNN
from h0._strategies import InitialState, Zeros
from h0._typing import Array
from h0.anomaly._names import history_context


class EncDecAD(nn.Module):
    """GRU encoder-decoder that reconstructs each window (decoder in reverse order).

    Attributes:
        features: Channels ``C`` of the series.
        hidden: GRU hidden units of the encoder and the decoder.
        strategy: The encoder's initial-state strategy (any :class:`h0.InitialState`). Its
            burn-in steps (:class:`h0.WarmUp`) are read but not reconstructed.
        forecast_horizon: Points ``k`` the forecasting head predicts from the encoder's state
            after each step (0: no head, and the call returns the reconstruction alone).
        context: Points before the window that each input starts with (a multiple of the
            window's length; NaN where unknown), summarised for a strategy that
            ``needs_context``; 0 for every other strategy.

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
        >>> model = EncDecAD(features=2, hidden=8, strategy=h0.Learned(), forecast_horizon=3)
        >>> reconstruction, forecast = model.apply(model.init(jax.random.key(0), x), x)
        >>> reconstruction.shape, forecast.shape  # forecast[:, s, j]: point s + j + 1
        ((3, 16, 2), (3, 16, 3, 2))
    """

    features: int
    hidden: int
    strategy: InitialState | None = None
    forecast_horizon: int = 0
    context: int = 0

    @nn.compact
    def __call__(
        self,
        windows: Float[Array, "b t f"],
        ids: Int[Array, " b"] | None = None,
        *,
        deterministic: bool = True,
    ) -> Float[Array, "b t f"] | tuple[Float[Array, "b t f"], Float[Array, "b t k f"]]:
        """Reconstruct ``windows``: ``[b, t - context - burn_in, f]`` in input order.

        With a forecasting head, ``(reconstruction, forecast)``: ``forecast[:, s, j]`` (shape
        ``[b, t - burn_in, k, f]``) is the prediction of input point ``burn_in + s + j + 1`` from
        the encoder's state after point ``burn_in + s`` (predictions past the window's end are
        returned too; the loss and the score ignore them).
        """
        strategy = self.strategy if self.strategy is not None else Zeros()
        if deterministic:
            # Noisy strategies start from their mean: reproducible scores.
            strategy = strategy.mean()
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
        context = None
        if strategy.needs_context:
            if not 0 < self.context < windows.shape[1]:
                raise ValueError(
                    f"{type(strategy).__name__} needs context points before each window; got "
                    f"context={self.context} for inputs of {windows.shape[1]} points."
                )
            history, windows = windows[:, : self.context], windows[:, self.context :]
            context = history_context(history, windows.shape[1])
        elif self.context:
            windows = windows[:, self.context :]
        carry, states = encoder(windows, ids=ids, context=context, deterministic=deterministic)
        steps = windows.shape[1] - strategy.burn_in
        decoder = RNN(nn.GRUCell(self.hidden, parent=None), Zeros(parent=None), name="decoder")
        hidden = decoder(
            jnp.zeros((windows.shape[0], steps, 1), windows.dtype), initial_carry=carry
        )
        reversed_reconstruction = nn.Dense(self.features, name="readout")(hidden)
        reconstruction = reversed_reconstruction[:, ::-1]
        if not self.forecast_horizon:
            return reconstruction
        # A GRU's output is its state: states[:, s] has read the points up to burn_in + s.
        forecast = nn.Dense(self.forecast_horizon * self.features, name="forecast")(states)
        return reconstruction, forecast.reshape(
            (*states.shape[:2], self.forecast_horizon, self.features)
        )
