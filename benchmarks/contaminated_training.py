"""One anomaly in the training part: does it set the scale every later point is judged by?

Unsupervised detectors are fitted on data nobody labelled, so the training part may hold an
anomaly. This script builds a noisy sine (period 60, noise 0.05; numpy, seeded, nothing
downloaded) of 3,000 training and 3,000 test points. The test part holds five +0.6 spikes (rows
300, 900, ..., 2700) and a +0.4 level shift (rows 1000-1200). The training part holds one spike of
``--spikes`` size at row 2700 (inside the latest 20% that calibrates the score; 0 = clean), or,
with ``--segment``, a +0.4 shift of rows 2600-2700 as well. Per seed and training anomaly the
default detector is fitted once and scored as it is and with each ``calibration_cutoff`` of
``--cutoffs`` (``with_scoring``: the same network): threshold, AUC-PR, point F1 of ``predict``, the test
spikes' scores and the shift's median score.

    python benchmarks/contaminated_training.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from h0.anomaly import GRUAutoencoderDetector
from h0.evaluate import metrics

N = 3000
SPIKES = (300, 900, 1500, 2100, 2700)
SHIFT = (1000, 1200)


def make(seed: int, spike: float, segment: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train [N], test [N], labels [N])``."""
    rng = np.random.default_rng(seed)
    t = np.arange(2 * N)
    x = np.sin(2 * np.pi * t / 60) + 0.05 * rng.standard_normal(2 * N)
    x[2700] += spike
    if segment:
        x[2600:2700] += 0.4
    labels = np.zeros(N, np.int8)
    for p in SPIKES:
        x[N + p] += 0.6
        labels[p] = 1
    x[N + SHIFT[0] : N + SHIFT[1]] += 0.4
    labels[SHIFT[0] : SHIFT[1]] = 1
    return x[:N], x[N:], labels


def row(det: GRUAutoencoderDetector, test: np.ndarray, labels: np.ndarray) -> dict:
    scores = det.score(test)
    flags = det.predict(test).astype(np.float64)
    return {
        "threshold": float(det.threshold_),
        "auc_pr": metrics.auc_pr(labels, scores),
        "point_f1": metrics.point_f1(labels, flags, 0.5),
        "spike_scores": [round(float(scores[p]), 2) for p in SPIKES],
        "shift_median": float(np.median(scores[SHIFT[0] : SHIFT[1]])),
        "calibration_left_out": int(sum((~k).sum() for k in det.calibration_kept_)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--spikes", type=float, nargs="+", default=[0.0, 5.0, 30.0, 300.0])
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[4.0, 10.0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "results" / "contaminated_training.json",
    )
    args = parser.parse_args()
    rows: dict = {}
    cases = [(s, False) for s in args.spikes] + [(args.spikes[-1], True)]
    for spike, segment in cases:
        case = f"spike{spike:g}" + ("+segment" if segment else "")
        for seed in args.seeds:
            train, test, labels = make(seed, spike, segment)
            det = GRUAutoencoderDetector(seed=seed).fit(train)
            versions = [("plain", det)] + [
                (f"cutoff{c:g}", det.with_scoring(calibration_cutoff=c)) for c in args.cutoffs
            ]
            for name, d in versions:
                rows[f"{case}/{seed}/{name}"] = row(d, test, labels)
                print(case, seed, name, rows[f"{case}/{seed}/{name}"], flush=True)
    print("\n| training anomaly | calibration | threshold | AUC-PR | point F1 | spike | shift |")
    print("|---|---|---|---|---|---|---|")
    for spike, segment in cases:
        case = f"spike{spike:g}" + ("+segment" if segment else "")
        for name in ["plain"] + [f"cutoff{c:g}" for c in args.cutoffs]:
            rs = [rows[f"{case}/{s}/{name}"] for s in args.seeds]
            print(
                f"| {case} | {name} | {np.mean([r['threshold'] for r in rs]):.1f} | "
                f"{np.mean([r['auc_pr'] for r in rs]):.3f} | "
                f"{np.mean([r['point_f1'] for r in rs]):.3f} | "
                f"{np.mean([np.median(r['spike_scores']) for r in rs]):.1f} | "
                f"{np.mean([r['shift_median'] for r in rs]):.1f} |"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"benchmark": "contaminated_training", "seeds": args.seeds, "rows": rows}, indent=1
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
