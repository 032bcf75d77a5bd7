"""Is the detector's train step bound by per-step overhead or by its arithmetic? Step time vs batch.

If a step of the detector's default network (window 32, GRU 24, one channel, the one-step
forecasting head) were bound by fixed
per-step costs (dispatch, loop iterations), doubling the batch would cost far less than double.
This times the detector's own jitted train step at batch 64, 128 and 256, alternated round by
round, and reports each batch's median step time and the median per-round ratio to batch 64
(2.0 at batch 128 would mean the step is bound by its arithmetic).

    PYTHONPATH=src python benchmarks/detector_batch_scaling.py   # writes benchmarks/results/detector_batch_scaling.json
    PYTHONPATH=src python benchmarks/detector_batch_scaling.py --quick --out /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from h0.anomaly._model import EncDecAD
from h0.anomaly._names import detector_strategy
from h0.anomaly._train import optimizer, train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default: benchmarks/results/detector_batch_scaling.json",
    )
    args = parser.parse_args()
    rounds, steps = (2, 2) if args.quick else (args.rounds, args.steps)
    window, hidden, lr = 32, 24, 3e-3
    model = EncDecAD(
        features=1, hidden=hidden, strategy=detector_strategy("learned", window=window)
    )
    rng = np.random.default_rng(0)
    sides = {}
    for batch in (64, 128, 256):
        windows = jnp.asarray(rng.normal(size=(batch, window, 1)), jnp.float32)
        ids = jnp.zeros((batch,), jnp.int32)
        params = model.init(
            {"params": jax.random.key(0), "carry": jax.random.key(1)}, windows, ids
        )["params"]
        step = train_step(model, lr)
        state = optimizer(lr).init(params)
        step(params, state, (windows, ids), jax.random.key(2))[2].block_until_ready()  # compile
        sides[batch] = (step, params, state, (windows, ids))
    times: dict[int, list[float]] = {b: [] for b in sides}
    order = list(sides)
    for r in range(rounds):
        for batch in order[r % 3 :] + order[: r % 3]:
            step, params, state, data = sides[batch]
            start = time.perf_counter()
            for _ in range(steps):
                params, state, loss = step(params, state, data, jax.random.key(2))
            loss.block_until_ready()
            times[batch].append((time.perf_counter() - start) / steps)
    rows = {
        batch: {
            "ms_per_step": 1e3 * statistics.median(t),
            "ratio_to_64": statistics.median(a / b for a, b in zip(t, times[64], strict=True)),
        }
        for batch, t in times.items()
    }
    print(
        f"detector train step (window {window}, GRU {hidden}, forecast head); load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'batch':>6}{'ms/step':>10}{'/ batch 64':>12}")
    for batch, row in rows.items():
        print(f"{batch:>6}{row['ms_per_step']:>10.2f}{row['ratio_to_64']:>12.2f}")
    out = args.out or (
        None if args.quick else Path("benchmarks/results/detector_batch_scaling.json")
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "benchmark": "detector_batch_scaling",
            "rounds": rounds,
            "steps_per_round": steps,
            "rows": {str(b): r for b, r in rows.items()},
            "load_average": os.getloadavg(),
            "jax": jax.__version__,
        }
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
