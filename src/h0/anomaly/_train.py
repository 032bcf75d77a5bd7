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
    model: EncDecAD,
    params: PyTree,
    batch: Batch,
    key: Array,
    *,
    deterministic: bool,
    forecast_weight: float = 1.0,
) -> Array:
    """Mean squared reconstruction error of a batch of windows.

    With a forecasting head (``model.forecast_horizon > 0``), plus ``forecast_weight`` times
    :func:`forecast_loss`: the two are trained jointly.
    """
    windows, ids = batch
    output = model.apply(
        {"params": params}, windows, ids, deterministic=deterministic, rngs={"carry": key}
    )
    reconstruction, forecast = output if model.forecast_horizon else (output, None)
    target = windows[:, windows.shape[1] - reconstruction.shape[1] :]
    loss = jnp.mean((reconstruction - target) ** 2)
    if forecast is not None:
        loss = loss + forecast_weight * forecast_loss(windows, forecast)
    return loss


def forecast_loss(windows: Array, forecast: Array) -> Array:
    """Mean squared error of the head's forecasts ``[b, s, k, c]`` whose targets lie in the window.

    ``forecast[:, s, j]`` predicts point ``burn_in + s + j + 1`` of ``windows [b, t, c]`` (with
    ``burn_in = t - s``); forecasts past the window's end have no target and are left out.
    """
    steps, horizon = forecast.shape[1], forecast.shape[2]
    burn_in = windows.shape[1] - steps
    total, count = 0.0, 0
    for j in range(horizon):
        predicted = forecast[:, : steps - j - 1, j]
        total = total + jnp.sum((predicted - windows[:, burn_in + j + 1 :]) ** 2)
        count += predicted.size
    return total / max(count, 1)


def optimizer(learning_rate: float) -> optax.GradientTransformation:
    """Adam with gradients clipped to global norm 1."""
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))


def _training_loss(
    model: EncDecAD, forecast_weight: float
) -> Callable[[PyTree, Batch, Array], Array]:
    """``loss_fn(params, batch, key)`` of one model while training (one owner for every step)."""

    def loss_fn(params: PyTree, batch: Batch, key: Array) -> Array:
        return reconstruction_loss(
            model, params, batch, key, deterministic=False, forecast_weight=forecast_weight
        )

    return loss_fn


@functools.lru_cache(maxsize=32)
def train_step(
    model: EncDecAD, learning_rate: float, mesh: Mesh | None = None, forecast_weight: float = 1.0
) -> Callable[..., Any]:
    """``step(params, opt_state, batch, key) -> (params, opt_state, loss)``, compiled once per model.

    With a mesh the batch is split over its ``'data'`` axis and the parameters are replicated
    (XLA inserts the gradient all-reduce); without, it runs on the default device.
    ``forecast_weight`` weighs the forecasting head's loss (see :func:`reconstruction_loss`).
    """
    return hp.make_train_step(
        _training_loss(model, forecast_weight), optimizer(learning_rate), mesh
    )


#: Added to a window's standard deviation before its log (standardised units): a flat window's
#: spread is finite.
SPREAD_FLOOR = 1e-3


@functools.lru_cache(maxsize=32)
def make_residual_fn(
    model: EncDecAD,
    span: int,
    trim: int = 0,
    spread: bool = False,
    level: bool = False,
    roughness: bool = False,
) -> Callable[..., Any]:
    """Return a jitted ``residuals(params, windows[b, t, c], ids[b]) -> (recent[b, c], whole[b, c])``.

    ``recent`` is the mean signed error (data minus reconstruction) over the ``span`` newest points
    of each window; ``whole`` the root-mean-square error over the reconstructed window, per channel,
    leaving out its ``trim`` largest errors (computed as ``max|e| * rms(e / max|e|)``, so huge
    errors do not overflow float32). With a
    forecasting head a third array, ``ahead[b, c]``: the newest point minus its one-step forecast
    from the encoder's state after the point before it (which has not read the newest point).
    With ``spread``, last, ``spread[b, c]``: the log standard deviation of the reconstructed
    window's values (not errors), floored at :data:`SPREAD_FLOOR`. With ``level``, last, its
    mean ``level[b, c]``. With ``roughness``, last, ``roughness[b, c]``: the log median absolute
    second difference of those values (their noise level, which a few sharp features do not
    move), floored the same way.
    """

    def residuals(params: PyTree, windows: Array, ids: Array) -> tuple[Array, ...]:
        output = model.apply({"params": params}, windows, ids, deterministic=True)
        reconstruction, forecast = output if model.forecast_horizon else (output, None)
        error = windows[:, windows.shape[1] - reconstruction.shape[1] :] - reconstruction
        recent = jnp.mean(error[:, -span:], axis=1)
        size = jnp.abs(error)
        if trim:
            size = jnp.sort(size, axis=1)[:, : size.shape[1] - trim]
        peak = jnp.max(size, axis=1)
        safe = jnp.where(peak > 0, peak, 1.0)
        whole = peak * jnp.sqrt(jnp.mean((size / safe[:, None]) ** 2, axis=1))
        out = (recent, whole)
        if forecast is not None:
            out = (*out, windows[:, -1] - forecast[:, -2, 0])
        values = windows[:, windows.shape[1] - reconstruction.shape[1] :]
        if spread:
            out = (*out, jnp.log(jnp.std(values, axis=1) + SPREAD_FLOOR))
        if level:
            out = (*out, jnp.mean(values, axis=1))
        if roughness:
            bends = jnp.abs(values[:, 2:] - 2 * values[:, 1:-1] + values[:, :-2])
            out = (*out, jnp.log(jnp.median(bends, axis=1) + SPREAD_FLOOR))
        return out

    return jax.jit(residuals)


#: Models per vectorised pass of :func:`masked_ensemble_step`: with 58 of the default model,
#: two at a time took 0.31x the step time of vmapping all 58, one at a time 0.39x, four 0.49x
#: (``benchmarks/ensemble_speed.py``, 2 CPU cores).
ENSEMBLE_VECTORIZE = 2


@functools.lru_cache(maxsize=8)
def masked_ensemble_step(
    model: EncDecAD, learning_rate: float, forecast_weight: float = 1.0
) -> Callable[..., Any]:
    """``step(params, opt_state, batch, keys, active) -> (params, opt_state, losses)`` over N models.

    :func:`h0.parallel.make_ensemble_train_step` (masked) of :func:`reconstruction_loss`: every
    argument has a leading model axis, and a model whose ``active`` is ``False`` keeps its state
    (its own epoch is over), so each model follows exactly the steps it would take alone. The
    models run two at a time (:data:`ENSEMBLE_VECTORIZE`).
    """
    return hp.make_ensemble_train_step(
        _training_loss(model, forecast_weight),
        optimizer(learning_rate),
        masked=True,
        vectorize=ENSEMBLE_VECTORIZE,
    )
