"""A real multi-process run: N processes on this machine, one global mesh, two training jobs.

Each worker process is this script again (``--worker``): it calls ``jax.distributed.initialize``
against a coordinator on ``localhost`` (CPU collectives through gloo), builds
``h0.parallel.data_mesh()`` over every process's device (one each) and runs two jobs:

* ``train_step``: an ``h0.RNN`` (GRU, learned initial state, masked lengths) trained for a few
  steps with ``h0.parallel.make_train_step`` on the mesh, the batch placed with
  ``h0.parallel.shard_batch`` (every process holds its share of the rows);
* ``detector``: the anomaly detector fitted with ``fit(X, mesh=mesh)`` (the same train step
  inside; its error features computed on the mesh and gathered back with
  ``h0.parallel.to_host``), then every process scores the test part.

The reference is each job in one process with one device and no mesh. Reported per process
count and job: the largest differences of the losses, the parameters and (detector) the scores
from the reference; per process count the wall time of the whole run (process start,
``initialize``, compilation and both jobs included). ``tests/test_multiprocess.py`` runs it.

    python benchmarks/multiprocess.py                     # 2 and 4 processes, about a minute
    python benchmarks/multiprocess.py --processes 2 --out /tmp/mp.json

The commands a user runs on several machines are in docs/scaling.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

#: The detector's settings for the run: small, so that a run takes seconds.
SETTINGS = {"window": 16, "hidden": 8, "epochs": 3, "batch_size": 16, "seed": 0}
#: Steps of the ``train_step`` job.
STEPS = 4
#: Wall-clock limit of one multi-process run (all its processes), seconds.
TIMEOUT_S = 300


def series():
    """A noisy sine with a spike in the test part: 800 training points, 400 test points."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = np.sin(np.arange(1200) / 6.0) + 0.05 * rng.normal(size=1200)
    x[1000] += 3.0
    return x[:800], x[800:]


def train_steps(mesh=None) -> dict:
    """``STEPS`` steps of an ``h0.RNN`` with ``make_train_step`` (on ``mesh`` if given)."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import h0
    import h0.parallel as hp

    model = h0.RNN(nn.GRUCell(8), h0.Learned(init="normal"))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 10, 3)).astype(np.float32)
    batch = {
        "x": x,
        "y": np.sin(np.cumsum(x, axis=1))[..., :1],
        "lengths": rng.integers(1, 11, 8).astype(np.int32),
    }
    readout = np.asarray(jax.random.normal(jax.random.key(2), (8, 1))) * 0.3
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))

    def loss_fn(params, batch, key):
        out = model.apply({"params": params}, batch["x"], seq_lengths=batch["lengths"])
        noise = 0.01 * jax.random.normal(key, batch["y"].shape)
        return jnp.mean((out @ readout - batch["y"] - noise) ** 2)

    params = model.init(jax.random.key(1), batch["x"])["params"]
    opt_state = tx.init(params)
    step = hp.make_train_step(loss_fn, tx, mesh)
    local = None
    if mesh is not None:
        params, opt_state = hp.replicate(params, mesh), hp.replicate(opt_state, mesh)
        batch = hp.shard_batch(batch, mesh)
        local = [list(s.data.shape) for s in batch["x"].addressable_shards]
    losses = []
    for i in range(STEPS):
        params, opt_state, loss = step(params, opt_state, batch, jax.random.key(i))
        losses.append(float(loss))
    leaves = [hp.to_host(leaf).ravel().tolist() for leaf in jax.tree.leaves(params)]
    return {"losses": losses, "params": leaves, "local_shards": local}


def fit_and_score(mesh=None) -> dict:
    """Fit the detector (on ``mesh`` if given), score the test part; everything as lists."""
    import jax
    import numpy as np

    from h0.anomaly import GRUAutoencoderDetector

    train, test = series()
    det = GRUAutoencoderDetector(**SETTINGS).fit(train, mesh=mesh)
    params = [np.asarray(leaf).ravel().tolist() for leaf in jax.tree.leaves(det.params_)]
    return {
        "losses": [float(v) for v in det.loss_history_],
        "params": params,
        "scores": det.score(test).tolist(),
        "threshold": float(det.threshold_),
    }


def worker(coordinator: str, processes: int, process_id: int) -> None:
    """One process of a multi-process run: initialise, fit on the global mesh, print JSON."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # the default, made explicit
    jax.distributed.initialize(
        coordinator, num_processes=processes, process_id=process_id, initialization_timeout=120
    )
    import h0.parallel as hp

    mesh = hp.data_mesh()
    out = {"train_step": train_steps(mesh), "detector": fit_and_score(mesh)}
    out.update(process=jax.process_index(), devices=len(jax.devices()))
    out["local_devices"] = len(jax.local_devices())
    print(json.dumps(out))
    jax.distributed.shutdown()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run_processes(processes: int) -> tuple[list[dict], float]:
    """Start ``processes`` workers, wait for all (bounded), return their outputs and the wall time.

    Whatever happens (a failure, the time limit), no worker is left running.
    """
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")  # one CPU device per process
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    coordinator = f"localhost:{_free_port()}"
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", coordinator, str(processes), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    outputs = []
    try:
        deadline = start + TIMEOUT_S
        for proc in procs:
            out, err = proc.communicate(timeout=max(deadline - time.perf_counter(), 1))
            if proc.returncode != 0:
                raise RuntimeError(f"worker exited with {proc.returncode}:\n{err[-3000:]}")
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return outputs, time.perf_counter() - start


def max_difference(a, b) -> float:
    """Largest absolute difference of two equally shaped nested lists of numbers."""
    import numpy as np

    if isinstance(a, list) and a and isinstance(a[0], list):
        return max(max_difference(x, y) for x, y in zip(a, b, strict=True))
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def compare(workers: list[dict], reference: dict, job: str) -> dict:
    """The largest differences of any worker's results of ``job`` from the reference's."""
    keys = [k for k in ("losses", "params", "scores") if k in reference[job]]
    out = {
        f"max_abs_{k}": max(max_difference(w[job][k], reference[job][k]) for w in workers)
        for k in keys
    }
    if job == "detector":
        out["max_abs_threshold"] = max(
            abs(w[job]["threshold"] - reference[job]["threshold"]) for w in workers
        )
    else:
        out["local_shards"] = sorted({str(w[job]["local_shards"]) for w in workers})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[2, 4])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "multiprocess.json"
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("COORDINATOR", "N", "ID"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
        return 0

    start = time.perf_counter()
    reference = {"train_step": train_steps(), "detector": fit_and_score()}
    rows = [{"processes": 1, "devices": 1, "wall_s": time.perf_counter() - start}]
    for n in args.processes:
        workers, wall = run_processes(n)
        rows.append(
            {
                "processes": n,
                "devices": workers[0]["devices"],
                "local_devices": sorted({w["local_devices"] for w in workers}),
                "process_ids": sorted(w["process"] for w in workers),
                "wall_s": wall,
                **{job: compare(workers, reference, job) for job in reference},
            }
        )
    header = (
        "| processes | devices | job | max abs loss diff | max abs param diff | max abs score diff"
    )
    print(header + " | wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["processes"] == 1:
            print(f"| 1 (reference, no mesh) | 1 | both | | | | {r['wall_s']:.1f} |")
            continue
        for job in reference:
            d = r[job]
            scores = f"{d['max_abs_scores']:.1e}" if "max_abs_scores" in d else ""
            print(
                f"| {r['processes']} | {r['devices']} | {job} | {d['max_abs_losses']:.1e} | "
                f"{d['max_abs_params']:.1e} | {scores} | {r['wall_s']:.1f} |"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "multiprocess",
                "settings": SETTINGS,
                "reference_losses": {job: reference[job]["losses"] for job in reference},
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
