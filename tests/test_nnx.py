"""h0.nnx against h0's Linen modules with the same weights, plus NNX-specific behaviour."""

from __future__ import annotations

import re
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import h0
from h0 import nnx as h0nnx

# ---------------------------------------------------------------------------------------------
# Weight mapping between NNX cells (fused or per-gate Linear layers) and Linen cells (per gate).

_GATES = {"gru": "rzn", "lstm": "ifgo", "optimized_lstm": "ifgo"}


def _kind(cell) -> str:
    for kind, cls in [
        ("optimized_lstm", nnx.OptimizedLSTMCell),
        ("lstm", nnx.LSTMCell),
        ("gru", nnx.GRUCell),
        ("simple", nnx.SimpleCell),
    ]:
        if isinstance(cell, cls):
            return kind
    raise AssertionError(type(cell))


def cell_to_linen(kind: str, p: dict) -> dict:
    """An NNX cell's pure-dict params as the Linen cell of the same kind names them."""
    if kind == "gru":
        ki = jnp.split(p["dense_i"]["kernel"], 3, axis=-1)
        bi = jnp.split(p["dense_i"]["bias"], 3, axis=-1)
        kh = jnp.split(p["dense_h"]["kernel"], 3, axis=-1)
        out = {f"i{g}": {"kernel": k, "bias": b} for g, k, b in zip("rzn", ki, bi, strict=True)}
        out |= {f"h{g}": {"kernel": k} for g, k in zip("rzn", kh, strict=True)}
        out["hn"]["bias"] = jnp.zeros_like(bi[2])  # NNX's GRUCell has no bias on W_hn h
        return out
    if kind == "lstm":
        return {
            **{f"i{g}": {"kernel": p[f"i{g}" if g != "f" else "if_"]["kernel"]} for g in "ifgo"},
            **{f"h{g}": dict(p[f"h{g}"]) for g in "ifgo"},
        }
    if kind == "optimized_lstm":
        ki = jnp.split(p["dense_i"]["kernel"], 4, axis=-1)
        kh = jnp.split(p["dense_h"]["kernel"], 4, axis=-1)
        bh = jnp.split(p["dense_h"]["bias"], 4, axis=-1)
        return {
            **{f"i{g}": {"kernel": k} for g, k in zip("ifgo", ki, strict=True)},
            **{f"h{g}": {"kernel": k, "bias": b} for g, k, b in zip("ifgo", kh, bh, strict=True)},
        }
    if kind == "simple":
        return {"i": dict(p["dense_i"]), "h": {"kernel": p["dense_h"]["kernel"]}}
    raise AssertionError(kind)


def cell_grads_to_nnx(kind: str, g: dict) -> dict:
    """Linen cell gradients in the NNX cell's layout (drops Linen's GRU ``hn`` bias)."""
    cat = lambda parts: jnp.concatenate(parts, axis=-1)
    if kind == "gru":
        return {
            "dense_i": {
                "kernel": cat([g[f"i{x}"]["kernel"] for x in "rzn"]),
                "bias": cat([g[f"i{x}"]["bias"] for x in "rzn"]),
            },
            "dense_h": {"kernel": cat([g[f"h{x}"]["kernel"] for x in "rzn"])},
        }
    if kind == "lstm":
        return {
            **{(f"i{x}" if x != "f" else "if_"): {"kernel": g[f"i{x}"]["kernel"]} for x in "ifgo"},
            **{f"h{x}": dict(g[f"h{x}"]) for x in "ifgo"},
        }
    if kind == "optimized_lstm":
        return {
            "dense_i": {"kernel": cat([g[f"i{x}"]["kernel"] for x in "ifgo"])},
            "dense_h": {
                "kernel": cat([g[f"h{x}"]["kernel"] for x in "ifgo"]),
                "bias": cat([g[f"h{x}"]["bias"] for x in "ifgo"]),
            },
        }
    if kind == "simple":
        return {"dense_i": dict(g["i"]), "dense_h": {"kernel": g["h"]["kernel"]}}
    raise AssertionError(kind)


def _rnn_to_linen(module, p: dict, to_linen: bool) -> dict:
    """Map one runner's pure params (NNX -> Linen, or Linen grads -> NNX layout)."""
    if isinstance(module, h0nnx.Bidirectional):
        return {
            d: _rnn_to_linen(getattr(module, d), p[d], to_linen) for d in ("forward", "backward")
        }
    if isinstance(module, h0nnx.Stacked):
        if to_linen:
            return {
                f"layers_{i}": _rnn_to_linen(layer, p["layers"][i], True)
                for i, layer in enumerate(module.layers)
            }
        return {
            "layers": {
                i: _rnn_to_linen(layer, p[f"layers_{i}"], False)
                for i, layer in enumerate(module.layers)
            }
        }
    kind = _kind(module.cell)
    out = {"cell": (cell_to_linen if to_linen else cell_grads_to_nnx)(kind, p["cell"])}
    if p.get("initial_state"):
        out["initial_state"] = p["initial_state"]
    return out


def linen_params(model) -> dict:
    """The Linen params with the same values as an h0.nnx model's."""
    return _rnn_to_linen(model, nnx.to_pure_dict(nnx.state(model, nnx.Param)), True)


def nnx_layout(model, linen_grads: dict) -> dict:
    """Linen gradients rearranged into the h0.nnx model's pure-dict layout."""
    return _rnn_to_linen(model, linen_grads, False)


def max_diff(a, b) -> float:
    diffs = jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))), a, b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return max(jax.tree.leaves(diffs), default=0.0)


# ---------------------------------------------------------------------------------------------
# Models built twice: as h0.nnx and as h0 (Linen), from one description.

F, H, B, T, C = 3, 4, 3, 6, 2
LENGTHS = jnp.array([6, 2, 0])
IDS = jnp.array([1, 4, 0])  # 4 is unknown to PerSequence(3): the fallback
CELLS = {
    "gru": (lambda r: nnx.GRUCell(F, H, rngs=r), lambda: nn.GRUCell(H)),
    "lstm": (lambda r: nnx.LSTMCell(F, H, rngs=r), lambda: nn.LSTMCell(H)),
    "optimized_lstm": (
        lambda r: nnx.OptimizedLSTMCell(F, H, rngs=r),
        lambda: nn.OptimizedLSTMCell(H),
    ),
    "simple": (lambda r: nnx.SimpleCell(F, H, rngs=r), lambda: nn.SimpleCell(H)),
}
STRATEGIES = {
    "zeros": (lambda: h0nnx.Zeros(), lambda: h0.Zeros()),
    "learned": (lambda: h0nnx.Learned(init="normal"), lambda: h0.Learned(init="normal")),
    "learned_h_only": (
        lambda: h0nnx.Learned(init="normal", learn=("h",)),
        lambda: h0.Learned(init="normal", learn=("h",)),
    ),
    "learned_noisy_eval": (
        lambda: h0nnx.LearnedNoisy(stddev=0.3, init="normal"),
        lambda: h0.LearnedNoisy(stddev=0.3, init="normal"),
    ),
    "per_sequence": (
        lambda: h0nnx.PerSequence(3, init="normal"),
        lambda: h0.PerSequence(3, init="normal"),
    ),
    "conditional": (
        lambda: h0nnx.Conditional((5,), context_features=C),
        lambda: h0.Conditional(hidden_sizes=(5,)),
    ),
    "warmup": (
        lambda: h0nnx.WarmUp(2, h0nnx.Learned(init="normal")),
        lambda: h0.WarmUp(2, h0.Learned(init="normal")),
    ),
}


def _inputs(seed: int = 0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(k1, (B, T, F))
    context = jax.random.normal(k2, (B, C))
    return x, dict(seq_lengths=LENGTHS, ids=IDS, context=context)


def _pair(cell: str, strategy: str, *, reverse: bool, seed: int = 0):
    rngs = nnx.Rngs(seed)
    nnx_rnn = h0nnx.RNN(CELLS[cell][0](rngs), STRATEGIES[strategy][0](), reverse=reverse, rngs=rngs)
    linen_rnn = h0.RNN(CELLS[cell][1](), STRATEGIES[strategy][1](), reverse=reverse)
    return nnx_rnn, linen_rnn


def _check_same(nnx_model, linen_model, x, kwargs, *, atol=2e-6):
    params = linen_params(nnx_model)
    # The Linen model's own init must produce exactly this structure: the mapping is complete.
    init = jax.eval_shape(lambda: linen_model.init(jax.random.key(0), x, **kwargs))["params"]
    assert jax.tree.structure(init) == jax.tree.structure(params)

    def loss(out):
        carry, y = out
        return jnp.sum(y**2) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry)), out

    def loss_l(p):
        return loss(linen_model.apply({"params": p}, x, method="scan", **kwargs))

    (_, out_l), g_l = jax.value_and_grad(loss_l, has_aux=True)(params)
    (_, out_n), g_n = nnx.value_and_grad(lambda m: loss(m.scan(x, **kwargs)), has_aux=True)(
        nnx_model
    )
    out_diff = max_diff(out_l, out_n)
    assert out_diff <= atol, out_diff
    grad_diff = max_diff(nnx_layout(nnx_model, g_l), nnx.to_pure_dict(g_n))
    assert grad_diff <= 10 * atol, grad_diff
    DIFFS.append((out_diff, grad_diff))
    return out_diff, grad_diff


DIFFS: list[tuple[float, float]] = []


# Every strategy with both a GRU and an LSTM, forwards and backwards (slow); in the fast set one
# case of each strategy that differs in kind (zeros, learned_h_only and learned_noisy_eval are
# close cousins of learned).
_FAST = ("conditional", "learned", "per_sequence", "warmup")
_FAST_CELL = {s: ("gru", "lstm")[i % 2] for i, s in enumerate(sorted(STRATEGIES))}
_CASES = [
    pytest.param(cell, strategy, reverse, marks=() if fast else pytest.mark.slow)
    for strategy in sorted(STRATEGIES)
    for cell in ("gru", "lstm")
    for reverse in (False, True)
    for fast in [
        strategy in _FAST
        and cell == _FAST_CELL[strategy]
        and reverse == (strategy in ("per_sequence", "warmup", "learned"))
    ]
]


@pytest.mark.parametrize(("cell", "strategy", "reverse"), _CASES)
def test_rnn_matches_linen_outputs_and_gradients(cell, strategy, reverse):
    nnx_rnn, linen_rnn = _pair(cell, strategy, reverse=reverse)
    x, kwargs = _inputs()
    _check_same(nnx_rnn, linen_rnn, x, kwargs)


@pytest.mark.parametrize(
    ("cell", "reverse"),
    [
        ("optimized_lstm", True),
        pytest.param("simple", False, marks=pytest.mark.slow),
        pytest.param("optimized_lstm", False, marks=pytest.mark.slow),
        pytest.param("simple", True, marks=pytest.mark.slow),
    ],
)
def test_other_cells_match_linen(cell, reverse):
    nnx_rnn, linen_rnn = _pair(cell, "learned", reverse=reverse)
    x, kwargs = _inputs(1)
    _check_same(nnx_rnn, linen_rnn, x, kwargs)


def _stacks():
    rngs = nnx.Rngs(3)
    nnx_model = h0nnx.Stacked(
        [
            h0nnx.Bidirectional(
                h0nnx.RNN(nnx.GRUCell(F, H, rngs=rngs), h0nnx.Learned("normal"), rngs=rngs),
                h0nnx.RNN(
                    nnx.GRUCell(F, H, rngs=rngs),
                    h0nnx.PerSequence(3, "normal"),
                    reverse=True,
                    rngs=rngs,
                ),
            ),
            h0nnx.RNN(nnx.LSTMCell(2 * H, 2, rngs=rngs), h0nnx.Learned("normal"), rngs=rngs),
        ],
        dropout=0.5,  # off: deterministic by default, as in Linen
        return_carry=True,
    )
    linen_model = h0.Stacked(
        [
            h0.Bidirectional(
                h0.RNN(nn.GRUCell(H), h0.Learned("normal")),
                h0.RNN(nn.GRUCell(H), h0.PerSequence(3, "normal"), reverse=True),
            ),
            h0.RNN(nn.LSTMCell(2), h0.Learned("normal")),
        ],
        dropout=0.5,
        return_carry=True,
    )
    return nnx_model, linen_model


def test_bidirectional_and_stacked_match_linen():
    nnx_model, linen_model = _stacks()
    x, kwargs = _inputs(2)
    del kwargs["context"]
    params = linen_params(nnx_model)
    init = jax.eval_shape(lambda: linen_model.init(jax.random.key(0), x, **kwargs))["params"]
    assert jax.tree.structure(init) == jax.tree.structure(params)
    c_l, y_l = linen_model.apply({"params": params}, x, **kwargs)
    c_n, y_n = nnx_model(x, **kwargs)
    assert max(max_diff(y_l, y_n), max_diff(c_l, c_n)) <= 2e-6


@pytest.mark.slow
def test_bidirectional_and_stacked_gradients_match_linen():
    nnx_model, linen_model = _stacks()
    x, kwargs = _inputs(2)
    del kwargs["context"]
    params = linen_params(nnx_model)
    g_l = jax.grad(lambda p: jnp.sum(linen_model.apply({"params": p}, x, **kwargs)[1] ** 2))(params)
    g_n = nnx.grad(lambda m: jnp.sum(m(x, **kwargs)[1] ** 2))(nnx_model)
    assert max_diff(nnx_layout(nnx_model, g_l), nnx.to_pure_dict(g_n)) <= 2e-5


def test_random_uses_the_carry_stream_fresh_each_call():
    rngs = nnx.Rngs(0)
    rnn = h0nnx.RNN(nnx.GRUCell(F, H, rngs=rngs), h0nnx.Random(0.5), return_carry=True)
    x = jnp.zeros((B, 0, F))  # no steps: the final carry is the initial carry
    call_rngs = nnx.Rngs(carry=7)
    carry1, _ = rnn(x, rngs=call_rngs)
    carry2, _ = rnn(x, rngs=call_rngs)
    # Reference: the same stream's first two keys, split per leaf as on the Linen side.
    ref = nnx.Rngs(carry=7)
    for carry in (carry1, carry2):
        (key,) = jax.random.split(ref.carry(), 1)
        np.testing.assert_array_equal(carry, 0.5 * jax.random.normal(key, (B, H)))
    assert not np.allclose(carry1, carry2)

    # A stream kept by the strategy works too; none at all raises the Linen-style message.
    kept = h0nnx.RNN(nnx.GRUCell(F, H, rngs=rngs), h0nnx.Random(0.5, rngs=nnx.Rngs(carry=7)))
    np.testing.assert_array_equal(kept(x[:, :0]), rnn(x[:, :0], rngs=nnx.Rngs(carry=7))[1])
    with pytest.raises(ValueError, match="'carry' rng stream, which is missing"):
        rnn(x)


def test_random_matches_linen_given_the_same_initial_carry():
    rngs = nnx.Rngs(0)
    nnx_rnn = h0nnx.RNN(nnx.GRUCell(F, H, rngs=rngs), h0nnx.Random(0.5), return_carry=True)
    linen_rnn = h0.RNN(nn.GRUCell(H), h0.Random(0.5), return_carry=True)
    x, _ = _inputs(4)
    carry0, _ = nnx_rnn(x[:, :0], rngs=nnx.Rngs(carry=1))
    out_n = nnx_rnn(x, seq_lengths=LENGTHS, rngs=nnx.Rngs(carry=1))
    out_l = linen_rnn.apply(
        {"params": linen_params(nnx_rnn)}, x, seq_lengths=LENGTHS, initial_carry=carry0
    )
    assert max_diff(out_l, out_n) <= 2e-6


def test_learned_noisy_adds_noise_only_in_training():
    rngs = nnx.Rngs(0)
    rnn = h0nnx.RNN(
        nnx.LSTMCell(F, H, rngs=rngs),
        h0nnx.LearnedNoisy(0.5, init="normal"),
        return_carry=True,
        rngs=rngs,
    )
    x = jnp.zeros((B, 0, F))
    learned = (rnn.initial_state.init_c[...], rnn.initial_state.init_h[...])
    clean, _ = rnn(x)  # deterministic by default
    np.testing.assert_array_equal(clean[1], jnp.broadcast_to(learned[1], (B, H)))

    rnn.train()
    noisy, _ = rnn(x, rngs=nnx.Rngs(carry=3))
    kc, kh = jax.random.split(nnx.Rngs(carry=3).carry(), 2)
    np.testing.assert_allclose(noisy[0], learned[0][None] + 0.5 * jax.random.normal(kc, (B, H)))
    np.testing.assert_allclose(noisy[1], learned[1][None] + 0.5 * jax.random.normal(kh, (B, H)))
    # The call's deterministic= wins over the mode; eval() turns the noise off again.
    np.testing.assert_array_equal(rnn(x, deterministic=True)[0][1], clean[1])
    rnn.eval()
    np.testing.assert_array_equal(rnn(x)[0][1], clean[1])


def test_stacked_dropout_uses_the_dropout_stream():
    rngs = nnx.Rngs(0)
    layers = [
        h0nnx.RNN(nnx.GRUCell(F, H, rngs=rngs), h0nnx.Learned("normal"), rngs=rngs),
        h0nnx.RNN(nnx.GRUCell(H, 2, rngs=rngs), rngs=rngs),
    ]
    stack = h0nnx.Stacked(layers, dropout=0.5)
    x, _ = _inputs(5)
    no_dropout = layers[1](layers[0](x))
    np.testing.assert_array_equal(stack(x), no_dropout)
    stack.train()
    y = stack(x, rngs=nnx.Rngs(dropout=11))
    # Reference: the same layers with an nnx.Dropout drawing from the same stream in between.
    mid = nnx.Dropout(0.5)(layers[0](x), rngs=nnx.Rngs(dropout=11))
    np.testing.assert_array_equal(y, layers[1](mid))
    assert not np.allclose(y, no_dropout)


def test_initial_state_mask_and_penalty_work_on_nnx_state():
    rngs = nnx.Rngs(0)
    rnn = h0nnx.RNN(nnx.LSTMCell(F, H, rngs=rngs), h0nnx.Learned("normal"), rngs=rngs)
    params = nnx.state(rnn, nnx.Param)
    mask = nnx.to_pure_dict(h0.initial_state_mask(params))
    assert mask["initial_state"] == {"init_c": True, "init_h": True}
    assert not any(jax.tree.leaves(mask["cell"]))
    expected = 0.5 * sum(
        float(jnp.sum(p[...] ** 2)) for p in (rnn.initial_state.init_c, rnn.initial_state.init_h)
    )
    np.testing.assert_allclose(float(h0.initial_state_penalty(params, l2=0.5)), expected, rtol=1e-6)

    # The mask function drives optax (it gets the optimiser's own view of the params): an
    # optimiser that only touches the initial state.
    not_initial = lambda p: jax.tree.map(lambda m: not m, h0.initial_state_mask(p))
    tx = optax.chain(
        optax.masked(optax.set_to_zero(), not_initial),
        optax.masked(optax.sgd(0.1), h0.initial_state_mask),
    )
    optimizer = nnx.Optimizer(rnn, tx, wrt=nnx.Param)
    before = nnx.to_pure_dict(nnx.state(rnn, nnx.Param))
    x, _ = _inputs(6)
    grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(rnn)
    optimizer.update(rnn, grads)
    after = nnx.to_pure_dict(nnx.state(rnn, nnx.Param))
    assert max_diff(before["cell"], after["cell"]) == 0.0
    g = nnx.to_pure_dict(grads)["initial_state"]["init_h"]
    np.testing.assert_allclose(
        after["initial_state"]["init_h"], before["initial_state"]["init_h"] - 0.1 * g, rtol=1e-6
    )


def test_jit_matches_eager():
    nnx_rnn, _ = _pair("gru", "per_sequence", reverse=True)
    x, kwargs = _inputs(7)
    del kwargs["context"]
    eager = nnx_rnn(x, **kwargs)
    jitted = nnx.jit(lambda m, x, lengths, ids: m(x, seq_lengths=lengths, ids=ids))(
        nnx_rnn, x, kwargs["seq_lengths"], kwargs["ids"]
    )
    np.testing.assert_allclose(jitted, eager, atol=1e-6)


def test_errors_match_the_linen_messages():
    rngs = nnx.Rngs(0)
    cell = nnx.GRUCell(F, H, rngs=rngs)
    rnn = h0nnx.RNN(cell, h0nnx.Learned(), rngs=rngs)
    x = jnp.zeros((B, T, F))
    with pytest.raises(
        ValueError, match=r"seq_lengths has shape \(2,\) but inputs have batch shape \(3,\)"
    ):
        rnn(x, seq_lengths=jnp.array([1, 2]))
    with pytest.raises(ValueError, match=r"seq_lengths must lie in \[0, 6\]"):
        rnn(x, seq_lengths=jnp.array([1, 2, 7]))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        rnn(jnp.zeros((F,)))
    with pytest.raises(TypeError, match="inputs must be floating point"):
        rnn(jnp.zeros((B, T, F), jnp.int32))
    with pytest.raises(ValueError, match=r"initial_carry has shapes \(3, 5\)"):
        rnn(x, initial_carry=jnp.zeros((B, 5)))
    with pytest.raises(
        ValueError,
        match=r"inputs have 2 features \(shape \(3, 6, 2\)\) but the cell expects in_features=3",
    ):
        rnn(jnp.zeros((B, T, 2)))
    with pytest.raises(TypeError, match=r"must be an h0\.nnx strategy"):
        h0nnx.RNN(cell, h0.Learned())
    with pytest.raises(ValueError, match="creates parameters: pass rngs"):
        h0nnx.RNN(cell, h0nnx.Learned())
    with pytest.raises(ValueError, match=r"learn=\['x'\] names leaves \['x'\]"):
        h0nnx.RNN(cell, h0nnx.Learned(learn=("x",)), rngs=rngs)
    with pytest.raises(ValueError, match="WarmUp\\(7\\) needs at least 7 time steps"):
        h0nnx.RNN(cell, h0nnx.WarmUp(7))(x)
    per_seq = h0nnx.RNN(cell, h0nnx.PerSequence(3), rngs=rngs)
    with pytest.raises(ValueError, match="PerSequence needs ids"):
        per_seq(x)
    with pytest.raises(ValueError, match=r"ids has shape \(2,\)"):
        per_seq(x, ids=jnp.array([0, 1]))
    cond = h0nnx.RNN(cell, h0nnx.Conditional(context_features=C), rngs=rngs)
    with pytest.raises(ValueError, match="Conditional needs context"):
        cond(x)
    with pytest.raises(ValueError, match="context_features=2"):
        cond(x, context=jnp.zeros((B, 5)))
    with pytest.raises(ValueError, match="forward RNN must have reverse=False"):
        h0nnx.Bidirectional(h0nnx.RNN(cell, reverse=True), rnn)
    with pytest.raises(ValueError, match="initial_carry has 1 entries but the stack has 2"):
        h0nnx.Stacked([rnn, rnn])(x, initial_carry=[None])


def test_docs_examples_run():
    """Every python block of docs/nnx.md, run in order in one namespace."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "nnx.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "docs/nnx.md", "exec"), namespace)


class PairCell(nnx.Module):
    """A cell whose carry is a dict of two arrays of different sizes."""

    def __init__(self, in_features: int, *, rngs: nnx.Rngs):
        self.in_features = in_features
        self.a = nnx.Linear(in_features + 3, 2, rngs=rngs)
        self.b = nnx.Linear(in_features + 2, 3, rngs=rngs)

    def initialize_carry(self, input_shape, rngs=None):
        batch = input_shape[:-1]
        return {"a": jnp.zeros((*batch, 2)), "b": jnp.zeros((*batch, 3))}

    def __call__(self, carry, x):
        a = jnp.tanh(self.a(jnp.concatenate([x, carry["b"]], axis=-1)))
        b = jnp.tanh(self.b(jnp.concatenate([x, carry["a"]], axis=-1)))
        return {"a": a, "b": b}, jnp.concatenate([a, b], axis=-1)


@pytest.mark.parametrize("reverse", [False, True])
def test_pytree_carry_cell_matches_a_python_loop_per_sequence(reverse):
    rngs = nnx.Rngs(0)
    cell = PairCell(F, rngs=rngs)
    rnn = h0nnx.RNN(cell, h0nnx.Learned("normal"), reverse=reverse, return_carry=True, rngs=rngs)
    assert sorted(nnx.to_pure_dict(nnx.state(rnn.initial_state))) == ["init_a", "init_b"]
    x, _ = _inputs(8)
    carry, y = rnn(x, seq_lengths=LENGTHS)
    start = {"a": rnn.initial_state.init_a[...], "b": rnn.initial_state.init_b[...]}
    for i, length in enumerate(LENGTHS.tolist()):
        # Reference: this sequence alone, its valid steps only, stepped in Python.
        c, outs = start, []
        steps = range(length - 1, -1, -1) if reverse else range(length)
        for t in steps:
            c, out = cell(c, x[i, t])
            outs.append(out)
        if reverse:
            outs = outs[::-1]
        expected = jnp.zeros((T, 5)).at[:length].set(jnp.stack(outs)) if outs else jnp.zeros((T, 5))
        np.testing.assert_allclose(y[i], expected, atol=1e-6)
        np.testing.assert_allclose(carry["a"][i], c["a"], atol=1e-6)
        np.testing.assert_allclose(carry["b"][i], c["b"], atol=1e-6)


def test_a_strategy_belongs_to_one_rnn():
    rngs = nnx.Rngs(0)
    strategy = h0nnx.Learned()
    h0nnx.RNN(nnx.GRUCell(F, H, rngs=rngs), strategy, rngs=rngs)
    with pytest.raises(ValueError, match="already belongs to another RNN"):
        h0nnx.RNN(nnx.GRUCell(F, H, rngs=rngs), strategy, rngs=rngs)


@pytest.mark.parametrize("backward_reverse", [False, True])
def test_bidirectional_matches_flax_bidirectional(backward_reverse):
    """``h0nnx.Bidirectional(RNN(f), RNN(b))`` runs ``b`` backwards, as Flax's Bidirectional."""
    rngs = nnx.Rngs(0)
    bi = h0nnx.Bidirectional(
        h0nnx.RNN(nnx.GRUCell(F, H, rngs=rngs), rngs=rngs),
        h0nnx.RNN(nnx.LSTMCell(F, H, rngs=rngs), reverse=backward_reverse, rngs=rngs),
        return_carry=True,
    )
    theirs = nn.Bidirectional(nn.RNN(nn.GRUCell(H)), nn.RNN(nn.LSTMCell(H)), return_carry=True)
    p = linen_params(bi)
    x, lengths = _inputs()[0], jnp.array([6, 2, 1])
    carry, ys = bi(x, seq_lengths=lengths)
    flax_params = {"forward_rnn": p["forward"], "backward_rnn": p["backward"]}
    ref_carry, ref_ys = theirs.apply({"params": flax_params}, x, seq_lengths=lengths)
    valid = (jnp.arange(T)[None, :] < lengths[:, None])[..., None]
    assert max_diff(ys * valid, ref_ys * valid) <= 2e-6
    assert max_diff(carry, ref_carry) <= 2e-6


@pytest.mark.parametrize(("cell", "hidden"), [("gru", 48), ("lstm", 32), ("optimized_lstm", 32)])
def test_fast_path_matches_the_generic_path(cell, hidden):
    """NNX's GRU/LSTM cells run the Linen fast path on their mapped parameters, gradients too."""
    make = {
        "gru": lambda r: nnx.GRUCell(F, hidden, rngs=r),
        "lstm": lambda r: nnx.LSTMCell(F, hidden, rngs=r),
        "optimized_lstm": lambda r: nnx.OptimizedLSTMCell(F, hidden, rngs=r),
    }[cell]
    rngs = nnx.Rngs(0)
    fast = h0nnx.RNN(make(rngs), h0nnx.Learned("normal"), reverse=True, rngs=rngs)
    generic = nnx.clone(fast)
    generic.fast = False
    assert fast._fast_scan() is not None and generic._fast_scan() is None
    x, kwargs = _inputs()

    def loss(model):
        carry, y = model.scan(x, seq_lengths=kwargs["seq_lengths"])
        return jnp.sum(y**2) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry)), (carry, y)

    (_, out_f), g_f = nnx.value_and_grad(loss, has_aux=True)(fast)
    (_, out_g), g_g = nnx.value_and_grad(loss, has_aux=True)(generic)
    assert max_diff(out_f, out_g) <= 1e-5
    assert max_diff(nnx.to_pure_dict(g_f), nnx.to_pure_dict(g_g)) <= 1e-4
