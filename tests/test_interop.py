"""h0.interop against real torch.nn.GRU / nn.LSTM runs with random weights."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import h0
from h0.interop import from_torch, to_torch

torch = pytest.importorskip("torch")

F, H, B, T = 3, 5, 4, 7
REPO = Path(__file__).resolve().parents[1]
ATOL = 1e-5


class WithLearnedH0(torch.nn.Module):
    """The usual PyTorch pattern: an RNN plus ``nn.Parameter`` initial states."""

    def __init__(self, rnn: torch.nn.Module, rows: int = 1):
        super().__init__()
        self.rnn = rnn
        count = rnn.num_layers * (2 if rnn.bidirectional else 1)
        self.h0 = torch.nn.Parameter(torch.randn(count, rows, rnn.hidden_size))
        if isinstance(rnn, torch.nn.LSTM):
            self.c0 = torch.nn.Parameter(torch.randn(count, rows, rnn.hidden_size))

    def initial(self, batch: int):
        h = self.h0.expand(-1, batch, -1).contiguous()
        if isinstance(self.rnn, torch.nn.LSTM):
            return (h, self.c0.expand(-1, batch, -1).contiguous())
        return h

    def forward(self, x):
        batch = x.shape[0] if self.rnn.batch_first else x.shape[1]
        return self.rnn(x, self.initial(batch))


def _torch_rnn(kind: str, num_layers: int, bidirectional: bool, batch_first: bool, seed: int = 0):
    torch.manual_seed(seed)
    cls = torch.nn.GRU if kind == "GRU" else torch.nn.LSTM
    return cls(
        F, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first
    ).eval()


def _inputs(batch_first: bool, seed: int = 1):
    x = np.random.default_rng(seed).normal(size=(B, T, F)).astype(np.float32)
    torch_x = torch.from_numpy(x if batch_first else x.transpose(1, 0, 2).copy())
    return jnp.asarray(x), torch_x


def _torch_out(y, batch_first: bool) -> np.ndarray:
    y = y.detach().numpy()
    return y if batch_first else y.transpose(1, 0, 2)


def _final_states(carry, model, lstm: bool):
    """h0's final carries in torch's (h_n[, c_n]) layout: [layers * directions, batch, hidden]."""
    layers = carry if isinstance(model, h0.Stacked) else (carry,)
    per_direction = []
    for layer_carry, layer in zip(
        layers, model.layers if isinstance(model, h0.Stacked) else (model,), strict=True
    ):
        per_direction += list(layer_carry) if isinstance(layer, h0.Bidirectional) else [layer_carry]
    if lstm:
        return np.stack([h for c, h in per_direction]), np.stack([c for c, h in per_direction])
    return (np.stack(per_direction),)


CASES = [
    # kind, num_layers, bidirectional, batch_first, learned initial state
    ("GRU", 1, False, True, False),
    ("GRU", 2, True, False, True),
    ("GRU", 3, False, True, True),
    ("LSTM", 1, False, False, False),
    ("LSTM", 2, True, True, True),
    ("LSTM", 1, True, False, True),
]


@pytest.mark.parametrize(("kind", "num_layers", "bidirectional", "batch_first", "learned"), CASES)
def test_from_torch_matches_torch(kind, num_layers, bidirectional, batch_first, learned):
    rnn = _torch_rnn(kind, num_layers, bidirectional, batch_first)
    x, torch_x = _inputs(batch_first)
    lstm = kind == "LSTM"
    if learned:
        wrapper = WithLearnedH0(rnn).eval()
        torch_y, torch_state = wrapper(torch_x)
        model, variables = from_torch(
            rnn, h0=wrapper.h0, c0=getattr(wrapper, "c0", None), return_carry=True
        )
    else:
        torch_y, torch_state = rnn(torch_x)
        model, variables = from_torch(rnn, return_carry=True)
    carry, y = model.apply(variables, x)
    diff = np.abs(np.asarray(y) - _torch_out(torch_y, batch_first)).max()
    assert diff <= ATOL, diff
    torch_state = torch_state if lstm else (torch_state,)
    for ours, theirs in zip(_final_states(carry, model, lstm), torch_state, strict=True):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_seq_lengths_match_packed_sequences(kind):
    rnn = _torch_rnn(kind, 2, True, True, seed=2)
    wrapper = WithLearnedH0(rnn).eval()
    x, torch_x = _inputs(True, seed=3)
    lengths = np.array([7, 3, 1, 5])
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch_x, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
    )
    torch_packed, torch_state = rnn(packed, wrapper.initial(B))
    torch_y, _ = torch.nn.utils.rnn.pad_packed_sequence(
        torch_packed, batch_first=True, total_length=T
    )
    model, variables = from_torch(
        rnn, h0=wrapper.h0, c0=getattr(wrapper, "c0", None), return_carry=True
    )
    carry, y = model.apply(variables, x, seq_lengths=jnp.asarray(lengths))
    np.testing.assert_allclose(y, torch_y.detach().numpy(), atol=ATOL, rtol=0)
    torch_state = torch_state if kind == "LSTM" else (torch_state,)
    for ours, theirs in zip(_final_states(carry, model, kind == "LSTM"), torch_state, strict=True):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_modules_without_bias(kind):
    torch.manual_seed(7)
    cls = torch.nn.GRU if kind == "GRU" else torch.nn.LSTM
    rnn = cls(F, H, num_layers=2, bias=False, batch_first=True).eval()
    x, torch_x = _inputs(True, seed=8)
    model, variables = from_torch(rnn)
    np.testing.assert_allclose(
        model.apply(variables, x), rnn(torch_x)[0].detach().numpy(), atol=ATOL, rtol=0
    )


def test_state_dict_with_per_row_h0_becomes_per_sequence():
    rnn = _torch_rnn("GRU", 1, False, True, seed=4)
    wrapper = WithLearnedH0(rnn, rows=B).eval()  # one learned state per batch row
    x, torch_x = _inputs(True, seed=5)
    torch_y, _ = rnn(torch_x, wrapper.h0)
    # A wrapper's state dict: the RNN's keys under 'rnn.', the learned state as 'h0'.
    state = wrapper.state_dict()
    rnn_state = {k.removeprefix("rnn."): v for k, v in state.items() if k.startswith("rnn.")}
    model, variables = from_torch({**rnn_state, "h0": state["h0"]})
    assert isinstance(model.initial_state, h0.PerSequence)
    y = model.apply(variables, x, ids=jnp.arange(B))
    np.testing.assert_allclose(y, torch_y.detach().numpy(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_to_torch_round_trip(kind):
    cell = (lambda: nn.GRUCell(H)) if kind == "GRU" else (lambda: nn.LSTMCell(H))
    model = h0.Stacked(
        [
            h0.Bidirectional(
                h0.RNN(cell(), h0.Learned("normal")),
                h0.RNN(cell(), h0.Zeros(), reverse=True),
            ),
            h0.Bidirectional(
                h0.RNN(cell(), h0.Zeros()),
                h0.RNN(cell(), h0.Learned("normal"), reverse=True),
            ),
        ]
    )
    x, torch_x = _inputs(True, seed=6)
    # Random values for every parameter (Flax would start biases at zero), drawn into the shapes
    # the model's init gives, so that every weight and bias is mapped.
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)
    leaves, treedef = jax.tree.flatten(shapes)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    variables = jax.tree.unflatten(
        treedef, [0.4 * jax.random.normal(k, s.shape) for s, k in zip(leaves, keys, strict=True)]
    )
    module, states = to_torch(model, variables)
    initial = states["h0"].expand(-1, B, -1).contiguous()
    if kind == "LSTM":
        initial = (initial, states["c0"].expand(-1, B, -1).contiguous())
    torch_y, _ = module(torch_x, initial)
    ours = jax.jit(model.apply)(variables, x)
    np.testing.assert_allclose(ours, torch_y.detach().numpy(), atol=ATOL, rtol=0)
    # And back again: from_torch of the exported module computes the same.
    back, back_vars = from_torch(module, h0=states["h0"], c0=states.get("c0"))
    np.testing.assert_allclose(jax.jit(back.apply)(back_vars, x), ours, atol=ATOL, rtol=0)


def test_errors():
    with pytest.raises(ValueError, match=r"supports nn\.GRU and nn\.LSTM, got RNN"):
        from_torch(torch.nn.RNN(F, H))
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(torch.nn.LSTM(F, H, proj_size=2))
    with pytest.raises(
        ValueError, match=r"h0 has shape \(3, 1, 5\); expected \(2, 1 or batch, 5\)"
    ):
        from_torch(torch.nn.GRU(F, H, bidirectional=True), h0=np.zeros((3, 1, H)))
    with pytest.raises(ValueError, match="c0 was given but the module is a GRU"):
        from_torch(torch.nn.GRU(F, H), c0=np.zeros((1, 1, H)))
    with pytest.raises(TypeError, match=r"must be an nn\.GRU/nn\.LSTM or its state_dict"):
        from_torch(42)
    model = h0.RNN(nn.GRUCell(H), h0.PerSequence(3))
    variables = model.init(jax.random.key(0), jnp.zeros((2, 4, F)), ids=jnp.array([0, 1]))
    with pytest.raises(
        ValueError, match="supports Zeros and Learned initial states, got PerSequence"
    ):
        to_torch(model, variables)
    reverse = h0.RNN(nn.GRUCell(H), reverse=True)
    with pytest.raises(ValueError, match="lone reverse=True RNN"):
        to_torch(reverse, reverse.init(jax.random.key(0), jnp.zeros((2, 4, F))))


def test_import_h0_does_not_import_torch():
    code = "import sys, h0, h0.interop, h0.nnx; assert 'torch' not in sys.modules, 'torch imported'"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)


def test_docs_examples_run():
    """Every python block of docs/porting_from_pytorch.md, run in order in one namespace."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "porting_from_pytorch.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/porting_from_pytorch.md", "exec"), namespace)
