"""How fast is ``h0 detect``? End-to-end time, training time, scoring throughput, streaming latency.

Runs on the bundled NAB series (22,695 points), default settings:

    PYTHONPATH=src python benchmarks/detect_speed.py --out benchmarks/results/detect_speed.json

Prints a markdown table and writes JSON. The machine's load average is recorded before and after,
because on a shared CPU other processes slow every number down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def end_to_end(repeats: int) -> list[float]:
    """Wall time of ``h0 detect`` in a fresh process (imports, JIT compilation and report included)."""
    times = []
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "h0._cli", "detect", "--quiet", "--out", f"{tmp}/r"],
                check=True,
                env=env,
            )
            times.append(time.perf_counter() - start)
    return times


def in_process(score_repeats: int, stream_points: int) -> dict[str, float]:
    import numpy as np

    from h0.anomaly import GRUAutoencoderDetector
    from h0.anomaly._detector import windows_of
    from h0.anomaly._io import bundled_paths, load_csv

    values = load_csv(bundled_paths()[0], keep_order=True).values
    n_train = int(0.15 * len(values))
    det = GRUAutoencoderDetector()
    start = time.perf_counter()
    det.fit(values[:n_train])
    fit_s = time.perf_counter() - start
    rest = values[n_train:]

    det.score(rest)  # warm up
    score_times = []
    for _ in range(score_repeats):
        start = time.perf_counter()
        det.score(rest)
        score_times.append(time.perf_counter() - start)
    joined = np.concatenate([det._tails[0], det._standardize(rest, 0)])
    windows = windows_of(joined, det.window)
    det._features(windows, 0)
    net_times = []
    for _ in range(score_repeats):
        start = time.perf_counter()
        det._features(windows, 0)
        net_times.append(time.perf_counter() - start)

    stream = det.stream()
    for v in rest[:50]:
        stream.update(v)
    latencies = []
    for v in rest[50 : 50 + stream_points]:
        start = time.perf_counter()
        stream.update(v)
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    return {
        "fit_s": fit_s,
        "scored_points": len(rest),
        "score_s_median": statistics.median(score_times),
        "score_points_per_s": len(rest) / statistics.median(score_times),
        "network_points_per_s": len(rest) / statistics.median(net_times),
        "stream_points": len(latencies),
        "stream_median_ms": 1e3 * latencies[len(latencies) // 2],
        "stream_p90_ms": 1e3 * latencies[int(0.9 * len(latencies))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/detect_speed.json"))
    parser.add_argument("--end-to-end-repeats", type=int, default=3)
    parser.add_argument("--score-repeats", type=int, default=5)
    parser.add_argument("--stream-points", type=int, default=2000)
    args = parser.parse_args()

    load_before = os.getloadavg()
    e2e = end_to_end(args.end_to_end_repeats)
    stats = in_process(args.score_repeats, args.stream_points)
    load_after = os.getloadavg()
    import jax

    result = {
        "series": "realKnownCause/machine_temperature_system_failure.csv (22,695 points)",
        "settings": "defaults: window 32, hidden 32, 20 epochs, train on the first 15%",
        "end_to_end_s": e2e,
        "end_to_end_s_median": statistics.median(e2e),
        **stats,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "python": platform.python_version(),
    }
    rows = [
        (
            f"`h0 detect` end to end (median of {len(e2e)}, fresh process)",
            f"{result['end_to_end_s_median']:.1f} s",
            "<= 60 s",
        ),
        ("training (`fit`, incl. compilation and calibration)", f"{stats['fit_s']:.1f} s", ""),
        (
            "scoring after training (`score`: network + calibrated score)",
            f"{stats['score_points_per_s']:,.0f} points/s",
            ">= 100,000",
        ),
        ("network only (error features)", f"{stats['network_points_per_s']:,.0f} points/s", ""),
        ("streaming `update` median", f"{stats['stream_median_ms']:.3f} ms", "<= 1 ms"),
        ("streaming `update` p90", f"{stats['stream_p90_ms']:.3f} ms", ""),
    ]
    print("| measure | value | target |\n|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    print(
        f"\n{result['cpus']} CPUs, load average {load_before[0]:.1f} before / "
        f"{load_after[0]:.1f} after; {result['device']}, jax {result['jax']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
