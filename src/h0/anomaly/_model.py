"""The EncDec-AD network: a GRU encoder whose final carry starts a GRU decoder.

Malhotra et al. (2016) reconstruct a window in reverse order: the decoder's first step reproduces
the window's newest point, its last step the oldest. Here the decoder is unconditioned (its inputs
are zeros), so training and inference run the same computation and the encoder's final carry must
hold the whole window. The encoder's initial carry comes from an h0 strategy, chosen by name.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
from jaxtyping import Float, Int

from h0._runner import RNN
from h0._strategies import InitialState, Learned, LearnedNoisy, PerSequence, Random, WarmUp, Zeros
from h0._typing import Array

#: Names accepted by ``initial_state=``.
STRATEGIES = ("zeros", "random", "learned", "learned_noisy", "per_sequence", "warmup")


def make_strategy(
    name: str, *, num_sequences: int = 1, warmup_steps: int = 0, stddev: float = 0.1
) -> InitialState:
    """Return the h0 strategy called ``name`` (see :data:`STRATEGIES`).

    Args:
        name: ``'zeros'``, ``'random'``, ``'learned'``, ``'learned_noisy'``, ``'per_sequence'`` or
            ``'warmup'``.
        num_sequences: Rows of the ``'per_sequence'`` table (one per training series).
        warmup_steps: Burn-in steps of ``'warmup'``.
        stddev: Noise of ``'random'`` and ``'learned_noisy'``.

    Returns:
        The strategy module.

    Example:
        >>> make_strategy('learned')
        Learned(
            # attributes
            init = 'zeros'
            learn = None
        )
    """
    if name == "zeros":
        return Zeros()
    if name == "random":
        return Random(stddev=stddev)
    if name == "learned":
        return Learned()
    if name == "learned_noisy":
        return LearnedNoisy(stddev=stddev)
    if name == "per_sequence":
        return PerSequence(num_sequences=num_sequences)
    if name == "warmup":
        return WarmUp(warmup_steps)
    raise ValueError(f"initial_state={name!r} is not a strategy name; choose one of {STRATEGIES}.")


class EncDecAD(nn.Module):
    """GRU encoder-decoder that reconstructs each window (decoder in reverse order).

    Attributes:
        features: Channels ``C`` of the series.
        hidden: GRU hidden units of the encoder and the decoder.
        initial_state: Name of the encoder's initial-state strategy (see :func:`make_strategy`).
        num_sequences: Training series (for ``'per_sequence'``).
        warmup_steps: Burn-in steps (for ``'warmup'``); the first ``warmup_steps`` points of a
            window are read but not reconstructed.

    The decoder starts from the encoder's final carry (so no strategy applies to it) and reads
    zeros; a dense layer maps its outputs to the ``C`` channels. ``'random'`` draws noise from
    the ``'carry'`` rng stream while training; when ``deterministic`` it starts from the noise's
    mean (zeros) so that scores are reproducible.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> model = EncDecAD(features=2, hidden=8)
        >>> x = jnp.ones((3, 16, 2))
        >>> model.apply(model.init(jax.random.key(0), x), x).shape
        (3, 16, 2)
    """

    features: int
    hidden: int
    initial_state: str = "learned"
    num_sequences: int = 1
    warmup_steps: int = 0

    @nn.compact
    def __call__(
        self,
        windows: Float[Array, "b t f"],
        ids: Int[Array, " b"] | None = None,
        *,
        deterministic: bool = True,
    ) -> Float[Array, "b t f"]:
        """Reconstruct ``windows``; returns ``[b, t - warmup_steps, f]`` in input order."""
        strategy = make_strategy(
            self.initial_state,
            num_sequences=self.num_sequences,
            warmup_steps=self.warmup_steps,
        )
        # parent=None lets each RNN adopt its cell and strategy: params['encoder']['cell'] and
        # params['encoder']['initial_state'], where h0.initial_state_mask looks for them.
        encoder = RNN(
            nn.GRUCell(self.hidden, parent=None),
            strategy.clone(parent=None),
            return_carry=True,
            name="encoder",
        )
        initial_carry = None
        if self.initial_state == "random" and deterministic:
            initial_carry = jnp.zeros((windows.shape[0], self.hidden), windows.dtype)
        if self.initial_state == "per_sequence" and ids is None:
            ids = jnp.zeros(windows.shape[:1], jnp.int32)
        carry, _ = encoder(
            windows, ids=ids, initial_carry=initial_carry, deterministic=deterministic
        )
        steps = windows.shape[1] - encoder.warmup_steps(initial_carry)
        decoder = RNN(nn.GRUCell(self.hidden, parent=None), Zeros(parent=None), name="decoder")
        hidden = decoder(
            jnp.zeros((windows.shape[0], steps, 1), windows.dtype), initial_carry=carry
        )
        reversed_reconstruction = nn.Dense(self.features, name="readout")(hidden)
        return reversed_reconstruction[:, ::-1]
