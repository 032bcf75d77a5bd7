"""Per-step cost of a small GRU loop on XLA:CPU by where the step's input comes from.

The detector's recurrence is small (batch 64, 24 units) and its train step is bound by what each
loop iteration costs. This probe times one GRU step (``[b, h] @ [h, 3h]`` plus the gates) inside
``lax.scan`` over ``T`` steps, with the step's input pre-activations ``[b, 3h]`` taken three ways:

- ``sliced``: the scanned input, ``xs[t]`` (what ``lax.scan`` over ``xs``, ``flax.linen.RNN`` and
  h0's runners do): XLA fuses the dynamic slice into the step's elementwise kernel;
- ``prefetched``: the same values, but each step slices the *next* step's input into the loop's
  carry, so the elementwise kernel reads a plain buffer;
- ``constant``: one fixed input for every step (a floor: no per-step read at all).

All three compute the same outputs where they should (``sliced`` and ``prefetched`` are checked
equal before timing). The variants are warmed up, then run in rotating order round after round;
each ratio is the median of the per-round ratios (the machine is shared).

    PYTHONPATH=src python benchmarks/loop_slices.py     # writes benchmarks/results/loop_slices.json
    PYTHONPATH=src python benchmarks/loop_slices.py --quick
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

OUT = Path(__file__).resolve().parent / "results" / "loop_slices.json"


def _sigmoid(x):
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _cell(wh, bhn, h, a_t):
    hidden = h.shape[-1]
    g = h @ wh
    r = _sigmoid(a_t[:, :hidden] + g[:, :hidden])
    z = _sigmoid(a_t[:, hidden : 2 * hidden] + g[:, hidden : 2 * hidden])
    n = jnp.tanh(a_t[:, 2 * hidden :] + r * (g[:, 2 * hidden :] + bhn))
    return n + z * (h - n)


def sliced(wh, bhn, h0, a):
    def body(h, a_t):
        new = _cell(wh, bhn, h, a_t)
        return new, new

    return jax.lax.scan(body, h0, a)[1]


def prefetched(wh, bhn, h0, a):
    steps = a.shape[0]

    def body(state, t):
        h, a_t = state
        upcoming = jax.lax.dynamic_index_in_dim(a, jnp.minimum(t + 1, steps - 1), 0, False)
        new = _cell(wh, bhn, h, a_t)
        return (new, upcoming), new

    return jax.lax.scan(body, (h0, a[0]), jnp.arange(steps))[1]


def constant(wh, bhn, h0, a):
    def body(h, _):
        new = _cell(wh, bhn, h, a[0])
        return new, new

    return jax.lax.scan(body, h0, None, length=a.shape[0])[1]


SIZES = ((64, 32, 16), (64, 32, 24), (64, 32, 48), (256, 32, 24), (64, 128, 24))  # B, T, H
VARIANTS = {"sliced": sliced, "prefetched": prefetched, "constant": constant}


def measure(batch: int, steps: int, hidden: int, rounds: int, calls: int) -> dict:
    rng = np.random.default_rng(0)
    wh = jnp.asarray(rng.standard_normal((hidden, 3 * hidden)).astype(np.float32) * 0.1)
    bhn = jnp.zeros((hidden,), jnp.float32)
    h0 = jnp.zeros((batch, hidden), jnp.float32)
    a = jnp.asarray(rng.standard_normal((steps, batch, 3 * hidden)).astype(np.float32))
    fns = {name: jax.jit(f) for name, f in VARIANTS.items()}
    outs = {name: jax.block_until_ready(f(wh, bhn, h0, a)) for name, f in fns.items()}
    np.testing.assert_allclose(outs["sliced"], outs["prefetched"], rtol=1e-6, atol=1e-6)

    def run(name: str) -> float:
        start = time.perf_counter()
        for _ in range(calls):
            out = fns[name](wh, bhn, h0, a)
        jax.block_until_ready(out)
        return (time.perf_counter() - start) / calls / steps * 1e6  # us per step

    for name in fns:  # warm-up
        run(name)
    times: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    for k in range(rounds):
        for name in order[k % 3 :] + order[: k % 3]:
            times[name].append(run(name))

    def ratio(x: str, y: str) -> float:
        return statistics.median(p / q for p, q in zip(times[x], times[y], strict=True))

    return {
        "batch": batch,
        "steps": steps,
        "hidden": hidden,
        "us_per_step": {name: statistics.median(v) for name, v in times.items()},
        "prefetched_over_sliced": ratio("prefetched", "sliced"),
        "constant_over_sliced": ratio("constant", "sliced"),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one size, few rounds")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON path (default {OUT})")
    args = parser.parse_args(argv)
    sizes = [(64, 32, 24)] if args.quick else [*SIZES]
    rounds, calls = (3, 20) if args.quick else (15, 200)
    load_start = os.getloadavg()
    rows = [measure(b, t, h, rounds, calls) for b, t, h in sizes]
    result = {
        "benchmark": "loop_slices",
        "rounds": rounds,
        "calls_per_round": calls,
        "rows": rows,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "jax": jax.__version__,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    print("GRU step inside lax.scan, us per step (medians); ratios: medians of per-round ratios")
    print("| B, T, H | sliced | prefetched | constant | prefetched / sliced | constant / sliced |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        us = r["us_per_step"]
        print(
            f"| {r['batch']}, {r['steps']}, {r['hidden']} | {us['sliced']:.1f} | "
            f"{us['prefetched']:.1f} | {us['constant']:.1f} | "
            f"**{r['prefetched_over_sliced']:.2f}** | {r['constant_over_sliced']:.2f} |"
        )
    if not args.quick or args.out:
        out = args.out or OUT
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
