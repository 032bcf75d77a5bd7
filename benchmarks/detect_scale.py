"""How does ``h0 detect`` scale? Peak memory and time against channels and rows.

Each grid point runs in a fresh subprocess (so its peak resident memory is its own, imports and
JIT compilation included): synthetic data (a sine per channel with its own period and phase,
Gaussian noise, a few spikes and level shifts after the training part), then
``GRUAutoencoderDetector(epochs=E).fit(x[:n_train])``, ``score(x[n_train:])``, ``predict`` and
``alarms`` on the same rows. Default settings otherwise (window 32, hidden 24), training on the
first 15% (``h0 detect``'s default). Memory and the per-row cost of scoring do not depend on the
epoch count, and fit time grows linearly with it after the first epoch (which includes
compilation), so the grid trains one epoch by default.

    PYTHONPATH=src python benchmarks/detect_scale.py --out benchmarks/results/detect_scale.json
    PYTHONPATH=src python benchmarks/detect_scale.py --quick --out /tmp/scale.json   # < 60 s

It also times ``h0 detect`` through the CLI on a CSV (100k rows x 100 channels by default),
report writing included, and records the size of each file it writes. Prints markdown tables and
writes JSON with the machine's load average, the jax version and the epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAIN_FRACTION = 0.15


def synthetic(rows: int, channels: int, n_train: int, seed: int = 0):
    """Sines + noise ``[rows, channels]`` float64, with spikes and level shifts after ``n_train``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(rows, dtype=np.float64)
    period = rng.uniform(20.0, 200.0, size=channels)
    phase = rng.uniform(0.0, 2 * np.pi, size=channels)
    x = np.empty((rows, channels))
    for c in range(channels):  # a column at a time: no [rows, channels] temporaries
        x[:, c] = np.sin(2 * np.pi * t / period[c] + phase[c]) + 0.1 * rng.standard_normal(rows)
    rest = rows - n_train
    for k in range(5):  # spikes on one channel each, spread over the scored part
        at = n_train + (2 * k + 1) * rest // 11
        x[at, k % channels] += 4.0
    shift = n_train + 9 * rest // 11  # a level shift on the first channel
    x[shift : shift + max(rest // 100, 10), 0] += 2.0
    return x


def _status_mb(field: str) -> float:
    """``VmHWM`` (peak so far) or ``VmRSS`` of this process, MB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(rows: int, channels: int, epochs: int) -> dict:
    """One grid point, in this (fresh) process; prints its result as one JSON line."""
    phases = {"imports": _status_mb("VmHWM")}

    from h0.anomaly import GRUAutoencoderDetector

    phases["imports"] = _status_mb("VmHWM")
    n_train = int(TRAIN_FRACTION * rows)
    x = synthetic(rows, channels, n_train)
    phases["data"] = _status_mb("VmHWM")
    det = GRUAutoencoderDetector(epochs=epochs)
    start = time.perf_counter()
    det.fit(x[:n_train])
    fit_s = time.perf_counter() - start
    phases["fit"] = _status_mb("VmHWM")
    rest = x[n_train:]
    start = time.perf_counter()
    scores = det.score(rest)
    score_s = time.perf_counter() - start
    phases["score"] = _status_mb("VmHWM")
    start = time.perf_counter()  # again, compiled: the steady per-row cost
    det.score(rest)
    score_warm_s = time.perf_counter() - start
    start = time.perf_counter()
    labels = det.predict(rest)
    predict_s = time.perf_counter() - start
    start = time.perf_counter()
    events = det.alarms(rest)
    alarms_s = time.perf_counter() - start
    phases["predict_alarms"] = _status_mb("VmHWM")
    return {
        "rows": rows,
        "channels": channels,
        "train_rows": n_train,
        "scored_rows": len(rest),
        "epochs": epochs,
        "fit_s": fit_s,
        "score_s": score_s,
        "predict_s": predict_s,
        "alarms_s": alarms_s,
        "score_warm_s": score_warm_s,
        "score_points_per_s": len(rest) / score_warm_s,
        "score_values_per_s": len(rest) * channels / score_warm_s,
        "flagged": int(labels.sum()),
        "alarms": len(events),
        "max_score": float(scores.max()),
        "peak_mb_after": phases,
        "rss_mb_end": _status_mb("VmRSS"),
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_child(cmd: list[str], timeout: float) -> tuple[int, float, float, str]:
    """Run ``cmd``; ``(returncode, wall seconds, peak RSS MB of that child, stdout)``."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, env=_env(), text=True)
        deadline = start + timeout
        while True:  # os.wait4 gives this child's own rusage (RUSAGE_CHILDREN is a max over all)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read()
        proc.stderr.close()
        out.seek(0)
        text = out.read()
    if proc.returncode:
        sys.stderr.write(err[-3000:])
    return proc.returncode, wall, usage.ru_maxrss / 1024, text  # ru_maxrss: KiB on Linux


def grid_point(rows: int, channels: int, epochs: int, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", f"{rows},{channels},{epochs}"]
    rc, wall, peak, text = run_child(cmd, timeout)
    if rc:
        return {"rows": rows, "channels": channels, "epochs": epochs, "failed": rc, "wall_s": wall}
    result = json.loads(text.strip().splitlines()[-1])
    result["peak_rss_mb"] = peak
    result["wall_s"] = wall
    return result


def cli_run(rows: int, channels: int, epochs: int, timeout: float, png: bool) -> dict:
    """``h0 detect file.csv`` end to end in a fresh process (CSV reading and reports included)."""
    import shutil

    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        x = synthetic(rows, channels, int(TRAIN_FRACTION * rows))
        frame = pd.DataFrame(x, columns=[f"c{c}" for c in range(channels)])
        frame.insert(0, "timestamp", pd.date_range("2024-01-01", periods=rows, freq="min"))
        csv = tmp / "data.csv"
        frame.to_csv(csv, index=False, float_format="%.5f")
        del frame, x
        out = tmp / "report"
        cmd = [sys.executable, "-m", "h0._cli", "detect", str(csv), "--epochs", str(epochs)]
        cmd += ["--quiet", "--out", str(out)]
        result = {"rows": rows, "channels": channels, "epochs": epochs}
        result["csv_mb"] = csv.stat().st_size / 1e6
        for plot in (False, True) if png else (False,):
            key = "with_png" if plot else "no_plot"
            rc, wall, peak, _ = run_child(cmd + ([] if plot else ["--no-plot"]), timeout)
            files = {}
            if out.exists():
                files = {
                    p.name: p.stat().st_size / 1e6 for p in sorted(out.rglob("*")) if p.is_file()
                }
            result[key] = {"returncode": rc, "wall_s": wall, "peak_rss_mb": peak, "files_mb": files}
            if out.exists():
                shutil.rmtree(out)
    return result


def fmt_row(r: dict) -> str:
    if "failed" in r:
        return f"| {r['rows']:,} | {r['channels']} | failed (exit {r['failed']}) | | | | | |"
    return (
        f"| {r['rows']:,} | {r['channels']} | {r['peak_rss_mb']:,.0f} | {r['fit_s']:.1f} | "
        f"{r['score_s']:.2f} | {r['score_warm_s']:.2f} | {r['score_points_per_s']:,.0f} | "
        f"{r['predict_s'] + r['alarms_s']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/detect_scale.json"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--channels", default="1,20,100,150,300", help="at --channel-rows rows")
    parser.add_argument("--channel-rows", type=int, default=100_000)
    parser.add_argument("--rows", default="10000,100000,300000,1000000", help="at 1 channel")
    parser.add_argument(
        "--cli", default="100000,100", help="ROWS,CHANNELS for the CLI run; '' skips"
    )
    parser.add_argument("--cli-png", action="store_true", help="also run the CLI with report.png")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per subprocess")
    parser.add_argument("--quick", action="store_true", help="a small grid for CI (< 60 s)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        rows, channels, epochs = (int(v) for v in args.worker.split(","))
        print(json.dumps(worker(rows, channels, epochs)))
        return
    if args.quick:
        args.channels, args.channel_rows, args.rows, args.cli = "1,4", 2000, "2000", "2000,4"

    load_before = os.getloadavg()
    channel_grid = [int(c) for c in args.channels.split(",") if c]
    row_grid = [int(r) for r in args.rows.split(",") if r]
    points = [(args.channel_rows, c) for c in channel_grid]
    points += [(r, 1) for r in row_grid if (r, 1) not in points]
    results = []
    for rows, channels in points:
        r = grid_point(rows, channels, args.epochs, args.timeout)
        print(f"{rows:,} x {channels}: {json.dumps(r)}", file=sys.stderr, flush=True)
        results.append(r)
    cli = None
    if args.cli:
        rows, channels = (int(v) for v in args.cli.split(","))
        cli = cli_run(rows, channels, args.epochs, args.timeout, args.cli_png)
        print(f"cli: {json.dumps(cli)}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    import jax

    out = {
        "settings": (
            f"defaults (window 32, hidden 24) except epochs={args.epochs}; train on the first "
            f"{TRAIN_FRACTION:.0%}, score, predict and alarms on the rest; each point in a fresh "
            "process; peak_rss_mb from os.wait4 (the child's ru_maxrss)"
        ),
        "epochs": args.epochs,
        "grid": results,
        "cli": cli,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "python": platform.python_version(),
    }
    head = (
        "| rows | channels | peak RSS (MB) | fit (s) | score, 1st (s) | score, 2nd (s) | "
        "points/s (2nd) | predict + alarms (s) |\n|---|---|---|---|---|---|---|---|"
    )
    print(f"Channels at {args.channel_rows:,} rows (epochs={args.epochs}):\n\n{head}")
    for r in results:
        if r["rows"] == args.channel_rows:
            print(fmt_row(r))
    print(f"\nRows at 1 channel (epochs={args.epochs}):\n\n{head}")
    for r in sorted((r for r in results if r["channels"] == 1), key=lambda r: r["rows"]):
        print(fmt_row(r))
    if cli is not None:
        print(
            f"\n`h0 detect` on a {cli['rows']:,} x {cli['channels']} CSV ({cli['csv_mb']:.0f} MB), "
            f"epochs={cli['epochs']}:\n\n| run | exit | wall (s) | peak RSS (MB) | report.html (MB) "
            "| all files (MB) |\n|---|---|---|---|---|---|"
        )
        for key in ("no_plot", "with_png"):
            if key not in cli:
                continue
            c = cli[key]
            html = c["files_mb"].get("report.html", float("nan"))
            total = sum(c["files_mb"].values())
            print(
                f"| {key.replace('_', ' ')} | {c['returncode']} | {c['wall_s']:.1f} | "
                f"{c['peak_rss_mb']:,.0f} | {html:.1f} | {total:.1f} |"
            )
    print(
        f"\n{out['cpus']} CPUs, load average {load_before[0]:.1f} before / {load_after[0]:.1f} "
        f"after; {out['device']}, jax {out['jax']}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
