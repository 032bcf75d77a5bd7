"""Would a second, downsampled scale help? A measurement before building it into the detector.

Issue 12 asks for "multi-scale or downsampled windows": a 32-point window cannot see a cycle or a
platform longer than itself. Before wiring a second network into the detector (its stream, its
adaptation, its checkpoint, ``fit_independent``), this script measures the idea from outside, with
the public detector:

- the **fine** detector is today's default, fitted on the training points;
- the **coarse** detector is the same detector fitted on the means of non-overlapping blocks of
  ``k`` training points (a window of 32 blocks sees ``32 k`` points);
- the coarse score of block ``j`` (points ``jk .. jk + k - 1``) is known once its last point has
  arrived, so point ``t`` gets the score of the last *complete* block (causal; up to ``k - 1``
  points late); points before the first complete block get the fine score alone;
- the combined score is the larger of the two (both are decades of rarity against their own
  training errors, so they share a scale).

It reports the dev benchmark's AUC-PR and VUS-PR (GutenTAG and aeon, dev split) and, on NAB, the
dense score's VUS-PR and NAB's standard score of the NAB-shaped combined score on the dev half,
the test half and all 58 series, for the fine score alone and for each ``k``. Decisions read the
dev columns only.

    python benchmarks/coarse_scale_dev.py --factors 4 8 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from h0.anomaly import GRUAutoencoderDetector, nab_shape
from h0.anomaly._detector import fit_independent
from h0.evaluate import _bench, _devdata, metrics
from h0.evaluate._nab import NabResults, load_corpus, probation_length, score_corpus
from h0.evaluate._run import NAB_SHAPING, mean_vus_pr, read_values, run_corpus, subset

FAMILIES = ("gutentag", "aeon")


def block_means(values: np.ndarray, k: int) -> np.ndarray:
    """Means of the complete blocks of ``k`` rows of ``values [T, C]``: ``[T // k, C]``."""
    n = values.shape[0] // k
    return values[: n * k].reshape(n, k, values.shape[1]).mean(axis=1)


def upsample(coarse: np.ndarray, k: int, n: int) -> np.ndarray:
    """Point ``t`` gets the score of the last block complete at ``t`` (NaN before the first)."""
    t = np.arange(n)
    block = (t + 1) // k - 1
    out = np.full(n, np.nan)
    known = block >= 0
    out[known] = coarse[np.minimum(block[known], coarse.shape[0] - 1)]
    return out


def combine(fine: np.ndarray, coarse_up: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(coarse_up), fine, np.fmax(fine, coarse_up))


def _2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x[:, None] if x.ndim == 1 else x


def bench_dev(factors: list[int], seed: int) -> dict:
    """AUC-PR and VUS-PR per dataset of the dev split: fine alone and fine + coarse(k)."""
    refs = _bench.select(_bench.BenchConfig(split="dev", families=FAMILIES))
    per: dict[str, dict] = {}
    for ref in refs:
        ds = ref.load()
        labels = ds.labels.astype(np.int8)
        if not labels.any():
            continue
        train, test = _2d(ds.train), _2d(ds.test)
        fine = GRUAutoencoderDetector(seed=seed).fit(train).score(test)
        row = {"fine": _metrics(labels, fine)}
        for k in factors:
            coarse_train = block_means(train, k)
            if coarse_train.shape[0] < 64:
                row[f"k{k}"] = row["fine"]
                continue
            # The test's blocks start at the test's first point; the detector continues from
            # the end of its training points (block boundaries restart there).
            coarse = GRUAutoencoderDetector(seed=seed).fit(coarse_train)
            up = upsample(coarse.score(block_means(test, k)), k, test.shape[0])
            row[f"k{k}"] = _metrics(labels, combine(fine, up))
        per[ds.name] = row
        print(ds.name, {v: round(m["auc_pr"], 3) for v, m in row.items()}, flush=True)
    out = {}
    for family in (*FAMILIES, "all"):
        names = [n for n in per if family in ("all", n.split("/")[0])]
        out[family] = {
            v: {m: float(np.mean([per[n][v][m] for n in names])) for m in ("auc_pr", "vus_pr")}
            for v in per[names[0]]
        }
    out["per_dataset"] = per
    return out


def _metrics(labels: np.ndarray, scores: np.ndarray) -> dict:
    return {
        "auc_pr": float(metrics.auc_pr(labels, scores)),
        "vus_pr": float(metrics.vus_pr(labels, scores, max_buffer=20)),
    }


class CoarseScorer:
    """NAB's scorer protocol (``score_many``): fine and fine + coarse(k) as result variants."""

    def __init__(self, factors: list[int], seed: int):
        self.factors, self.seed = factors, seed

    def score_many(self, jobs):
        fine_dets = fit_independent([_2d(v[:end]) for v, end in jobs], seed=self.seed)
        fine = [
            np.concatenate([d.decision_scores_, d.score(_2d(v[end:]))])
            for d, (v, end) in zip(fine_dets, jobs, strict=True)
        ]
        variants = {"fine": fine}
        for k in self.factors:
            coarse_train = [block_means(_2d(v[:end]), k) for v, end in jobs]
            usable = [i for i, c in enumerate(coarse_train) if c.shape[0] >= 64]
            dets = fit_independent([coarse_train[i] for i in usable], seed=self.seed)
            combined = list(fine)
            for i, det in zip(usable, dets, strict=True):
                values, _ = jobs[i]
                # Blocks from the series' start; the training blocks' scores come from the fit.
                n_train = coarse_train[i].shape[0]
                rest = block_means(_2d(values)[n_train * k :], k)
                coarse = np.concatenate([det.decision_scores_, det.score(rest)])
                combined[i] = combine(fine[i], upsample(coarse, k, values.shape[0]))
            variants[f"k{k}"] = combined
        out = []
        for i, (values, _) in enumerate(jobs):
            row = {}
            for name, scores in variants.items():
                row[f"{name}-dense"] = scores[i]
                row[f"{name}-nab"] = nab_shape(scores[i], values, **NAB_SHAPING)
            out.append(row)
        return out


def nab_halves(factors: list[int], seed: int, corpus) -> dict:
    by_variant = run_corpus(CoarseScorer(factors, seed), corpus, one_program=True)
    halves = {
        h: [r for r in corpus.files if _devdata.split_of(f"nab/{r}") == h] for h in ("dev", "test")
    }
    halves["all"] = list(corpus.files)
    out: dict[str, dict] = {}
    for name in ["fine", *(f"k{k}" for k in factors)]:
        row = {}
        for half, files in halves.items():
            part = subset(corpus, files)
            shaped = {r: by_variant[f"{name}-nab"][r] for r in files}
            result = score_corpus(NabResults("h0", shaped), part, profiles=["standard"])
            row[half] = round(result["standard"].score, 2)
            row[f"vus_pr_{half}"] = mean_vus_pr(
                {r: by_variant[f"{name}-dense"][r] for r in files}, part
            )
        out[name] = row
        print(name, row, flush=True)
    return out


#: NAB shapings tried on the combined score (``--reshape``): (onset window, trailing).
SHAPINGS = [(w, t) for w in (200, 400, 800) for t in (1000, 2000, 4000)]


def reshape(factors: list[int], seed: int, corpus) -> dict:
    """NAB's dev half for the combined score under each of :data:`SHAPINGS` (the range rule kept)."""
    scorer = CoarseScorer(factors, seed)
    names = list(corpus.files)
    jobs = []
    for rel in names:
        values = read_values(corpus, rel)
        jobs.append((values, probation_length(values.shape[0])))
    rows = scorer.score_many(jobs)
    dev = [r for r in names if _devdata.split_of(f"nab/{r}") == "dev"]
    part = subset(corpus, dev)
    out = {}
    for name in ["fine", *(f"k{k}" for k in factors)]:
        for window, trailing in SHAPINGS:
            shaped = {
                rel: nab_shape(
                    row[f"{name}-dense"],
                    values,
                    window=window,
                    trailing=trailing,
                    range_margin=NAB_SHAPING["range_margin"],
                )
                for rel, row, (values, _) in zip(names, rows, jobs, strict=True)
                if rel in dev
            }
            result = score_corpus(NabResults("h0", shaped), part, profiles=["standard"])
            key = f"{name}/onsets{window}/trailing{trailing}"
            out[key] = round(result["standard"].score, 2)
            print(key, out[key], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", nargs="+", type=int, default=[4, 8])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument("--skip-nab", action="store_true")
    parser.add_argument(
        "--reshape", action="store_true", help="only: NAB dev half under other shapings"
    )
    parser.add_argument(
        "--nab", type=Path, default=Path(os.environ.get("H0_NAB_ROOT", "../shared/datasets/nab"))
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/coarse_scale_dev.json")
    )
    args = parser.parse_args()
    stored = json.loads(args.out.read_text()) if args.out.exists() else {"rows": {}}
    corpus = None if args.skip_nab else load_corpus(args.nab)
    for seed in args.seeds:
        started = time.perf_counter()
        row = dict(stored["rows"].get(str(seed), {}))
        if not args.reshape:
            row["factors"] = args.factors
        if not args.skip_bench and not args.reshape:
            row["bench"] = bench_dev(args.factors, seed)
        if args.reshape:
            row["reshape"] = reshape(args.factors, seed, corpus)
        elif corpus is not None:
            row["nab"] = nab_halves(args.factors, seed, corpus)
        row["seconds"] = round(time.perf_counter() - started, 1)
        stored["rows"][str(seed)] = row
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    print(
        "| seed | variant | bench AUC-PR | bench VUS-PR | NAB dev | NAB test | NAB all | NAB VUS dev |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for seed, row in sorted(stored["rows"].items()):
        b, n = row.get("bench", {}), row.get("nab", {})
        for name in ["fine", *(f"k{k}" for k in row["factors"])]:
            ba = b.get("all", {}).get(name, {})
            nb = n.get(name, {})
            print(
                f"| {seed} | {name} | {ba.get('auc_pr', float('nan')):.3f} | "
                f"{ba.get('vus_pr', float('nan')):.3f} | {nb.get('dev', float('nan'))} | "
                f"{nb.get('test', float('nan'))} | {nb.get('all', float('nan'))} | "
                f"{nb.get('vus_pr_dev', float('nan')):.3f} |"
            )


if __name__ == "__main__":
    main()
