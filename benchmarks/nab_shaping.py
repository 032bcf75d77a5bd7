"""Choose the NAB writer's alarm shaping on NAB's dev half, report the held-out half.

Reads the dense scores an ``h0 nab run`` wrote (``RESULTS/<detector>-dense``), applies each
shaping variant (no retraining: shaping is a function of the dense score and the values), and
scores NAB's standard profile on the dev and test halves (``h0.evaluate._devdata.split_of``).
Prints a table and writes JSON with every variant scored.

    python benchmarks/nab_shaping.py /tmp/nab_h0b/results/h0-gru-dense --out benchmarks/results/nab_shaping.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from h0.anomaly._alarms import nab_shape
from h0.evaluate._devdata import split_of
from h0.evaluate._nab import NabResults, load_corpus, score_corpus
from h0.evaluate._run import subset

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
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dense", type=Path)
    parser.add_argument(
        "--nab", type=Path, default=Path(os.environ.get("H0_NAB_ROOT", "../shared/datasets/nab"))
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/nab_shaping.json"))
    args = parser.parse_args()
    corpus = load_corpus(args.nab)
    dense, values = {}, {}
    prefix = args.dense.name + "_"
    for rel in corpus.files:
        folder, name = rel.split("/", 1)
        frame = pd.read_csv(args.dense / folder / f"{prefix}{name}")
        dense[rel] = frame["anomaly_score"].to_numpy(np.float64)
        values[rel] = frame["value"].to_numpy(np.float64)[:, None]
    halves = {h: [r for r in corpus.files if split_of(f"nab/{r}") == h] for h in ("dev", "test")}
    rows = []
    for name, options in VARIANTS.items():
        shaped = {r: nab_shape(dense[r], values[r], **options) for r in corpus.files}
        row = {"variant": name, "options": options}
        for half, files in [*halves.items(), ("all", list(corpus.files))]:
            part = subset(corpus, files)
            result = score_corpus(
                NabResults("h0", {r: shaped[r] for r in files}), part, profiles=["standard"]
            )
            row[half] = round(result["standard"].score, 2)
        rows.append(row)
        print(f"{name:22s} dev {row['dev']:6.2f}  test {row['test']:6.2f}  all {row['all']:6.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dense": str(args.dense), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
