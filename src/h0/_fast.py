"""Dedicated GRU and LSTM recurrences for Flax's own cells, on the cell's own parameter tree.

:class:`h0.RNN` hands :func:`fast_scan`'s result to :func:`h0._scan.run_sequence` in place of the
generic :func:`h0._scan.masked_scan` when its cell is ``nn.GRUCell``, ``nn.LSTMCell`` or
``nn.OptimizedLSTMCell`` with the default activations. The parameters are read from the dict that
Flax created for the cell (``ir``/``iz``/``in``/``hr``/``hz``/``hn`` for the GRU,
``ii``/``if``/``ig``/``io``/``hi``/``hf``/``hg``/``ho`` for the LSTMs), so checkpoints of
``flax.linen.RNN(cell)`` and ``h0.RNN(cell)`` are interchangeable.

Why it is faster than differentiating the cell step by step (what autodiff of a scan does), from
per-operation profiles of XLA:CPU (``jax.profiler`` traces) on a 2-core machine:

- **Two matmuls per step, not six or eight.** The gates' input and recurrent projections are each
  one ``[b, k] @ [k, 3h]`` (GRU) or ``[b, k] @ [k, 4h]`` (LSTM) matmul, sliced inside the fused
  elementwise step. Each operation in a loop body costs a few microseconds of dispatch on top of
  its work, and the per-step matmuls are small, so fewer and larger ones win. (Slicing a
  *dynamically indexed* ``[t, b, 3h]`` input inside the fused step is what is slow: it defeats
  vectorisation, 6x on the elementwise work. So the input projection stays inside the loop.)
- **Little temporary memory.** XLA:CPU allocates a step's temporaries afresh on every call, and
  with glibc's default allocator buffers of tens of MiB come straight from ``mmap``: every page is
  faulted in again on every call. ``flax.linen.RNN``'s train step at B=64, T=128, H=128 has 49 MiB
  of temporaries and takes 12.5k page faults per call (``getrusage``), about half its time. By
  default (``remat=False``) the forward pass here saves the gates, ``t * b * 4h`` floats, and the
  backward pass reads them: about half of flax's temporaries, and faster than recomputing at
  every size measured. ``remat=True`` keeps only the outputs (and the LSTM memory) and recomputes
  the gates in the backward pass, at the price of one more recurrent matmul per step: the least
  memory (9 MiB at B=64, T=128, H=128), for long sequences.
- **Weight gradients in blocks.** The backward loop does the ``dh @ W_h^T`` matmul per step, keeps
  the gate gradients of the last ``chunk`` steps in a small buffer and turns them into weight
  gradients with one ``[k, chunk*b] @ [chunk*b, 3h]`` matmul per block, where autodiff of a scan does
  a small weight-gradient matmul and an accumulation for every step, and saving them for one
  matmul over all steps would cost ``[t, b, 3h]`` of memory.
- Sigmoids through one ``tanh`` each (cheaper on XLA:CPU than ``exp`` plus a divide).

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
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from h0._typing import Array, Carry

__all__ = ["fast_scan", "supports"]

_GRU_GATES = ("r", "z", "n")
_LSTM_GATES = ("i", "f", "g", "o")

# Gate-gradient rows kept per weight-gradient block: about 64k floats of [chunk * b, h], at most
# 16 steps (measured: 8 steps at b=64, h=128 is 1.25x faster than a matmul per step; larger
# blocks stop helping once the buffers leave the cache).
_BLOCK_ELEMENTS = 65536
_MAX_CHUNK = 16
# Below these hidden sizes the generic path trains faster: XLA:CPU fuses the small gate-gradient
# arrays into kernels it does not vectorise (GRU train step at h=24..40: 1.5-1.9x flax; from
# h=48 on 0.77x and better; LSTM 0.99-1.05x at h=16..24, 0.81x at 32).
_MIN_HIDDEN = {"gru": 48, "lstm": 32}
# Inputs with fewer features than this are read time-major and projected per gate (see scan()).
# Measured at b=1024, h=32: 1 feature 2.5x flax's forward joined, 0.74x per gate; from 2
# features on the joined batch-major step is as fast or faster (0.83 vs 0.88 at 2, 0.77 vs 0.88
# at 8).
_MIN_ROW_FEATURES = 2


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
    cell: nn.Module, params: Mapping[str, Any], *, remat: bool = False, chunk: int | None = None
) -> Callable[..., tuple[Carry, Array]] | None:
    """A drop-in for :func:`h0._scan.masked_scan` that runs ``cell``'s recurrence directly.

    Args:
        cell: The Flax cell; see :func:`supports`.
        params: The cell's own parameter dict (``variables['params']`` of the cell).
        remat: Recompute the gates in the backward pass (keep only the outputs and the LSTM
            memory) instead of saving them.
        chunk: Time steps per weight-gradient block in the backward pass (default: from the
            batch and hidden sizes, at most 16).

    Returns:
        ``scan(step, carry, xs, lengths, *, unroll=1) -> (carry, ys)`` with the contract of
        :func:`h0._scan.masked_scan` except that ``xs`` and ``ys`` are batch-major,
        ``[b, t, ...]`` (``step`` is ignored; ``unroll`` applies to the forward loop), or ``None``
        when the cell or its parameters are not recognised or the hidden size is below
        ``_MIN_HIDDEN`` (48 for the GRU, 32 for the LSTM), where the generic path trains faster.

    Example:
        >>> import flax.linen as nn, jax, jax.numpy as jnp
        >>> from h0._scan import masked_scan
        >>> cell = nn.GRUCell(48)
        >>> h, x = jnp.zeros((2, 48)), jnp.ones((2, 5, 4))          # x: [batch, time, features]
        >>> params = cell.init(jax.random.key(0), h, x[:, 0])['params']
        >>> step = lambda c, x: cell.apply({'params': params}, c, x)
        >>> _, fast = fast_scan(cell, params)(step, h, x, jnp.array([5, 2]))
        >>> _, ref = masked_scan(step, h, x.swapaxes(0, 1), jnp.array([5, 2]))  # time-major
        >>> bool(jnp.allclose(fast, ref.swapaxes(0, 1), atol=1e-6))
        True
    """
    if not supports(cell):
        return None
    if isinstance(cell, nn.GRUCell):
        if not _has(params, ("ir", "iz", "in", "hr", "hz", "hn"), ("ir", "iz", "in", "hn")):
            return None
        run, kind = _gru, "gru"
    else:
        names = tuple(f"{io}{g}" for io in "ih" for g in _LSTM_GATES)
        if not _has(params, names, tuple(f"h{g}" for g in _LSTM_GATES)):
            return None
        run, kind = _lstm, "lstm"
    if params["hi" if kind == "lstm" else "hr"]["kernel"].shape[0] < _MIN_HIDDEN[kind]:
        return None

    def scan(
        step: Any, carry: Carry, xs: Array, lengths: Array | None = None, *, unroll: int = 1
    ) -> tuple[Carry, Array]:
        del step  # the recurrence is computed from the parameters
        batch, time = xs.shape[:2]
        if lengths is None:
            lengths = jnp.full((batch,), time, jnp.int32)
            masked = False
        else:
            masked = True
        hidden = jax.tree.leaves(carry)[0].shape[-1]
        block = chunk or max(1, min(_MAX_CHUNK, _BLOCK_ELEMENTS // max(1, batch * hidden), time))
        # A [b, h] @ [h, 3h] matmul is slower than three [b, h] @ [h, h] when b is small next to
        # h (measured: 1.35x flax's forward at b=16, h=256 joined, 0.95x split; joined wins from
        # b=64 on, 0.75x at b=256).
        split = 8 * batch <= hidden
        # With one feature, read the inputs time-major (one contiguous block per step) and
        # project them per gate: XLA:CPU turns a [b, 1] @ [1, 3h] matmul into a broadcast
        # multiply fused with the step's dynamic slice, and slicing that inside the fused kernel
        # ran 0.7 ms a step at b=4096, h=24 (2.5-2.75x flax's forward; the detector's shape).
        x_axis = 0 if xs.shape[-1] < _MIN_ROW_FEATURES else 1
        if x_axis == 0:
            xs = jnp.swapaxes(xs, 0, 1)
        options = _Options(
            masked=masked, remat=remat, chunk=block, unroll=unroll, split=split, x_axis=x_axis
        )
        return run(options, params, carry, xs, lengths)

    return scan


class _Options(NamedTuple):
    """Static settings of one recurrence (hashable: a ``nondiff_argnums`` argument)."""

    masked: bool
    remat: bool
    chunk: int
    unroll: int
    split: bool = False  # one recurrent matmul per gate instead of one for all gates
    x_axis: int = 1  # the inputs' time axis: 1 batch-major, 0 time-major


def _dtype(*trees: Any) -> Any:
    return jnp.result_type(*jax.tree.leaves(trees))


def _sigmoid(x: Array) -> Array:
    """The logistic function through one ``tanh`` (cheaper on XLA:CPU than ``exp`` and a divide)."""
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _at(xs: Array, t: Array, axis: int = 0) -> Array:
    return jax.lax.dynamic_index_in_dim(xs, t, axis, keepdims=False)


def _put(xs: Array, value: Array, t: Array, axis: int = 0) -> Array:
    return jax.lax.dynamic_update_index_in_dim(xs, value.astype(xs.dtype), t, axis)


def _valid(lengths: Array, t: Array) -> Array:
    """``[b, 1]`` booleans: is step ``t`` inside each sequence."""
    return (t < lengths)[:, None]


# ------------------------------------------------------------------------------ backward pass


def _reverse_pass(
    opts: _Options,
    step: Callable[..., tuple[Any, Array, Array, Array]],
    dcarry: Any,
    xs: Array,
    lengths: Array,
    wi: Array,
    wh: Array,
    widths: tuple[int, int],
    *,
    shared_gradients: bool = False,
) -> tuple[Any, Array, Array, Array, Array, Array]:
    """The backward loop shared by the GRU and the LSTM.

    ``step(t, dcarry, valid, wh_t) -> (dcarry_prev, hp, gh, gi)`` differentiates one time step
    (``wh_t`` is ``wh.T``, computed once; see below): ``hp``
    is the output before step ``t`` (``[b, h]``), ``gh`` the gradients of the recurrent
    projection ``hp @ W_h`` (``[b, widths[0]]``) and ``gi`` those of the input projection
    ``x_t @ W_i`` (``[b, widths[1]]``), both zero where the step is not valid. With
    ``shared_gradients`` (the LSTM) they are the same array and are stored once.

    Steps run from ``t - 1`` down to 0 in blocks of ``opts.chunk``; the first block is padded at
    its start with steps that are not valid (their index is clamped to ``t - 1``, where the real
    step then writes over them), so any length works with any block size.

    Returns:
        ``(dcarry_0, dxs, dW_h, dW_i, sum of gh, sum of gi)``.
    """
    features = xs.shape[-1]
    time = xs.shape[opts.x_axis]
    batch = xs.shape[1 - opts.x_axis]
    hidden = jax.tree.leaves(dcarry)[0].shape[-1]
    nh, ni = widths
    chunk = opts.chunk
    blocks = -(-time // chunk)
    pad = blocks * chunk - time
    dtype = xs.dtype
    shared = shared_gradients

    def block(k, carry):
        dcarry, dxs, dwh, dwi, sh, si, (wh_t, wi_t) = carry

        def inner(j, carry):
            dcarry, dxs, hps, ghs, gis, xts = carry
            virtual = time - 1 + pad - (k * chunk + j)  # >= time: padding
            t = jnp.minimum(virtual, time - 1)
            valid = _valid(lengths, t) & (virtual < time)
            dcarry, hp, gh, gi = step(t, dcarry, valid, wh_t)
            slot = chunk - 1 - j
            return (
                dcarry,
                _put(dxs, gi @ wi_t, t, opts.x_axis),
                _put(hps, hp, slot),
                _put(ghs, gh, slot),
                None if gis is None else _put(gis, gi, slot),
                _put(xts, _at(xs, t, opts.x_axis), slot),
            )

        def buffer(width):
            return jnp.zeros((chunk, batch, width), dtype)

        gis = None if shared else buffer(ni)
        dcarry, dxs, hps, ghs, gis, xts = jax.lax.fori_loop(
            0, chunk, inner, (dcarry, dxs, buffer(hidden), buffer(nh), gis, buffer(features))
        )
        rows = chunk * batch
        ghs = ghs.reshape((rows, nh))
        gis = ghs if shared else gis.reshape((rows, ni))
        dwh = dwh + hps.reshape((rows, hidden)).T @ ghs
        dwi = dwi + xts.reshape((rows, features)).T @ gis
        return dcarry, dxs, dwh, dwi, sh + ghs.sum(axis=0), si + gis.sum(axis=0), (wh_t, wi_t)

    init = (
        dcarry,
        jnp.zeros_like(xs),
        jnp.zeros((hidden, nh), dtype),
        jnp.zeros((features, ni), dtype),
        jnp.zeros((nh,), dtype),
        jnp.zeros((ni,), dtype),
        # The transposed weights travel in the loop's carry: closed over, XLA folds the
        # transpose into the matmul (contracting the weight's minor dimension), which ran at
        # half speed in the loop here (80 vs 45 us per step at b=64, 4h=512).
        (wh.T, wi.T),
    )
    *out, _ = jax.lax.fori_loop(0, blocks, block, init)
    return tuple(out)


# ------------------------------------------------------------------------------ forward pass


def _forward(opts, step, carry, xs, lengths, keep):
    """The forward loop shared by the GRU and the LSTM.

    ``step(carry, x_t) -> (new_carry, y_t, gates)`` is one cell step. Masking freezes the carry
    and zeroes the output at invalid steps; ``keep(new_carry, gates)`` is what each step saves
    for the backward pass (time-major), after masking.

    Returns:
        ``(final carry, ys [b, t, h], saved)``.
    """
    time, batch = xs.shape[opts.x_axis], xs.shape[1 - opts.x_axis]
    out = jax.tree.leaves(carry)[-1]  # the output: h (GRU), the h of (c, h) (LSTM)

    def body(state, t):
        carry, ys = state
        new, y, gates = step(carry, _at(xs, t, opts.x_axis))
        if opts.masked:
            valid = _valid(lengths, t)
            new = jax.tree.map(lambda a, b: jnp.where(valid, a, b), new, carry)
            y = jnp.where(valid, y, jnp.zeros_like(y))
        return (new, _put(ys, y, t, 1)), keep(new, gates)

    steps = jnp.arange(time, dtype=lengths.dtype)
    ys = jnp.zeros((batch, time, out.shape[-1]), out.dtype)
    (final, ys), saved = jax.lax.scan(body, (carry, ys), steps, unroll=opts.unroll)
    return final, ys, saved


# --------------------------------------------------------------------------------------- GRU


def _gru(
    opts: _Options,
    params: Mapping[str, Any],
    carry: Array,
    xs: Array,
    lengths: Array,
) -> tuple[Array, Array]:
    dtype = _dtype(params, carry, xs)
    p = jax.tree.map(lambda a: jnp.asarray(a, dtype), dict(params))
    wi = jnp.concatenate([p[f"i{g}"]["kernel"] for g in _GRU_GATES], axis=1)
    bi = jnp.concatenate([p[f"i{g}"]["bias"] for g in _GRU_GATES])
    wh = jnp.concatenate([p[f"h{g}"]["kernel"] for g in _GRU_GATES], axis=1)
    h, ys = _gru_recurrence(
        opts,
        (
            wi,
            bi,
            wh,
            p["hn"]["bias"],
            (_blocks(wi, 3, opts.x_axis == 0), _blocks(wh, 3, opts.split)),
        ),
        carry.astype(dtype),
        xs.astype(dtype),
        lengths,
    )
    return h.astype(carry.dtype), ys


def _projection(a: Array, w: Array | tuple[Array, ...], parts: int) -> list[Array]:
    """``a @ w`` in ``parts`` equal column blocks (one matmul per block if ``w`` is a tuple)."""
    if isinstance(w, tuple):
        return [a @ block for block in w]
    width = w.shape[1] // parts
    out = a @ w
    return [out[:, k * width : (k + 1) * width] for k in range(parts)]


def _blocks(w: Array, parts: int, split: bool) -> Array | tuple[Array, ...]:
    """``w``, or its ``parts`` column blocks when the step runs one matmul per gate."""
    width = w.shape[1] // parts
    return tuple(w[:, k * width : (k + 1) * width] for k in range(parts)) if split else w


def _gru_gates(opts, w, h, x):
    """One GRU step's gates on ``[b, ...]`` blocks: ``(r, z, hn, n)``."""
    _, bi, _, bhn, (wi_blocks, wh_blocks) = w
    hidden = h.shape[-1]
    ar, az, an = (
        a + bi[None, k * hidden : (k + 1) * hidden]
        for k, a in enumerate(_projection(x, wi_blocks, 3))
    )
    gr, gz, gn = _projection(h, wh_blocks, 3)
    r = _sigmoid(ar + gr)
    z = _sigmoid(az + gz)
    hn = gn + bhn[None, :]
    n = jnp.tanh(an + r * hn)
    return r, z, hn, n


def _gru_forward(opts, w, h0, xs, lengths, *, save):
    """``(h, ys, gates)``: outputs ``[b, t, h]``, gates time-major when ``save``."""

    def step(h, x):
        r, z, hn, n = _gru_gates(opts, w, h, x)
        new = n + z * (h - n)
        return new, new, (r, z, hn, n)

    return _forward(opts, step, h0, xs, lengths, lambda new, gates: gates if save else None)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _gru_recurrence(opts, w, h0, xs, lengths):
    h, ys, _ = _gru_forward(opts, w, h0, xs, lengths, save=False)
    return h, ys


def _gru_recurrence_fwd(opts, w, h0, xs, lengths):
    h, ys, gates = _gru_forward(opts, w, h0, xs, lengths, save=not opts.remat)
    return (h, ys), (w, h0, xs, lengths, ys, gates)


def _gru_recurrence_bwd(opts, residuals, cotangents):
    w, h0, xs, lengths, ys, saved = residuals
    wi, _, wh, _, blocks = w
    dh_last, dys = cotangents
    hidden = h0.shape[-1]

    def step(t, dh, valid, wh_t):
        hp = jnp.where(t > 0, _at(ys, jnp.maximum(t - 1, 0), 1), h0)
        if saved is None:
            r, z, hn, n = _gru_gates(opts, w, hp, _at(xs, t, opts.x_axis))
        else:
            r, z, hn, n = (_at(a, t) for a in saved)
        d = jnp.where(valid, dh + _at(dys, t, 1), jnp.zeros_like(dh))
        dan = d * (1.0 - z) * (1.0 - n * n)
        dhn = dan * r
        dar = dhn * hn * (1.0 - r)
        daz = d * (hp - n) * z * (1.0 - z)
        gh = jnp.concatenate([dar, daz, dhn], axis=1)  # of hp @ [W_hr | W_hz | W_hn]
        gi = jnp.concatenate([dar, daz, dan], axis=1)  # of x @ [W_ir | W_iz | W_in]
        dprev = jnp.where(valid, d * z + gh @ wh_t, dh)
        return dprev, hp, gh, gi

    dh0, dxs, dwh, dwi, sh, si = _reverse_pass(
        opts, step, dh_last, xs, lengths, wi, wh, (3 * hidden, 3 * hidden)
    )
    # The step reads W_h through its gate blocks when split; the whole gradient goes to W_h.
    return (dwi, si, dwh, sh[2 * hidden :], jax.tree.map(jnp.zeros_like, blocks)), dh0, dxs, None


_gru_recurrence.defvjp(_gru_recurrence_fwd, _gru_recurrence_bwd)


# -------------------------------------------------------------------------------------- LSTM


def _lstm(
    opts: _Options,
    params: Mapping[str, Any],
    carry: tuple[Array, Array],
    xs: Array,
    lengths: Array,
) -> tuple[tuple[Array, Array], Array]:
    c0, h0 = carry
    dtype = _dtype(params, carry, xs)
    p = jax.tree.map(lambda a: jnp.asarray(a, dtype), dict(params))
    wi = jnp.concatenate([p[f"i{g}"]["kernel"] for g in _LSTM_GATES], axis=1)
    wh = jnp.concatenate([p[f"h{g}"]["kernel"] for g in _LSTM_GATES], axis=1)
    b = jnp.concatenate([p[f"h{g}"]["bias"] for g in _LSTM_GATES])
    # Both projections in one matmul: [x | h] @ [W_i ; W_h] (measured 0.95 -> 0.88 of flax's
    # forward at b=64, h=128; an LSTM adds them anyway, unlike the GRU's n gate).
    w = (wi, wh, b, _blocks(jnp.concatenate([wi, wh], axis=0), 4, opts.split))
    (c, h), ys = _lstm_recurrence(
        opts, w, (c0.astype(dtype), h0.astype(dtype)), xs.astype(dtype), lengths
    )
    return (c.astype(c0.dtype), h.astype(h0.dtype)), ys


def _lstm_gates(opts, w, h, x):
    """One LSTM step's gates on ``[b, ...]`` blocks: ``(i, f, g, o)``."""
    _, _, b, w_both = w
    hidden = h.shape[-1]
    parts = _projection(jnp.concatenate([x, h], axis=1), w_both, 4)
    ai, af, ag, ao = (p + b[None, k * hidden : (k + 1) * hidden] for k, p in enumerate(parts))
    return _sigmoid(ai), _sigmoid(af), jnp.tanh(ag), _sigmoid(ao)


def _lstm_forward(opts, w, carry, xs, lengths, *, save):
    """``(carry, ys, saved)``: outputs ``[b, t, h]`` and what the backward pass needs.

    ``saved`` is ``None`` (``save=None``), the memory after each step (``"memory"``) or the
    memory and the gates (``"gates"``), time-major.
    """

    def step(carry, x):
        c, h = carry
        i, f, g, o = _lstm_gates(opts, w, h, x)
        new_c = f * c + i * g
        new_h = o * jnp.tanh(new_c)
        return (new_c, new_h), new_h, (i, f, g, o)

    def keep(new, gates):
        return {None: None, "memory": (new[0],), "gates": (new[0], *gates)}[save]

    return _forward(opts, step, carry, xs, lengths, keep)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lstm_recurrence(opts, w, carry, xs, lengths):
    final, ys, _ = _lstm_forward(opts, w, carry, xs, lengths, save=None)
    return final, ys


def _lstm_recurrence_fwd(opts, w, carry, xs, lengths):
    final, ys, (cs, *gates) = _lstm_forward(
        opts, w, carry, xs, lengths, save="memory" if opts.remat else "gates"
    )
    return (final, ys), (w, carry, xs, lengths, ys, cs, tuple(gates) or None)


def _lstm_recurrence_bwd(opts, residuals, cotangents):
    w, (c0, h0), xs, lengths, ys, cs, saved = residuals
    wi, wh, _, _ = w
    (dc_last, dh_last), dys = cotangents
    hidden = h0.shape[-1]

    def step(t, dcarry, valid, wh_t):
        dc, dh = dcarry
        first = t > 0
        hp = jnp.where(first, _at(ys, jnp.maximum(t - 1, 0), 1), h0)
        # Memory is frozen at invalid steps, so cs[t - 1] is the memory before any valid step t.
        cp = jnp.where(first, _at(cs, jnp.maximum(t - 1, 0)), c0)
        if saved is None:
            i, f, g, o = _lstm_gates(opts, w, hp, _at(xs, t, opts.x_axis))
        else:
            i, f, g, o = (_at(a, t) for a in saved)
        tc = jnp.tanh(f * cp + i * g)
        zero = jnp.zeros_like(dh)
        d = jnp.where(valid, dh + _at(dys, t, 1), zero)
        dcn = jnp.where(valid, dc, zero) + d * o * (1.0 - tc * tc)
        gates = jnp.concatenate(
            [
                dcn * g * i * (1.0 - i),
                dcn * cp * f * (1.0 - f),
                dcn * i * (1.0 - g * g),
                d * tc * o * (1.0 - o),
            ],
            axis=1,
        )
        dh_prev = jnp.where(valid, gates @ wh_t, dh)
        dc_prev = jnp.where(valid, dcn * f, dc)
        return (dc_prev, dh_prev), hp, gates, gates

    (dc0, dh0), dxs, dwh, dwi, sh, _ = _reverse_pass(
        opts,
        step,
        (dc_last, dh_last),
        xs,
        lengths,
        wi,
        wh,
        (4 * hidden, 4 * hidden),
        shared_gradients=True,
    )
    # The step reads the weights through [W_i ; W_h] (in gate blocks when split): the gradient
    # goes to W_i and W_h, whose values the step uses for the same products.
    zeros = jax.tree.map(jnp.zeros_like, w[3])
    return (dwi, dwh, sh, zeros), (dc0, dh0), dxs, None


_lstm_recurrence.defvjp(_lstm_recurrence_fwd, _lstm_recurrence_bwd)
