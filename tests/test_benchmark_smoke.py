"""``benchmarks/rnn_speed.py --quick`` runs end to end and writes the JSON the docs quote from.

Timings are not asserted (speed is proven by the benchmark's own medians, not by a test); this
checks the script still runs against the current code and that its results are well formed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_rnn_speed_quick(tmp_path):
    out = tmp_path / "rnn_speed.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "rnn_speed.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| gru | 16, 32, 8, 48 |" in result.stdout
    results = json.loads(out.read_text())
    assert {r["cell"] for r in results["main"]} == {"gru", "lstm"}
    for row in results["main"]:
        for mode in ("train", "forward"):
            assert row[mode]["h0_vs_flax"] > 0
            assert len(row[mode]["raw_ms"]["h0"]) == results["reps"]
    assert all(r["h0"]["temp_mib"] > 0 for r in results["temporaries"])
    memory = results["memory"]["peak_mib"]
    assert memory["h0_remat"] < memory["h0"]


@pytest.mark.slow
def test_ensemble_speed_quick(tmp_path):
    # The script itself checks that every variant computes the same losses before timing.
    out = tmp_path / "ensemble_speed.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    script = ROOT / "benchmarks" / "ensemble_speed.py"
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    variants = json.loads(out.read_text())["variants"]
    assert set(variants) == {
        "vmap",
        "vectorize=1",
        "vectorize=2",
        "vectorize=4",
        "vectorize=8",
        "alone",
    }
    assert all(v["ms_per_step"] > 0 for v in variants.values())
