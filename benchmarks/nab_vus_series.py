"""Per-series VUS-PR of two ``h0 nab run`` outputs: where one detector's dense score ranks better.

``h0 nab run`` prints the mean VUS-PR of each variant's dense score over NAB's labelled series;
this script splits that mean by series and by folder, so that a difference of means (e.g. the
trained network against its untrained copy) can be read as "a few series by a lot" or "many by
a little". Each run's ``summary.json`` names its detector; the dense variant's results CSVs
(``results/<detector>-dense/``) are read, and VUS-PR is computed as ``h0 nab run`` computes it
(:func:`h0.evaluate._run.mean_vus_pr`: after each probationary period, buffers 0..20).

    PYTHONPATH=src python benchmarks/nab_vus_series.py A_OUT B_OUT --nab $H0_NAB_ROOT \\
        --out benchmarks/results/nab_vus_series.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from h0.evaluate import _run
from h0.evaluate._nab import load_corpus


def dense_scores(out: Path) -> tuple[str, dict[str, np.ndarray]]:
    """``(detector, {series path relative to data/: dense score})`` of one ``h0 nab run``."""
    detector = json.loads((out / "summary.json").read_text())["detector"]
    folder = out / "results" / f"{detector}-dense"
    scores = {}
    for path in sorted(folder.glob("*/*.csv")):
        name = path.name.removeprefix(f"{detector}-dense_")
        scores[f"{path.parent.name}/{name}"] = pd.read_csv(path)["anomaly_score"].to_numpy()
    return detector, scores


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="first `h0 nab run --out` folder")
    parser.add_argument("b", type=Path, help="second `h0 nab run --out` folder")
    parser.add_argument("--nab", type=Path, default=os.environ.get("H0_NAB_ROOT"))
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    args = parser.parse_args(argv)
    if args.nab is None:
        parser.error("--nab: no NAB root given and $H0_NAB_ROOT is not set")
    corpus = load_corpus(args.nab)
    name_a, a = dense_scores(args.a)
    name_b, b = dense_scores(args.b)
    rows = []
    for rel in sorted(set(a) & set(b)):
        va = _run.mean_vus_pr({rel: a[rel]}, corpus)
        vb = _run.mean_vus_pr({rel: b[rel]}, corpus)
        if not np.isnan(va):  # series without a window after the probation have no VUS-PR
            rows.append({"series": rel, name_a: va, name_b: vb, "difference": va - vb})
    table = pd.DataFrame(rows).sort_values("difference")
    table["folder"] = table["series"].str.split("/").str[0]
    by_folder = table.groupby("folder")[[name_a, name_b, "difference"]].mean()
    pd.set_option("display.width", 160)
    print(table.drop(columns="folder").to_string(index=False, float_format="%.3f"))
    print(by_folder.to_string(float_format="%.3f"))
    wins = int((table["difference"] > 0).sum())
    print(
        f"mean VUS-PR {name_a} {table[name_a].mean():.4f}, {name_b} {table[name_b].mean():.4f}; "
        f"{name_a} higher on {wins} of {len(table)} series"
    )
    result = {
        "benchmark": "nab_vus_series",
        "a": {"detector": name_a, "run": str(args.a)},
        "b": {"detector": name_b, "run": str(args.b)},
        "series": table.drop(columns="folder").to_dict(orient="records"),
        "by_folder": by_folder.reset_index().to_dict(orient="records"),
        "mean": {name_a: float(table[name_a].mean()), name_b: float(table[name_b].mean())},
        "a_higher_on": wins,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
