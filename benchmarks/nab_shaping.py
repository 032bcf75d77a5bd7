"""Choose the NAB writer's alarm shaping on NAB's dev half, report the held-out half.

Reads dense scores, applies each shaping variant (no retraining: shaping is a function of the
dense score and the values), and scores NAB's standard profile on the dev and test halves
(``h0.evaluate._devdata.split_of``). Prints a table and writes JSON with every variant scored.

The dense scores come from an ``h0 nab run`` (``RESULTS/<detector>-dense``, one seed) or, with
``--cache DIR --seeds ...``, from the per-seed caches of ``benchmarks/ensemble_dev.py`` (today's
default networks); then each variant is scored per seed and summarised as mean ± std.

    python benchmarks/nab_shaping.py /tmp/nab_h0b/results/h0-gru-dense --out benchmarks/results/nab_shaping.json
    python benchmarks/nab_shaping.py --cache /tmp/h0-ensemble-dev --seeds 0 1 2 \\
        --variants s3 floor1 shift none merge1 merge5 --out benchmarks/results/nab_shaping_s12.json

Session 3 chose today's shaping from ``VARIANTS``' first nine; session 12 scored the
normalisations (``floor1``, ``shift``, ``none``) against it (docs/nab_tuning.md).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from h0.anomaly._alarms import NAB_SHAPING, nab_shape
from h0.evaluate._devdata import split_of
from h0.evaluate._nab import NabResults, load_corpus, score_corpus
from h0.evaluate._run import read_values, subset

#: The NAB writer's shaping from session 3 to session 11.
SESSION_3 = {"window": 400, "trailing": 2000, "range_margin": 0.05}

VARIANTS = {
    "onset": {},
    "range": {"range_margin": 0.05},
    "rel4000": {"trailing": 4000},
    "rel4000-range": {"trailing": 4000, "range_margin": 0.05},
    "rel1000-range": {"trailing": 1000, "range_margin": 0.05},
    "rel2000-range": {"trailing": 2000, "range_margin": 0.05},
    "rel8000-range": {"trailing": 8000, "range_margin": 0.05},
    "rel4000-range-w200": {"trailing": 4000, "range_margin": 0.05, "window": 200},
    "rel4000-range-w800": {"trailing": 4000, "range_margin": 0.05, "window": 800},
    # Session 12: how the score is made relative to its previous 2000 ("s3" is the writer's
    # shaping of sessions 3-11, "rel2000-range" above; the session's first JSON calls it "today").
    "s3": dict(SESSION_3),
    "floor1": {**SESSION_3, "spread_floor": 1.0},
    "shift": {**SESSION_3, "spread_floor": None},
    "none": {**SESSION_3, "trailing": None},
    # Session 12: one detection per run of onsets; merge5 became the writer's (NAB_SHAPING).
    "merge1": {**SESSION_3, "merge": 1},
    "merge5": {**SESSION_3, "merge": 5},
    "today": dict(NAB_SHAPING),
}


def from_results(dense_dir: Path, corpus) -> tuple[dict, dict]:
    """Dense scores and values ``{series: array}`` of an ``h0 nab run`` results folder."""
    dense, values = {}, {}
    prefix = dense_dir.name + "_"
    for rel in corpus.files:
        folder, name = rel.split("/", 1)
        frame = pd.read_csv(dense_dir / folder / f"{prefix}{name}")
        dense[rel] = frame["anomaly_score"].to_numpy(np.float64)
        values[rel] = frame["value"].to_numpy(np.float64)[:, None]
    return dense, values


def from_cache(cache: Path, seed: int, corpus) -> dict:
    """Dense NAB scores ``{series: array}`` of one seed from ``ensemble_dev.py``'s cache."""
    with np.load(cache / f"seed{seed}.npz") as f:
        return {rel: np.asarray(f[f"nab/{rel}"], np.float64) for rel in corpus.files}


def score_variant(dense: dict, values: dict, options: dict, corpus, halves: dict) -> dict:
    """NAB standard of one shaping variant per half (``dev``, ``test``, ``all``)."""
    shaped = {r: nab_shape(dense[r], values[r], **options) for r in corpus.files}
    row = {}
    for half, files in halves.items():
        result = score_corpus(
            NabResults("h0", {r: shaped[r] for r in files}),
            subset(corpus, files),
            profiles=["standard"],
        )
        row[half] = round(result["standard"].score, 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dense", type=Path, nargs="?", help="an h0 nab run's dense results")
    parser.add_argument("--cache", type=Path, help="ensemble_dev.py's cache (instead of dense)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS)[:9], choices=VARIANTS)
    parser.add_argument(
        "--nab", type=Path, default=Path(os.environ.get("H0_NAB_ROOT", "../shared/datasets/nab"))
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/nab_shaping.json"))
    args = parser.parse_args()
    if (args.dense is None) == (args.cache is None):
        parser.error("give either DENSE (an h0 nab run's results) or --cache DIR")
    corpus = load_corpus(args.nab)
    halves = {h: [r for r in corpus.files if split_of(f"nab/{r}") == h] for h in ("dev", "test")}
    halves["all"] = list(corpus.files)
    if args.dense is not None:
        dense, values = from_results(args.dense, corpus)
        per_seed = {None: dense}
    else:
        values = {r: read_values(corpus, r) for r in corpus.files}
        per_seed = {s: from_cache(args.cache, s, corpus) for s in args.seeds}
    rows = []
    for name in args.variants:
        options = VARIANTS[name]
        seeds = {s: score_variant(d, values, options, corpus, halves) for s, d in per_seed.items()}
        row = {"variant": name, "options": {k: v for k, v in options.items()}}
        if args.dense is not None:
            row.update(seeds[None])
        else:
            row["seeds"] = {str(s): r for s, r in seeds.items()}
            for half in halves:
                got = [r[half] for r in seeds.values()]
                row[half] = round(float(np.mean(got)), 2)
                row[f"{half}_std"] = round(float(np.std(got, ddof=1)) if len(got) > 1 else 0.0, 2)
        rows.append(row)
        per = (
            ""
            if args.dense is not None
            else "  seeds dev " + " / ".join(f"{r['dev']:.2f}" for r in seeds.values())
        )
        print(
            f"{name:22s} dev {row['dev']:6.2f}  test {row['test']:6.2f}  all {row['all']:6.2f}{per}",
            flush=True,
        )
    source = str(args.dense) if args.dense is not None else f"{args.cache} seeds {args.seeds}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dense": source, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
