"""Detector variants against today's defaults: dev bench and NAB's halves, paired by seed.

For each seed the default detector and each variant (``--variant NAME JSON``, detector settings)
are fitted on every dev dataset of the bench (GutenTAG and aeon) and on every NAB series (one
program, as ``h0 nab run``); dense scores are cached per seed and variant (the defaults' in
``ensemble_dev.py``'s cache, which they share). Variants that change scoring settings only are
scored by the default networks through ``with_scoring`` (no retraining: the pairs differ by the
setting alone). Reported: bench dev AUC-PR and VUS-PR per dataset
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

    python benchmarks/variant_dev.py --variant level '{"level_error": true}' --seeds 0 1 2
    python benchmarks/variant_dev.py --variant cutoff4 '{"calibration_cutoff": 4}' \
        --seeds 0 1 2 3 4 5 6 7 8
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from ensemble_dev import FAMILIES, KEYS, cache_npz, compute, evaluate

from h0 import _compilecache
from h0.anomaly import GRUAutoencoderDetector
from h0.anomaly._config import scoring_names
from h0.anomaly._detector import fit_independent
from h0.evaluate import _bench
from h0.evaluate._nab import load_corpus, probation_length
from h0.evaluate._run import read_values


def rescored(seed: int, corpus, cache: Path, variants: dict[str, dict]) -> dict[str, dict]:
    """Dense scores of the default networks of ``seed`` under each scoring variant, cached.

    Besides the scores, ``left/<dataset>`` holds how many calibration rows each detector left out
    (``calibration_kept_``).
    """
    paths = {name: cache / name / f"seed{seed}.npz" for name in variants}
    out = {}
    for name, path in paths.items():
        if path.exists():
            with np.load(path) as f:
                out[name] = dict(f)
    todo = {n: o for n, o in variants.items() if n not in out}
    if not todo:
        return out
    new: dict[str, dict] = {n: {} for n in todo}

    def keep(name: str, key: str, det: GRUAutoencoderDetector, scores: np.ndarray) -> None:
        new[name][key] = np.asarray(scores, np.float64)
        left = sum(int((~k).sum()) for k in det.calibration_kept_)
        new[name][f"left/{key}"] = np.array(left)

    for ref in _bench.select(_bench.BenchConfig(split="dev", families=FAMILIES)):
        ds = ref.load()
        det = GRUAutoencoderDetector(seed=seed).fit(_bench._as_2d(ds.train))
        for name, options in todo.items():
            other = det.with_scoring(**options)
            keep(name, f"bench/{ds.name}", other, other.score(_bench._as_2d(ds.test)))
    files = list(corpus.files)
    values = [read_values(corpus, r) for r in files]
    ends = [probation_length(len(v)) for v in values]
    dets = fit_independent([v[:e] for v, e in zip(values, ends, strict=True)], seed=seed)
    for r, det, v, e in zip(files, dets, values, ends, strict=True):
        for name, options in todo.items():
            other = det.with_scoring(**options)
            scores = np.concatenate([other.decision_scores_, other.score(v[e:])])
            keep(name, f"nab/{r}", other, scores)
    for name in todo:
        cache_npz(paths[name], new[name])
        out[name] = new[name]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--base-cache", type=Path, default=Path("/tmp/h0-ensemble-dev"))
    parser.add_argument(
        "--variant",
        nargs=2,
        action="append",
        required=True,
        metavar=("NAME", "JSON"),
        help="a variant: a name (cache, output) and its settings as JSON; repeatable",
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/h0-variant-dev"))
    parser.add_argument("--out", type=Path, help="default: results/variant_dev_NAME.json each")
    args = parser.parse_args()
    variants = {name: json.loads(options) for name, options in args.variant}
    scoring = {n: o for n, o in variants.items() if set(o) <= set(scoring_names())}
    _compilecache.use(args.cache / "jax")
    corpus = load_corpus(Path(os.environ["H0_NAB_ROOT"]))
    rows: dict = {name: {} for name in variants}
    for seed in args.seeds:
        base = compute(seed, corpus, args.base_cache)
        scores = rescored(seed, corpus, args.cache, scoring)
        for name, options in variants.items():
            if name not in scores:
                scores[name] = compute(seed, corpus, args.cache / name, options)
            rows[name][f"base/{seed}"] = evaluate(base, corpus)
            rows[name][f"variant/{seed}"] = evaluate(scores[name], corpus)
            left = {k[5:]: int(v) for k, v in scores[name].items() if k.startswith("left/")}
            rows[name][f"left/{seed}"] = {k: v for k, v in left.items() if v}
            b, v = rows[name][f"base/{seed}"], rows[name][f"variant/{seed}"]
            print(
                f"{name} seed {seed}: " + ", ".join(f"{k} {b[k]:.3f} -> {v[k]:.3f}" for k in KEYS),
                flush=True,
            )
    for name, options in variants.items():
        summarise(name, options, args.seeds, rows[name], args.out if len(variants) == 1 else None)


def summarise(name: str, options: dict, seeds: list[int], rows: dict, out: Path | None) -> None:
    """Print and write one variant's paired summary."""
    summary = {}
    print(f"\n{name} {options}")
    for k in KEYS:
        b = np.array([rows[f"base/{s}"][k] for s in seeds])
        v = np.array([rows[f"variant/{s}"][k] for s in seeds])
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
    for dataset in rows[f"base/{seeds[0]}"]["per_dataset"]:
        b = np.mean([rows[f"base/{s}"]["per_dataset"][dataset]["auc_pr"] for s in seeds])
        v = np.mean([rows[f"variant/{s}"]["per_dataset"][dataset]["auc_pr"] for s in seeds])
        print(f"  {dataset:34s} AUC-PR {b:.3f} -> {v:.3f}")
    result = {
        "benchmark": "variant_dev",
        "variant": name,
        "options": options,
        "seeds": seeds,
        "summary": summary,
        "rows": rows,
    }
    path = out or Path(__file__).parent / "results" / f"variant_dev_{name}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
