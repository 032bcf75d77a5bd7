"""Strategies as the README writes them, by name, and what callers may ask them (Linen and NNX)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import h0
from h0 import nnx as h0nnx

B, T, F, H, C = 3, 7, 2, 6, 4
X = jax.random.normal(jax.random.key(0), (B, T, F))
IDS = jnp.array([0, 2, 5])
CONTEXT = jax.random.normal(jax.random.key(1), (B, C))
EMPTY = jnp.zeros((B, 0, F))  # no steps: the final carry is the initial one


def _linen_carry(strategy, x=EMPTY, *, deterministic=True, key=2, variables=None):
    rnn = h0.RNN(nn.GRUCell(H), strategy, return_carry=True)
    kwargs = dict(ids=IDS, context=CONTEXT, deterministic=deterministic)
    rngs = {"params": jax.random.key(0), "carry": jax.random.key(1)}
    variables = variables or rnn.init(rngs, x, **kwargs)
    carry, _ = rnn.apply(variables, x, rngs={"carry": jax.random.key(key)}, **kwargs)
    return carry, variables


# ---------------------------------------------------------------------------------------------
# The README's table: each strategy's first positional argument(s).


def test_readme_positional_forms_linen():
    assert h0.Random(0.5).stddev == 0.5
    learned = h0.Learned("normal", ("h",))
    assert (learned.init, learned.learn) == ("normal", ("h",))
    noisy = h0.LearnedNoisy(0.5)
    assert (noisy.stddev, noisy.init, noisy.learn) == (0.5, "zeros", None)
    assert h0.PerSequence(10).num_sequences == 10
    assert h0.Conditional((8,)).hidden_sizes == (8,)
    warm = h0.WarmUp(3, h0.Learned())
    assert warm.steps == 3 and isinstance(warm.start, h0.Learned)


def test_readme_learned_noisy_runs_with_its_stddev():
    """``h0.LearnedNoisy(0.5)`` used to pass 0.5 as ``init`` and fail on the carry's shape."""
    clean, v = _linen_carry(h0.LearnedNoisy(0.5))
    init_h = v["params"]["initial_state"]["init_h"]
    np.testing.assert_array_equal(clean, jnp.broadcast_to(init_h, (B, H)))
    noisy, _ = _linen_carry(h0.LearnedNoisy(0.5), deterministic=False, variables=v, key=3)
    unit, _ = _linen_carry(h0.LearnedNoisy(1.0), deterministic=False, variables=v, key=3)
    assert float(jnp.abs(noisy - clean).min()) > 0
    np.testing.assert_allclose(noisy - clean, 0.5 * (unit - clean), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "strategy",
    [
        h0.Zeros(),
        h0.Random(0.5),
        h0.Learned("normal"),
        h0.LearnedNoisy(0.5),
        h0.PerSequence(10),
        h0.Conditional((8,)),
        h0.WarmUp(3, h0.Learned()),
    ],
    ids=lambda s: type(s).__name__,
)
def test_readme_forms_run_linen(strategy):
    rnn = h0.RNN(nn.GRUCell(H), strategy)
    kwargs = dict(ids=IDS, context=CONTEXT)
    v = rnn.init({"params": jax.random.key(0), "carry": jax.random.key(1)}, X, **kwargs)
    y = rnn.apply(v, X, rngs={"carry": jax.random.key(2)}, **kwargs)
    assert y.shape == (B, T - strategy.burn_in, H)
    assert bool(jnp.isfinite(y).all())


NNX_FORMS = {
    "Zeros": lambda: h0nnx.Zeros(),
    "Random": lambda: h0nnx.Random(0.5),
    "Learned": lambda: h0nnx.Learned("normal", ("h",)),
    "LearnedNoisy": lambda: h0nnx.LearnedNoisy(0.5),
    "PerSequence": lambda: h0nnx.PerSequence(10),
    "Conditional": lambda: h0nnx.Conditional((8,), context_features=C),
    "WarmUp": lambda: h0nnx.WarmUp(3, h0nnx.Learned()),
}


@pytest.mark.parametrize("name", NNX_FORMS)
def test_readme_forms_run_nnx(name):
    rngs = nnx.Rngs(0)
    strategy = NNX_FORMS[name]()
    rnn = h0nnx.RNN(nnx.LSTMCell(F, H, rngs=rngs), strategy, rngs=rngs)
    y = rnn(X, ids=IDS, context=CONTEXT, rngs=nnx.Rngs(carry=1))
    assert y.shape == (B, T - strategy.burn_in, H)
    assert bool(jnp.isfinite(y).all())


def test_readme_positional_forms_nnx():
    assert h0nnx.Random(0.5).stddev == 0.5
    noisy = h0nnx.LearnedNoisy(0.5)
    assert (noisy.stddev, noisy.init.value, noisy.learn) == (0.5, "zeros", None)
    cond = h0nnx.Conditional((8,), context_features=C)
    assert (cond.hidden_sizes, cond.context_features) == ((8,), C)
    assert h0nnx.WarmUp(3).steps == 3


def test_conditional_rejects_a_number_for_hidden_sizes():
    with pytest.raises(TypeError, match=r"hidden_sizes must be a sequence of layer widths"):
        h0nnx.Conditional(6, context_features=C)
    with pytest.raises(TypeError, match=r"hidden_sizes must be a sequence of layer widths"):
        _linen_carry(h0.Conditional(6))


# ---------------------------------------------------------------------------------------------
# strategy_from_name: the one resolver.


def test_strategy_from_name_builds_each_strategy_with_its_settings():
    assert h0.STRATEGY_NAMES == (
        "zeros",
        "random",
        "learned",
        "learned_noisy",
        "per_sequence",
        "conditional",
        "warmup",
    )
    make = h0.strategy_from_name
    kwargs = dict(num_sequences=4, warmup_steps=3, stddev=0.3, init="normal", hidden_sizes=(5,))
    built = {name: make(name, **kwargs) for name in h0.STRATEGY_NAMES}
    assert type(built["zeros"]) is h0.Zeros
    assert type(built["random"]) is h0.Random and built["random"].stddev == 0.3
    assert type(built["learned"]) is h0.Learned and built["learned"].init == "normal"
    noisy = built["learned_noisy"]
    assert type(noisy) is h0.LearnedNoisy and (noisy.stddev, noisy.init) == (0.3, "normal")
    per_seq = built["per_sequence"]
    assert (per_seq.num_sequences, per_seq.init) == (4, "normal")
    assert built["conditional"].hidden_sizes == (5,)
    assert type(built["warmup"]) is h0.WarmUp and built["warmup"].burn_in == 3
    assert make("random").stddev == 0.1 and make("per_sequence").num_sequences == 1


def test_strategy_from_name_errors():
    with pytest.raises(
        ValueError,
        match=r"initial_state='lerned' is not a strategy name; choose one of zeros, random, "
        r"learned, learned_noisy, per_sequence, conditional, warmup\.",
    ):
        h0.strategy_from_name("lerned")
    with pytest.raises(ValueError, match=r"initial_state='warmup' needs warmup_steps="):
        h0.strategy_from_name("warmup")


# ---------------------------------------------------------------------------------------------
# What callers ask instead of comparing names.

TRAITS = {
    # strategy: (burn_in, needs_ids, needs_context, uses_rng(True), uses_rng(False))
    "zeros": (0, False, False, False, False),
    "random": (0, False, False, True, True),
    "learned": (0, False, False, False, False),
    "learned_noisy": (0, False, False, False, True),
    "per_sequence": (0, True, False, False, False),
    "conditional": (0, False, True, False, False),
    "warmup": (5, False, False, False, False),
}


def _traits(s):
    return (s.burn_in, s.needs_ids, s.needs_context, s.uses_rng(True), s.uses_rng(False))


@pytest.mark.parametrize("name", TRAITS)
def test_traits_linen(name):
    assert _traits(h0.strategy_from_name(name, warmup_steps=5)) == TRAITS[name]


def test_traits_nnx_match_linen():
    pairs = {
        "zeros": h0nnx.Zeros(),
        "random": h0nnx.Random(),
        "learned": h0nnx.Learned(),
        "learned_noisy": h0nnx.LearnedNoisy(),
        "per_sequence": h0nnx.PerSequence(3),
        "conditional": h0nnx.Conditional(context_features=C),
        "warmup": h0nnx.WarmUp(5),
    }
    for name, strategy in pairs.items():
        assert _traits(strategy) == TRAITS[name], name
    # NNX's deterministic=None is the module's mode (train()/eval()).
    noisy = h0nnx.LearnedNoisy(0.2)
    assert not noisy.uses_rng(None)
    noisy.train()
    assert noisy.uses_rng(None) and not noisy.uses_rng(True)


def test_warmup_traits_come_from_its_start():
    for start, expected in [
        (h0.PerSequence(3), (4, True, False, False, False)),
        (h0.Conditional(), (4, False, True, False, False)),
        (h0.Random(), (4, False, False, True, True)),
        (h0.LearnedNoisy(), (4, False, False, False, True)),
    ]:
        assert _traits(h0.WarmUp(4, start)) == expected
    assert _traits(h0nnx.WarmUp(4, h0nnx.PerSequence(3))) == (4, True, False, False, False)


def test_mean_is_the_deterministic_start():
    # Random: its mean is zeros, needs no rng, and takes the same (empty) variables.
    zeros, _ = _linen_carry(h0.Random(0.5).mean())
    np.testing.assert_array_equal(zeros, jnp.zeros((B, H)))
    assert not h0.Random(0.5).mean().uses_rng(True)
    # LearnedNoisy: the learned state, with the noisy strategy's own variables.
    noisy = h0.LearnedNoisy(0.5, init="normal")
    _, v = _linen_carry(noisy)
    mean, _ = _linen_carry(noisy.mean(), variables=v)
    init_h = v["params"]["initial_state"]["init_h"]
    np.testing.assert_array_equal(mean, jnp.broadcast_to(init_h, (B, H)))
    # Noise-free strategies are their own mean; WarmUp keeps its steps.
    learned = h0.Learned()
    assert learned.mean() is learned
    warm = h0.WarmUp(3, h0.Random()).mean()
    assert warm.burn_in == 3 and type(warm.start) is h0.Zeros
    # NNX: the same answers.
    assert type(h0nnx.Random().mean()) is h0nnx.Zeros
    assert type(h0nnx.LearnedNoisy(init="normal").mean()) is h0nnx.Learned
    assert type(h0nnx.WarmUp(2, h0nnx.Random()).mean().start) is h0nnx.Zeros


def test_nnx_mean_of_a_built_noisy_strategy_raises():
    rngs = nnx.Rngs(0)
    strategy = h0nnx.LearnedNoisy()
    h0nnx.RNN(nnx.GRUCell(F, H, rngs=rngs), strategy, rngs=rngs)
    with pytest.raises(ValueError, match="call it before an RNN adopts the strategy"):
        strategy.mean()


@pytest.mark.parametrize("name", h0.STRATEGY_NAMES)
def test_a_caller_needs_no_strategy_names(name):
    """What a model like the anomaly detector's encoder does, asking the strategy only."""

    def encode(windows, ids=None, *, deterministic, key):
        strategy = h0.strategy_from_name(name, num_sequences=3, warmup_steps=2, stddev=0.5)
        if deterministic:
            strategy = strategy.mean()  # reproducible scores
        if strategy.needs_ids and ids is None:
            ids = jnp.zeros(windows.shape[:1], jnp.int32)
        context = jnp.ones((windows.shape[0], 1)) if strategy.needs_context else None
        rnn = h0.RNN(nn.GRUCell(H), strategy, return_carry=True)
        kwargs = dict(ids=ids, context=context, deterministic=deterministic)
        rngs = {"carry": key} if strategy.uses_rng(deterministic) else {}
        v = rnn.init({"params": jax.random.key(0), **rngs}, windows, **kwargs)
        carry, y = rnn.apply(v, windows, rngs=rngs, **kwargs)
        assert y.shape[1] == windows.shape[1] - strategy.burn_in
        return carry

    a = encode(X, deterministic=True, key=jax.random.key(1))
    b = encode(X, deterministic=True, key=jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    train = encode(X, deterministic=False, key=jax.random.key(1))
    assert train.shape == (B, H)
