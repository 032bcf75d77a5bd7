"""Score detector variants on the dev benchmark and on NAB's halves (the tuning log's harness).

Each variant is a set of ``GRUAutoencoderDetector`` settings. For each (variant, seed) it runs

- the dev benchmark (``h0 bench``'s harness, split ``dev``, families GutenTAG and aeon): AUC-PR and
  VUS-PR of the dense score, point F1 of ``predict``, event F1 of ``alarms``, per family and over
  every dataset;
- NAB (``H0_NAB_ROOT``) as ``h0 nab run --one-program`` does (one model per series, trained on its
  probation, in one vmapped program): NAB's standard score of the NAB-shaped score on the dev half,
  the test half and all 58 series (``h0.evaluate._devdata.split_of``), and the dense score's VUS-PR.

With ``--untrained`` the same settings with ``epochs=0`` run too (what training adds). Results
accumulate in the JSON file (a rerun replaces the rows it scores and keeps the others), and the
table printed at the end covers every row in it. Defaults are chosen on the dev columns only.

    python benchmarks/dev_variants.py --variants F0 F1 --seeds 0 --untrained

Variants: F0-F6 the forecasting head (session 4), H0-H3 the history-conditioned encoder start
(``initial_state='conditional'``, session 5), T1-T4 the trimmed window error,
S1 the spread feature (today's default), E40 and N48 training length and
capacity (session 7).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from h0.evaluate import _bench, _devdata
from h0.evaluate._nab import NabResults, load_corpus, score_corpus
from h0.evaluate._run import H0GRUScorer, mean_vus_pr, run_corpus, subset

#: Variant name -> detector settings (beside the defaults of the branch being measured).
VARIANTS: dict[str, dict] = {
    "F0": {"forecast_horizon": 0},  # no head: the detector as it was
    "F1": {"forecast_horizon": 1},  # one-step head, weight 1, scored
    "F2": {"forecast_horizon": 1, "forecast_error": False},  # head as an auxiliary loss only
    "F3": {"forecast_horizon": 4},  # 4-step head, scored on its one-step error
    "F4": {"forecast_horizon": 1, "forecast_weight": 0.3},
    "F5": {"forecast_horizon": 1, "forecast_weight": 3.0},
    "F6": {"forecast_horizon": 1, "window_error": False},  # newest-point + forecast errors
    # Session 5, beside the head (the default since session 4). H0 is the default: learned start.
    "H0": {},
    "H1": {"initial_state": "conditional", "history": 256},  # 8 windows before each window
    "H2": {"initial_state": "conditional", "history": 512},  # 16: beyond a day at 5 minutes
    "H3": {"initial_state": "conditional", "history": 128},
    # C1 (scored once, then removed: no effect on dev): the network read values clipped to the
    # training range widened by 10% of it, {"input_margin": 0.1}.
    # The window RMS error without its largest errors (one extreme point lingers for a window).
    "T1": {"window_trim": 1},
    "T2": {"window_trim": 2},
    "T4": {"window_trim": 4},
    # Each window's spread (log std of its values) as a further two-sided feature.
    "S1": {"spread_error": True},
    # Session 7: capacity and training length beside today's default (S1's settings). A network
    # trained on a few hundred points may be under-trained or too small to earn its place.
    "E40": {"epochs": 40},
    "N48": {"hidden": 48},  # also the first size on the library's fast GRU path
}
FAMILIES = ("gutentag", "aeon")
METRICS = ("auc_pr", "vus_pr", "point_f1", "event_f1")


def bench_dev(options: dict, seed: int) -> dict:
    """Mean metrics per family and over every dataset of the dev split."""
    refs = _bench.select(_bench.BenchConfig(split="dev", families=FAMILIES))
    runs = []
    for ref in refs:
        ds = ref.load()
        det = _bench.make_detector("h0", seed, h0_options=options)
        row = _bench.evaluate(ds, det)
        runs.append({"dataset": ds.name, "family": ds.family, **{m: row[m] for m in METRICS}})
    out = {}
    for family in (*FAMILIES, "all"):
        mine = [r for r in runs if family in ("all", r["family"])]
        # A dataset without an anomaly in its test part has no AUC-PR (None): left out.
        out[family] = {m: float(np.mean([r[m] for r in mine if r[m] is not None])) for m in METRICS}
    out["per_dataset"] = {r["dataset"]: {m: r[m] for m in METRICS} for r in runs}
    return out


def nab_halves(options: dict, seed: int, corpus) -> dict:
    """NAB standard on the dev half, the test half and all series; dense VUS-PR (all, per half)."""
    options = dict(options)
    strategy = options.pop("initial_state", "learned")
    scorer = H0GRUScorer(strategy, seed, options=tuple(sorted(options.items())))
    by_variant = run_corpus(scorer, corpus, one_program=True)
    halves = {
        h: [r for r in corpus.files if _devdata.split_of(f"nab/{r}") == h] for h in ("dev", "test")
    }
    halves["all"] = list(corpus.files)
    out = {}
    for half, files in halves.items():
        part = subset(corpus, files)
        shaped = {r: by_variant["nab"][r] for r in files}
        result = score_corpus(NabResults("h0", shaped), part, profiles=["standard"])
        out[half] = round(result["standard"].score, 2)
        out[f"vus_pr_{half}"] = mean_vus_pr({r: by_variant["dense"][r] for r in files}, part)
    return out


def fmt(row: dict | None, key: str, digits: int = 3) -> str:
    return "–" if row is None or key not in row else f"{row[key]:.{digits}f}"


def table(rows: dict) -> str:
    """Markdown table of every row: bench dev metrics and NAB halves, trained and untrained."""
    head = (
        "| variant | seed | settings | bench AUC-PR (all / GutenTAG / aeon) | VUS-PR | point F1 | "
        "event F1 | NAB dev | NAB test | NAB all | NAB VUS-PR | untrained: bench AUC-PR, NAB all |"
    )
    lines = [head, "|" + "---|" * 12]
    for key in sorted(rows, key=lambda k: (k.split("/")[0], int(k.split("/")[1]))):
        variant, seed, kind = key.split("/")
        if kind != "trained":
            continue
        r = rows[key]
        u = rows.get(f"{variant}/{seed}/untrained")
        b, n = r.get("bench"), r.get("nab")
        ub, un = (u or {}).get("bench"), (u or {}).get("nab")
        auc = (
            f"{b['all']['auc_pr']:.3f} / {b['gutentag']['auc_pr']:.3f} / {b['aeon']['auc_pr']:.3f}"
            if b
            else "–"
        )
        untrained = f"{fmt(ub and ub['all'], 'auc_pr')}, {fmt(un, 'all', 2)}" if u else "–"
        lines.append(
            f"| {variant} | {seed} | `{json.dumps(r['options'])}` | {auc} | "
            f"{fmt(b and b['gutentag'], 'vus_pr')} | {fmt(b and b['gutentag'], 'point_f1')} | "
            f"{fmt(b and b['gutentag'], 'event_f1')} | {fmt(n, 'dev', 2)} | {fmt(n, 'test', 2)} | "
            f"{fmt(n, 'all', 2)} | {fmt(n, 'vus_pr_all')} | {untrained} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--untrained", action="store_true", help="also run epochs=0")
    parser.add_argument("--skip-bench", action="store_true")
    parser.add_argument("--skip-nab", action="store_true")
    parser.add_argument(
        "--nab", type=Path, default=Path(os.environ.get("H0_NAB_ROOT", "../shared/datasets/nab"))
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dev_variants.json"))
    parser.add_argument("--table-only", action="store_true", help="print the table and stop")
    args = parser.parse_args()
    stored = json.loads(args.out.read_text()) if args.out.exists() else {"rows": {}}
    rows = stored["rows"]
    if not args.table_only:
        corpus = None if args.skip_nab else load_corpus(args.nab)
        for variant in args.variants:
            for seed in args.seeds:
                kinds = ["trained", "untrained"] if args.untrained else ["trained"]
                for kind in kinds:
                    options = dict(VARIANTS[variant])
                    if kind == "untrained":
                        options["epochs"] = 0
                    key = f"{variant}/{seed}/{kind}"
                    row = dict(rows.get(key, {}), options=options)
                    started = time.perf_counter()
                    if not args.skip_bench:
                        row["bench"] = bench_dev(options, seed)
                    if corpus is not None:
                        row["nab"] = nab_halves(options, seed, corpus)
                    row["seconds"] = round(time.perf_counter() - started, 1)
                    rows[key] = row
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    args.out.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
                    b, n = row.get("bench"), row.get("nab")
                    print(
                        f"{key}: bench AUC-PR {fmt(b and b['all'], 'auc_pr')} "
                        f"(GutenTAG {fmt(b and b['gutentag'], 'auc_pr')}), NAB dev "
                        f"{fmt(n, 'dev', 2)} test {fmt(n, 'test', 2)} all {fmt(n, 'all', 2)} "
                        f"VUS-PR {fmt(n, 'vus_pr_all')} ({row['seconds']} s)",
                        flush=True,
                    )
    print(table(rows))


if __name__ == "__main__":
    main()
