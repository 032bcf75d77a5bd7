"""Window-level echoes of point anomalies: measured from the detector's own decades, dev only.

After one extreme point, every window that still holds it has a large RMS error and a large
spread for ``window`` points (docs/nab_tuning.md, session 5): the points after a spike score as
high as the spike, which costs point anomalies their ranking (a large spike's echo outranks a
smaller spike) and ``predict`` its precision. The *echo rule* measured here: a window-level test's
decades at point ``t`` (window RMS, spread) count only where they exceed every point-level score
(newest-point and forecast errors, Šidák-combined) of the window's earlier points ``t - window + 1
.. t - 1``; otherwise that evidence is an echo of a point already scored, and is multiplied by
``keep`` (0: dropped). Causal (points before ``t`` only), per point, no state beyond a window.
Variants set ``keep`` and which window-level tests it applies to; the detector's ``echo_keep``
is the rule on the window RMS alone (variants ``*-window``; ``echo.5-window`` equals
``echo_keep=0.5``), as chosen from this script's dev results.

The detector is fitted once per (dataset, seed) with
today's defaults; its per-feature decades are cached (``--cache``) and every variant is scored from
them without retraining, so the variants differ in the scoring only: the bench's dev split
(AUC-PR, VUS-PR, point F1 of the detector's own threshold and hysteresis) and NAB's halves
(standard score of the NAB-shaped score; dense VUS-PR). Besides the echo rule, an ablation of the
default score's features (each left out of the same networks' score).

    python benchmarks/echo_dev.py --compute-only --seeds 0 1 2 3 4 5 6 7 8   # fit, cache
    python benchmarks/echo_dev.py --seeds 0 1 2 3 4 5 6 7 8 --variants base echo0 echo.5
    python benchmarks/echo_dev.py --seeds 0 1 2   # every variant, the ablation too
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from ensemble_dev import cache_npz, nab_halves  # the same NAB harness and cache writer

from h0 import _compilecache
from h0.anomaly._alarms import AlarmRule, decide
from h0.anomaly._detector import GRUAutoencoderDetector, fit_independent
from h0.anomaly._scoring import feature_decades, sidak, split_features
from h0.evaluate import _bench, metrics
from h0.evaluate._nab import load_corpus, probation_length
from h0.evaluate._run import read_values

FAMILIES = ("gutentag", "aeon")
#: Variant name -> (keep, dropped features): keep = factor on an echoing window-level test (None:
#: no echo rule); the dropped features (0 point, 1 window, 2 forecast, 3 spread) are left out of
#: the score, an ablation of today's default from the same networks.
VARIANTS = {
    "base": (None, ()),
    "echo0": (0.0, ()),
    "echo.5": (0.5, ()),
    "no-window": (None, (1,)),
    "no-forecast": (None, (2,)),
    "no-spread": (None, (3,)),
    "point-only": (None, (1, 2, 3)),
    # The rule on one window-level feature only (third item: the features it applies to).
    "echo.5-window": (0.5, (), (1,)),  # = the detector's echo_keep=0.5
    "echo0-window": (0.0, (), (1,)),  # = echo_keep=0
    "echo.25-window": (0.25, (), (1,)),
    "echo.5-window-forecast": (0.5, (), (1, 2)),  # the forecast error echoes a spike too
    "echo.5-spread": (0.5, (), (3,)),
    "echo0-spread": (0.0, (), (3,)),
    "echo.75": (0.75, ()),
}


def decades_of(det: GRUAutoencoderDetector, values: np.ndarray | None) -> dict[str, np.ndarray]:
    """Per-feature decades ``[N, F, C]`` of the training part (and of ``values`` after it)."""
    cal = det.calibrations_[0]
    train = det._select(det._train_features[0])
    parts = {"train": train}
    if values is not None:
        parts["test"] = det._select(det._features(det._continuation(values, 0), 0))
    out = {}
    for name, f in parts.items():
        feats = split_features(f, det.n_features_)
        valid = ~np.isnan(feats).reshape(len(feats), -1).any(axis=1)
        d = np.zeros(feats.shape)
        d[valid] = feature_decades(cal, feats[valid])
        out[name] = d
    out["modelled"] = cal.modelled.astype(np.int8)
    out["threshold"] = np.array(det.threshold_)
    out["held"] = np.array(det._held_out[0])
    return out


def compute(seed: int, corpus, cache: Path, split: str = "dev") -> dict[str, np.ndarray]:
    """Per-feature decades of one seed: the bench split's test parts; on dev, NAB's series too."""
    path = cache / (f"seed{seed}.npz" if split == "dev" else f"{split}-seed{seed}.npz")
    if path.exists():
        with np.load(path) as f:
            return dict(f)
    started = time.perf_counter()
    out = {}
    for ref in _bench.select(_bench.BenchConfig(split=split, families=FAMILIES)):
        ds = ref.load()
        det = GRUAutoencoderDetector(seed=seed).fit(ds.train)
        for k, v in decades_of(det, ds.test).items():
            out[f"bench/{ds.name}/{k}"] = v
    if split != "dev":  # NAB's halves are both scored with the dev run
        cache_npz(path, out)
        return out
    files = list(corpus.files)
    values = [read_values(corpus, r) for r in files]
    ends = [probation_length(len(v)) for v in values]
    dets = fit_independent([v[:e] for v, e in zip(values, ends, strict=True)], seed=seed)
    for r, det, v, e in zip(files, dets, values, ends, strict=True):
        for k, a in decades_of(det, v[e:]).items():
            out[f"nab/{r}/{k}"] = a
    cache_npz(path, out)
    print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    return out


def combine(decades: np.ndarray, modelled: np.ndarray, variant: tuple, window: int = 32):
    """Scores ``[N]`` of decades ``[N, F, C]`` (features: point, window, forecast, spread)."""
    keep, drop = variant[:2]
    echoing = list(variant[2]) if len(variant) > 2 else [1, 3]
    d = decades[:, :, modelled.astype(bool)].copy()
    d[:, list(drop)] = 0.0  # a test at 0 decades never is the best one
    tests = (d.shape[1] - len(drop)) * d.shape[2]
    if keep is not None:
        point = sidak(d[:, [0, 2]].max(axis=(1, 2)), 2 * d.shape[2])
        prior = np.zeros_like(point)  # max point-level score of the window's earlier points
        for lag in range(1, window):
            prior[lag:] = np.maximum(prior[lag:], point[:-lag])
        echo = d[:, echoing] <= prior[:, None, None]
        d[:, echoing] = np.where(echo, keep * d[:, echoing], d[:, echoing])
    return sidak(d.max(axis=(1, 2)), tests)


def whole(c: dict, prefix: str, variant: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Train and test scores, combined over the joined series (the rule looks back a window)."""
    joined = np.concatenate([c[f"{prefix}/train"], c[f"{prefix}/test"]])
    s = combine(joined, c[f"{prefix}/modelled"], variant)
    n = len(c[f"{prefix}/train"])
    return s[:n], s[n:]


def evaluate(c: dict, variant: tuple, corpus, split: str = "dev") -> dict:
    rows = {}
    for ref in _bench.select(_bench.BenchConfig(split=split, families=FAMILIES)):
        ds = ref.load()
        labels = ds.labels.astype(np.int8)
        if not labels.any() or labels.all():
            continue
        p = f"bench/{ds.name}"
        train, test = whole(c, p, variant)
        held = int(c[f"{p}/held"])
        q = 0.9999
        threshold = max(float(np.quantile(train[-held:], q)), -np.log10(1 - q))
        rule = AlarmRule(threshold, 0.5, 100)
        state = decide(rule, train)[3]
        pred = decide(rule, test, state)[0].astype(np.int8)
        rows[ds.name] = {
            "auc_pr": metrics.auc_pr(labels, test),
            "vus_pr": metrics.vus_pr(labels, test, max_buffer=20),
            "point_f1": metrics.point_f1(labels, pred.astype(np.float64), 0.5),
        }
    out = {
        m: float(np.mean([r[m] for r in rows.values()])) for m in ("auc_pr", "vus_pr", "point_f1")
    }
    out["per_dataset"] = rows
    if split != "dev":
        return out
    dense = {r: np.concatenate(whole(c, f"nab/{r}", variant)) for r in corpus.files}
    out.update(nab_halves(dense, corpus))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/h0-echo-dev"))
    parser.add_argument(
        "--split",
        choices=("dev", "test"),
        default="dev",
        help="the bench split; test (held out: report only, never choose on it) skips NAB",
    )
    parser.add_argument(
        "--compute-only", action="store_true", help="fit and cache the seeds, score nothing"
    )
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "echo_dev.json"
    )
    args = parser.parse_args()
    _compilecache.use(args.cache / "jax")
    corpus = load_corpus(Path(os.environ["H0_NAB_ROOT"]))
    if args.compute_only:
        for seed in args.seeds:
            compute(seed, corpus, args.cache, args.split)
        return
    # Rows accumulate: a run replaces the rows it scores and keeps the others.
    result: dict = {"benchmark": "echo_dev", "rows": {}}
    if args.out.exists():
        result = json.loads(args.out.read_text())
    keys = ("auc_pr", "vus_pr", "point_f1")
    if args.split == "dev":
        keys += ("nab_dev", "nab_test", "nab_all", "nab_vus_dev", "nab_vus_all")
    for seed in args.seeds:
        c = compute(seed, corpus, args.cache, args.split)
        for v in args.variants:
            result["rows"][f"{v}/{seed}"] = evaluate(c, VARIANTS[v], corpus, args.split)
    for v in VARIANTS:
        rows = [r for k, r in sorted(result["rows"].items()) if k.split("/")[0] == v]
        if not rows:
            continue
        sd = lambda xs: float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0
        summary = {
            k: (float(np.mean([r[k] for r in rows])), sd([r[k] for r in rows])) for k in keys
        }
        result[f"summary/{v}"] = {"seeds": len(rows), **summary}
        print(
            f"{v:11s} n={len(rows)} "
            + ", ".join(f"{k} {m:.3f}±{s:.3f}" for k, (m, s) in summary.items())
        )
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
