"""Step time of N independent detector models trained as one program: how many to vectorise.

``h0.parallel.make_ensemble_train_step`` trains ``N`` models in one jitted step. With
``vectorize=None`` the step is :func:`jax.vmap` over the model axis (every matmul batched over the
models); with ``vectorize=k`` the models run in groups of ``k`` in sequence inside the same program
(:func:`jax.lax.map` with ``batch_size=k``). ``alone`` is the detector's own single-model step
called ``N`` times from Python (what ``N`` processes or a Python loop would pay, per core).

The model is the detector's default (window 32, hidden 24, one channel, batch 64), ``N = 58``
(NAB's series). Every variant computes the same losses (checked before timing); each is warmed
up, then the variants run in rotating order, round after round, and each ratio (variant / vmap)
is the median over rounds of the per-round ratio (the machine is shared).

    PYTHONPATH=src python benchmarks/ensemble_speed.py            # writes benchmarks/results/ensemble_speed.json
    PYTHONPATH=src python benchmarks/ensemble_speed.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from h0 import _parallel as hp
from h0.anomaly._model import EncDecAD
from h0.anomaly._names import detector_strategy
from h0.anomaly._train import optimizer, reconstruction_loss, train_step


def build(models: int, batch: int, window: int, hidden: int):
    """The detector's model, ``models`` stacked copies of its parameters, a batch per model."""
    model = EncDecAD(
        features=1, hidden=hidden, strategy=detector_strategy("learned", window=window)
    )
    rng = np.random.default_rng(0)
    windows = jnp.asarray(rng.normal(size=(models, batch, window, 1)), jnp.float32)
    ids = jnp.zeros((models, batch), jnp.int32)
    params = model.init(
        {"params": jax.random.key(0), "carry": jax.random.key(1)}, windows[0], ids[0]
    )["params"]
    stacked = jax.tree.map(lambda a: jnp.stack([a] * models), params)
    keys = jax.random.split(jax.random.key(2), models)
    return model, params, stacked, (windows, ids), keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=58)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: benchmarks/results/ensemble_speed.json"
    )  # --quick writes only where --out says
    args = parser.parse_args()
    models, rounds, steps = (8, 3, 2) if args.quick else (args.models, args.rounds, args.steps)
    batch, window, hidden, lr = 64, 32, 24, 3e-3
    model, params, stacked, (windows, ids), keys = build(models, batch, window, hidden)
    tx = optimizer(lr)
    state = jax.vmap(tx.init)(stacked)
    active = jnp.ones((models,), bool)

    def loss_fn(p, b, key):
        return reconstruction_loss(model, p, b, key, deterministic=False)

    variants = {"vmap": None, **{f"vectorize={k}": k for k in (1, 2, 4, 8) if k <= models}}
    steps_fns = {
        name: hp.make_ensemble_train_step(loss_fn, tx, masked=True, vectorize=k)
        for name, k in variants.items()
    }
    single = train_step(model, lr)
    single_state = tx.init(params)

    def run_alone():
        out = []
        for m in range(models):
            out.append(single(params, single_state, (windows[m], ids[m]), keys[m])[2])
        return jnp.stack(out)

    runners = {
        name: (lambda f=f: f(stacked, state, (windows, ids), keys, active)[2])
        for name, f in steps_fns.items()
    }
    runners["alone"] = run_alone
    first_call, losses = {}, {}
    for name, run in runners.items():
        start = time.perf_counter()
        losses[name] = np.asarray(run())
        first_call[name] = time.perf_counter() - start
    for name, value in losses.items():  # the same computation, or the timing means nothing
        np.testing.assert_allclose(value, losses["alone"], rtol=1e-4, err_msg=name)
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            for _ in range(steps):
                out = runners[name]()
            out.block_until_ready()
            times[name].append((time.perf_counter() - start) / steps)
    ratios = {
        name: statistics.median(t / v for t, v in zip(times[name], times["vmap"], strict=True))
        for name in runners
    }
    rows = {
        name: {
            "ms_per_step": 1e3 * statistics.median(times[name]),
            "ms_per_model": 1e3 * statistics.median(times[name]) / models,
            "ratio_to_vmap": ratios[name],
            "first_call_s": first_call[name],
        }
        for name in runners
    }
    print(f"{models} models, batch {batch}, window {window}, hidden {hidden}; {rounds} rounds")
    print(f"{'variant':<14}{'ms/step':>10}{'ms/model':>10}{'/ vmap':>8}{'first s':>9}")
    for name, row in rows.items():
        print(
            f"{name:<14}{row['ms_per_step']:>10.1f}{row['ms_per_model']:>10.2f}"
            f"{row['ratio_to_vmap']:>8.2f}{row['first_call_s']:>9.2f}"
        )
    result = {
        "benchmark": "ensemble_speed",
        "sizes": {"models": models, "batch": batch, "window": window, "hidden": hidden},
        "rounds": rounds,
        "steps_per_round": steps,
        "variants": rows,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
            "python": platform.python_version(),
            "jax": jax.__version__,
        },
    }
    if args.out is None and not args.quick:
        args.out = Path("benchmarks/results/ensemble_speed.json")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
