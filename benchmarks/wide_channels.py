"""A wide multivariate series: anomalies on single channels among 24, and set points that move.

The dev benchmark's widest labelled series has six channels, and none of its channels is constant in
training. Telemetry is often wider, with mode flags and set points that stay put in training and
move later (not by themselves anomalies). This script builds such a series (numpy, seeded; nothing
downloaded): ten noisy sines, four AR(1) channels, four binary command channels that toggle, two
sums/products of other channels, a slow sine, and two channels constant in training: a set point
that moves to ``--set-point`` at test row 1200 and stays there, and a flag raised for rows
2700-2800. Labelled anomalies (test rows): a +1 level shift of channel 3 (500-800), a doubled
frequency on channel 7 (1500-1700), a 4x variance on AR channel 11 (2300-2500), channel 20 =
ch0 - ch1 instead of ch0 + ch1 (3000-3200), a +4 spike on channel 5 (3600). 4,000 training and
4,000 test points.

Per detector and seed: AUC-PR and VUS-PR of ``score``, point F1 of ``predict``, the flagged share,
and per anomaly whether its peak beats the 0.999 quantile of the normal points' scores and the
share of its points ``predict`` flags.

    python benchmarks/wide_channels.py --seeds 0 1 2 --set-point 1 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from h0.evaluate import _bench, metrics

N = 4000
ANOMALIES = ((500, 300), (1500, 200), (2300, 200), (3000, 200), (3600, 1))


def make(seed: int, set_point: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train [N, 24], test [N, 24], labels [N])`` of one seed."""
    rng = np.random.default_rng(seed)
    n2 = 2 * N
    t = np.arange(n2)
    x = np.zeros((n2, 24))
    periods = rng.uniform(40, 200, 10)
    for c in range(10):
        x[:, c] = np.sin(2 * np.pi * t / periods[c] + rng.uniform(0, 2 * np.pi))
        x[:, c] += 0.05 * rng.standard_normal(n2)
    for c in range(10, 14):
        e = 0.1 * rng.standard_normal(n2)
        for i in range(1, n2):
            x[i, c] = 0.95 * x[i - 1, c] + e[i]
    for c in range(14, 18):
        x[:, c] = np.cumsum(rng.random(n2) < 0.01) % 2
    x[N + 1200 :, 18] = set_point
    x[N + 2700 : N + 2800, 19] = 1.0
    x[:, 20] = x[:, 0] + x[:, 1] + 0.05 * rng.standard_normal(n2)
    x[:, 21] = x[:, 2] * x[:, 3] + 0.05 * rng.standard_normal(n2)
    x[:, 22] = np.sin(2 * np.pi * t / 500)
    x[:, 23] = 0.5 * x[:, 10] - x[:, 4] + 0.05 * rng.standard_normal(n2)
    labels = np.zeros(N, np.int8)
    for start, length in ANOMALIES:
        labels[start : start + length] = 1
    rows = [slice(N + a, N + a + n) for a, n in ANOMALIES]
    x[rows[0], 3] += 1.0
    tt = t[rows[1]]
    x[rows[1], 7] = np.sin(4 * np.pi * tt / periods[7]) + 0.05 * rng.standard_normal(tt.size)
    x[rows[2], 11] *= 4
    x[rows[3], 20] = x[rows[3], 0] - x[rows[3], 1]
    x[rows[4], 5] += 4
    return x[:N], x[N:], labels


def run(name: str, seed: int, set_point: float, h0_options: dict | None = None) -> dict:
    train, test, labels = make(seed, set_point)
    started = time.perf_counter()
    det = _bench.make_detector(name, seed, h0_options=h0_options).fit(train)
    scores, flags = det.score(test), det.predict(test).astype(np.float64)
    normal = np.quantile(scores[labels == 0], 0.999)
    return {
        "auc_pr": metrics.auc_pr(labels, scores),
        "vus_pr": metrics.vus_pr(labels, scores, max_buffer=20),
        "point_f1": metrics.point_f1(labels, flags, 0.5),
        "flagged": float(flags.mean()),
        "caught": [int(scores[a : a + n].max() > normal) for a, n in ANOMALIES],
        "flagged_inside": [round(float(flags[a : a + n].mean()), 3) for a, n in ANOMALIES],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set-point", type=float, nargs="+", default=[1.0, 20.0])
    parser.add_argument("--detectors", nargs="+", default=["h0", "iforest", "pca", "zscore"])
    parser.add_argument("--h0", type=json.loads, default={}, help="h0 settings, as JSON")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "wide_channels.json"
    )
    args = parser.parse_args()
    rows = {}
    for set_point in args.set_point:
        for name in args.detectors:
            for seed in args.seeds:
                r = run(name, seed, set_point, args.h0)
                rows[f"{name}/{seed}/set{set_point:g}"] = r
                print(name, seed, set_point, r, flush=True)
    print("\n| detector | set point | AUC-PR | VUS-PR | point F1 | flagged | seeds |")
    print("|---|---|---|---|---|---|---|")
    for set_point in args.set_point:
        for name in args.detectors:
            rs = [rows[f"{name}/{s}/set{set_point:g}"] for s in args.seeds]
            m = {
                k: np.mean([r[k] for r in rs]) for k in ("auc_pr", "vus_pr", "point_f1", "flagged")
            }
            sd = np.std([r["auc_pr"] for r in rs])
            print(
                f"| {name} | {set_point:g} | {m['auc_pr']:.3f} ± {sd:.3f} | {m['vus_pr']:.3f} | "
                f"{m['point_f1']:.3f} | {m['flagged']:.3f} | {len(rs)} |"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"benchmark": "wide_channels", "seeds": args.seeds, "h0": args.h0, "rows": rows},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
