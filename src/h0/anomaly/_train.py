"""Training and inference as pure jitted functions of arrays.

``train_step(params, opt_state, batch, key) -> (params, opt_state, loss)`` is a pure function of
arrays (no Python state), so it can be sharded across devices later with :mod:`jax.sharding`;
``train_epoch`` scans it over an epoch's batches in one compiled call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from h0._typing import Array, PyTree
from h0.anomaly._model import EncDecAD

Batch = tuple[Array, Array]  # windows [b, t, c], ids [b]


def reconstruction_loss(
    model: EncDecAD, params: PyTree, batch: Batch, key: Array, *, deterministic: bool
) -> Array:
    """Mean squared reconstruction error of a batch of windows."""
    windows, ids = batch
    reconstruction = model.apply(
        {"params": params}, windows, ids, deterministic=deterministic, rngs={"carry": key}
    )
    target = windows[:, windows.shape[1] - reconstruction.shape[1] :]
    return jnp.mean((reconstruction - target) ** 2)


def make_train_fns(
    model: EncDecAD, optimizer: optax.GradientTransformation
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Return jitted ``train_step`` and ``train_epoch`` for ``model`` and ``optimizer``.

    ``train_epoch(params, opt_state, windows[n, b, t, c], ids[n, b], key)`` runs ``n`` steps with
    :func:`jax.lax.scan` and returns ``(params, opt_state, mean_loss)``.
    """

    def train_step(params: PyTree, opt_state: Any, batch: Batch, key: Array):
        loss, grads = jax.value_and_grad(
            lambda p: reconstruction_loss(model, p, batch, key, deterministic=False)
        )(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def train_epoch(params: PyTree, opt_state: Any, windows: Array, ids: Array, key: Array):
        keys = jax.random.split(key, windows.shape[0])

        def body(state, inputs):
            params, opt_state = state
            batch_windows, batch_ids, step_key = inputs
            params, opt_state, loss = train_step(
                params, opt_state, (batch_windows, batch_ids), step_key
            )
            return (params, opt_state), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), (windows, ids, keys))
        return params, opt_state, jnp.mean(losses)

    return jax.jit(train_step), jax.jit(train_epoch)


def make_residual_fn(model: EncDecAD, span: int) -> Callable[..., Any]:
    """Return a jitted ``residuals(params, windows[b, t, c], ids[b]) -> (recent[b, c], whole[b, c])``.

    ``recent`` is the mean signed error (data minus reconstruction) over the ``span`` newest points
    of each window; ``whole`` the root-mean-square error over the reconstructed window, per channel.
    """

    def residuals(params: PyTree, windows: Array, ids: Array) -> tuple[Array, Array]:
        reconstruction = model.apply({"params": params}, windows, ids, deterministic=True)
        error = windows[:, windows.shape[1] - reconstruction.shape[1] :] - reconstruction
        recent = jnp.mean(error[:, -span:], axis=1)
        whole = jnp.sqrt(jnp.mean(error**2, axis=1))
        return recent, whole

    return jax.jit(residuals)
