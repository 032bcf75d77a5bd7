"""Fleet scoring throughput and training step time on 1 vs 4 host devices.

    PYTHONPATH=src python benchmarks/fleet_speed.py            # writes benchmarks/results/fleet_speed.json
    PYTHONPATH=src python benchmarks/fleet_speed.py --quick    # small sizes, for a smoke test

JAX fixes the device count when it starts, so each configuration runs in its own subprocess
(``XLA_FLAGS=--xla_force_host_platform_device_count=N``). The two configurations are alternated
A, B, A, B (one subprocess each per round); inside a subprocess everything is warmed up (compiled)
first, then timed several times and the median kept. The table shows the median over rounds and
the median of the per-round ratios (4 devices / 1 device).

What is timed, on a synthetic fleet (sines of different periods plus noise, seeded):

* ``score_many``: every series' continuation scored in one call (the batched network pass, split
  over the devices, plus the calibrated score, numpy, per series);
* the network pass alone (the windows of all series through the encoder-decoder);
* one data-parallel training step (``batch_size`` windows, the detector's own jitted step).

With 1 device the detector runs exactly as without a mesh (``mesh=None``); with 4 it trains and
scores on ``h0.parallel.data_mesh()``. Host devices split one CPU: they can show the overhead of
sharding and that the code path works, not a speed-up that needs more physical cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FULL = dict(series=64, points=2000, train=500, window=32, hidden=24, batch=64, repeats=5, steps=20)
QUICK = dict(series=8, points=400, train=200, window=16, hidden=16, batch=32, repeats=3, steps=5)


def worker(devices: int, size: dict[str, int]) -> dict[str, float]:
    """Runs inside a subprocess with ``devices`` host devices; returns medians in seconds."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import h0.parallel as hp
    from h0.anomaly import GRUAutoencoderDetector
    from h0.anomaly._train import optimizer as make_optimizer
    from h0.anomaly._train import train_step

    assert len(jax.devices()) == devices, jax.devices()
    rng = np.random.default_rng(0)
    n, t = size["series"], size["points"]
    fleet = [np.sin(np.arange(t) / (3 + i % 17)) + 0.1 * rng.normal(size=t) for i in range(n)]
    train = [s[: size["train"]] for s in fleet]
    rest = [s[size["train"] :] for s in fleet]
    mesh = hp.data_mesh() if devices > 1 else None
    det = GRUAutoencoderDetector(
        window=size["window"],
        hidden=size["hidden"],
        batch_size=size["batch"],
        epochs=1,
        initial_state="per_sequence",
        seed=0,
    )
    det.fit(train, mesh=mesh)

    def median_time(fn, repeats):
        fn()  # warm up: compilation
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    score_s = median_time(lambda: det.score_many(rest), size["repeats"])

    windows = np.concatenate(
        [det._continuation(det._check_series(r, i), i) for i, r in enumerate(rest)]
    )
    ids = np.repeat(np.arange(n, dtype=np.int32), [r.shape[0] for r in rest])
    network_s = median_time(lambda: det._features(windows, ids), size["repeats"])

    model = det._model()
    optimizer = make_optimizer(det.learning_rate)
    batch = (
        jnp.asarray(windows[: size["batch"]]),
        jnp.asarray(ids[: size["batch"]]),
    )
    params, opt_state = det.params_, optimizer.init(det.params_)
    step = train_step(model, float(det.learning_rate), mesh)
    if mesh is not None:
        params, opt_state = hp.replicate(params, mesh), hp.replicate(opt_state, mesh)
        batch = hp.shard_batch(batch, mesh)
    key = jax.random.key(0)

    def steps():
        p, s = params, opt_state
        for _ in range(size["steps"]):
            p, s, loss = step(p, s, batch, key)
        jax.block_until_ready(loss)

    step_s = median_time(steps, size["repeats"]) / size["steps"]
    return {
        "score_many_s": score_s,
        "network_s": network_s,
        "train_step_s": step_s,
        "scored_points": int(sum(r.shape[0] for r in rest)),
    }


def run_config(devices: int, quick: bool) -> dict[str, float]:
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join(
            p for p in [str(ROOT / "src"), os.environ.get("PYTHONPATH")] if p
        ),
    )
    argv = [sys.executable, __file__, "--worker", str(devices)] + (["--quick"] if quick else [])
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"worker with {devices} devices failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="A,B rounds (default 3; quick 2)")
    parser.add_argument("--devices", type=int, default=4, help="the sharded configuration (4)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "fleet_speed.json"
    )
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    if args.worker is not None:
        print(json.dumps(worker(args.worker, size)))
        return

    rounds = args.rounds or (2 if args.quick else 3)
    configs = [1, args.devices]
    load_before = os.getloadavg()
    runs: dict[int, list[dict[str, float]]] = {d: [] for d in configs}
    for r in range(rounds):
        for d in configs:  # A, B, A, B, ...
            runs[d].append(run_config(d, args.quick))
            print(f"round {r + 1}/{rounds}, {d} device(s): {runs[d][-1]}", file=sys.stderr)
    load_after = os.getloadavg()

    n, points = size["series"], runs[1][0]["scored_points"]
    rows = []

    def med(d, key):
        return statistics.median(x[key] for x in runs[d])

    def ratio(key):
        a, b = configs
        return statistics.median(y[key] / x[key] for x, y in zip(runs[a], runs[b], strict=True))

    for d in configs:
        rows.append(
            {
                "devices": d,
                "series_per_s": n / med(d, "score_many_s"),
                "points_per_s": points / med(d, "score_many_s"),
                "network_points_per_s": points / med(d, "network_s"),
                "train_step_ms": 1000 * med(d, "train_step_s"),
            }
        )
    ratios = {k: ratio(k) for k in ("score_many_s", "network_s", "train_step_s")}

    lines = [
        f"Fleet of {n} series x {size['points']} points (train on {size['train']}, score "
        f"{points} points), window {size['window']}, hidden {size['hidden']}, batch "
        f"{size['batch']}; {rounds} rounds A,B; load {load_before[0]:.1f} -> {load_after[0]:.1f} "
        f"on {os.cpu_count()} CPUs",
        "",
        "| host devices | fleet scoring series/s | points/s | network pass points/s | train step ms |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['devices']} | {row['series_per_s']:.1f} | {row['points_per_s']:,.0f} | "
            f"{row['network_points_per_s']:,.0f} | {row['train_step_ms']:.2f} |"
        )
    lines.append(
        f"| time ratio {configs[1]}/1 (median of rounds) | {ratios['score_many_s']:.2f} | | "
        f"{ratios['network_s']:.2f} | {ratios['train_step_s']:.2f} |"
    )
    print("\n".join(lines))
    result = {
        "size": size,
        "rounds": rounds,
        "quick": args.quick,
        "rows": rows,
        "time_ratio_sharded_over_single": ratios,
        "raw": {str(d): runs[d] for d in configs},
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "markdown": "\n".join(lines),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
