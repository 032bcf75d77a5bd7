"""A cycle longer than the window: what a 32-point window cannot see, and the history-conditioned start.

A daily cycle at 5-minute sampling is 288 points, nine of the detector's windows. This script
builds such a series (numpy, seeded; nothing downloaded): a daily sine plus its second harmonic and
noise 0.05, ten days of training and ten of test. The test part holds two anomalies whose values
stay inside the normal range: day 3 is shifted by six hours (the peak comes at the wrong time) and
day 7 keeps the level it had at 06:00 for six hours (72 points, flat but not at the mean). Scored:
the default detector, the detector with the encoder's initial state computed from the history
before each window (``initial_state="conditional"``, ``--history``), z-score and PCA.

    python benchmarks/long_period.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from h0.evaluate import _bench, metrics

DAY = 288
ANOMALIES = ((3 * DAY, DAY), (7 * DAY + 72, 72))


def make(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train [10 days], test [10 days], labels)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(20 * DAY)
    phase = 2 * np.pi * t / DAY
    shifted = phase.copy()
    start, length = ANOMALIES[0]
    shifted[10 * DAY + start : 10 * DAY + start + length] += np.pi / 2  # six hours
    x = np.sin(shifted) + 0.3 * np.sin(2 * shifted) + 0.05 * rng.standard_normal(t.size)
    start, length = ANOMALIES[1]
    x[10 * DAY + start : 10 * DAY + start + length] = x[10 * DAY + start]
    labels = np.zeros(10 * DAY, np.int8)
    for start, length in ANOMALIES:
        labels[start : start + length] = 1
    return x[: 10 * DAY], x[10 * DAY :], labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--history", type=int, default=512)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "long_period.json"
    )
    args = parser.parse_args()
    variants = {
        "h0": ("h0", {}),
        "h0 conditional": ("h0", {"initial_state": "conditional", "history": args.history}),
        "zscore": ("zscore", None),
        "pca": ("pca", None),
    }
    rows = {}
    for name, (detector, options) in variants.items():
        for seed in args.seeds:
            train, test, labels = make(seed)
            det = _bench.make_detector(detector, seed, h0_options=options).fit(train)
            scores, flags = det.score(test), det.predict(test).astype(np.float64)
            rows[f"{name}/{seed}"] = {
                "auc_pr": metrics.auc_pr(labels, scores),
                "point_f1": metrics.point_f1(labels, flags, 0.5),
                "flagged_inside": [float(flags[a : a + n].mean()) for a, n in ANOMALIES],
                "flagged_outside": float(flags[labels == 0].mean()),
            }
            print(name, seed, rows[f"{name}/{seed}"], flush=True)
    print(
        "\n| detector | AUC-PR | point F1 | shifted day flagged | flat part flagged | normal flagged |"
    )
    print("|---|---|---|---|---|---|")
    for name in variants:
        rs = [rows[f"{name}/{s}"] for s in args.seeds]
        inside = np.mean([r["flagged_inside"] for r in rs], axis=0)
        print(
            f"| {name} | {np.mean([r['auc_pr'] for r in rs]):.3f} | "
            f"{np.mean([r['point_f1'] for r in rs]):.3f} | {inside[0]:.2f} | {inside[1]:.2f} | "
            f"{np.mean([r['flagged_outside'] for r in rs]):.3f} |"
        )
    args.out.write_text(
        json.dumps({"benchmark": "long_period", "seeds": args.seeds, "rows": rows}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
