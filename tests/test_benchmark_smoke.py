"""Each benchmark's ``--quick`` run goes end to end and writes the JSON the docs quote from.

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


def run_quick(script: str, out: Path) -> subprocess.CompletedProcess[str]:
    """``benchmarks/<script> --quick --out <out>`` against this checkout's sources."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.slow
def test_rnn_speed_quick(tmp_path):
    out = tmp_path / "rnn_speed.json"
    result = run_quick("rnn_speed.py", out)
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
    run_quick("ensemble_speed.py", out)
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


@pytest.mark.slow
def test_detect_scale_quick(tmp_path):
    out = tmp_path / "detect_scale.json"
    result = run_quick("detect_scale.py", out)
    assert "| rows | channels | peak RSS (MB) |" in result.stdout
    data = json.loads(out.read_text())
    assert data["epochs"] == 1 and data["jax"] and len(data["load_average_before"]) == 3
    assert {(r["rows"], r["channels"]) for r in data["grid"]} == {(2000, 1), (2000, 4)}
    for r in data["grid"]:
        assert "failed" not in r, r
        for key in (
            "peak_rss_mb",
            "fit_s",
            "score_s",
            "score_warm_s",
            "score_points_per_s",
            "wall_s",
        ):
            assert r[key] > 0, (key, r)
        assert r["scored_rows"] == r["rows"] - r["train_rows"] > 0
        # The peak is the child's own: at least what it saw itself after scoring.
        assert r["peak_rss_mb"] >= 0.95 * r["peak_mb_after"]["score"]
        assert r["alarms"] >= 1  # the injected spikes are found
    cli = data["cli"]["no_plot"]
    assert cli["returncode"] == 0 and cli["wall_s"] > 0 and cli["peak_rss_mb"] > 0
    assert cli["files_mb"]["report.html"] > 1  # plotly.js is inlined
    assert cli["files_mb"]["scores.csv"] > 0


@pytest.mark.slow
def test_detector_compile_quick(tmp_path):
    out = tmp_path / "detector_compile.json"
    run_quick("detector_compile.py", out)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["length"], r["cache"]) for r in rows] == [
        (300, "none"),
        (300, "cache"),
        (300, "cache"),
    ]
    assert all(r["fit_compilations"] > 0 and r["fit_compile_s"] > 0 for r in rows)
    # The second process with the cache loads what the first one compiled.
    assert rows[2]["fit_compile_s"] < rows[1]["fit_compile_s"]


def test_loop_slices_quick(tmp_path):
    # The script checks that the sliced and the prefetched loops give the same outputs.
    out = tmp_path / "loop_slices.json"
    result = run_quick("loop_slices.py", out)
    assert "| 64, 32, 24 |" in result.stdout
    (row,) = json.loads(out.read_text())["rows"]
    assert set(row["us_per_step"]) == {"sliced", "prefetched", "constant"}
    assert all(v > 0 for v in row["us_per_step"].values())
