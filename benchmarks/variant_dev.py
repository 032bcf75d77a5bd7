"""One detector variant against today's defaults: dev bench and NAB's halves, paired by seed.

For each seed the default detector and the variant (``--options``, detector settings as JSON) are
fitted on every dev dataset of the bench (GutenTAG and aeon) and on every NAB series (one program,
as ``h0 nab run``); dense scores are cached per seed and variant (the defaults' in
``ensemble_dev.py``'s cache, which they share). Reported: bench dev AUC-PR and VUS-PR per dataset
and mean, NAB standard and dense VUS-PR per half, paired by seed. Choose on the dev split and NAB's
dev half only; the held-out split runs through ``h0 bench --split test`` once, if a setting is
adopted. Variants measured with it (tuning log, session 9):

* ``level``, ``{"level_error": true}``: the level test. A channel that shifts while keeping its
  shape is reconstructed as it is by the network (on a 24-channel series,
  ``benchmarks/wide_channels.py``, a +1 shift of one sine for 300 points scored 0.5 decades on its
  channel); ``level_error`` adds a window-level test per channel, the mean of the window's values,
  both ways.
* ``untrained``, ``{"epochs": 0}``: the network at its random initialisation, the same stages (what
  training contributes).

    python benchmarks/variant_dev.py --variant level --options '{"level_error": true}' \
        --seeds 0 1 2 3 4 5 6 7 8
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from ensemble_dev import compute, evaluate

from h0 import _compilecache
from h0.evaluate._nab import load_corpus

KEYS = (
    "bench_auc_pr",
    "bench_vus_pr",
    "nab_dev",
    "nab_test",
    "nab_all",
    "nab_vus_dev",
    "nab_vus_all",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--base-cache", type=Path, default=Path("/tmp/h0-ensemble-dev"))
    parser.add_argument("--variant", required=True, help="a name for the variant (cache, output)")
    parser.add_argument("--options", type=json.loads, required=True, help="settings, as JSON")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/h0-variant-dev"))
    parser.add_argument("--out", type=Path, help="default: results/variant_dev_VARIANT.json")
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / "results" / f"variant_dev_{args.variant}.json"
    cache = args.cache / args.variant
    _compilecache.use(args.cache / "jax")
    corpus = load_corpus(Path(os.environ["H0_NAB_ROOT"]))
    rows: dict = {}
    for seed in args.seeds:
        base = compute(seed, corpus, args.base_cache)
        variant = compute(seed, corpus, cache, args.options)
        rows[f"base/{seed}"] = evaluate(base, corpus)
        rows[f"variant/{seed}"] = evaluate(variant, corpus)
        print(
            f"seed {seed}: "
            + ", ".join(
                f"{k} {rows[f'base/{seed}'][k]:.3f} -> {rows[f'variant/{seed}'][k]:.3f}"
                for k in KEYS
            ),
            flush=True,
        )
    summary = {}
    for k in KEYS:
        b = np.array([rows[f"base/{s}"][k] for s in args.seeds])
        v = np.array([rows[f"variant/{s}"][k] for s in args.seeds])
        summary[k] = {
            "base": float(b.mean()),
            "variant": float(v.mean()),
            "delta": float((v - b).mean()),
            "higher": int((v > b).sum()),
        }
        print(
            f"{k:13s} {b.mean():8.3f} -> {v.mean():8.3f}  ({(v - b).mean():+.3f}, "
            f"higher on {(v > b).sum()}/{len(b)})"
        )
    names = rows[f"base/{args.seeds[0]}"]["per_dataset"]
    for name in names:
        b = np.mean([rows[f"base/{s}"]["per_dataset"][name]["auc_pr"] for s in args.seeds])
        v = np.mean([rows[f"variant/{s}"]["per_dataset"][name]["auc_pr"] for s in args.seeds])
        print(f"  {name:34s} AUC-PR {b:.3f} -> {v:.3f}")
    result = {
        "benchmark": "variant_dev",
        "variant": args.variant,
        "options": args.options,
        "seeds": args.seeds,
        "summary": summary,
        "rows": rows,
    }
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
