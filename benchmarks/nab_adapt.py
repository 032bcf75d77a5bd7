"""Online adaptation on NAB: each variant scored on NAB's dev half, test half and all 58 series.

Every variant runs the whole corpus as ``h0 nab run --one-program`` does (one model per series
trained on its probation, every row scored causally; with adaptation the network keeps training
on the latest points before each block it scores), then NAB's standard profile is scored on the
dev and test halves (``h0.evaluate._devdata.split_of``) and on all series, with the mean VUS-PR of
the dense score. Choose on the dev half; the test half is reported. Results are merged into the
JSON file by ``(variant, seed)``, so variants can be run one at a time.

    python benchmarks/nab_adapt.py off every100 --seeds 0
    python benchmarks/nab_adapt.py every100 --seeds 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from h0.evaluate._devdata import split_of
from h0.evaluate._nab import NabResults, load_corpus, score_corpus
from h0.evaluate._run import make_scorer, mean_vus_pr, run_corpus, subset

#: Each variant's detector settings (on top of the defaults).
VARIANTS: dict[str, dict] = {
    "off": {},
    "every100": {"adapt_every": 100},
    "every100-cal": {"adapt_every": 100, "adapt_calibration": True},
    "every250": {"adapt_every": 250},
    "every100-h2000": {"adapt_every": 100, "adapt_history": 2000},
    "every100-lr1e-3": {"adapt_every": 100, "adapt_learning_rate": 1e-3},
    "every100-s30": {"adapt_every": 100, "adapt_steps": 30},
    "every50-s5": {"adapt_every": 50, "adapt_steps": 5},
    "every250-s30": {"adapt_every": 250, "adapt_steps": 30},
    "every250-s30-cal": {"adapt_every": 250, "adapt_steps": 30, "adapt_calibration": True},
    "every250-cal": {"adapt_every": 250, "adapt_calibration": True},
    "cal-only-every100": {"adapt_every": 100, "adapt_steps": 0, "adapt_calibration": True},
    "cal-only-every250": {"adapt_every": 250, "adapt_steps": 0, "adapt_calibration": True},
    "every250-cal-lr3e-4": {
        "adapt_every": 250,
        "adapt_calibration": True,
        "adapt_learning_rate": 3e-4,
    },
    "every250-h2000-cal": {"adapt_every": 250, "adapt_history": 2000, "adapt_calibration": True},
    "every250-lr3e-4": {"adapt_every": 250, "adapt_learning_rate": 3e-4},
    "every250-h2000-lr3e-4": {
        "adapt_every": 250,
        "adapt_history": 2000,
        "adapt_learning_rate": 3e-4,
    },
}


def score_variant(corpus, name: str, seed: int) -> dict:
    """Run one variant over the corpus and score it on each half."""
    scorer = make_scorer("h0-gru", seed=seed, **VARIANTS[name])
    started = time.perf_counter()
    scores = run_corpus(scorer, corpus, one_program=True)
    wall = time.perf_counter() - started
    halves = {h: [r for r in corpus.files if split_of(f"nab/{r}") == h] for h in ("dev", "test")}
    row = {"variant": name, "seed": seed, "settings": VARIANTS[name], "wall_s": round(wall, 1)}
    for half, files in [*halves.items(), ("all", list(corpus.files))]:
        part = subset(corpus, files)
        shaped = {r: scores["nab"][r] for r in files}
        result = score_corpus(NabResults("h0", shaped), part, profiles=["standard"])
        row[half] = round(result["standard"].score, 2)
    row["vus_pr"] = round(mean_vus_pr(scores["dense"], corpus), 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--nab", type=Path, default=Path(os.environ.get("H0_NAB_ROOT", "../shared/datasets/nab"))
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/nab_adapt.json"))
    args = parser.parse_args()
    corpus = load_corpus(args.nab)
    payload = json.loads(args.out.read_text()) if args.out.exists() else {}
    rows = payload.get("rows", [])
    for name in args.variants:
        for seed in args.seeds:
            row = score_variant(corpus, name, seed)
            rows = [r for r in rows if (r["variant"], r["seed"]) != (name, seed)] + [row]
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({**payload, "rows": rows}, indent=1) + "\n")
            print(
                f"{name:20s} seed {seed}  dev {row['dev']:6.2f}  test {row['test']:6.2f}  "
                f"all {row['all']:6.2f}  VUS-PR {row['vus_pr']:.3f}  ({row['wall_s']:.0f} s)",
                flush=True,
            )
    print(f"\n{'variant':20s} seed   dev    test   all    VUS-PR  wall")
    for r in rows:
        print(
            f"{r['variant']:20s} {r['seed']:4d} {r['dev']:6.2f} {r['test']:6.2f} {r['all']:6.2f}"
            f"  {r['vus_pr']:.3f} {r['wall_s']:6.0f}"
        )


if __name__ == "__main__":
    main()
