"""``benchmarks/nab_vs_htm.py`` splits NAB's raw score of a series into three parts: they add up.

The split (found windows' first-detection rewards, -1 per missed window, weighted false
positives) is what the session-12 diagnosis rests on; checked against NAB's own per-file score
(``h0.evaluate._nab.score_file``) on random scores, windows and thresholds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from h0.evaluate._nab import Profile, score_file

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from nab_vs_htm import parts


@pytest.mark.parametrize("seed", range(6))
def test_parts_add_up_to_nab_raw_score(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(300, 900))
    starts = np.sort(rng.choice(np.arange(50, n - 60), size=3, replace=False))
    windows = np.stack([starts, starts + rng.integers(5, 40, size=3)], axis=1)
    windows = windows[np.r_[True, windows[1:, 0] > windows[:-1, 1]]]  # no overlaps
    scores = rng.random(n) ** 8
    profile = Profile("standard", 1.0, 0.11, 1.0)
    for threshold in (0.2, 0.5, 0.9, 1.1):
        split = parts(scores, windows, threshold, profile)
        raw = score_file(scores, windows, threshold, profile).score
        assert split["reward"] + split["misses"] + split["false_positives"] == pytest.approx(raw)
        assert split["reward"] >= 0 >= split["misses"] and split["false_positives"] <= 0
