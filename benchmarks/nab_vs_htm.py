"""Where h0 loses NAB's points against numenta HTM: windows found, how early, false positives.

Both detectors are scored on all 58 series with NAB's standard profile, each at its own
corpus-optimised threshold (as on NAB's board): h0's default networks from
``benchmarks/ensemble_dev.py``'s cache (dense scores, shaped by the NAB writer), HTM from the
per-timestamp scores NAB publishes (``results/numenta``). The raw score splits exactly into three
parts: the reward of the first detection in each found window (NAB's sigmoid of its position:
early is worth up to 1), minus 1 per missed window, minus the weighted false positives. Prints the
totals and the series where the two differ most; writes JSON.

    python benchmarks/nab_vs_htm.py --cache /tmp/h0-ensemble-dev --seed 0 [--shaping s3]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from nab_shaping import VARIANTS

from h0.anomaly._alarms import nab_shape
from h0.evaluate._nab import (
    _OUTSIDE,
    NabResults,
    load_corpus,
    load_results,
    probation_length,
    row_weights,
    score_corpus,
)
from h0.evaluate._run import read_values


def parts(scores: np.ndarray, windows: np.ndarray, threshold: float, profile) -> dict:
    """The raw score of one series split into window rewards, misses and false positives."""
    n = len(scores)
    window_id, weight = row_weights(n, windows, profile)
    detected = (np.arange(n) >= probation_length(n)) & (scores >= threshold)
    reward = misses = 0.0
    for k, (_lo, hi) in enumerate(windows):
        if hi < probation_length(n):
            continue
        hits = np.flatnonzero(detected & (window_id == k))
        if len(hits):
            reward += float(weight[hits[0]])
        else:
            misses += profile.fn_weight
    false = float(weight[detected & (window_id == _OUTSIDE)].sum())  # weights are negative there
    return {"reward": reward, "misses": -misses, "false_positives": false}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/h0-ensemble-dev"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shaping", default="today", choices=VARIANTS, help="nab_shaping.py's variant"
    )
    parser.add_argument(
        "--nab", type=Path, default=Path(os.environ.get("H0_NAB_ROOT", "../shared/datasets/nab"))
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "nab_vs_htm.json"
    )
    args = parser.parse_args()
    corpus = load_corpus(args.nab)
    profile = corpus.profiles["standard"]
    with np.load(args.cache / f"seed{args.seed}.npz") as f:
        shaped = {
            r: nab_shape(
                np.asarray(f[f"nab/{r}"]), read_values(corpus, r), **VARIANTS[args.shaping]
            )
            for r in corpus.files
        }
    detectors = {
        "h0": NabResults("h0", shaped),
        "numenta": load_results(args.nab / "results" / "numenta", corpus),
    }
    out: dict = {
        "seed": args.seed,
        "shaping": args.shaping,
        "profile": "standard",
        "detectors": {},
        "series": {},
    }
    for name, results in detectors.items():
        result = score_corpus(results, corpus, profiles=["standard"])["standard"]
        per = {
            r: {
                **parts(results.scores[r], corpus.files[r].windows, result.threshold, profile),
                "windows": result.per_file[r].windows,
                "found": result.per_file[r].detected_windows,
                "false_rows": result.per_file[r].fp,
                "raw": result.per_file[r].score,
            }
            for r in corpus.files
        }
        totals = {k: round(sum(p[k] for p in per.values()), 2) for k in next(iter(per.values()))}
        out["detectors"][name] = {
            "score": round(result.score, 2),
            "threshold": result.threshold,
            **totals,
        }
        for r, p in per.items():
            out["series"].setdefault(r, {})[name] = p
    print("detector  score  raw     windows found  reward  misses  false positives (rows)")
    for name, d in out["detectors"].items():
        print(
            f"{name:8s} {d['score']:6.2f} {d['raw']:7.2f} {d['windows']:5.0f} {d['found']:5.0f}"
            f"  {d['reward']:6.2f}  {d['misses']:6.2f}  {d['false_positives']:6.2f} ({d['false_rows']:.0f})"
        )
    gaps = sorted(
        out["series"].items(), key=lambda kv: kv[1]["h0"]["raw"] - kv[1]["numenta"]["raw"]
    )
    print("\nseries where HTM gains most (raw h0 / HTM; found h0 / HTM of windows; false rows)")
    for r, d in gaps[:12]:
        a, b = d["h0"], d["numenta"]
        print(
            f"{r[:58]:58s} {a['raw']:+6.2f} / {b['raw']:+6.2f}  {a['found']}/{b['found']} of "
            f"{a['windows']}  {a['false_rows']:3d} / {b['false_rows']:3d}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
