"""Training speed of the detector's default network: h0 against flax.linen.RNN and PyTorch.

The network is EncDec-AD as :class:`h0.anomaly.EncDecAD` builds it by default: a GRU encoder
(``h0.RNN(nn.GRUCell(H), h0.Learned())``) over windows ``[B, T, 1]`` that returns its carry, a GRU
decoder started from that carry reading zeros ``[B, T, 1]``, a ``Dense(1)`` readout, the
reconstruction reversed, and the forecasting head (``--horizon``, default 1 as in the detector): a
``Dense`` on the encoder's states that predicts each next point. The loss is the reconstruction's
mean squared error plus the head's (:func:`h0.anomaly._train.forecast_loss`), the optimiser
``optax.chain(clip_by_global_norm(1.0), adam(3e-3))``. The sides:

- ``h0``: :class:`h0.anomaly.EncDecAD` itself (what ``h0 detect`` trains); ``h0 generic``: the same
  network on ``h0.RNN(..., fast=False)``;
- ``flax``: the same network on ``flax.linen.RNN``, with a learned initial-state parameter;
- ``torch``: ``nn.GRU`` x 2, ``nn.Linear``, ``clip_grad_norm_`` and ``torch.optim.Adam``
  (``torch.set_num_threads(2)``).

All start from the same weights (h0's, copied), and the script checks that they compute the same
loss, and the same loss again after one optimiser step, before timing. Each side is warmed up,
then the sides run alternately (one round = ``--steps`` steps of each side, the order rotating
from round to round) and
every ratio is the median over rounds of the per-round ratio (the machine is shared and noisy);
the spread is the 25th-75th percentile of those per-round ratios. Compile time is the wall time
of the first call of a freshly jitted step (tracing, compiling, running).

Run from the repository root:

    PYTHONPATH=src python benchmarks/detector_train_speed.py   # writes the JSON below
    PYTHONPATH=src python benchmarks/detector_train_speed.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import h0
from h0.anomaly import EncDecAD
from h0.anomaly._train import forecast_loss

try:
    import torch
except ImportError:  # the torch column is left empty
    torch = None

OUT = Path(__file__).resolve().parent / "results" / "detector_train_speed.json"


# ------------------------------------------------------------------------------ the networks


class H0EncDec(nn.Module):
    """EncDec-AD on ``h0.RNN`` with a ``fast`` switch (``h0 generic``: ``fast=False``)."""

    hidden: int
    features: int = 1
    horizon: int = 1
    fast: bool = True

    @nn.compact
    def __call__(self, windows):
        encoder = h0.RNN(
            nn.GRUCell(self.hidden, parent=None),
            h0.Learned(parent=None),
            return_carry=True,
            fast=self.fast,
            name="encoder",
        )
        carry, states = encoder(windows)
        decoder = h0.RNN(
            nn.GRUCell(self.hidden, parent=None),
            h0.Zeros(parent=None),
            fast=self.fast,
            name="decoder",
        )
        hidden = decoder(jnp.zeros((*windows.shape[:2], 1), windows.dtype), initial_carry=carry)
        reconstruction = nn.Dense(self.features, name="readout")(hidden)[:, ::-1]
        return reconstruction, _head(self, states)


def _head(module: nn.Module, states):
    """The forecasting head: ``[b, t, horizon, features]`` from the encoder's states (or None)."""
    if not module.horizon:
        return None
    out = nn.Dense(module.horizon * module.features, name="forecast")(states)
    return out.reshape((*states.shape[:2], module.horizon, module.features))


class FlaxEncDec(nn.Module):
    """The same network with ``flax.linen.RNN``; the learned initial state is a parameter."""

    hidden: int
    features: int = 1
    horizon: int = 1

    @nn.compact
    def __call__(self, windows):
        init_h = self.param("init_h", nn.initializers.zeros, (self.hidden,))
        start = jnp.broadcast_to(init_h, (windows.shape[0], self.hidden))
        carry, states = nn.RNN(
            nn.GRUCell(self.hidden, parent=None), return_carry=True, name="encoder"
        )(windows, initial_carry=start)
        zeros = jnp.zeros((*windows.shape[:2], 1), windows.dtype)
        hidden = nn.RNN(nn.GRUCell(self.hidden, parent=None), name="decoder")(
            zeros, initial_carry=carry
        )
        reconstruction = nn.Dense(self.features, name="readout")(hidden)[:, ::-1]
        return reconstruction, _head(self, states)


def flax_params(p: dict) -> dict:
    """h0's parameter tree in FlaxEncDec's layout (the cells' trees are the same)."""
    return {
        "init_h": p["encoder"]["initial_state"]["init_h"],
        "encoder": {"cell": p["encoder"]["cell"]},
        "decoder": {"cell": p["decoder"]["cell"]},
        "readout": p["readout"],
        **({"forecast": p["forecast"]} if "forecast" in p else {}),
    }


def make_torch(p: dict, features: int, horizon: int):
    """The same network in PyTorch, with h0's weights: ``(module, step, loss_fn)``."""
    hidden = p["encoder"]["initial_state"]["init_h"].shape[0]

    def gru_weights(gru: torch.nn.GRU, cell: dict) -> None:
        k = {n: np.asarray(cell[n]["kernel"]) for n in ("ir", "iz", "in", "hr", "hz", "hn")}
        with torch.no_grad():
            gru.weight_ih_l0.copy_(
                torch.from_numpy(np.concatenate([k[n] for n in ("ir", "iz", "in")], 1).T.copy())
            )
            gru.weight_hh_l0.copy_(
                torch.from_numpy(np.concatenate([k[n] for n in ("hr", "hz", "hn")], 1).T.copy())
            )
            bi = np.concatenate([np.asarray(cell[n]["bias"]) for n in ("ir", "iz", "in")])
            bh = np.concatenate([np.zeros(2 * hidden, np.float32), np.asarray(cell["hn"]["bias"])])
            gru.bias_ih_l0.copy_(torch.from_numpy(bi))
            gru.bias_hh_l0.copy_(torch.from_numpy(bh))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.init_h = torch.nn.Parameter(
                torch.from_numpy(np.asarray(p["encoder"]["initial_state"]["init_h"]).copy())
            )
            self.encoder = torch.nn.GRU(features, hidden, batch_first=True)
            self.decoder = torch.nn.GRU(1, hidden, batch_first=True)
            self.readout = torch.nn.Linear(hidden, features)
            self.forecast = torch.nn.Linear(hidden, max(horizon, 1) * features)

        def forward(self, windows):
            start = self.init_h.expand(windows.shape[0], -1).unsqueeze(0).contiguous()
            states, carry = self.encoder(windows, start)
            zeros = windows.new_zeros((*windows.shape[:2], 1))
            out, _ = self.decoder(zeros, carry)
            if not horizon:
                return torch.flip(self.readout(out), dims=(1,)), None
            forecast = self.forecast(states).reshape(*states.shape[:2], horizon, features)
            return torch.flip(self.readout(out), dims=(1,)), forecast

    net = Net()
    gru_weights(net.encoder, p["encoder"]["cell"])
    gru_weights(net.decoder, p["decoder"]["cell"])
    with torch.no_grad():
        net.readout.weight.copy_(torch.from_numpy(np.asarray(p["readout"]["kernel"]).T.copy()))
        net.readout.bias.copy_(torch.from_numpy(np.asarray(p["readout"]["bias"]).copy()))
        if horizon:
            kernel, bias = p["forecast"]["kernel"], p["forecast"]["bias"]
            net.forecast.weight.copy_(torch.from_numpy(np.asarray(kernel).T.copy()))
            net.forecast.bias.copy_(torch.from_numpy(np.asarray(bias).copy()))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def loss_fn(windows):
        reconstruction, forecast = net(windows)
        total, count = 0.0, 0
        for j in range(horizon if forecast is not None else 0):  # forecast_loss's terms
            predicted = forecast[:, : windows.shape[1] - j - 1, j]
            total = total + torch.sum((predicted - windows[:, j + 1 :]) ** 2)
            count += predicted.numel()
        loss = torch.mean((reconstruction - windows) ** 2)
        return loss if forecast is None else loss + total / max(count, 1)

    def step(windows):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(windows)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        return loss

    return net, step, loss_fn


# ------------------------------------------------------------------------------ the steps

TX = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3))


def jax_step(model: nn.Module) -> Callable:
    def step(params, opt_state, windows):
        def loss(p):
            output = model.apply({"params": p}, windows)
            reconstruction, forecast = output if isinstance(output, tuple) else (output, None)
            loss = jnp.mean((reconstruction - windows) ** 2)
            return loss if forecast is None else loss + forecast_loss(windows, forecast)

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = TX.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


def compiled(model: nn.Module, params, windows) -> tuple[Callable, float]:
    """A freshly jitted train step and the wall time of its first call."""
    state = TX.init(params)
    fn = jax.jit(jax_step(model))
    start = time.perf_counter()
    jax.block_until_ready(fn(params, state, windows))
    return fn, time.perf_counter() - start


def runner(fn: Callable, params, batches) -> Callable[[int], float]:
    """``run(n) -> seconds per step`` over ``n`` steps, carrying the state along."""
    state = [params, TX.init(params)]
    i = [0]

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            state[0], state[1], loss = fn(state[0], state[1], batches[i[0] % len(batches)])
            i[0] += 1
        jax.block_until_ready(loss)
        return (time.perf_counter() - start) / n

    return run


def torch_runner(step: Callable, batches) -> Callable[[int], float]:
    tensors = [torch.from_numpy(np.array(b)) for b in batches]
    i = [0]

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            step(tensors[i[0] % len(tensors)])
            i[0] += 1
        return (time.perf_counter() - start) / n

    return run


# ------------------------------------------------------------------------------ checks


def jax_sides(params: dict, hidden: int, features: int, horizon: int) -> dict:
    """``name -> (model, its parameters)`` for the JAX sides, all at h0's weights."""
    return {
        "h0": (
            EncDecAD(features, hidden, strategy=h0.Learned(), forecast_horizon=horizon),
            params,
        ),
        "h0 generic": (H0EncDec(hidden, features, horizon, fast=False), params),
        "flax": (FlaxEncDec(hidden, features, horizon), flax_params(params)),
    }


def check_same_loss(params, windows, features: int, horizon: int) -> dict:
    """Loss at the shared weights and after one optimiser step, for every side."""
    out = {}
    hidden = params["encoder"]["cell"]["hr"]["kernel"].shape[0]
    for name, (model, p) in jax_sides(params, hidden, features, horizon).items():
        step = jax.jit(jax_step(model))
        _, _, first = step(p, TX.init(p), windows)
        p2, s2, _ = step(p, TX.init(p), windows)
        _, _, after = step(p2, s2, windows)
        out[name] = {"loss": float(first), "loss_after_one_step": float(after)}
    if torch is not None:
        _, step, loss_fn = make_torch(params, features, horizon)
        w = torch.from_numpy(np.array(windows))
        first = float(step(w).detach())
        with torch.no_grad():
            after = float(loss_fn(w))
        out["torch"] = {"loss": first, "loss_after_one_step": after}
    # Adam's first step moves every weight by about +-lr whatever the gradient's size, so a
    # weight whose gradient is near 0 may move either way: the loss after it agrees less well
    # across frameworks (different summation orders) than the loss itself.
    ref = out["h0 generic"]
    for name, v in out.items():
        for key, tol in (
            ("loss", 1e-5),
            ("loss_after_one_step", 1e-5 if name != "torch" else 3e-3),
        ):
            rel = abs(v[key] - ref[key]) / abs(ref[key])
            v[f"{key}_rel_diff_vs_generic"] = rel
            if rel > tol:
                raise AssertionError(
                    f"{name}'s {key} {v[key]} differs from h0 generic's {ref[key]}"
                )
    return out


# ------------------------------------------------------------------------------ main


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(np.floor(k)), int(np.ceil(k))
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=24)
    parser.add_argument("--horizon", type=int, default=1, help="forecasting head (0: none)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--steps", type=int, default=20, help="steps per side per round")
    parser.add_argument("--quick", action="store_true", help="a smoke run (3 rounds of 3 steps)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 3, 3
    if torch is not None:
        torch.set_num_threads(2)

    features = 1
    load_start = os.getloadavg()
    rng = np.random.default_rng(0)
    t = np.arange(args.window)
    batches = [
        jnp.asarray(
            np.sin(0.3 * t[None, :, None] + rng.uniform(0, 6.3, (args.batch, 1, 1)))
            + 0.1 * rng.normal(size=(args.batch, args.window, features)),
            jnp.float32,
        )
        for _ in range(8)
    ]
    model = H0EncDec(args.hidden, features, args.horizon)
    params = model.init(jax.random.key(0), batches[0])["params"]
    # A non-zero learned initial state, so that its copy into the other sides is checked.
    params["encoder"]["initial_state"]["init_h"] = 0.1 * jax.random.normal(
        jax.random.key(1), (args.hidden,)
    )
    checks = check_same_loss(params, batches[0], features, args.horizon)

    fns, compile_s, runs = {}, {}, {}
    for name, (side, p) in jax_sides(params, args.hidden, features, args.horizon).items():
        fns[name], compile_s[name] = compiled(side, p, batches[0])
        runs[name] = runner(fns[name], p, batches)
    if torch is not None:
        _, tstep, _ = make_torch(params, features, args.horizon)
        start = time.perf_counter()
        tstep(torch.from_numpy(np.array(batches[0])))
        compile_s["torch"] = time.perf_counter() - start  # first step (no compilation)
        runs["torch"] = torch_runner(tstep, batches)

    for run in runs.values():  # warm-up, every side
        run(max(3, args.steps))
    # The order rotates every round, so that no side always runs right after the same other
    # one (PyTorch's threads keep spinning for a while after a step, and slow whoever follows).
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(runs[name](args.steps))

    def ratio(a: str, b: str) -> dict:
        r = [x / y for x, y in zip(times[a], times[b], strict=True)]
        return {"median": statistics.median(r), "p25": quantile(r, 0.25), "p75": quantile(r, 0.75)}

    pairs = [("h0", "flax"), ("h0", "torch"), ("h0", "h0 generic"), ("flax", "torch")]
    ratios = {f"{a} / {b}": ratio(a, b) for a, b in pairs if a in times and b in times}
    result = {
        "benchmark": "detector_train_speed",
        "sizes": {
            "batch": args.batch,
            "window": args.window,
            "hidden": args.hidden,
            "features": features,
            "forecast_horizon": args.horizon,
        },
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "ms_per_step_median": {k: 1e3 * statistics.median(v) for k, v in times.items()},
        "ms_per_step_min": {k: 1e3 * min(v) for k, v in times.items()},
        "ratios": ratios,
        "first_call_s": compile_s,
        "same_loss_checks": checks,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "versions": {
            "python": sys.version.split()[0],
            "jax": jax.__version__,
            "flax": __import__("flax").__version__,
            "optax": optax.__version__,
            "torch": None if torch is None else torch.__version__,
        },
        "quick": args.quick,
    }

    print(
        f"EncDec-AD train step, B={args.batch}, T={args.window}, H={args.hidden}, "
        f"forecast horizon {args.horizon}; "
        f"{args.rounds} alternated rounds of {args.steps} steps; load {load_start[0]:.1f} -> "
        f"{result['load_average_end'][0]:.1f}"
    )
    print("| side | ms / step (median) | min | first call s | loss |")
    print("|---|---|---|---|---|")
    for name in times:
        print(
            f"| {name} | {result['ms_per_step_median'][name]:.2f} | "
            f"{result['ms_per_step_min'][name]:.2f} | {compile_s[name]:.2f} | "
            f"{checks[name]['loss']:.6f} |"
        )
    print("\n| ratio | median | p25-p75 |\n|---|---|---|")
    for name, r in ratios.items():
        print(f"| {name} | {r['median']:.2f} | {r['p25']:.2f}-{r['p75']:.2f} |")
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
