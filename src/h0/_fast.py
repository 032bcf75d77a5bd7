"""Dedicated GRU and LSTM recurrences for Flax's own cells, on the cell's own parameter tree.

:class:`h0.RNN` hands :func:`fast_scan`'s result to :func:`h0._scan.run_sequence` in place of the
generic :func:`h0._scan.masked_scan` when its cell is ``nn.GRUCell``, ``nn.LSTMCell`` or
``nn.OptimizedLSTMCell`` with the default activations. The parameters are read from the dict that
Flax created for the cell (``ir``/``iz``/``in``/``hr``/``hz``/``hn`` for the GRU,
``ii``/``if``/``ig``/``io``/``hi``/``hf``/``hg``/``ho`` for the LSTMs), so checkpoints of
``flax.linen.RNN(cell)`` and ``h0.RNN(cell)`` are interchangeable.

What makes it faster than differentiating the cell step by step:

- The input projections of all steps are computed before the scan, one large matmul per gate.
- The scan body holds only the recurrent matmuls and one fused elementwise kernel.
- A :func:`jax.custom_vjp` runs the backward recurrence with one ``[b, h] @ [h, h]`` matmul per
  gate and step, and computes every weight gradient afterwards as one large matmul over all
  steps (autodiff of a scan instead accumulates them step by step, with small matmuls).
- With ``remat=True`` the backward pass recomputes the gates from the saved outputs instead of
  storing them, so the memory beyond inputs and outputs does not grow with time.

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


def _project(xs: Array, kernel: Array, bias: Array | None) -> Array:
    """``xs [t, b, f] @ kernel [f, h] (+ bias)`` as one ``[t*b, f] @ [f, h]`` matmul."""
    t, b, f = xs.shape
    y = (xs.reshape((t * b, f)) @ kernel).reshape((t, b, kernel.shape[1]))
    return y if bias is None else y + bias


def _weight_grad(inputs: Array, grads: Array) -> Array:
    """``sum_t inputs[t].T @ grads[t]`` as one ``[h, t*b] @ [t*b, k]`` matmul."""
    t, b, h = inputs.shape
    return inputs.reshape((t * b, h)).T @ grads.reshape((t * b, grads.shape[-1]))


def _dtype(*trees: Any) -> Any:
    return jnp.result_type(*jax.tree.leaves(trees))


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
    xs, h0 = xs.astype(dtype), carry.astype(dtype)
    time, batch = xs.shape[:2]
    a = tuple(_project(xs, p[f"i{g}"]["kernel"], p[f"i{g}"]["bias"]) for g in _GRU_GATES)
    w = tuple(p[f"h{g}"]["kernel"] for g in _GRU_GATES)
    valid = _valid_mask(lengths, time, batch)
    h, ys = _gru_recurrence(lengths is not None, unroll, remat, w, p["hn"]["bias"], h0, a, valid)
    return h.astype(carry.dtype), ys


def _gru_gates(w: tuple[Array, ...], bhn: Array, h: Array, a: tuple[Array, ...]):
    ar, az, an = a
    wr, wz, wn = w
    r = jax.nn.sigmoid(ar + h @ wr)
    z = jax.nn.sigmoid(az + h @ wz)
    hn = h @ wn + bhn
    n = jnp.tanh(an + r * hn)
    return r, z, hn, n


def _gru_forward(masked, unroll, w, bhn, h0, a, valid, *, save: bool):
    def body(h, inputs):
        at, vt = inputs
        r, z, hn, n = _gru_gates(w, bhn, h, at)
        new = (1.0 - z) * n + z * h
        if masked:
            new = jnp.where(vt, new, h)
            y = jnp.where(vt, new, jnp.zeros_like(new))
        else:
            y = new
        return new, ((y, r, z, hn, n) if save else y)

    return jax.lax.scan(body, h0, (a, valid), unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _gru_recurrence(masked, unroll, remat, w, bhn, h0, a, valid):
    return _gru_forward(masked, unroll, w, bhn, h0, a, valid, save=False)


def _gru_recurrence_fwd(masked, unroll, remat, w, bhn, h0, a, valid):
    if remat:
        h, ys = _gru_forward(masked, unroll, w, bhn, h0, a, valid, save=False)
        return (h, ys), (w, bhn, h0, a, valid, ys, None)
    h, (ys, *gates) = _gru_forward(masked, unroll, w, bhn, h0, a, valid, save=True)
    return (h, ys), (w, bhn, h0, None, valid, ys, tuple(gates))


def _gru_recurrence_bwd(masked, unroll, remat, residuals, cotangents):
    w, bhn, h0, a, valid, ys, gates = residuals
    dh_last, dys = cotangents
    wr, wz, wn = w
    # The carry before step t: valid steps form a prefix, so it is the previous output (or h0).
    hprev = jnp.concatenate([h0[None], ys[:-1]], axis=0)

    def body(dh, inputs):
        if remat:
            dy, hp, vt, at = inputs
            r, z, hn, n = _gru_gates(w, bhn, hp, at)
        else:
            dy, hp, vt, (r, z, hn, n) = inputs
        d = dh + dy
        if masked:
            d = jnp.where(vt, d, jnp.zeros_like(d))
        dn = d * (1.0 - z)
        dan = dn * (1.0 - n * n)
        dhn = dan * r
        dar = (dan * hn) * r * (1.0 - r)
        daz = d * (hp - n) * z * (1.0 - z)
        dprev = d * z + dar @ wr.T + daz @ wz.T + dhn @ wn.T
        if masked:
            dprev = dprev + jnp.where(vt, jnp.zeros_like(dh), dh)
        return dprev, (dar, daz, dan, dhn)

    extra = a if remat else gates
    dh0, (dar, daz, dan, dhn) = jax.lax.scan(
        body, dh_last, (dys, hprev, valid, extra), reverse=True, unroll=unroll
    )
    dw = (_weight_grad(hprev, dar), _weight_grad(hprev, daz), _weight_grad(hprev, dhn))
    return dw, dhn.sum(axis=(0, 1)), dh0, (dar, daz, dan), None


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
    xs = xs.astype(dtype)
    time, batch = xs.shape[:2]
    a = tuple(_project(xs, p[f"i{g}"]["kernel"], p[f"h{g}"]["bias"]) for g in _LSTM_GATES)
    w = tuple(p[f"h{g}"]["kernel"] for g in _LSTM_GATES)
    valid = _valid_mask(lengths, time, batch)
    (c, h), ys = _lstm_recurrence(
        lengths is not None, unroll, remat, w, (c0.astype(dtype), h0.astype(dtype)), a, valid
    )
    return (c.astype(c0.dtype), h.astype(h0.dtype)), ys


def _lstm_gates(w: tuple[Array, ...], h: Array, a: tuple[Array, ...]):
    i, f, o = (jax.nn.sigmoid(a[k] + h @ w[k]) for k in (0, 1, 3))
    g = jnp.tanh(a[2] + h @ w[2])
    return i, f, g, o


def _lstm_forward(masked, unroll, w, carry, a, valid, *, save: bool):
    def body(carry, inputs):
        c, h = carry
        at, vt = inputs
        i, f, g, o = _lstm_gates(w, h, at)
        new_c = f * c + i * g
        tc = jnp.tanh(new_c)
        new_h = o * tc
        if masked:
            new_c = jnp.where(vt, new_c, c)
            new_h = jnp.where(vt, new_h, h)
            y = jnp.where(vt, new_h, jnp.zeros_like(new_h))
        else:
            y = new_h
        return (new_c, new_h), ((y, new_c, i, f, g, o, tc) if save else (y, new_c))

    return jax.lax.scan(body, carry, (a, valid), unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _lstm_recurrence(masked, unroll, remat, w, carry, a, valid):
    final, (ys, _) = _lstm_forward(masked, unroll, w, carry, a, valid, save=False)
    return final, ys


def _lstm_recurrence_fwd(masked, unroll, remat, w, carry, a, valid):
    if remat:
        final, (ys, cs) = _lstm_forward(masked, unroll, w, carry, a, valid, save=False)
        return (final, ys), (w, carry, a, valid, ys, cs, None)
    final, (ys, cs, *gates) = _lstm_forward(masked, unroll, w, carry, a, valid, save=True)
    return (final, ys), (w, carry, None, valid, ys, cs, tuple(gates))


def _lstm_recurrence_bwd(masked, unroll, remat, residuals, cotangents):
    w, (c0, h0), a, valid, ys, cs, gates = residuals
    (dc_last, dh_last), dys = cotangents
    hprev = jnp.concatenate([h0[None], ys[:-1]], axis=0)
    # Memory at invalid steps is frozen, so cs[t - 1] is the memory before any valid step t.
    cprev = jnp.concatenate([c0[None], cs[:-1]], axis=0)

    def body(carry, inputs):
        dc, dh = carry
        if remat:
            dy, hp, cp, vt, at = inputs
            i, f, g, o = _lstm_gates(w, hp, at)
            tc = jnp.tanh(f * cp + i * g)
        else:
            dy, hp, cp, vt, (i, f, g, o, tc) = inputs
        d = dh + dy
        dcn = dc
        if masked:
            d = jnp.where(vt, d, jnp.zeros_like(d))
            dcn = jnp.where(vt, dc, jnp.zeros_like(dc))
        dcn = dcn + d * o * (1.0 - tc * tc)
        dai = dcn * g * i * (1.0 - i)
        daf = dcn * cp * f * (1.0 - f)
        dag = dcn * i * (1.0 - g * g)
        dao = d * tc * o * (1.0 - o)
        das = (dai, daf, dag, dao)
        dh_prev = sum(da @ wk.T for da, wk in zip(das, w, strict=True))
        dc_prev = dcn * f
        if masked:
            dh_prev = dh_prev + jnp.where(vt, jnp.zeros_like(dh), dh)
            dc_prev = dc_prev + jnp.where(vt, jnp.zeros_like(dc), dc)
        return (dc_prev, dh_prev), das

    extra = a if remat else gates
    (dc0, dh0), das = jax.lax.scan(
        body, (dc_last, dh_last), (dys, hprev, cprev, valid, extra), reverse=True, unroll=unroll
    )
    dw = tuple(_weight_grad(hprev, da) for da in das)
    return dw, (dc0, dh0), das, None


_lstm_recurrence.defvjp(_lstm_recurrence_fwd, _lstm_recurrence_bwd)
