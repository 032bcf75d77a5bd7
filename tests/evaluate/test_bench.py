"""``h0 bench``: the dataset cache, the harness's contract and rule, the new metrics, the CLI."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from h0._cli import main
from h0.evaluate import _baselines as baselines
from h0.evaluate import _bench as bench
from h0.evaluate import _devdata as devdata
from h0.evaluate import _metrics as metrics

CACHE = devdata.default_root()
needs_cache = pytest.mark.skipif(
    devdata.read_manifest(CACHE) is None,
    reason=f"no devbench cache at {CACHE} (run `h0 bench prepare` or set $H0_DEVBENCH_ROOT)",
)


# --------------------------------------------------------------------------------- metrics


def _event_prf_reference(labels: np.ndarray, events: list[tuple[int, int]]) -> tuple[float, float]:
    """Precision and recall by plain loops over events and segments."""
    segments = [tuple(r) for r in metrics.ranges(labels).tolist()]

    def overlaps(a: int, b: int, s: int, e: int) -> bool:
        return a <= e and s <= b

    true = sum(any(overlaps(a, b, s, e) for s, e in segments) for a, b in events)
    found = sum(any(overlaps(a, b, s, e) for a, b in events) for s, e in segments)
    return (true / len(events) if events else 0.0), found / len(segments)


def test_event_f1_hand_computed() -> None:
    labels = np.array([0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1])
    # Two events on the first segment, one on none, one on the last point: 3 of 4 true,
    # segments found: first and last, not the middle one -> recall 2/3.
    r = metrics.event_precision_recall_f1(labels, np.array([[0, 1], [2, 2], [4, 5], [11, 11]]))
    assert (r.precision, r.recall) == pytest.approx((0.75, 2 / 3))
    assert r.f1 == pytest.approx(2 * 0.75 * (2 / 3) / (0.75 + 2 / 3))
    assert (r.true_events, r.events, r.found_segments, r.segments) == (3, 4, 2, 3)


def test_event_f1_matches_loop_reference() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(5, 60))
        labels = (rng.random(n) < 0.2).astype(np.int8)
        if not labels.any():
            labels[rng.integers(n)] = 1
        starts = np.sort(rng.choice(n, size=int(rng.integers(0, 5)), replace=False))
        events = [(int(s), int(min(n - 1, s + rng.integers(0, 4)))) for s in starts]
        r = metrics.event_precision_recall_f1(labels, np.array(events).reshape(-1, 2))
        assert (r.precision, r.recall) == pytest.approx(_event_prf_reference(labels, events))


def test_event_f1_errors() -> None:
    with pytest.raises(ValueError, match="no anomaly"):
        metrics.event_precision_recall_f1(np.zeros(4), np.zeros((0, 2)))
    with pytest.raises(ValueError, match="events must be"):
        metrics.event_precision_recall_f1(np.array([0, 1, 0]), np.array([[1, 3]]))
    with pytest.raises(ValueError, match="events must be"):
        metrics.event_precision_recall_f1(np.array([0, 1, 0]), np.array([[2, 1]]))
    assert metrics.event_precision_recall_f1(np.array([0, 1]), np.zeros((0, 2))).f1 == 0.0


def test_all_ones_f1_is_point_f1_of_flagging_everything() -> None:
    labels = np.r_[np.zeros(90), np.ones(10)].astype(np.int8)
    assert metrics.all_ones_f1(labels) == pytest.approx(metrics.point_f1(labels, np.ones(100), 0.5))
    assert metrics.all_ones_f1(labels) == pytest.approx(2 * 0.1 / 1.1)
    assert metrics.all_ones_f1(np.zeros(5)) == 0.0


# --------------------------------------------------------------------------------- harness


def test_events_merge_within_gap_and_peak_at_max() -> None:
    pred = np.array([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1])
    scores = np.array([0, 1, 3, 0, 0, 5, 0, 0, 0, 0, 2.0])
    assert bench.events_from_predictions(pred, scores, gap=2) == [
        bench.Event(1, 5, 5),
        bench.Event(10, 10, 10),
    ]
    assert len(bench.events_from_predictions(pred, scores, gap=0)) == 3
    assert bench.events_from_predictions(np.zeros(4)) == []
    with pytest.raises(ValueError, match="gap must be >= 0"):
        bench.events_from_predictions(pred, gap=-1)


def test_causal_baseline_scores_the_continuation_with_the_quantile_rule() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 2))
    model = baselines.PCADetector(window=4, n_components=2)
    det = bench.CausalBaseline(model, quantile=0.9, gap=0).fit(x[:300])
    full = model.score(x, 300)
    np.testing.assert_allclose(det.score(x[300:]), full[300:])
    assert det.threshold_ == pytest.approx(np.quantile(model.score(x[:300], 300), 0.9))
    np.testing.assert_array_equal(det.predict(x[300:]), full[300:] > det.threshold_)
    assert isinstance(det, bench.BenchDetector)


class _ZerosThenSpike:
    """Scores 0 everywhere but where the value exceeds 3 (like h0's onset-staged scores)."""

    def score(self, values, train_end):
        return np.where(np.abs(values[:, 0]) > 3, 1.0, 0.0)


def test_rule_is_strict_so_zero_scores_never_fire() -> None:
    det = bench.CausalBaseline(_ZerosThenSpike()).fit(np.zeros(100))
    assert det.threshold_ == 0.0
    test = np.zeros(50)
    test[20] = 5.0
    assert det.predict(test).tolist() == [int(i == 20) for i in range(50)]


class _FakeDetector:
    """Stands in for GRUAutoencoderDetector: score = |x|, threshold 1."""

    def __init__(self, **options):
        self.options = options

    def fit(self, train):
        self.decision_scores_ = np.abs(train[:, 0])
        self.threshold_ = 1.0
        return self

    def score(self, test):
        return np.abs(test[:, 0])

    def predict(self, test):
        return (self.score(test) >= 1.0).astype(int)


class _FakeWithAlarms(_FakeDetector):
    def alarms(self, test):
        return [(0, 1, 1)]


def test_h0_adapter_falls_back_to_runs_of_predict(monkeypatch: pytest.MonkeyPatch) -> None:
    import h0.anomaly

    monkeypatch.setattr(h0.anomaly, "GRUAutoencoderDetector", _FakeDetector)
    test = np.array([0.0, 2.0, 0.0, 3.0, 0.0, 0.0, 0.0, 1.5])
    det = bench.H0Adapter(gap=1, epochs=3).fit(np.zeros(10))
    assert det.detector_.options == {"epochs": 3}
    assert det.alarms(test) == [bench.Event(1, 3, 3), bench.Event(7, 7, 7)]
    monkeypatch.setattr(h0.anomaly, "GRUAutoencoderDetector", _FakeWithAlarms)
    assert bench.H0Adapter().fit(np.zeros(10)).alarms(test) == [bench.Event(0, 1, 1)]


def _toy(labels_on: bool = True) -> devdata.Dataset:
    rng = np.random.default_rng(1)
    x = np.sin(np.arange(2000) / 7)[:, None] + 0.05 * rng.normal(size=(2000, 1))
    labels = np.zeros(1000, np.int8)
    test = x[1000:].copy()
    if labels_on:
        labels[400:450] = 1
        test[400:450] += 1.5
    return devdata.Dataset("toy/sine", "toy", "dev", x[:1000], test, labels, "prefix")


def test_evaluate_metrics_equal_direct_computation() -> None:
    ds = _toy()
    det = bench.make_detector("zscore", seed=0, gap=5)
    row = bench.evaluate(ds, det, gap=5, max_buffer=10)
    scores = baselines.RollingZScore(window=100).score(np.r_[ds.train, ds.test], 1000)[1000:]
    threshold = np.quantile(baselines.RollingZScore(window=100).score(ds.train, 1000), 0.99)
    pred = (scores > threshold).astype(np.int8)
    assert row["auc_pr"] == pytest.approx(metrics.auc_pr(ds.labels, scores))
    assert row["vus_pr"] == pytest.approx(metrics.vus_pr(ds.labels, scores, max_buffer=10))
    assert row["point_f1"] == pytest.approx(metrics.point_f1(ds.labels, pred, 0.5))
    assert row["point_f1_q"] == row["point_f1"]  # baselines' predict is the common rule
    events = bench.events_from_predictions(pred, scores, 5)
    ev = np.array([[e.start, e.end] for e in events]).reshape(-1, 2)
    assert row["event_f1"] == pytest.approx(metrics.event_precision_recall_f1(ds.labels, ev).f1)
    assert row["all_ones_f1"] == pytest.approx(2 * 0.05 / 1.05)
    assert row["alarms_per_1k"] == pytest.approx(len(events))


def test_evaluate_unlabelled_dataset_reports_false_alarms_only() -> None:
    row = bench.evaluate(_toy(labels_on=False), bench.make_detector("random", seed=0))
    assert row["auc_pr"] is None and row["event_f1"] is None
    assert row["alarms_per_1k"] > 0  # 1% of random scores pass the 0.99 quantile


def test_h0_runs_through_the_harness() -> None:
    ds = _toy()
    options = {"window": 8, "hidden": 8}
    row = bench.evaluate(ds, bench.make_detector("h0", seed=0, epochs=1, h0_options=options))
    assert 0 <= row["auc_pr"] <= 1 and row["scores"].shape == (1000,)
    assert row["train_scores"].shape == (1000,)


def test_summarize_mean_over_datasets_then_seeds() -> None:
    runs = [
        {"family": "f", "detector": "d", "seed": s, "dataset": n, "auc_pr": v, "event_f1": None}
        for s, n, v in [(0, "a", 0.1), (0, "b", 0.3), (1, "a", 0.5), (1, "b", 0.7)]
    ]
    cell = bench.summarize(runs)["f"]["d"]
    assert cell["auc_pr"] == {"mean": pytest.approx(0.4), "std": pytest.approx(0.2), "datasets": 2}
    assert "event_f1" not in cell


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="unknown detector 'lstm'"):
        bench.BenchConfig(detectors=("h0", "lstm"))
    with pytest.raises(ValueError, match="quantile"):
        bench.BenchConfig(quantile=1.5)


# --------------------------------------------------------------------------------- data


def test_split_is_fixed() -> None:
    assert devdata.split_of("gutentag/trend-a") == "dev"
    assert devdata.split_of("gutentag/trend-b") == "test"
    assert devdata.split_of("aeon/kdd-135") == "dev"
    # SHA-256 parity, pinned so that a change of rule is a visible change.
    assert devdata.split_of("nab/realKnownCause/nyc_taxi.csv") == "dev"
    assert devdata.split_of("nab/realKnownCause/machine_temperature_system_failure.csv") == "dev"
    assert devdata.split_of("nab/artificialWithAnomaly/art_daily_jumpsup.csv") == "test"


def test_gutentag_scenarios_cover_every_kind() -> None:
    scenarios = devdata.gutentag_scenarios()
    kinds = {k["kind"] for s in scenarios for a in s["anomalies"] for k in a["kinds"]}
    expected = {"extremum", "platform", "mean", "trend", "frequency", "variance", "amplitude"}
    assert expected | {"pattern"} <= kinds
    assert any(len(s["base-oscillations"]) > 1 for s in scenarios)  # multivariate
    lengths = {a["length"] for s in scenarios for a in s["anomalies"]}
    assert 1 in lengths and max(lengths) >= 200  # single points and long segments
    assert all(s["semi-supervised"] for s in scenarios)
    names = [s["name"] for s in scenarios]
    assert sorted(n[:-2] for n in names if n.endswith("-a")) == sorted(
        n[:-2] for n in names if n.endswith("-b")
    )


def _csv(values: np.ndarray, labels: np.ndarray) -> bytes:
    frame = pd.DataFrame({"timestamp": np.arange(len(values))})
    for c in range(values.shape[1]):
        frame[f"value-{c}"] = values[:, c]
    frame["is_anomaly"] = labels
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue().encode()


def test_prepare_aeon_from_a_wheel(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    kdd = rng.normal(size=(100, 1))
    kdd_labels = np.zeros(100, np.int8)
    kdd_labels[70:75] = 1
    ecg = rng.normal(size=(50, 1))
    ecg_labels = np.zeros(50, np.int8)
    ecg_labels[10] = 1
    daphnet = rng.normal(size=(40, 9))
    wheel = tmp_path / "aeon-1.6.0-py3-none-any.whl"
    base = "aeon/datasets/data/"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(base + devdata._AEON[0][1], _csv(kdd, kdd_labels))
        z.writestr(base + devdata._AEON[0][2], _csv(kdd[:30], np.zeros(30, np.int8)))
        z.writestr(base + devdata._AEON[1][1], _csv(ecg, ecg_labels))
        z.writestr(base + devdata._AEON[1][2], _csv(ecg + 1, np.zeros(50, np.int8)))
        z.writestr(base + devdata._AEON[2][1], _csv(daphnet, np.zeros(40, np.int8)))
    entries = {e["name"]: e for e in devdata.prepare_aeon(tmp_path, wheel, log=lambda m: None)}
    # KDD: the TRAIN file is a prefix of TEST, which is scored after it.
    assert entries["aeon/kdd-135"]["n_train"] == 30 and entries["aeon/kdd-135"]["n_test"] == 70
    assert entries["aeon/kdd-135"]["segments"] == [[40, 44]]
    # ecg: a separate training series; all of TEST is scored.
    assert entries["aeon/ecg-diff-count-3"]["n_test"] == 50
    # Daphnet: no training file, first 20% trains.
    assert entries["aeon/daphnet-s06r02e0"]["n_train"] == 8
    with np.load(tmp_path / "aeon" / "kdd-135.npz") as z:
        np.testing.assert_allclose(z["test"], kdd[30:])


def test_missing_cache_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(devdata.ROOT_ENV, str(tmp_path / "none"))
    code = main(["bench", "--families", "gutentag", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "run `h0 bench prepare`" in err and err.count("\n") == 1


def test_unknown_detector_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--detectors", "lstm"]) == 2
    assert "unknown detector 'lstm'" in capsys.readouterr().err


# --------------------------------------------------------------------------------- the cache


@needs_cache
def test_cache_datasets_load_consistently() -> None:
    manifest = devdata.read_manifest(CACHE)
    assert manifest["versions"]["aeon"] == devdata.AEON_VERSION
    refs = devdata.datasets("all", families=["aeon", "gutentag"])
    assert len(refs) == len(manifest["datasets"])
    for ref in refs:
        ds = ref.load()
        assert ds.train.shape[1] == ds.test.shape[1] and ds.labels.shape == (len(ds.test),)
        assert np.isfinite(ds.train).all() and np.isfinite(ds.test).all()
        assert ds.labelled or ds.name == "aeon/daphnet-s06r02e0"


@needs_cache
def test_quick_bench_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "| h0 |" in out and "| random |" in out
    result = json.loads((tmp_path / "bench.json").read_text())
    assert {r["dataset"] for r in result["runs"]} == set(bench.QUICK_DATASETS)
    assert len(result["runs"]) == len(bench.QUICK_DATASETS) * len(bench.DETECTORS)
    h0_runs = [r for r in result["runs"] if r["detector"] == "h0"]
    assert all(r["options"]["epochs"] == 1 for r in h0_runs)
    random = [r["auc_pr"] for r in result["runs"] if r["detector"] == "random"]
    best = [r["auc_pr"] for r in result["runs"] if r["detector"] == "iforest"]
    assert np.mean(best) > np.mean(random)


@pytest.mark.parametrize("command", [["bench"], ["nab", "run"]])
@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--echo-keep", "1.5", "--echo-keep: echo_keep must lie in [0, 1]"),
        ("--calibration-cutoff", "0.5", "--calibration-cutoff: calibration_cutoff must lie in [1"),
    ],
)
def test_the_harnesses_offer_scoring_settings_and_check_them(
    command, flag, value, message, tmp_path, capsys
):
    where = ["--nab" if command[0] == "nab" else "--root", str(tmp_path)]
    out = ["--out", str(tmp_path / "out")]
    assert main([*command, flag, value, *out, *where]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
