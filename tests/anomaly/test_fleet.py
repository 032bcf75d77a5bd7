"""Fleet scoring: ``score_many`` and ``h0 detect DIR`` equal per-series scoring of the same model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from h0._cli import main
from h0.anomaly import GRUAutoencoderDetector

FAST = ["--window", "8", "--hidden", "8", "--epochs", "2", "--train-fraction", "0.6", "--quiet"]


def make_fleet(n=3, length=150):
    rng = np.random.default_rng(1)
    fleet = [np.sin(np.arange(length) / (3 + i)) + 0.05 * rng.normal(size=length) for i in range(n)]
    for i, s in enumerate(fleet):
        s[110 + 5 * i] += 3.0
    return fleet


@pytest.fixture(scope="module")
def fitted():
    fleet = make_fleet()
    det = GRUAutoencoderDetector(window=8, hidden=8, epochs=2, initial_state="per_sequence")
    return det.fit([s[:90] for s in fleet]), fleet


def test_score_many_equals_scoring_each_series_alone(fitted):
    det, fleet = fitted
    # Different lengths, so the batched windows of the series are not aligned.
    rests = [fleet[0][90:], fleet[1][90:140], fleet[2][90:101]]
    many = det.score_many(rests)
    for i, rest in enumerate(rests):
        alone = det.score(rest, series=i)
        assert many[i][0].shape == alone.shape == (len(rest),)
        np.testing.assert_allclose(many[i][0], alone, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(many[i][1], det.score_channels(rest, series=i), atol=1e-6)
    # Each series is encoded from its own learned initial state: swapping ids changes the scores.
    assert not np.allclose(det.score(rests[0], series=1), det.score(rests[0], series=0))


def test_score_many_rejects_bad_input(fitted):
    det, fleet = fitted
    with pytest.raises(ValueError, match=r"X must be a list of 3 series .* got a list of 2"):
        det.score_many([fleet[0], fleet[1]])
    with pytest.raises(ValueError, match=r"X\[1\] has 2 channels but the detector was fitted on 1"):
        det.score_many([fleet[0], np.ones((20, 2)), fleet[2]])
    with pytest.raises(ValueError, match=r"X\[2\] has NaN"):
        det.score_many([fleet[0], fleet[1], np.full(10, np.nan)])
    assert [s.shape for s, _ in det.score_many([fleet[0][:0], fleet[1][:3], fleet[2][:0]])] == [
        (0,),
        (3,),
        (0,),
    ]


def write_fleet(folder, fleet, *, times=True):
    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(fleet):
        frame = pd.DataFrame({"value": s})
        if times:
            t = pd.date_range("2024-01-01", periods=len(s), freq="5min")
            frame.insert(0, "timestamp", t.strftime("%Y-%m-%d %H:%M:%S"))
        frame.to_csv(folder / f"sensor{i}.csv", index=False)
    return folder


def test_cli_fleet_run_matches_the_saved_model(tmp_path, capsys):
    fleet = make_fleet()
    folder = write_fleet(tmp_path / "in", fleet)
    out, model = tmp_path / "out", tmp_path / "model"
    labels = tmp_path / "windows.json"  # NAB's layout: each file's entry is found by its name
    windows = {f"x/sensor{i}.csv": [] for i in range(3)}
    windows["x/sensor0.csv"] = [["2024-01-01 08:50", "2024-01-01 09:30"]]  # around point 110
    labels.write_text(json.dumps(windows))
    argv = [str(folder), *FAST, "--out", str(out), "--save-model", str(model)]
    assert main(["detect", *argv, "--labels", str(labels)]) == 0
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "fleet.csv",
        "fleet.json",
        "sensor0",
        "sensor1",
        "sensor2",
    ]
    # The reference: the saved detector scores each series alone (training part, then the rest).
    det = GRUAutoencoderDetector.load(model)
    assert det.n_series_ == 3 and det.initial_state == "per_sequence"
    summary = pd.read_csv(out / "fleet.csv")
    assert summary["series"].tolist() == ["sensor0", "sensor1", "sensor2"]
    for i, s in enumerate(fleet):
        scores = pd.read_csv(out / f"sensor{i}" / "scores.csv")
        rest = s[90:]
        expected = np.concatenate([det.series_decision_scores_[i], det.score(rest, series=i)])
        np.testing.assert_allclose(scores["score"], expected, atol=2e-6)
        np.testing.assert_allclose(scores["value"], s, rtol=1e-12)
        np.testing.assert_array_equal(scores["is_anomaly"][90:], det.predict(rest, series=i))
        onsets = [e.start + 90 for e in det.alarms(rest, series=i)]
        assert np.flatnonzero(scores["alarm"][90:]).tolist() == [o - 90 for o in onsets]
        row = summary.iloc[i]
        assert row["points"] == 150 and row["train_points"] == 90
        assert row["flagged_points"] == scores["is_anomaly"].sum()
        assert row["max_score_after_training"] == pytest.approx(
            scores["score"][90:].max(), abs=1e-5
        )
        report = json.loads((out / f"sensor{i}" / "anomalies.json").read_text())
        assert report["threshold"] == pytest.approx(det.threshold_)
        assert len(report["alarms"]) == row["alarms"] == scores["alarm"].sum()
    known = json.loads((out / "sensor0" / "anomalies.json").read_text())["known_windows"]
    assert [w["start"] for w in known["windows"]] == ["2024-01-01 08:50:00"]
    assert json.loads((out / "sensor1" / "anomalies.json").read_text())["known_windows"] is None
    fleet_json = json.loads((out / "fleet.json").read_text())
    assert [r["series"] for r in fleet_json["series"]] == summary["series"].tolist()
    assert fleet_json["settings"]["model"]["initial_state"] == "per_sequence"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_several_csv_paths_and_single_csv_unchanged(tmp_path, capsys):
    fleet = make_fleet(n=2)
    folder = write_fleet(tmp_path / "in", fleet, times=False)
    out = tmp_path / "out"
    files = [str(folder / "sensor1.csv"), str(folder / "sensor0.csv")]
    args = [*FAST, "--initial-state", "learned", "--epochs", "1"]
    assert main(["detect", *files, *args, "--out", str(out)]) == 0
    summary = pd.read_csv(out / "fleet.csv")
    assert summary["series"].tolist() == ["sensor1", "sensor0"]  # the order given
    settings = json.loads((out / "fleet.json").read_text())["settings"]
    assert settings["model"]["initial_state"] == "learned"
    # One CSV is the ordinary single-series run: files at the top of --out, no fleet summary.
    single = tmp_path / "single"
    assert main(["detect", files[0], *args, "--out", str(single), "--no-plot"]) == 0
    assert sorted(p.name for p in single.iterdir() if not p.name.startswith(".")) == [
        "anomalies.json",
        "report.html",
        "scores.csv",
    ]
    settings = json.loads((single / "anomalies.json").read_text())["settings"]
    assert settings["model"]["initial_state"] == "learned"


def bad_fleets(tmp_path):
    fleet = make_fleet(n=2)
    good = write_fleet(tmp_path / "good", fleet)
    empty = tmp_path / "empty"
    empty.mkdir()
    other = write_fleet(tmp_path / "other", fleet)
    frame = pd.read_csv(other / "sensor1.csv").rename(columns={"value": "temp"})
    frame.to_csv(other / "sensor1.csv", index=False)
    broken = write_fleet(tmp_path / "broken", fleet)
    frame = pd.read_csv(broken / "sensor1.csv")
    frame.loc[7, "value"] = np.nan
    frame.to_csv(broken / "sensor1.csv", index=False)
    short = write_fleet(tmp_path / "short", fleet)
    pd.read_csv(short / "sensor0.csv")[:20].to_csv(short / "sensor0.csv", index=False)
    return [
        ("empty folder", [str(empty)], f"{empty}: the directory has no .csv files"),
        ("missing", [str(good), str(tmp_path / "nope.csv")], "nope.csv: no such file"),
        ("other columns", [str(other)], "sensor1.csv: value columns ['temp'] differ from"),
        ("bad file", [str(broken)], "sensor1.csv: missing, NaN or inf values at lines 9"),
        ("same names", [str(good / "sensor0.csv"), str(other / "sensor0.csv")], "same name"),
        ("too short", [str(short)], "sensor0.csv: the training part has 12 of 20 points"),
    ]


def test_bad_fleet_input_one_line_exit_2_no_output(tmp_path, capsys):
    cases = bad_fleets(tmp_path)
    assert len(cases) == 6
    for name, paths, fragment in cases:
        out = tmp_path / "out"
        rc = main(["detect", *paths, *FAST, "--out", str(out)])
        err = capsys.readouterr().err
        assert rc == 2, name
        assert err.startswith("h0 detect: error: ") and err.count("\n") == 1, (name, err)
        assert fragment in err, (name, err)
        assert not out.exists(), name
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], name
