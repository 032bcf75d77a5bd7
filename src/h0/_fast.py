"""Dedicated GRU and LSTM recurrences for Flax's own cells, on the cell's own parameter tree.

:class:`h0.RNN` hands :func:`fast_scan`'s result to :func:`h0._scan.run_sequence` in place of the
generic :func:`h0._scan.masked_scan` when its cell is ``nn.GRUCell``, ``nn.LSTMCell`` or
``nn.OptimizedLSTMCell`` with the default activations. The parameters are read from the dict that
Flax created for the cell (``ir``/``iz``/``in``/``hr``/``hz``/``hn`` for the GRU,
``ii``/``if``/``ig``/``io``/``hi``/``hf``/``hg``/``ho`` for the LSTMs), so checkpoints of
``flax.linen.RNN(cell)`` and ``h0.RNN(cell)`` are interchangeable.

How it differs from differentiating the cell step by step (what autodiff of a scan does):

- A :func:`jax.custom_vjp`: the backward loop does only the ``dh @ W_h^T`` matmuls (one per
  gate) and small elementwise work; every weight gradient, the bias gradients and the inputs'
  gradient are single large matmuls/reductions over all steps afterwards (autodiff of a scan
  adds six weight- and input-gradient matmuls and their accumulations to every step).
- The forward loop saves the gate activations it computed anyway, so the backward pass
  recomputes nothing; ``remat=True`` saves only the outputs (and the LSTM memory) and
  recomputes the gates step by step in the backward loop: less memory, a little more compute.
- Sigmoids through one ``tanh`` each (cheaper on XLA:CPU than ``exp`` plus a divide).
- What did *not* help on XLA:CPU, measured: hoisting the input projection out of the loop (it
  adds full passes over ``[t, b, 3h]`` arrays, which cost more than the in-loop ``[b, f]``
  matmuls), and one ``[b, h] @ [h, 3h]`` matmul per step instead of three ``[b, h] @ [h, h]``.

Gate equations (Flax's; ``x`` input, ``h`` previous output, ``c`` previous memory):

    GRU:  r = σ(W_ir x + b_ir + W_hr h)        LSTM: i = σ(W_ii x + W_hi h + b_hi)
          z = σ(W_iz x + b_iz + W_hz h)              f = σ(W_if x + W_hf h + b_hf)
          n = tanh(W_in x + b_in + r (W_hn h + b_hn))  g = tanh(W_ig x + W_hg h + b_hg)
          h' = (1 - z) n + z h                      o = σ(W_io x + W_ho h + b_ho)
                                                    c' = f c + i g,  h' = o tanh(c')
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from h0._typing import Array, Carry

__all__ = ["fast_scan", "supports"]

_GRU_GATES = ("r", "z", "n")
_LSTM_GATES = ("i", "f", "g", "o")


def supports(cell: nn.Module) -> bool:
    """Whether ``cell`` is one of Flax's GRU/LSTM cells with default activations and dtype.

    Subclasses, custom gate or activation functions and an explicit computation ``dtype`` take
    the generic path.

    Example:
        >>> import flax.linen as nn, jax
        >>> supports(nn.GRUCell(4)), supports(nn.GRUCell(4, activation_fn=jax.nn.relu))
        (True, False)
    """
    return (
        type(cell) in (nn.GRUCell, nn.LSTMCell, nn.OptimizedLSTMCell)
        and cell.gate_fn is nn.sigmoid
        and cell.activation_fn is nn.tanh
        and cell.dtype is None
    )


def _has(params: Mapping[str, Any], names: tuple[str, ...], biased: tuple[str, ...]) -> bool:
    try:
        return all(params[n]["kernel"].ndim == 2 for n in names) and all(
            params[n]["bias"].ndim == 1 for n in biased
        )
    except (KeyError, TypeError, AttributeError):
        return False


def fast_scan(
    cell: nn.Module, params: Mapping[str, Any], *, remat: bool = False
) -> Callable[..., tuple[Carry, Array]] | None:
    """A drop-in for :func:`h0._scan.masked_scan` that runs ``cell``'s recurrence directly.

    Args:
        cell: The Flax cell; see :func:`supports`.
        params: The cell's own parameter dict (``variables['params']`` of the cell).
        remat: Recompute the gates in the backward pass instead of saving them.

    Returns:
        ``scan(step, carry, xs, lengths, *, unroll=1) -> (carry, ys)`` with the contract of
        :func:`h0._scan.masked_scan` (``step`` is ignored), or ``None`` when the cell or its
        parameters are not recognised.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp
        >>> from h0._scan import masked_scan
        >>> cell = nn.GRUCell(3)
        >>> h, x = jnp.zeros((2, 3)), jnp.ones((5, 2, 4))           # x: [time, batch, features]
        >>> params = cell.init(jax.random.key(0), h, x[0])['params']
        >>> step = lambda c, x: cell.apply({'params': params}, c, x)
        >>> _, fast = fast_scan(cell, params)(step, h, x, jnp.array([5, 2]))
        >>> _, ref = masked_scan(step, h, x, jnp.array([5, 2]))
        >>> bool(jnp.allclose(fast, ref, atol=1e-6))
        True
    """
    if not supports(cell):
        return None
    if isinstance(cell, nn.GRUCell):
        if not _has(params, ("ir", "iz", "in", "hr", "hz", "hn"), ("ir", "iz", "in", "hn")):
            return None
        run = _gru
    else:
        names = tuple(f"{io}{g}" for io in "ih" for g in _LSTM_GATES)
        if not _has(params, names, tuple(f"h{g}" for g in _LSTM_GATES)):
            return None
        run = _lstm

    def scan(
        step: Any, carry: Carry, xs: Array, lengths: Array | None = None, *, unroll: int = 1
    ) -> tuple[Carry, Array]:
        del step  # the recurrence is computed from the parameters
        return run(params, carry, xs, lengths, unroll=unroll, remat=remat)

    return scan


def _valid_mask(lengths: Array | None, time: int, batch: int) -> Array:
    """``[t, b, 1]`` booleans, ``t < lengths`` (all true without lengths)."""
    if lengths is None:
        return jnp.ones((time, batch, 1), bool)
    steps = jnp.arange(time, dtype=lengths.dtype)
    return (steps[:, None] < lengths[None, :])[:, :, None]


def _dtype(*trees: Any) -> Any:
    return jnp.result_type(*jax.tree.leaves(trees))


# ------------------------------------------------------------------------------------ common
#
# Design, from profiles of XLA:CPU on a small shared machine: a full pass over a [t, b, h] array
# (an elementwise op, a copy, a fresh buffer) costs about as much as a few hundred loop steps'
# worth of small ops, so the recurrences touch time-sized arrays as rarely as possible. Each loop
# step does its matmuls on [b, ...] blocks that stay in cache and writes what the backward pass
# needs; parameter gradients and the inputs' gradient are then single large matmuls over all
# steps (autodiff of a scan instead adds several small weight-gradient matmuls to every step).


def _dot_all(a: Array, b: Array) -> Array:
    """``sum_t a[t].T @ b[t]`` as one ``[f, t*b] @ [t*b, k]`` matmul."""
    t, n, f = a.shape
    return a.reshape((t * n, f)).T @ b.reshape((t * n, b.shape[-1]))


def _times(a: Array, w: Array) -> Array:
    """``a [t, b, k] @ w [k, f]`` as one matmul."""
    t, n, k = a.shape
    return (a.reshape((t * n, k)) @ w).reshape((t, n, w.shape[1]))


def _sigmoid(x: Array) -> Array:
    """The logistic function through one ``tanh`` (cheaper on XLA:CPU than ``exp`` and a divide)."""
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _previous(first: Array, seq: Array) -> Array:
    """``[first, seq[0], ..., seq[t - 2]]``: the carry before each step (valid steps are a prefix)."""
    return jnp.concatenate([first[None], seq[:-1]], axis=0)


# --------------------------------------------------------------------------------------- GRU


def _gru(
    params: Mapping[str, Any],
    carry: Array,
    xs: Array,
    lengths: Array | None,
    *,
    unroll: int,
    remat: bool,
) -> tuple[Array, Array]:
    dtype = _dtype(params, carry, xs)
    p = jax.tree.map(lambda a: jnp.asarray(a, dtype), dict(params))
    wi = jnp.concatenate([p[f"i{g}"]["kernel"] for g in _GRU_GATES], axis=1)
    bi = jnp.concatenate([p[f"i{g}"]["bias"] for g in _GRU_GATES])
    wh = tuple(p[f"h{g}"]["kernel"] for g in _GRU_GATES)
    valid = _valid_mask(lengths, *xs.shape[:2])
    masked = lengths is not None
    h, ys = _gru_recurrence(
        masked,
        unroll,
        remat,
        (wi, bi, wh, p["hn"]["bias"]),
        carry.astype(dtype),
        xs.astype(dtype),
        valid,
    )
    return h.astype(carry.dtype), ys


def _gru_step(w, h, x):
    """One GRU step on ``[b, ...]`` blocks: ``(r, z, hn, n, new_h)``."""
    wi, bi, wh, bhn = w
    hidden = h.shape[-1]
    a = x @ wi + bi[None, :]
    r = _sigmoid(a[:, :hidden] + h @ wh[0])
    z = _sigmoid(a[:, hidden : 2 * hidden] + h @ wh[1])
    hn = h @ wh[2] + bhn[None, :]
    n = jnp.tanh(a[:, 2 * hidden :] + r * hn)
    return r, z, hn, n, (1.0 - z) * n + z * h


def _gru_forward(masked, unroll, w, h0, xs, valid, *, save):
    def body(h, inputs):
        x, vt = inputs
        r, z, hn, n, new = _gru_step(w, h, x)
        if masked:
            new = jnp.where(vt, new, h)
            y = jnp.where(vt, new, jnp.zeros_like(new))
        else:
            y = new
        return new, ((y, r, z, hn, n) if save else y)

    return jax.lax.scan(body, h0, (xs, valid), unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _gru_recurrence(masked, unroll, remat, w, h0, xs, valid):
    return _gru_forward(masked, unroll, w, h0, xs, valid, save=False)


def _gru_recurrence_fwd(masked, unroll, remat, w, h0, xs, valid):
    if remat:
        h, ys = _gru_forward(masked, unroll, w, h0, xs, valid, save=False)
        return (h, ys), (w, h0, xs, valid, ys, None)
    h, (ys, *gates) = _gru_forward(masked, unroll, w, h0, xs, valid, save=True)
    return (h, ys), (w, h0, xs, valid, ys, tuple(gates))


def _gru_recurrence_bwd(masked, unroll, remat, residuals, cotangents):
    w, h0, xs, valid, ys, gates = residuals
    wi, _, wh, _ = w
    dh_last, dys = cotangents
    hidden = h0.shape[-1]
    hprev = _previous(h0, ys)

    def body(dh, inputs):
        if remat:
            dy, hp, vt, x = inputs
            r, z, hn, n, _ = _gru_step(w, hp, x)
        else:
            dy, hp, vt, (r, z, hn, n) = inputs
        d = dh + dy
        if masked:
            d = jnp.where(vt, d, jnp.zeros_like(d))
        dan = d * (1.0 - z) * (1.0 - n * n)
        dar = dan * hn * r * (1.0 - r)
        daz = d * (hp - n) * z * (1.0 - z)
        dpre = jnp.concatenate([dar, daz, dan * r], axis=1)  # gradients of r, z and W_hn h + b_hn
        dprev = d * z + dar @ wh[0].T + daz @ wh[1].T + dpre[:, 2 * hidden :] @ wh[2].T
        if masked:
            dprev = dprev + jnp.where(vt, jnp.zeros_like(dh), dh)
        return dprev, (dpre, dan)

    extra = xs if remat else gates
    dh0, (dpre, dan) = jax.lax.scan(
        body, dh_last, (dys, hprev, valid, extra), reverse=True, unroll=unroll
    )
    # Input-side gradients: the n gate's input term gets dan, not dan * r.
    keep = jnp.concatenate([jnp.ones((2 * hidden,), wi.dtype), jnp.zeros((hidden,), wi.dtype)])
    dwi = _dot_all(xs, dpre) * keep[None, :] + jnp.pad(_dot_all(xs, dan), ((0, 0), (2 * hidden, 0)))
    sums = dpre.sum(axis=(0, 1))
    dan_sum = dan.sum(axis=(0, 1))
    dbi = jnp.concatenate([sums[: 2 * hidden], dan_sum])
    dxs = _times(dpre, (wi * keep[None, :]).T) + _times(dan, wi[:, 2 * hidden :].T)
    dwh = _dot_all(hprev, dpre)
    dwh = tuple(dwh[:, k * hidden : (k + 1) * hidden] for k in range(3))
    dw = (dwi, dbi, dwh, sums[2 * hidden :])
    return dw, dh0, dxs, None


_gru_recurrence.defvjp(_gru_recurrence_fwd, _gru_recurrence_bwd)


# -------------------------------------------------------------------------------------- LSTM


def _lstm(
    params: Mapping[str, Any],
    carry: tuple[Array, Array],
    xs: Array,
    lengths: Array | None,
    *,
    unroll: int,
    remat: bool,
) -> tuple[tuple[Array, Array], Array]:
    c0, h0 = carry
    dtype = _dtype(params, carry, xs)
    p = jax.tree.map(lambda a: jnp.asarray(a, dtype), dict(params))
    wi = jnp.concatenate([p[f"i{g}"]["kernel"] for g in _LSTM_GATES], axis=1)
    wh = tuple(p[f"h{g}"]["kernel"] for g in _LSTM_GATES)
    b = jnp.concatenate([p[f"h{g}"]["bias"] for g in _LSTM_GATES])
    valid = _valid_mask(lengths, *xs.shape[:2])
    (c, h), ys = _lstm_recurrence(
        lengths is not None,
        unroll,
        remat,
        (wi, wh, b),
        (c0.astype(dtype), h0.astype(dtype)),
        xs.astype(dtype),
        valid,
    )
    return (c.astype(c0.dtype), h.astype(h0.dtype)), ys


def _lstm_step(w, c, h, x):
    """One LSTM step on ``[b, ...]`` blocks: ``(i, f, g, o, new_c)``."""
    wi, wh, b = w
    hidden = h.shape[-1]
    a = x @ wi + b[None, :]
    i = _sigmoid(a[:, :hidden] + h @ wh[0])
    f = _sigmoid(a[:, hidden : 2 * hidden] + h @ wh[1])
    g = jnp.tanh(a[:, 2 * hidden : 3 * hidden] + h @ wh[2])
    o = _sigmoid(a[:, 3 * hidden :] + h @ wh[3])
    return i, f, g, o, f * c + i * g


def _lstm_forward(masked, unroll, w, carry, xs, valid, *, save):
    def body(carry, inputs):
        c, h = carry
        x, vt = inputs
        i, f, g, o, new_c = _lstm_step(w, c, h, x)
        new_h = o * jnp.tanh(new_c)
        if masked:
            new_c = jnp.where(vt, new_c, c)
            new_h = jnp.where(vt, new_h, h)
            y = jnp.where(vt, new_h, jnp.zeros_like(new_h))
        else:
            y = new_h
        return (new_c, new_h), ((y, new_c, i, f, g, o) if save else (y, new_c))

    return jax.lax.scan(body, carry, (xs, valid), unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _lstm_recurrence(masked, unroll, remat, w, carry, xs, valid):
    final, (ys, _) = _lstm_forward(masked, unroll, w, carry, xs, valid, save=False)
    return final, ys


def _lstm_recurrence_fwd(masked, unroll, remat, w, carry, xs, valid):
    if remat:
        final, (ys, cs) = _lstm_forward(masked, unroll, w, carry, xs, valid, save=False)
        return (final, ys), (w, carry, xs, valid, ys, cs, None)
    final, (ys, cs, *gates) = _lstm_forward(masked, unroll, w, carry, xs, valid, save=True)
    return (final, ys), (w, carry, xs, valid, ys, cs, tuple(gates))


def _lstm_recurrence_bwd(masked, unroll, remat, residuals, cotangents):
    w, (c0, h0), xs, valid, ys, cs, gates = residuals
    wi, wh, _ = w
    (dc_last, dh_last), dys = cotangents
    hprev = _previous(h0, ys)
    # Memory is frozen at invalid steps, so cs[t - 1] is the memory before any valid step t.
    cprev = _previous(c0, cs)
    hidden = h0.shape[-1]

    def body(carry, inputs):
        dc, dh = carry
        if remat:
            dy, hp, cp, ct, vt, x = inputs
            i, f, g, o, _ = _lstm_step(w, cp, hp, x)
        else:
            dy, hp, cp, ct, vt, (i, f, g, o) = inputs
        tc = jnp.tanh(ct)
        d = dh + dy
        dcn = dc
        if masked:
            d = jnp.where(vt, d, jnp.zeros_like(d))
            dcn = jnp.where(vt, dcn, jnp.zeros_like(dcn))
        dcn = dcn + d * o * (1.0 - tc * tc)
        dpre = jnp.concatenate(
            [
                dcn * g * i * (1.0 - i),
                dcn * cp * f * (1.0 - f),
                dcn * i * (1.0 - g * g),
                d * tc * o * (1.0 - o),
            ],
            axis=1,
        )
        dh_prev = sum(dpre[:, k * hidden : (k + 1) * hidden] @ wh[k].T for k in range(4))
        dc_prev = dcn * f
        if masked:
            dh_prev = dh_prev + jnp.where(vt, jnp.zeros_like(dh), dh)
            dc_prev = dc_prev + jnp.where(vt, jnp.zeros_like(dc), dc)
        return (dc_prev, dh_prev), dpre

    extra = xs if remat else gates
    (dc0, dh0), dpre = jax.lax.scan(
        body, (dc_last, dh_last), (dys, hprev, cprev, cs, valid, extra), reverse=True, unroll=unroll
    )
    dwh = _dot_all(hprev, dpre)
    dwh = tuple(dwh[:, k * hidden : (k + 1) * hidden] for k in range(4))
    dw = (_dot_all(xs, dpre), dwh, dpre.sum(axis=(0, 1)))
    return dw, (dc0, dh0), _times(dpre, wi.T), None


_lstm_recurrence.defvjp(_lstm_recurrence_fwd, _lstm_recurrence_bwd)
