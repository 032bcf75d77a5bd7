from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from h0.evaluate._study import SyntheticTask, paired_comparison, train_synthetic


def test_paired_comparison_by_hand():
    rows = {
        r.strategy: r
        for r in paired_comparison({"zeros": [1.0, 2.0, 4.0], "learned": [0.0, 1.0, 2.0]})
    }
    learned = rows["learned"]
    # Differences -1, -1, -2: mean -4/3, sd 1/sqrt(3); t(0.975, 2) = 4.3027.
    assert learned.diff_mean == pytest.approx(-4 / 3)
    half = 4.302652729911275 * (1 / math.sqrt(3)) / math.sqrt(3)
    assert learned.ci_low == pytest.approx(-4 / 3 - half) and learned.ci_high == pytest.approx(
        -4 / 3 + half
    )
    assert learned.wins == 3 and learned.n == 3
    assert learned.mean == pytest.approx(1.0) and learned.std == pytest.approx(1.0)
    assert rows["zeros"].diff_mean == 0.0
    higher = {
        r.strategy: r
        for r in paired_comparison({"zeros": [1.0, 2.0], "x": [2.0, 1.0]}, higher_is_better=True)
    }
    assert higher["x"].wins == 1
    with pytest.raises(ValueError, match="x has 1 seeds but zeros has 2"):
        paired_comparison({"zeros": [1.0, 2.0], "x": [1.0]})


def test_synthetic_task_levels_and_shapes():
    task = SyntheticTask(num_series=4, window=8)
    batch = task.sample(jax.random.key(0), 256)
    assert batch["x"].shape == (256, 8, 2) and batch["y"].shape == (256, 8, 1)
    # The first position sits at the series' level (start noise 0.05, first increment 0.1).
    first = np.asarray(batch["y"][:, 0, 0])
    levels = np.asarray(task.levels())[np.asarray(batch["ids"])]
    assert np.abs(first - levels).mean() < 0.15


def test_per_sequence_start_beats_zeros_on_the_synthetic_task():
    zeros = train_synthetic("zeros", 0, steps=300)
    per_sequence = train_synthetic("per_sequence", 0, steps=300)
    print(f"synthetic task, 300 steps: zeros {zeros:.4f}, per_sequence {per_sequence:.4f}")
    assert per_sequence < 0.5 * zeros
