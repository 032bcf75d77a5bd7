"""PyTorch ``nn.GRU``/``nn.LSTM`` weights to h0 Linen models and back.

The equations agree once the weights are laid out right:

- GRU. PyTorch: ``r = σ(W_ir x + b_ir + W_hr h + b_hr)``, ``z`` likewise, ``n = tanh(W_in x + b_in
  + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``. Flax's ``GRUCell`` has biases on
  ``ir``, ``iz``, ``in`` and ``hn`` only, so ``b_hr`` and ``b_hz`` fold into the ``ir``/``iz``
  biases, and ``b_hn`` stays inside the reset product as ``hn``'s bias.
- LSTM. PyTorch's gate order is ``i, f, g, o`` (rows of ``weight_ih``/``weight_hh``); Flax's
  ``LSTMCell`` has input kernels ``ii, if, ig, io`` without bias and hidden kernels ``hi, hf, hg,
  ho`` with bias, which holds ``b_ih + b_hh``. Flax's carry is ``(c, h)``, PyTorch's ``(h, c)``.

PyTorch is needed only by :func:`to_torch` and to read tensors; a state dict of NumPy arrays works
without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import numpy as np

from h0._runner import RNN, Bidirectional, Stacked, concat_outputs
from h0._strategies import Learned, LearnedNoisy, PerSequence, Zeros

_GATES = {"GRU": "rzn", "LSTM": "ifgo"}
_KEY = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor or parameter
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _config(module_or_state_dict: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The weights (NumPy) and the settings of a torch RNN module or its state dict."""
    obj = module_or_state_dict
    settings: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        state = dict(obj)
    elif hasattr(obj, "state_dict"):
        mode = getattr(obj, "mode", None)
        if mode not in ("GRU", "LSTM"):
            raise ValueError(
                f"from_torch supports nn.GRU and nn.LSTM, got {type(obj).__name__} (mode={mode!r})."
            )
        if getattr(obj, "proj_size", 0):
            raise ValueError("from_torch does not support nn.LSTM with proj_size > 0.")
        settings = {
            "mode": mode,
            "batch_first": bool(obj.batch_first),
            "dropout": float(obj.dropout),
        }
        state = dict(obj.state_dict())
    else:
        raise TypeError(
            "module_or_state_dict must be an nn.GRU/nn.LSTM or its state_dict(), got "
            f"{type(obj).__name__}."
        )
    return {k: _numpy(v) for k, v in state.items()}, settings


def _layout(weights: dict[str, np.ndarray], mode: str | None) -> dict[str, Any]:
    layers, directions = set(), set()
    for key in weights:
        match = _KEY.match(key)
        if match is None:
            continue
        if match.group(2) == "hr":
            raise ValueError("from_torch does not support nn.LSTM with proj_size > 0.")
        layers.add(int(match.group(3)))
        directions.add(bool(match.group(4)))
    if "weight_hh_l0" not in weights:
        raise ValueError(
            "The state dict has no 'weight_hh_l0': pass an nn.GRU/nn.LSTM or its state_dict() "
            f"(keys found: {sorted(weights)[:6]})."
        )
    num_layers = max(layers) + 1
    if sorted(layers) != list(range(num_layers)):
        raise ValueError(
            f"The state dict's layers are {sorted(layers)}; expected 0..{num_layers - 1}."
        )
    rows, hidden = weights["weight_hh_l0"].shape
    gates = rows // hidden
    inferred = {3: "GRU", 4: "LSTM"}.get(gates)
    if inferred is None or rows != gates * hidden:
        raise ValueError(
            f"weight_hh_l0 has shape {(rows, hidden)}: a GRU has (3 * hidden, hidden), an LSTM "
            "(4 * hidden, hidden); nn.RNN is not supported."
        )
    if mode is not None and mode != inferred:
        raise ValueError(f"mode={mode!r} but weight_hh_l0 has shape {(rows, hidden)} ({inferred}).")
    return {
        "mode": inferred,
        "num_layers": num_layers,
        "bidirectional": True in directions,
        "hidden": hidden,
    }


def _gru_cell(w_ih, w_hh, b_ih, b_hh, h: int) -> dict[str, Any]:
    wi, wh = np.split(w_ih, 3), np.split(w_hh, 3)
    bi, bh = np.split(b_ih, 3), np.split(b_hh, 3)
    return {
        "ir": {"kernel": wi[0].T, "bias": bi[0] + bh[0]},
        "iz": {"kernel": wi[1].T, "bias": bi[1] + bh[1]},
        "in": {"kernel": wi[2].T, "bias": bi[2]},
        "hr": {"kernel": wh[0].T},
        "hz": {"kernel": wh[1].T},
        "hn": {"kernel": wh[2].T, "bias": bh[2]},
    }


def _lstm_cell(w_ih, w_hh, b_ih, b_hh, h: int) -> dict[str, Any]:
    wi, wh, b = np.split(w_ih, 4), np.split(w_hh, 4), np.split(b_ih + b_hh, 4)
    params: dict[str, Any] = {}
    for gate, k_i, k_h, bias in zip("ifgo", wi, wh, b, strict=True):
        params[f"i{gate}"] = {"kernel": k_i.T}
        params[f"h{gate}"] = {"kernel": k_h.T, "bias": bias}
    return params


def _initial(value: Any, name: str, layout: dict[str, Any]) -> np.ndarray | None:
    """A learned ``h0``/``c0`` as ``[layers * directions, rows, hidden]`` (rows 1 or batch)."""
    if value is None:
        return None
    value = _numpy(value)
    count = layout["num_layers"] * (2 if layout["bidirectional"] else 1)
    if value.ndim == 2:
        value = value[:, None, :]
    if value.ndim != 3 or value.shape[0] != count or value.shape[2] != layout["hidden"]:
        raise ValueError(
            f"{name} has shape {value.shape}; expected ({count}, 1 or batch, {layout['hidden']}) "
            "(num_layers * num_directions, rows, hidden_size), as nn.GRU/nn.LSTM take it."
        )
    return value


def from_torch(
    module_or_state_dict: Any,
    *,
    h0: Any = None,
    c0: Any = None,
    dropout: float | None = None,
    return_carry: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build the h0 Linen model and variables that compute what a PyTorch GRU/LSTM computes.

    Args:
        module_or_state_dict: An ``nn.GRU`` or ``nn.LSTM`` (any ``num_layers``, ``bidirectional``,
            ``batch_first``, ``bias``), or its ``state_dict()`` (tensors or NumPy arrays); a state
            dict's keys ``'h0'``/``'c0'`` are used as the learned states when present.
        h0: A learned initial hidden state, shape ``(num_layers * num_directions, 1, hidden)``
            (or without the middle axis): each layer/direction gets :class:`h0.Learned` with that
            value. With ``batch`` rows instead of 1 (one state per batch row), each gets
            :class:`h0.PerSequence` with ``batch`` rows; call the model with ``ids=arange(batch)``.
        c0: The LSTM's learned initial cell state, same shapes. With only one of ``h0``/``c0``
            the other stays zero.
        dropout: Dropout between layers; default the module's ``dropout`` (0 for a state dict).
        return_carry: Build the model to return ``(carry, outputs)``.

    Returns:
        ``(model, variables)``: an :class:`h0.RNN` (one layer), :class:`h0.Bidirectional` (one
        bidirectional layer) or :class:`h0.Stacked`, and its ``{'params': ...}``. The model takes
        batch-major inputs ``[batch, time, features]`` whatever the module's ``batch_first``;
        ``seq_lengths`` gives what ``pack_padded_sequence`` gives in PyTorch.

    Raises:
        ValueError: For ``nn.RNN``, ``proj_size > 0``, or ``h0``/``c0`` of the wrong shape.
    """
    weights, settings = _config(module_or_state_dict)
    layout = _layout(weights, settings.get("mode"))
    h0 = weights.pop("h0", None) if h0 is None else h0
    c0 = weights.pop("c0", None) if c0 is None else c0
    lstm = layout["mode"] == "LSTM"
    if c0 is not None and not lstm:
        raise ValueError("c0 was given but the module is a GRU, whose carry has no cell state.")
    h_init, c_init = _initial(h0, "h0", layout), _initial(c0, "c0", layout)
    hidden = layout["hidden"]
    build_cell = _lstm_cell if lstm else _gru_cell
    rows = {v.shape[1] for v in (h_init, c_init) if v is not None}
    if len(rows) > 1:
        raise ValueError(f"h0 and c0 have different numbers of rows {sorted(rows)}.")
    per_sequence = bool(rows) and rows.pop() > 1

    def direction(layer: int, reverse: bool) -> tuple[RNN, dict[str, Any]]:
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        gates = 4 if lstm else 3
        zeros = np.zeros(gates * hidden, np.float32)
        params: dict[str, Any] = {
            "cell": build_cell(
                weights[f"weight_ih{suffix}"],
                weights[f"weight_hh{suffix}"],
                weights.get(f"bias_ih{suffix}", zeros),
                weights.get(f"bias_hh{suffix}", zeros),
                hidden,
            )
        }
        index = layer * (2 if layout["bidirectional"] else 1) + int(reverse)
        leaves = {"h": h_init, "c": c_init} if lstm else {"h": h_init}
        given = {name: v[index] for name, v in leaves.items() if v is not None}
        if not given:
            strategy = Zeros()
        elif per_sequence:
            num = next(iter(given.values())).shape[0]
            strategy = PerSequence(num)
            params["initial_state"] = {}
            for name in leaves:
                table = given.get(name, np.zeros((num, hidden), np.float32))
                params["initial_state"][f"init_{name}"] = table
                params["initial_state"][f"init_{name}_fallback"] = np.zeros(hidden, np.float32)
        else:
            strategy = Learned(learn=tuple(given)) if lstm else Learned()
            params["initial_state"] = {f"init_{n}": v[0] for n, v in given.items()}
        cell = nn.LSTMCell(hidden) if lstm else nn.GRUCell(hidden)
        return RNN(cell, strategy, reverse=reverse), params

    layers, layer_params = [], []
    for layer in range(layout["num_layers"]):
        forward, p_forward = direction(layer, False)
        if layout["bidirectional"]:
            backward, p_backward = direction(layer, True)
            layers.append(Bidirectional(forward, backward))
            layer_params.append({"forward": p_forward, "backward": p_backward})
        else:
            layers.append(forward)
            layer_params.append(p_forward)

    if len(layers) == 1:
        model = layers[0].clone(return_carry=return_carry)
        params = layer_params[0]
    else:
        rate = settings.get("dropout", 0.0) if dropout is None else dropout
        model = Stacked(layers, dropout=rate, return_carry=return_carry)
        params = {f"layers_{i}": p for i, p in enumerate(layer_params)}
    return model, {"params": _to_jax(params)}


def _to_jax(tree: Any) -> Any:
    import jax.numpy as jnp

    if isinstance(tree, dict):
        return {k: _to_jax(v) for k, v in tree.items()}
    return jnp.asarray(tree)


def _directions(model: nn.Module, params: dict[str, Any]) -> list[list[tuple[RNN, dict]]]:
    """Layers of ``[(rnn, params)]`` (one per direction) of an RNN/Bidirectional/Stacked."""

    def layer(module: nn.Module, p: dict[str, Any]) -> list[tuple[RNN, dict]]:
        if isinstance(module, Bidirectional):
            if module.merge is not concat_outputs:
                raise ValueError("to_torch needs Bidirectional's default (concatenating) merge.")
            return [(module.forward, p["forward"]), (module.backward, p["backward"])]
        if isinstance(module, RNN):
            if module.reverse:
                raise ValueError(
                    "to_torch cannot express a lone reverse=True RNN in nn.GRU/nn.LSTM."
                )
            return [(module, p)]
        raise ValueError(
            f"to_torch supports h0.RNN, h0.Bidirectional and h0.Stacked, got {type(module).__name__}."
        )

    if isinstance(model, Stacked):
        return [layer(m, params[f"layers_{i}"]) for i, m in enumerate(model.layers)]
    return [layer(model, params)]


def to_torch(
    model: nn.Module, variables: Mapping[str, Any], *, batch_first: bool = True
) -> tuple[Any, dict[str, Any]]:
    """Build the ``nn.GRU``/``nn.LSTM`` that computes what an h0 model computes.

    Args:
        model: An :class:`h0.RNN`, :class:`h0.Bidirectional` or :class:`h0.Stacked` of those, with
            ``nn.GRUCell`` or ``nn.LSTMCell``/``nn.OptimizedLSTMCell`` cells of one hidden size and
            :class:`h0.Zeros` or :class:`h0.Learned` initial states.
        variables: The model's variables (``{'params': ...}``).
        batch_first: The returned module's ``batch_first``.

    Returns:
        ``(module, states)``: the torch module (float32, eval mode) and the learned initial states
        as a dict with ``'h0'`` (LSTM also ``'c0'``) of shape ``(num_layers * num_directions, 1,
        hidden)``; empty when every initial state is zeros. Expand them over the batch:
        ``module(x, states['h0'].expand(-1, batch, -1).contiguous())``.

    Raises:
        ValueError: For other cells, strategies or merges, or mixed hidden sizes.
    """
    import torch

    params = variables["params"]
    layers = _directions(model, params)
    kinds, hiddens = set(), set()
    for directions in layers:
        for rnn, _ in directions:
            if isinstance(rnn.cell, nn.GRUCell):
                kinds.add("GRU")
            elif isinstance(rnn.cell, nn.LSTMCell | nn.OptimizedLSTMCell):
                kinds.add("LSTM")
            else:
                raise ValueError(
                    f"to_torch supports GRUCell and LSTMCell, got {type(rnn.cell).__name__}."
                )
            hiddens.add(rnn.cell.features)
            if not isinstance(rnn.initial_state, Zeros | Learned) or isinstance(
                rnn.initial_state, LearnedNoisy
            ):
                raise ValueError(
                    "to_torch supports Zeros and Learned initial states, got "
                    f"{type(rnn.initial_state).__name__}."
                )
    if len(kinds) != 1 or len(hiddens) != 1:
        raise ValueError(
            f"to_torch needs one cell type and hidden size, got {sorted(kinds)} and {sorted(hiddens)}."
        )
    (kind,), (hidden,) = kinds, hiddens
    bidirectional = len(layers[0]) == 2
    if any(len(d) != len(layers[0]) for d in layers):
        raise ValueError("to_torch needs every layer to be bidirectional, or none.")
    first_cell = layers[0][0][1]["cell"]
    input_size = int(np.shape(first_cell["ir" if kind == "GRU" else "ii"]["kernel"])[0])
    dropout = model.dropout if isinstance(model, Stacked) else 0.0
    cls = torch.nn.GRU if kind == "GRU" else torch.nn.LSTM
    module = cls(
        input_size,
        hidden,
        num_layers=len(layers),
        bias=True,
        batch_first=batch_first,
        dropout=dropout,
        bidirectional=bidirectional,
    )
    state: dict[str, torch.Tensor] = {}
    h0s, c0s, any_learned = [], [], False
    for index, directions in enumerate(layers):
        for reverse, (_, p) in enumerate(directions):
            suffix = f"_l{index}" + ("_reverse" if reverse else "")
            c = {
                k: {n: np.asarray(a, np.float32) for n, a in v.items()}
                for k, v in p["cell"].items()
            }
            if kind == "GRU":
                w_ih = np.concatenate([c[f"i{g}"]["kernel"].T for g in "rzn"])
                w_hh = np.concatenate([c[f"h{g}"]["kernel"].T for g in "rzn"])
                b_ih = np.concatenate([c[f"i{g}"]["bias"] for g in "rzn"])
                b_hh = np.concatenate([np.zeros(2 * hidden, np.float32), c["hn"]["bias"]])
            else:
                w_ih = np.concatenate([c[f"i{g}"]["kernel"].T for g in "ifgo"])
                w_hh = np.concatenate([c[f"h{g}"]["kernel"].T for g in "ifgo"])
                b_ih = np.concatenate([c[f"h{g}"]["bias"] for g in "ifgo"])
                b_hh = np.zeros(4 * hidden, np.float32)
            for name, value in [
                ("weight_ih", w_ih),
                ("weight_hh", w_hh),
                ("bias_ih", b_ih),
                ("bias_hh", b_hh),
            ]:
                state[name + suffix] = torch.from_numpy(np.ascontiguousarray(value))
            init = p.get("initial_state", {})
            any_learned = any_learned or bool(init)
            h0s.append(np.asarray(init.get("init_h", np.zeros(hidden)), np.float32))
            c0s.append(np.asarray(init.get("init_c", np.zeros(hidden)), np.float32))
    module.load_state_dict(state)
    module.eval()
    states: dict[str, Any] = {}
    if any_learned:
        states["h0"] = torch.from_numpy(np.stack(h0s)[:, None, :])
        if kind == "LSTM":
            states["c0"] = torch.from_numpy(np.stack(c0s)[:, None, :])
    return module, states
