"""The popular "GRU with a learnable initial state" recipe, on h0.

The web recipe loops over time in Python and stores a ``(batch, hidden)`` state; h0's
``GRUWithLearnableInitialState`` scans, stores one ``(hidden,)`` state, and accepts the recipe's
two layouts: one sequence ``(time, features)`` and a time-major batch ``(time, batch, features)``.
It also shows zero and random carries for a plain GRU.

Run: python examples/recipe.py
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

import h0


def main() -> dict[str, tuple[int, ...]]:
    """Run the recipe's two uses and a zero/random-carry GRU; return the output shapes."""
    model = h0.GRUWithLearnableInitialState(hidden_size=8)
    key = jax.random.key(0)

    # Use 1: a single sequence of 20 steps with 3 features.
    single = jax.random.normal(key, (20, 3))
    params = model.init(key, single)
    print("init_h shape:", params["params"]["rnn"]["initial_state"]["init_h"].shape)
    out_single = model.apply(params, single)
    print("single sequence ->", out_single.shape)

    # Use 2: a time-major batch of 3, with the same parameters (batch size is free).
    batch = jax.random.normal(key, (20, 3, 3))
    out_batch = model.apply(params, batch)
    print("batch of 3      ->", out_batch.shape)

    # A plain GRU from zeros, and from fresh random noise on every call ('carry' stream).
    zeros = h0.RNN(nn.GRUCell(8), h0.Zeros())
    random = h0.RNN(nn.GRUCell(8), h0.Random(stddev=0.5))
    x = jnp.swapaxes(batch, 0, 1)  # h0.RNN is batch-major: [batch, time, features]
    out_zeros = zeros.apply(zeros.init(key, x), x)
    variables = random.init({"params": key, "carry": jax.random.key(1)}, x)
    out_random = random.apply(variables, x, rngs={"carry": jax.random.key(2)})
    print("zeros carry     ->", out_zeros.shape, " random carry ->", out_random.shape)
    return {
        "single": out_single.shape,
        "batch": out_batch.shape,
        "zeros": out_zeros.shape,
        "random": out_random.shape,
    }


if __name__ == "__main__":
    main()
