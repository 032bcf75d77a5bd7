"""Choose the alarm defaults (threshold quantile, hysteresis) on the dev split; report test too.

One fit per dataset and seed (default network; seed 0 unless ``--seeds``); every decision variant
is a ``with_scoring`` copy (no retraining), so the variants differ only in the decision. Prints
mean point F1 and event F1 per family (means over datasets, then over seeds) and writes every
variant's numbers to JSON.

    python benchmarks/threshold_dev.py --split dev --out benchmarks/results/threshold_dev.json
    python benchmarks/threshold_dev.py --seeds 0 1 2 --quantiles 0.999 0.9999 0.99999 \
        --out benchmarks/results/threshold_dev_robust.json      # session 11
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from h0.anomaly import GRUAutoencoderDetector
from h0.evaluate import _devdata
from h0.evaluate._metrics import all_ones_f1, event_precision_recall_f1

QUANTILES = (0.99, 0.995, 0.999, 0.9999)
HYSTERESIS = (0.5, 0.8, 1.0)


def point_f1(labels: np.ndarray, flags: np.ndarray) -> float:
    tp = float(np.sum(flags & (labels == 1)))
    fp = float(np.sum(flags & (labels == 0)))
    fn = float(np.sum(~flags & (labels == 1)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def decisions(ds, seed: int, grid: list[tuple[float, float]]) -> list[dict]:
    """One fit of ``ds`` at ``seed``; the point and event F1 of every (quantile, hysteresis)."""
    det = GRUAutoencoderDetector(seed=seed).fit(ds.train)
    out = []
    for q, h in grid:
        other = det.with_scoring(threshold_quantile=q, hysteresis=h)
        flags = other.predict(ds.test).astype(bool)
        events = np.array([[e.start, e.end] for e in other.alarms(ds.test)], int).reshape(-1, 2)
        out.append(
            {
                "dataset": ds.name,
                "family": ds.family,
                "seed": seed,
                "quantile": q,
                "hysteresis": h,
                "point_f1": point_f1(ds.labels, flags),
                "event_f1": event_precision_recall_f1(ds.labels, events).f1,
                "all_ones_f1": all_ones_f1(ds.labels),
                "flagged": float(flags.mean()),
                "threshold": other.threshold_,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="dev")
    parser.add_argument("--families", nargs="+", default=["aeon", "gutentag", "nab"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/threshold_dev.json"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--quantiles", type=float, nargs="+", default=list(QUANTILES))
    parser.add_argument("--hysteresis", type=float, nargs="+", default=list(HYSTERESIS))
    args = parser.parse_args()
    grid = list(itertools.product(args.quantiles, args.hysteresis))
    refs = [r for r in _devdata.datasets(split=args.split) if r.family in args.families]
    rows = []
    started = time.perf_counter()
    for ref in refs:
        ds = _devdata.load(ref)  # once per dataset, whatever the seeds
        if not ds.labelled:
            continue
        for seed in args.seeds:
            rows.extend(decisions(ds, seed, grid))
            print(
                f"{ds.name} seed {seed}: done ({time.perf_counter() - started:.0f} s)", flush=True
            )
    print("\n| family | quantile | hysteresis | point F1 | event F1 | flagged |")
    print("|---|---|---|---|---|---|")
    for fam in args.families:
        for q, h in grid:
            sel = [
                r
                for r in rows
                if r["family"] == fam and r["quantile"] == q and r["hysteresis"] == h
            ]
            if sel:
                print(
                    f"| {fam} | {q} | {h} | {np.mean([r['point_f1'] for r in sel]):.3f} | "
                    f"{np.mean([r['event_f1'] for r in sel]):.3f} | {np.mean([r['flagged'] for r in sel]):.3f} |"
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"split": args.split, "seeds": args.seeds, "rows": rows}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
