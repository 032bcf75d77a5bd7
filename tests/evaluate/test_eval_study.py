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


def test_history_task_context_summarises_the_history():
    task = SyntheticTask(num_series=4, window=8, history=32)
    batch = task.sample(jax.random.key(1), 512)
    assert batch["x"].shape == (512, 8, 2) and batch["context"].shape == (512, 2)
    # The window starts where the history ended: the recent history mean tracks the start
    # (noise 1/sqrt(8) plus a little drift) better than the series' level does (drift 0.1*sqrt(32)).
    start = np.asarray(batch["y"][:, 0, 0])
    recent = np.asarray(batch["context"][:, 1])
    level = np.asarray(task.levels())[np.asarray(batch["ids"])]
    assert np.mean((recent - start) ** 2) < np.mean((level - start) ** 2)


def test_fit_initial_state_runs_on_the_synthetic_task():
    assert np.isfinite(train_synthetic("fit_initial_state", 0, steps=3))


def _tiny_dev_cache(root):
    import json

    rng = np.random.default_rng(0)
    t = np.arange(400)
    train = (np.sin(t / 4) + 0.05 * rng.normal(size=400))[:, None]
    test = (np.sin((t + 400) / 4) + 0.05 * rng.normal(size=400))[:, None]
    labels = np.zeros(400, np.int8)
    test[200:205] += 3.0
    labels[200:205] = 1
    (root / "gutentag").mkdir(parents=True)
    np.savez(root / "gutentag" / "toy-a.npz", train=train, test=test, labels=labels)
    entry = {
        "name": "gutentag/toy-a",
        "family": "gutentag",
        "split": "dev",
        "file": "gutentag/toy-a.npz",
        "train_rule": "toy",
    }
    (root / "manifest.json").write_text(json.dumps({"format": 1, "datasets": [entry]}))
    return root


def _tiny_fleet_corpus(root):
    import json

    import pandas as pd
    from tests.evaluate.conftest import PROFILES, _stamps

    (root / "data" / "fleet").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "config").mkdir()
    rng = np.random.default_rng(1)
    windows = {}
    for i in range(2):
        n = 600
        values = np.sin(np.arange(n) / (3 + i)) + 0.05 * rng.normal(size=n)
        values[400:403] += 4.0
        stamps = _stamps(n)
        pd.DataFrame({"timestamp": stamps, "value": values}).to_csv(
            root / "data" / "fleet" / f"s{i}.csv", index=False
        )
        windows[f"fleet/s{i}.csv"] = [[stamps[390] + ".000000", stamps[415] + ".000000"]]
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    (root / "config" / "profiles.json").write_text(json.dumps(PROFILES))
    return root


def test_run_study_dev_bench_and_fleets_end_to_end(tmp_path, monkeypatch):
    """The detector parts at tiny sizes (window 8, 1 epoch, 2 seeds): runs, effects, report."""
    import json

    from h0.evaluate import _study

    settings = (("fleet", "zeros"), ("fleet", "per_sequence"), ("separate", "zeros"))
    monkeypatch.setattr(_study, "FLEET_SETTINGS", settings)

    dev_root = _tiny_dev_cache(tmp_path / "dev")
    nab_root = _tiny_fleet_corpus(tmp_path / "nab")
    out = tmp_path / "out"
    kwargs = dict(
        out=out,
        seeds=[0, 1],
        synthetic=False,
        dev_bench=True,
        windows=(8,),
        warmup_windows=(8,),
        fleets=("fleet",),
        nab_root=nab_root,
        nab_full=True,
        nab_strategies=("zeros", "learned"),
        epochs=1,
        workers=1,
        dev_root=dev_root,
        log=lambda m: None,
    )
    report = _study.run_study(**kwargs)
    payload = json.loads((out / "study.json").read_text())
    # 3 dev starts x 2 seeds on one series, 3 fleet settings x 2 seeds, 2 NAB starts x 2 seeds.
    assert len(payload["runs"]) == 6 + 6 + 4
    fleet = [r for r in payload["runs"] if r["part"] == "fleet"]
    assert {r["series"] for r in fleet} == {2}
    assert all(0 <= r["vus_pr"] <= 1 and 0 <= r.get("auc_pr", 0) <= 1 for r in payload["runs"])
    effects = {(e["part"], e["strategy"], e["metric"]) for e in payload["effects"]}
    assert ("dev", "learned", "auc_pr") in effects and ("dev", "warmup", "vus_pr") in effects
    assert ("fleet", "per_sequence", "nab_standard") in effects  # vs zeros in the fleet model
    assert ("fleet", "separate zeros", "auc_pr") in effects  # one model per series vs one
    assert ("nab", "learned", "nab_standard") in effects
    assert "| dev | window 8 | learned | AUC-PR |" in report
    assert (out / "effects.png").stat().st_size > 0
    # A rerun resumes from runs.jsonl: nothing is run again.
    lines = (out / "runs.jsonl").read_text().count("\n")
    _study.run_study(**kwargs)
    assert (out / "runs.jsonl").read_text().count("\n") == lines


def test_verdict_reads_the_interval():
    from h0.evaluate._study import verdict

    assert verdict({"ci_low": 0.1, "ci_high": 0.2, "higher_is_better": True}) == "better"
    assert verdict({"ci_low": 0.1, "ci_high": 0.2, "higher_is_better": False}) == "worse"
    assert verdict({"ci_low": -0.1, "ci_high": 0.2, "higher_is_better": True}) == "no difference"
