"""Wall time of ``h0 nab run`` over NAB's 58 series: one program against one process per series.

Each configuration is a fresh ``h0 nab run`` subprocess (imports, compiles, training, scoring,
writing NAB's results layout and scoring it with NAB's threshold sweep: everything a user waits
for). Configurations alternate A, B, A, B over ``--rounds``; the table shows each one's median
wall time, its NAB standard score (the ``nab`` variant) and the dense score's VUS-PR, and the
median of the per-round ratios. The load average at each start is recorded: this machine's two
cores are shared.

    PYTHONPATH=src python benchmarks/nab_wall.py --nab ../shared/datasets/nab   # writes benchmarks/results/nab_wall.json
    PYTHONPATH=src python benchmarks/nab_wall.py --nab ../shared/datasets/nab --modes one-program --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = "import sys; from h0._cli import main; sys.exit(main())"
MODES = {"one-program": ["--one-program"], "per-series": ["--no-one-program", "--workers", "2"]}


def run_once(nab: Path, mode: str, detector: str, seed: int) -> dict:
    """One ``h0 nab run`` in a subprocess: wall time, load at start, scores."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-c", CLI, "nab", "run", "--detector", detector, "--seed",
               str(seed), "--nab", str(nab), "--out", out, *MODES[mode]]  # fmt: skip
        load = os.getloadavg()[0]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        summary = json.loads((Path(out) / "summary.json").read_text())
    scores = summary["scores"]
    return {
        "wall_s": wall,
        "load_at_start": load,
        "nab_standard": scores[f"{detector}-nab"]["standard"],
        "dense_vus_pr": scores[f"{detector}-dense"]["vus_pr"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nab", type=Path, default=Path(os.environ.get("H0_NAB_ROOT", "../shared/datasets/nab"))
    )
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--detector", default="h0-gru")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/nab_wall.json"))
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {m: [] for m in args.modes}
    for r in range(args.rounds):
        order = args.modes[r % len(args.modes) :] + args.modes[: r % len(args.modes)]
        for mode in order:
            runs[mode].append(run_once(args.nab, mode, args.detector, args.seed))
            print(f"round {r + 1} {mode}: {runs[mode][-1]}", flush=True)
    table = {
        mode: {
            "wall_s_median": statistics.median(x["wall_s"] for x in rs),
            "nab_standard": [x["nab_standard"] for x in rs],
            "dense_vus_pr": [x["dense_vus_pr"] for x in rs],
        }
        for mode, rs in runs.items()
    }
    if len(args.modes) == 2:
        a, b = args.modes
        table["ratio"] = {
            f"{a} / {b}": statistics.median(
                x["wall_s"] / y["wall_s"] for x, y in zip(runs[a], runs[b], strict=True)
            )
        }
    print(f"\n{'mode':<14}{'wall s':>8}{'NAB std':>9}{'VUS-PR':>8}")
    for mode in args.modes:
        row = table[mode]
        print(
            f"{mode:<14}{row['wall_s_median']:>8.1f}{statistics.median(row['nab_standard']):>9.1f}"
            f"{statistics.median(row['dense_vus_pr']):>8.3f}"
        )
    if "ratio" in table:
        print(table["ratio"])
    result = {
        "benchmark": "nab_wall",
        "detector": args.detector,
        "seed": args.seed,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "runs": runs,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
