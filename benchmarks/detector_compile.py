"""Compile time of the detector's first ``fit`` (and first ``score``) against the series length.

Each length runs in a fresh subprocess (no compilation cache carries over): a sine with noise,
``GRUAutoencoderDetector(epochs=1).fit`` on it, then ``score`` on a continuation of the same
length. JAX reports the seconds it spends tracing, lowering to MLIR and compiling through
``jax.monitoring``'s duration events; their sum during ``fit`` (and during ``score``) is the
compile time, and the number of backend compilations is counted too. The training step's shapes
are fixed (batches of ``batch_size`` windows), and scoring pads its batches to powers of two up
to a cap, so the compile time should not grow with the length. The first length then runs twice
more with the command line's persistent compilation cache (``h0._compilecache``) in a temporary
directory: the first process fills it, the second loads from it.

    PYTHONPATH=src python benchmarks/detector_compile.py           # writes the JSON below
    PYTHONPATH=src python benchmarks/detector_compile.py --lengths 2000 20000 --out /tmp/c.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "detector_compile.json"

CHILD = r"""
import json, sys, time
import jax, jax.monitoring as monitoring
import numpy as np

totals = {"seconds": 0.0, "compilations": 0}
def listener(name, seconds, **kwargs):
    if name.startswith("/jax/core/compile/"):
        totals["seconds"] += seconds
        if name.endswith("backend_compile_duration"):
            totals["compilations"] += 1
monitoring.register_event_duration_secs_listener(listener)

from h0 import _compilecache
from h0.anomaly import GRUAutoencoderDetector

cache = _compilecache.enable() if sys.argv[2] == "cache" else None

n = int(sys.argv[1])
rng = np.random.default_rng(0)
t = np.arange(2 * n)
x = (np.sin(2 * np.pi * t / 50) + 0.1 * rng.normal(size=t.size)).astype(np.float32)
out = {"length": n, "cache": sys.argv[2]}
for stage, call in (
    ("fit", lambda det: det.fit(x[:n])),
    ("score", lambda det: det.score(x[n:])),
):
    before = dict(totals)
    start = time.perf_counter()
    if stage == "fit":
        det = GRUAutoencoderDetector(epochs=1)
    call(det)
    out[f"{stage}_wall_s"] = time.perf_counter() - start
    out[f"{stage}_compile_s"] = totals["seconds"] - before["seconds"]
    out[f"{stage}_compilations"] = totals["compilations"] - before["compilations"]
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", nargs="+", type=int, default=[1000, 10000, 100000])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--quick", action="store_true", help="a smoke run: one length, 300")
    args = parser.parse_args(argv)
    if args.quick:
        args.lengths = [300]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    rows = []
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as cache:
        # Without a cache at every length; then the command line's cache (h0._compilecache) at
        # the first length: a first process fills it, a second one loads from it.
        runs = [(n, "none") for n in args.lengths] + [(args.lengths[0], "cache")] * 2
        for n, mode in runs:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(n), mode],
                capture_output=True,
                text=True,
                env={**env, "H0_COMPILATION_CACHE": cache},
            )
            if done.returncode:
                raise SystemExit(f"length {n} failed:\n{done.stderr[-2000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        f"h0 detector, defaults with epochs=1; load {load_start[0]:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print(
        "| points (fit, then score) | compilation cache | fit s | compile s in fit | compilations | score s | "
        "compile s in score | compilations |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['length']:,} | {r['cache']} | {r['fit_wall_s']:.2f} | {r['fit_compile_s']:.2f} | "
            f"{r['fit_compilations']} | {r['score_wall_s']:.2f} | {r['score_compile_s']:.2f} | "
            f"{r['score_compilations']} |"
        )
    import jax

    result = {
        "benchmark": "detector_compile",
        "settings": "GRUAutoencoderDetector defaults, epochs=1; a fresh process per length",
        "rows": rows,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "jax": jax.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
