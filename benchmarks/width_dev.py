"""The detector's width on multivariate series: 24 hidden units against a wider network, seeds 0-2.

Each entry is a bench ``.npz`` (``train``, ``test``, ``labels``) and the width to compare with the
default 24; the detector is otherwise today's default. Prints AUC-PR per seed and the means
(AUC-PR, point F1 of ``predict``), writes JSON (session 12, docs/nab_tuning.md).

    python benchmarks/width_dev.py \\
        '[["~/.cache/h0/devbench/gutentag/multi-3ch-mixed-a.npz", 48],
          ["~/.cache/h0/devbench/gutentag/multi-6ch-frequency-a.npz", 72]]' \\
        --out benchmarks/results/width_dev.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from h0.evaluate import _bench, _devdata

DEFAULT_HIDDEN = 24


def run(path: Path, hidden: int, seeds: list[int]) -> list[dict]:
    """AUC-PR, VUS-PR and point F1 of the default detector at ``hidden`` units, per seed.

    Measured by the bench's own harness (``h0.evaluate._bench.evaluate``).
    """
    ds = _devdata.from_npz(path, path.stem, "gutentag", "dev", "the bench cache's training part")
    out = []
    for seed in seeds:
        row = _bench.evaluate(ds, _bench.make_detector("h0", seed, h0_options={"hidden": hidden}))
        out.append({"seed": seed, **{k: row[k] for k in ("auc_pr", "vus_pr", "point_f1")}})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("entries", help="JSON list of [npz path, width] pairs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "width_dev.json"
    )
    args = parser.parse_args()
    result: dict = {"benchmark": "width_dev", "seeds": args.seeds, "rows": {}}
    for path, width in json.loads(args.entries):
        path = Path(path).expanduser()
        for hidden in (DEFAULT_HIDDEN, int(width)):
            rows = run(path, hidden, args.seeds)
            result["rows"][f"{path.stem}@{hidden}"] = rows
            auc = [r["auc_pr"] for r in rows]
            print(
                f"{path.stem:28s} hidden {hidden:3d}  AUC-PR "
                + " / ".join(f"{a:.3f}" for a in auc)
                + f"  mean {np.mean(auc):.3f}  point F1 {np.mean([r['point_f1'] for r in rows]):.3f}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
