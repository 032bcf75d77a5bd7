"""Does a seed ensemble of the detector rank better than one network? Dev split and NAB's halves.

For each seed the default detector (today's settings) is fitted on every dev dataset of the bench
(GutenTAG and aeon) and on every NAB series (trained on its probation, one program, as
``h0 nab run`` does); the dense scores are cached (``--cache``, one ``.npz`` per seed). An
ensemble of ``K`` members is then scored from the cache without training: its score is the mean of
its members' scores (decades of rarity, so the mean is the log of the members' geometric mean
p-value). Seeds are grouped into disjoint ensembles (seeds 0..K-1, K..2K-1, ...) so that every
ensemble's spread over groups is comparable with a single network's spread over seeds.

Threshold-free metrics only (AUC-PR, VUS-PR of the dense score) plus NAB's standard score of the
NAB-shaped ensemble score per half; the decision (``predict``) is left to the detector if the
ensemble is adopted.

    python benchmarks/ensemble_dev.py --seeds 0 1 2 3 4 5 6 7 8 --members 1 3
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from h0 import _compilecache
from h0.anomaly._alarms import NAB_SHAPING, nab_shape
from h0.evaluate import _bench, _devdata, metrics
from h0.evaluate._nab import NabResults, load_corpus, score_corpus
from h0.evaluate._run import H0GRUScorer, mean_vus_pr, read_values, run_corpus, subset

FAMILIES = ("gutentag", "aeon")
#: The summary metrics of :func:`evaluate`: bench dev means, NAB standard and dense VUS-PR per half.
KEYS = (
    "bench_auc_pr",
    "bench_vus_pr",
    "nab_dev",
    "nab_test",
    "nab_all",
    "nab_vus_dev",
    "nab_vus_all",
)


def cache_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` in one step (a killed run leaves no half-written cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def nab_halves(dense: dict[str, np.ndarray], corpus) -> dict[str, float]:
    """NAB standard of the NAB-shaped ``dense`` scores and their VUS-PR on dev, test and all."""
    halves = {
        h: [r for r in corpus.files if _devdata.split_of(f"nab/{r}") == h] for h in ("dev", "test")
    }
    halves["all"] = list(corpus.files)
    out = {}
    for half, files in halves.items():
        part = subset(corpus, files)
        shaped = {r: nab_shape(dense[r], read_values(corpus, r), **NAB_SHAPING) for r in files}
        result = score_corpus(NabResults("h0", shaped), part, profiles=["standard"])
        out[f"nab_{half}"] = round(result["standard"].score, 2)
        out[f"nab_vus_{half}"] = mean_vus_pr({r: dense[r] for r in files}, part)
    return out


def compute(seed: int, corpus, cache: Path, options: dict | None = None) -> dict[str, np.ndarray]:
    """Dense scores of one seed (bench dev test parts, NAB whole series), cached.

    ``options``: detector settings other than today's defaults (the cache is then per setting).
    """
    options = dict(options or {})
    path = cache / f"seed{seed}.npz"
    if path.exists():
        with np.load(path) as f:
            return dict(f)
    out = {}
    started = time.perf_counter()
    for ref in _bench.select(_bench.BenchConfig(split="dev", families=FAMILIES)):
        ds = ref.load()
        det = _bench.make_detector("h0", seed, h0_options=options)
        det.fit(ds.train)
        out[f"bench/{ds.name}"] = np.asarray(det.score(ds.test), np.float64)
    scorer = H0GRUScorer("learned", seed, options=tuple(sorted(options.items())))
    by_variant = run_corpus(scorer, corpus, one_program=True)
    for r, dense in by_variant["dense"].items():
        out[f"nab/{r}"] = np.asarray(dense, np.float64)
    cache_npz(path, out)
    print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    return out


def evaluate(scores: dict[str, np.ndarray], corpus) -> dict:
    """Bench dev AUC-PR / VUS-PR (mean over datasets with anomalies) and NAB per half."""
    rows = {}
    for ref in _bench.select(_bench.BenchConfig(split="dev", families=FAMILIES)):
        ds = ref.load()
        labels = ds.labels.astype(np.int8)
        if not labels.any() or labels.all():
            continue
        s = scores[f"bench/{ds.name}"]
        rows[ds.name] = {
            "auc_pr": metrics.auc_pr(labels, s),
            "vus_pr": metrics.vus_pr(labels, s, max_buffer=20),
        }
    out = {
        "bench_auc_pr": float(np.mean([r["auc_pr"] for r in rows.values()])),
        "bench_vus_pr": float(np.mean([r["vus_pr"] for r in rows.values()])),
        "per_dataset": rows,
    }
    out.update(nab_halves({r: scores[f"nab/{r}"] for r in corpus.files}, corpus))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/h0-ensemble-dev"))
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "ensemble_dev.json"
    )
    args = parser.parse_args()
    _compilecache.use(args.cache / "jax")  # later seeds reuse the programs of the first
    corpus = load_corpus(Path(os.environ["H0_NAB_ROOT"]))
    per_seed = {s: compute(s, corpus, args.cache) for s in args.seeds}
    result: dict = {"benchmark": "ensemble_dev", "seeds": args.seeds, "rows": {}}
    keys = KEYS
    for k in args.members:
        groups = [args.seeds[i : i + k] for i in range(0, len(args.seeds) - k + 1, k)]
        rows = []
        for g in groups:
            names = per_seed[g[0]].keys()
            mean = {n: np.mean([per_seed[s][n] for s in g], axis=0) for n in names}
            rows.append({"seeds": g, **evaluate(mean, corpus)})
        summary = {
            key: (
                float(np.mean([r[key] for r in rows])),
                float(np.std([r[key] for r in rows], ddof=1)) if len(rows) > 1 else 0.0,
            )
            for key in keys
        }
        result["rows"][f"K{k}"] = {"groups": rows, "summary": summary}
        print(
            f"K={k} ({len(groups)} groups): "
            + ", ".join(f"{key} {m:.3f}±{sd:.3f}" for key, (m, sd) in summary.items()),
            flush=True,
        )
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
