"""NAB's shaping for robust-history scores: is NAB's dev-half loss the shaping's, chosen on echoes?

The NAB writer's shaping (``h0.anomaly._alarms.NAB_SHAPING``: relative to the previous 2000
scores, the running range rule, onsets over 400) was chosen on NAB's dev half from scores with
echoes. For each seed this script scores NAB's series with today's default detector and with
``robust_history`` (``robust_history_dev.robust_scores``, equal to the setting), caches the dense
scores, and scores NAB's halves under a grid of shapings (trailing window x onset window) for
both. Dev half only for choosing; the test half is printed beside it.

    python benchmarks/robust_shaping_dev.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from ensemble_dev import cache_npz
from robust_history_dev import robust_scores

from h0 import _compilecache
from h0.anomaly._alarms import NAB_SHAPING, nab_shape
from h0.anomaly._detector import fit_independent
from h0.evaluate import _devdata
from h0.evaluate._nab import NabResults, load_corpus, probation_length, score_corpus
from h0.evaluate._run import read_values, subset

SHAPINGS = [(trailing, window) for trailing in (1000, 2000, 4000) for window in (200, 400, 800)]


def dense_scores(seed: int, corpus, cache: Path) -> dict[str, np.ndarray]:
    path = cache / f"nab-seed{seed}.npz"
    if path.exists():
        with np.load(path) as f:
            return dict(f)
    files = list(corpus.files)
    values = [read_values(corpus, r) for r in files]
    ends = [probation_length(len(v)) for v in values]
    dets = fit_independent([v[:e] for v, e in zip(values, ends, strict=True)], seed=seed)
    out = {}
    for r, det, v, e in zip(files, dets, values, ends, strict=True):
        out[f"base/{r}"] = np.concatenate([det.decision_scores_, det.score(v[e:])])
        out[f"robust/{r}"] = np.concatenate([det.decision_scores_, robust_scores(det, v[e:])])
    cache_npz(path, out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/h0-robust-shaping"))
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "robust_shaping_dev.json"
    )
    args = parser.parse_args()
    _compilecache.use(args.cache / "jax")
    corpus = load_corpus(Path(os.environ["H0_NAB_ROOT"]))
    halves = {
        h: [r for r in corpus.files if _devdata.split_of(f"nab/{r}") == h] for h in ("dev", "test")
    }
    values = {r: read_values(corpus, r) for r in corpus.files}
    rows: dict = {}
    for seed in args.seeds:
        dense = dense_scores(seed, corpus, args.cache)
        for variant in ("base", "robust"):
            for trailing, window in SHAPINGS:
                shaping = {**NAB_SHAPING, "trailing": trailing, "window": window}
                row = {}
                for half, files in halves.items():
                    shaped = {
                        r: nab_shape(dense[f"{variant}/{r}"], values[r], **shaping) for r in files
                    }
                    result = score_corpus(
                        NabResults("h0", shaped), subset(corpus, files), profiles=["standard"]
                    )
                    row[half] = round(result["standard"].score, 2)
                rows[f"{variant}/{trailing}/{window}/{seed}"] = row
                print(seed, variant, trailing, window, row, flush=True)
    summary = {}
    for variant in ("base", "robust"):
        for trailing, window in SHAPINGS:
            got = [rows[f"{variant}/{trailing}/{window}/{s}"] for s in args.seeds]
            summary[f"{variant}/{trailing}/{window}"] = {
                h: float(np.mean([g[h] for g in got])) for h in ("dev", "test")
            }
            print(variant, trailing, window, summary[f"{variant}/{trailing}/{window}"])
    args.out.write_text(
        json.dumps({"benchmark": "robust_shaping_dev", "rows": rows, "summary": summary}, indent=1)
        + "\n"
    )


if __name__ == "__main__":
    main()
