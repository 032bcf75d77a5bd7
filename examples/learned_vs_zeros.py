"""Does a learned initial state help? A small task where the start matters.

Windows of 16 steps are cut from one continuous, slowly drifting process: a damped oscillator
that is always mid-swing (position ~ +2, velocity ~ -1) when a window begins, as when a
sensor stream is cut into windows at the same phase of a cycle. The GRU must output the
oscillator's *position* while it only sees noisy *velocity* increments, so the first outputs
depend entirely on where the window starts: a zero carry knows nothing about it; a learned
carry can store the typical start.

Run: python examples/learned_vs_zeros.py
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import h0

WINDOW, HIDDEN, BATCH = 16, 16, 64


def make_windows(key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """Inputs (velocity increments, [n, WINDOW, 1]) and targets (positions, [n, WINDOW, 1])."""
    k_start, k_noise = jax.random.split(key)
    start = 2.0 + 0.02 * jax.random.normal(k_start, (n, 1))
    increments = -0.25 + 0.05 * jax.random.normal(k_noise, (n, WINDOW))
    positions = start + jnp.cumsum(increments, axis=1)
    return increments[..., None], positions[..., None]


class Model(nn.Module):
    """A GRU from a chosen initial state, then a linear read-out (no bias) of the position."""

    initial_state: h0.InitialState

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        rnn = h0.RNN(nn.GRUCell(HIDDEN, parent=None), self.initial_state)
        return nn.Dense(1, use_bias=False)(rnn(x))


def train(initial_state: h0.InitialState, *, steps: int = 300, seed: int = 0) -> float:
    """Train on fresh windows and return the test mean squared error."""
    model = Model(initial_state)
    key_init, key_data, key_test = jax.random.split(jax.random.key(seed), 3)
    x_test, y_test = make_windows(key_test, 512)
    params = model.init(key_init, x_test[:1])
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)

    def loss_fn(params, x, y):
        return jnp.mean((model.apply(params, x) - y) ** 2)

    @jax.jit
    def step(params, opt_state, key):
        x, y = make_windows(key, BATCH)
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    for key in jax.random.split(key_data, steps):
        params, opt_state, _ = step(params, opt_state, key)
    return float(loss_fn(params, x_test, y_test))


def main() -> None:
    """Print the test loss of zero and learned initial states over three seeds."""
    print(f"{'seed':>4}  {'zeros':>10}  {'learned':>10}")
    for seed in range(3):
        zeros = train(h0.Zeros(), seed=seed)
        learned = train(h0.Learned(), seed=seed)
        print(f"{seed:>4}  {zeros:>10.5f}  {learned:>10.5f}")


if __name__ == "__main__":
    main()
