"""The fast GRU/LSTM path against the generic path (``fast=False``), Flax's own RNN and a step loop."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import h0
from h0 import _fast

B, T, F, H = 4, 7, 3, 5
LENGTHS = jnp.array([7, 3, 0, 1])
IDS = jnp.array([0, 2, 1, 2])

CELLS = {
    "gru": lambda: nn.GRUCell(H),
    "lstm": lambda: nn.LSTMCell(H),
    "olstm": lambda: nn.OptimizedLSTMCell(H),
}
STRATEGIES = {
    "zeros": lambda: h0.Zeros(),
    "learned": lambda: h0.Learned(),
    "per_sequence": lambda: h0.PerSequence(3),
    "warmup": lambda: h0.WarmUp(2, start=h0.Learned()),
}


@pytest.fixture(autouse=True)
def _fast_path_at_any_hidden_size(monkeypatch):
    """These tests use tiny cells (H = 5): take the fast path at any size."""
    monkeypatch.setattr(_fast, "_MIN_HIDDEN", {"gru": 0, "lstm": 0})


def _inputs(seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), (B, T, F))


def _perturb(variables, seed: int = 1):
    """Non-trivial values everywhere (biases and initial states are zero at init)."""
    leaves, treedef = jax.tree.flatten(variables)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [
        leaf + 0.3 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys, strict=True)
    ]
    return jax.tree.unflatten(treedef, noisy)


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def _assert_same(model_fast, model_ref, x, **kwargs):
    """Outputs within 1e-5 and gradients (parameters and inputs) within 1e-4, relative."""
    variables = _perturb(jax.jit(lambda x: model_ref.init(jax.random.key(0), x, **kwargs))(x))

    def run(model):
        def loss(v, x):
            out = model.apply(v, x, **kwargs)
            return sum(jnp.sum(jnp.sin(3.0 * y)) for y in jax.tree.leaves(out)), out

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(variables, x)

    (_, y_fast), g_fast = run(model_fast)
    (_, y_ref), g_ref = run(model_ref)
    for a, b in zip(jax.tree.leaves(y_fast), jax.tree.leaves(y_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    flat_fast = jax.tree_util.tree_leaves_with_path(g_fast)
    flat_ref = jax.tree.leaves(g_ref)
    assert len(flat_fast) == len(flat_ref)
    for (path, a), b in zip(flat_fast, flat_ref, strict=True):
        assert _rel(a, b) < 1e-4, (jax.tree_util.keystr(path), _rel(a, b))


def _uses_fast_path(model, x, **kwargs) -> bool:
    jaxpr = jax.make_jaxpr(lambda x: model.init_with_output(jax.random.key(0), x, **kwargs))(x)
    return "custom_vjp_call" in str(jaxpr)


def _check_fast_vs_generic(cell, strategy, masked, reverse):
    kwargs = {"seq_lengths": LENGTHS} if masked else {}
    if strategy == "per_sequence":
        kwargs["ids"] = IDS

    def make(fast):
        return h0.RNN(
            CELLS[cell](), STRATEGIES[strategy](), reverse=reverse, return_carry=True, fast=fast
        )

    x = _inputs()
    assert _uses_fast_path(make(True), x, **kwargs)
    _assert_same(make(True), make(False), x, **kwargs)


# Every cell, strategy, masking and direction appears in the quick set; the full grid is slow.
QUICK = [
    *[(cell, "learned", True, True) for cell in CELLS],
    *[(cell, "warmup", True, False) for cell in CELLS],
    ("gru", "zeros", False, False),
    ("lstm", "per_sequence", False, True),
]


@pytest.mark.parametrize(("cell", "strategy", "masked", "reverse"), QUICK)
def test_fast_matches_generic(cell, strategy, masked, reverse):
    _check_fast_vs_generic(cell, strategy, masked, reverse)


@pytest.mark.slow
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
def test_fast_matches_generic_full_grid(cell, strategy, masked, reverse):
    _check_fast_vs_generic(cell, strategy, masked, reverse)


def test_fast_flag_turns_the_fast_path_off():
    x = _inputs()
    assert _uses_fast_path(h0.RNN(nn.GRUCell(H)), x)
    assert not _uses_fast_path(h0.RNN(nn.GRUCell(H), fast=False), x)


@pytest.mark.parametrize("cell", CELLS)
def test_remat_matches_generic(cell):
    kwargs = {"seq_lengths": LENGTHS}
    fast = h0.RNN(CELLS[cell](), h0.Learned(), remat=True, return_carry=True)
    ref = h0.RNN(CELLS[cell](), h0.Learned(), fast=False, return_carry=True)
    _assert_same(fast, ref, _inputs(), **kwargs)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_bidirectional_and_stacked(cell):
    def model(fast):
        bi = h0.Bidirectional(
            h0.RNN(CELLS[cell](), h0.Learned(), fast=fast),
            h0.RNN(CELLS[cell](), h0.Zeros(), reverse=True, fast=fast),
        )
        return h0.Stacked([bi, h0.RNN(CELLS[cell](), h0.Learned(), fast=fast)])

    _assert_same(model(True), model(False), _inputs(), seq_lengths=LENGTHS)


def test_extra_batch_dimensions():
    x = jax.random.normal(jax.random.key(2), (2, 3, T, F))
    lengths = jnp.array([[7, 2, 0], [5, 7, 1]])
    fast = h0.RNN(nn.GRUCell(H), h0.Learned())
    ref = h0.RNN(nn.GRUCell(H), h0.Learned(), fast=False)
    _assert_same(fast, ref, x, seq_lengths=lengths)


@pytest.mark.parametrize("cell", CELLS)
def test_masked_matches_python_step_loop(cell):
    """Each padded sequence equals the cell stepped alone over its valid part."""
    rnn = h0.RNN(CELLS[cell](), h0.Learned(), return_carry=True)
    x = _inputs(3)
    variables = _perturb(rnn.init(jax.random.key(0), x))
    carry, y = rnn.apply(variables, x, seq_lengths=LENGTHS)
    cell_params = {"params": variables["params"]["cell"]}
    init = variables["params"]["initial_state"]
    for b, length in enumerate(np.asarray(LENGTHS)):
        c = init["init_h"] if cell == "gru" else (init["init_c"], init["init_h"])
        for t in range(length):
            c, out = CELLS[cell]().apply(cell_params, c, x[b, t])
            np.testing.assert_allclose(y[b, t], out, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(y[b, length:], 0.0)
        for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(c), strict=True):
            np.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_flax_rnn_checkpoint_loads_into_h0(cell):
    """``nn.RNN(cell)`` and ``h0.RNN(cell)`` share one parameter tree, both ways."""
    x = _inputs(4)
    flax_rnn = nn.RNN(CELLS[cell]())
    ours = h0.RNN(CELLS[cell]())
    flax_vars = _perturb(flax_rnn.init(jax.random.key(0), x))
    ours_vars = ours.init(jax.random.key(0), x)
    assert jax.tree.structure(flax_vars) == jax.tree.structure(ours_vars)
    np.testing.assert_allclose(
        ours.apply(flax_vars, x), flax_rnn.apply(flax_vars, x), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        ours.apply(flax_vars, x, seq_lengths=LENGTHS),
        flax_rnn.apply(flax_vars, x, seq_lengths=LENGTHS)
        * (jnp.arange(T)[None, :] < LENGTHS[:, None])[..., None],
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "cell",
    [
        nn.GRUCell(H, activation_fn=jax.nn.relu),
        nn.LSTMCell(H, activation_fn=jax.nn.soft_sign),
        nn.OptimizedLSTMCell(H, gate_fn=jax.nn.hard_sigmoid),
        nn.GRUCell(H, dtype=jnp.float32),
        nn.MGUCell(H),
    ],
    ids=lambda c: type(c).__name__,
)
def test_other_cells_take_the_generic_path(cell):
    x = _inputs(5)
    rnn = h0.RNN(cell)
    assert not _fast.supports(cell)
    assert not _uses_fast_path(rnn, x)
    variables = _perturb(rnn.init(jax.random.key(0), x))
    np.testing.assert_allclose(
        rnn.apply(variables, x), nn.RNN(cell).apply(variables, x), rtol=1e-5, atol=1e-6
    )


def test_subclass_takes_the_generic_path():
    class MyGRU(nn.GRUCell):
        pass

    assert _fast.supports(nn.GRUCell(H))
    assert not _fast.supports(MyGRU(H))


def test_unrecognised_parameters_fall_back():
    cell = nn.GRUCell(H)
    params = cell.init(jax.random.key(0), jnp.zeros((1, H)), jnp.zeros((1, F)))["params"]
    assert _fast.fast_scan(cell, params) is not None
    broken = {k: v for k, v in params.items() if k != "hn"}
    assert _fast.fast_scan(cell, broken) is None


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("chunk", [1, 3, 16])
@pytest.mark.parametrize("remat", [False, True], ids=["saved", "remat"])
def test_gradient_blocks_of_any_size(cell, chunk, remat):
    """Weight gradients come out the same whatever the block size, dividing T or not (T = 7)."""
    module = CELLS[cell]()
    x = _inputs(6)
    carry0 = module.initialize_carry(jax.random.key(1), x[:, 0].shape)
    carry0 = jax.tree.map(lambda c: c + 0.5, carry0)
    params = _perturb(module.init(jax.random.key(0), carry0, x[:, 0])["params"])
    scan = _fast.fast_scan(module, params, remat=remat, chunk=chunk)
    assert scan is not None

    def step(p):
        return lambda c, x: module.apply({"params": p}, c, x)

    def fast_loss(p, c, x):
        carry, ys = _fast.fast_scan(module, p, remat=remat, chunk=chunk)(None, c, x, LENGTHS)
        return jnp.sum(jnp.sin(3.0 * ys)) + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(carry))

    def ref_loss(p, c, x):
        carry, ys = h0.masked_scan(step(p), c, jnp.swapaxes(x, 0, 1), LENGTHS)
        ys = jnp.swapaxes(ys, 0, 1)
        return jnp.sum(jnp.sin(3.0 * ys)) + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(carry))

    grad = jax.jit(jax.value_and_grad(fast_loss, argnums=(0, 1, 2)))
    ref = jax.jit(jax.value_and_grad(ref_loss, argnums=(0, 1, 2)))
    (value, grads), (ref_value, ref_grads) = grad(params, carry0, x), ref(params, carry0, x)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(grads), jax.tree.leaves(ref_grads), strict=True
    ):
        assert _rel(a, b) < 1e-4, (jax.tree_util.keystr(path), _rel(a, b))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("remat", [False, True], ids=["saved", "remat"])
def test_one_matmul_per_gate_for_small_batches(cell, remat):
    """With a batch small next to the hidden size the step runs a matmul per gate; same values."""
    hidden, x = 16, jax.random.normal(jax.random.key(7), (2, T, F))

    def make(fast):
        module = {"gru": nn.GRUCell, "lstm": nn.LSTMCell, "olstm": nn.OptimizedLSTMCell}[cell]
        return h0.RNN(module(hidden), h0.Learned(), return_carry=True, fast=fast, remat=remat)

    jaxpr = str(jax.make_jaxpr(lambda x: make(True).init_with_output(jax.random.key(0), x))(x))
    assert jaxpr.count("dot_general") > str(
        jax.make_jaxpr(lambda x: make(True).init_with_output(jax.random.key(0), x))(
            jnp.ones((4, T, F))
        )
    ).count("dot_general")  # 2 * 8 <= 16: split; 4 * 8 > 16: joined
    _assert_same(make(True), make(False), x, seq_lengths=jnp.array([T, 3]))


@pytest.mark.parametrize("cell", CELLS)
def test_single_feature_inputs(cell):
    """One input feature takes the time-major, per-gate input path; same values and gradients."""
    x = jax.random.normal(jax.random.key(8), (B, T, 1))

    def make(fast):
        return h0.RNN(CELLS[cell](), h0.Learned(), reverse=True, return_carry=True, fast=fast)

    _assert_same(make(True), make(False), x, seq_lengths=LENGTHS)


def test_small_hidden_sizes_take_the_generic_path(monkeypatch):
    monkeypatch.setattr(_fast, "_MIN_HIDDEN", {"gru": 48, "lstm": 32})
    x = _inputs()
    assert not _uses_fast_path(h0.RNN(nn.GRUCell(40)), x)
    assert _uses_fast_path(h0.RNN(nn.GRUCell(48)), x)
    assert not _uses_fast_path(h0.RNN(nn.LSTMCell(24)), x)
    assert _uses_fast_path(h0.RNN(nn.OptimizedLSTMCell(32)), x)
