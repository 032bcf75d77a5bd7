"""A probe split that chose nothing: twelve GutenTAG series unlike the dev benchmark's.

The dev benchmark's GutenTAG series are sines (plus one ECG and two multivariate mixes); the
detector's defaults were chosen on them. This probe generates other bases (square, sawtooth,
cylinder-bell-funnel, cosine, random walk, ECG) and other anomaly kinds (pattern shift, a square
wave's duty, a damped amplitude, a short variance burst, wider multivariate mixes) with GutenTAG
(seed 11, in the bench's own GutenTAG venv; nothing downloaded, nothing shipped), and runs every
detector of ``h0 bench`` through the same harness (``h0.evaluate._bench.evaluate``): h0 and its
untrained copy over seeds 0-2, the baselines at seed 0. No default may be chosen from it: it is a
report on data the defaults never saw. Prints a table per dataset and writes JSON.

    python benchmarks/gutentag_probe.py                       # about 2 minutes on 2 cores
    python benchmarks/gutentag_probe.py --gutentag-python PY  # another GutenTAG 1.5 Python
    python benchmarks/gutentag_probe.py --detectors h0 --h0-options '{"roughness_error": true}' \
        --out benchmarks/results/gutentag_probe_roughness.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from h0.evaluate import _bench, _devdata

SEED = _devdata.GUTENTAG_SEED
DETECTORS = ("h0", "h0-untrained", "zscore", "iforest", "pca", "random")
METRICS = ("auc_pr", "vus_pr", "point_f1", "event_f1", "all_ones_f1")


def _wave(kind: str, frequency: float, **extra) -> dict:
    return {"kind": kind, "frequency": frequency, "amplitude": 1.0, "variance": 0.05, **extra}


def scenarios() -> list[dict]:
    """The probe's GutenTAG ``timeseries`` entries (3,000 test and 3,000 training points each)."""
    shift = {"kind": "pattern-shift", "shift_by": 5, "transition_window": 10}
    extremum = {"kind": "extremum", "min": False, "local": False}
    table = {
        "square-pattern": (
            [_wave("square", 1.0, duty=0.5)],
            [_devdata._anomaly("middle", 150, {"kind": "pattern", "square_duty": 0.2})],
        ),
        "sawtooth-frequency": (
            [_wave("sawtooth", 1.0, width=0.8)],
            [_devdata._anomaly("end", 200, {"kind": "frequency", "frequency_factor": 1.5})],
        ),
        "sawtooth-extremum": (
            [_wave("sawtooth", 1.0, width=0.8)],
            [
                _devdata._anomaly(p, 1, {**extremum, "min": m})
                for p, m in (("beginning", True), ("middle", False), ("end", True))
            ],
        ),
        "cbf-pattern": (
            [
                {
                    "kind": "cylinder-bell-funnel",
                    "avg-pattern-length": 60,
                    "amplitude": 1.0,
                    "variance": 0.05,
                    "variance-amplitude": 0.1,
                }
            ],
            [_devdata._anomaly("middle", 150, {"kind": "pattern", "cbf_pattern_factor": 2.0})],
        ),
        "sine-pattern-shift": ([_devdata._sine(1.0)], [_devdata._anomaly("middle", 200, shift)]),
        "rw-platform": (
            [{"kind": "random-walk", "amplitude": 1.0, "variance": 0.05, "smoothing": 0.01}],
            [_devdata._anomaly("middle", 200, {"kind": "platform", "value": 0.5})],
        ),
        "ecg-variance": (
            [{"kind": "ecg", "frequency": 1.0, "variance": 0.05}],
            [_devdata._anomaly("middle", 150, {"kind": "variance", "variance": 0.3})],
        ),
        "sine-amplitude-low": (
            [_devdata._sine(1.5)],
            [_devdata._anomaly("beginning", 200, {"kind": "amplitude", "amplitude_factor": 0.5})],
        ),
        "sine-noisy-mean": (
            [_devdata._sine(1.0, 0.3)],
            [_devdata._anomaly("middle", 200, {"kind": "mean", "offset": 0.6})],
        ),
        "cosine-variance-short": (
            [_wave("cosine", 2.0)],
            [_devdata._anomaly("end", 50, {"kind": "variance", "variance": 0.5})],
        ),
        "multi-5ch-mixed": (
            [
                _devdata._sine(1.0),
                _wave("sawtooth", 0.7, width=0.5),
                {"kind": "ecg", "frequency": 1.2, "variance": 0.05},
                _wave("cosine", 1.5),
                _wave("square", 0.5, duty=0.5),
            ],
            [
                _devdata._anomaly("beginning", 200, {"kind": "mean", "offset": 0.8}, 1),
                _devdata._anomaly("middle", 200, {"kind": "frequency", "frequency_factor": 1.8}, 3),
                _devdata._anomaly("end", 1, extremum, 2),
            ],
        ),
        "multi-8ch-amplitude": (
            [_devdata._sine(1.0 + 0.15 * c) for c in range(8)],
            [
                _devdata._anomaly("middle", 200, {"kind": "amplitude", "amplitude_factor": 2.0}, 5),
                _devdata._anomaly("end", 150, shift, 2),
            ],
        ),
    }
    return [
        {
            "name": name,
            "length": 3000,
            "semi-supervised": True,
            "base-oscillations": bases,
            "anomalies": anomalies,
        }
        for name, (bases, anomalies) in table.items()
    ]


def generate(cache: Path, python: Path) -> list[_devdata.Dataset]:
    """Generate the probe with GutenTAG into ``cache`` once; load it."""
    config = {"timeseries": scenarios()}
    stamp = cache / "config.json"
    if not (stamp.exists() and json.loads(stamp.read_text()) == config):
        out = _devdata.run_gutentag(python, config["timeseries"], cache / "raw")
        for s in config["timeseries"]:
            folder = out / s["name"]
            test, labels, _ = _devdata._read_timeeval_csv(str(folder / "test.csv"))
            train, _, _ = _devdata._read_timeeval_csv(str(folder / "train_no_anomaly.csv"))
            np.savez(cache / f"{s['name']}.npz", train=train, test=test, labels=labels)
        stamp.write_text(json.dumps(config))  # last: a killed run regenerates
    out = []
    rule = "GutenTAG's anomaly-free semi-supervised training series"
    for s in config["timeseries"]:
        path = cache / f"{s['name']}.npz"
        out.append(_devdata.from_npz(path, f"probe/{s['name']}", "probe", "probe", rule))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/h0/probe")
    parser.add_argument(
        "--gutentag-python",
        type=Path,
        default=_devdata.default_root() / "gutentag-venv" / "bin" / "python",
        help="a Python with timeeval-gutentag 1.5 (default: h0 bench prepare's venv)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--detectors", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument(
        "--h0-options", type=json.loads, default={}, help="JSON: further h0 detector settings"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "gutentag_probe.json"
    )
    args = parser.parse_args()
    if not args.gutentag_python.exists():
        parser.error(f"--gutentag-python: {args.gutentag_python} does not exist (h0 bench prepare)")
    args.cache.mkdir(parents=True, exist_ok=True)
    datasets = generate(args.cache, args.gutentag_python)
    rows = []
    started = time.perf_counter()
    for ds in datasets:
        for name in args.detectors:
            seeds = args.seeds if name.startswith("h0") else args.seeds[:1]
            for seed in seeds:
                detector = _bench.make_detector(name, seed, h0_options=args.h0_options)
                row = _bench.evaluate(ds, detector)
                rows.append(
                    {"dataset": ds.name, "detector": name, "seed": seed}
                    | {k: row[k] for k in (*METRICS, "flagged_share", "fit_s")}
                )
    summary: dict = {}
    for ds in datasets:
        for name in args.detectors:
            mine = [r for r in rows if r["dataset"] == ds.name and r["detector"] == name]
            summary.setdefault(ds.name, {})[name] = {
                k: float(np.mean([r[k] for r in mine])) for k in METRICS
            }
    means = {
        name: {k: float(np.mean([summary[d][name][k] for d in summary])) for k in METRICS}
        for name in args.detectors
    }
    print(f"{'dataset':32s} " + " ".join(f"{d:>12s}" for d in args.detectors) + "   (AUC-PR)")
    for d, per in summary.items():
        print(f"{d:32s} " + " ".join(f"{per[n]['auc_pr']:12.3f}" for n in args.detectors))
    print(f"{'mean':32s} " + " ".join(f"{means[n]['auc_pr']:12.3f}" for n in args.detectors))
    print(f"\n{'dataset':32s} {'h0 point F1':>12s} {'event F1':>9s} {'all-ones F1':>12s}")
    for d, per in summary.items():
        h = per.get("h0")
        if h:
            flag = "  below" if h["point_f1"] < h["all_ones_f1"] else ""
            print(
                f"{d:32s} {h['point_f1']:12.3f} {h['event_f1']:9.3f} {h['all_ones_f1']:12.3f}{flag}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "gutentag_probe",
        "gutentag_seed": SEED,
        "h0_options": args.h0_options,
        "seeds": args.seeds,
        "wall_s": round(time.perf_counter() - started, 1),
        "scenarios": scenarios(),
        "summary": summary,
        "means": means,
        "rows": rows,
    }
    args.out.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
