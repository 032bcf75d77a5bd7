"""``benchmarks/detect_scale.py --quick`` runs end to end and writes well-formed JSON.

Memory and timings are not asserted against targets (the full benchmark's table does that on a
quiet machine); this checks the script still runs against the current code, that every grid
point ran in its own process and succeeded, and that the numbers it records are positive.
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
def test_detect_scale_quick(tmp_path):
    out = tmp_path / "detect_scale.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    script = ROOT / "benchmarks" / "detect_scale.py"
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
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
