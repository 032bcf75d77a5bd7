"""Training and inference of the network as pure jitted functions of arrays.

The train step is :func:`h0.parallel.make_train_step` of :func:`reconstruction_loss` (one owner
for single-device and mesh training); :func:`make_residual_fn` gives the error features.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from h0 import _parallel as hp
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


def optimizer(learning_rate: float) -> optax.GradientTransformation:
    """Adam with gradients clipped to global norm 1."""
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))


@functools.lru_cache(maxsize=32)
def train_step(
    model: EncDecAD, learning_rate: float, mesh: Mesh | None = None
) -> Callable[..., Any]:
    """``step(params, opt_state, batch, key) -> (params, opt_state, loss)``, compiled once per model.

    With a mesh the batch is split over its ``'data'`` axis and the parameters are replicated
    (XLA inserts the gradient all-reduce); without, it runs on the default device.
    """

    def loss_fn(params: PyTree, batch: Batch, key: Array) -> Array:
        return reconstruction_loss(model, params, batch, key, deterministic=False)

    return hp.make_train_step(loss_fn, optimizer(learning_rate), mesh)


@functools.lru_cache(maxsize=32)
def make_residual_fn(model: EncDecAD, span: int) -> Callable[..., Any]:
    """Return a jitted ``residuals(params, windows[b, t, c], ids[b]) -> (recent[b, c], whole[b, c])``.

    ``recent`` is the mean signed error (data minus reconstruction) over the ``span`` newest points
    of each window; ``whole`` the root-mean-square error over the reconstructed window, per channel
    (computed as ``max|e| * rms(e / max|e|)``, so huge errors do not overflow float32).
    """

    def residuals(params: PyTree, windows: Array, ids: Array) -> tuple[Array, Array]:
        reconstruction = model.apply({"params": params}, windows, ids, deterministic=True)
        error = windows[:, windows.shape[1] - reconstruction.shape[1] :] - reconstruction
        recent = jnp.mean(error[:, -span:], axis=1)
        peak = jnp.max(jnp.abs(error), axis=1)
        safe = jnp.where(peak > 0, peak, 1.0)
        whole = peak * jnp.sqrt(jnp.mean((error / safe[:, None]) ** 2, axis=1))
        return recent, whole

    return jax.jit(residuals)


#: Models per vectorised pass of :func:`masked_ensemble_step`: with 58 of the default model,
#: two at a time took 0.31x the step time of vmapping all 58, one at a time 0.39x, four 0.49x
#: (``benchmarks/ensemble_speed.py``, 2 CPU cores).
ENSEMBLE_VECTORIZE = 2


@functools.lru_cache(maxsize=8)
def masked_ensemble_step(model: EncDecAD, learning_rate: float) -> Callable[..., Any]:
    """``step(params, opt_state, batch, keys, active) -> (params, opt_state, losses)`` over N models.

    :func:`h0.parallel.make_ensemble_train_step` (masked) of :func:`reconstruction_loss`: every
    argument has a leading model axis, and a model whose ``active`` is ``False`` keeps its state
    (its own epoch is over), so each model follows exactly the steps it would take alone. The
    models run two at a time (:data:`ENSEMBLE_VECTORIZE`).
    """

    def loss_fn(params: PyTree, batch: Batch, key: Array) -> Array:
        return reconstruction_loss(model, params, batch, key, deterministic=False)

    return hp.make_ensemble_train_step(
        loss_fn, optimizer(learning_rate), masked=True, vectorize=ENSEMBLE_VECTORIZE
    )
