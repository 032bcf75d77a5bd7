"""Fixtures for the evaluation tests: a tiny NAB-layout corpus written to a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PROFILES = {
    "standard": {
        "CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}
    },
    "reward_low_FN_rate": {
        "CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}
    },
}


def _stamps(n: int) -> list[str]:
    return [str(t) for t in pd.date_range("2020-01-01", periods=n, freq="min")]


def write_tiny_corpus(root: Path) -> Path:
    """Write a two-series NAB corpus and a detector's results; return the results directory.

    Series ``demo/a.csv`` has 20 rows (probation floor(0.15*20) = 3 rows) and one window over
    rows 10..13. Series ``demo/b.csv`` has 10 rows (probation 1 row) and no window.
    Detector ``toy`` scores: a[1] = 0.95 (inside the probation, ignored), a[10] = 0.9 (left edge
    of the window), a[17] = 0.5 (after the window); b[5] = 0.7; every other row 0.
    """
    stamps_a, stamps_b = _stamps(20), _stamps(10)
    (root / "data" / "demo").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "config").mkdir()
    pd.DataFrame({"timestamp": stamps_a, "value": np.arange(20.0)}).to_csv(
        root / "data" / "demo" / "a.csv", index=False
    )
    pd.DataFrame({"timestamp": stamps_b, "value": np.arange(10.0)}).to_csv(
        root / "data" / "demo" / "b.csv", index=False
    )
    windows = {
        "demo/a.csv": [[stamps_a[10] + ".000000", stamps_a[13] + ".000000"]],
        "demo/b.csv": [],
    }
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    (root / "config" / "profiles.json").write_text(json.dumps(PROFILES))
    results = root / "results" / "toy"
    (results / "demo").mkdir(parents=True)
    a = np.zeros(20)
    a[1], a[10], a[17] = 0.95, 0.9, 0.5
    b = np.zeros(10)
    b[5] = 0.7
    pd.DataFrame({"timestamp": stamps_a, "value": 0.0, "anomaly_score": a}).to_csv(
        results / "demo" / "toy_a.csv", index=False
    )
    pd.DataFrame({"timestamp": stamps_b, "value": 0.0, "anomaly_score": b}).to_csv(
        results / "demo" / "toy_b.csv", index=False
    )
    return results


@pytest.fixture
def tiny_nab(tmp_path: Path) -> tuple[Path, Path]:
    """``(nab_root, results_dir)`` of the tiny corpus described in :func:`write_tiny_corpus`."""
    results = write_tiny_corpus(tmp_path)
    return tmp_path, results
