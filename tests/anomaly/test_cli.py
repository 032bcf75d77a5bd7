"""``h0 detect`` through ``h0._cli.main``: outputs, and one clear line + exit 2 for bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from h0._cli import main

FAST = ["--window", "8", "--hidden", "8", "--epochs", "2", "--train-fraction", "0.5", "--quiet"]


def write_series(path, n=200, *, spike=150, extra=None):
    t = pd.date_range("2024-01-01", periods=n, freq="5min")
    v = np.sin(np.arange(n) / 5.0) + 0.05 * np.random.default_rng(0).normal(size=n)
    v[spike] += 4.0
    frame = pd.DataFrame({"timestamp": t.strftime("%Y-%m-%d %H:%M:%S"), "value": v})
    if extra:
        for k, col in extra.items():
            frame[k] = col
    frame.to_csv(path, index=False)
    return frame


def test_detect_writes_outputs(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    frame = write_series(csv)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"dir/s.csv": [["2024-01-01 12:20", "2024-01-01 12:40"]]}))
    out = tmp_path / "out"
    rc = main(["detect", str(csv), "--labels", str(labels), "--out", str(out), *FAST])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "anomalies.json",
        "report.html",
        "report.png",
        "scores.csv",
    ]
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["timestamp", "value", "score", "is_anomaly", "alarm"]
    np.testing.assert_allclose(scores["value"], frame["value"])
    assert scores["score"].idxmax() == 150 and scores["is_anomaly"][150] == 1
    report = json.loads((out / "anomalies.json").read_text())
    starts = [a["start"] for a in report["alarms"]]
    assert "2024-01-01 12:30:00" in starts  # row 150 is 12:30
    assert scores["alarm"][150] == 1 and report["summary"]["alarms"] == scores["alarm"].sum()
    window = report["known_windows"]["windows"][0]
    assert window["detected"] and window["first_alarm"] == "2024-01-01 12:30:00"
    assert "s.csv" in (out / "report.html").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_sort_and_fill_missing_resolve_problems_multivariate(tmp_path):
    csv = tmp_path / "s.csv"
    other = np.cos(np.arange(200) / 7.0)
    frame = write_series(csv, extra={"other": other, "label": ["x"] * 200})
    frame.loc[10, "value"] = np.nan
    frame = frame.iloc[::-1]
    frame.to_csv(csv, index=False)
    out = tmp_path / "out"
    argv = ["detect", str(csv), "--sort", "--fill-missing", "--value-column", "value,other"]
    assert main([*argv, "--out", str(out), *FAST]) == 0
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["timestamp", "value", "other", "score", "is_anomaly", "alarm"]
    assert scores["timestamp"].is_monotonic_increasing and len(scores) == 200
    assert scores["value"][10] == scores["value"][9]
    np.testing.assert_allclose(scores["other"], other)
    assert scores["score"].idxmax() == 150


def test_a_column_constant_in_training_is_named_in_a_note(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    set_point = np.r_[np.full(120, 5.0), np.full(80, 50.0)]  # moves after training (100 rows)
    write_series(csv, extra={"set_point": set_point})
    out = tmp_path / "out"
    argv = ["detect", str(csv), "--value-column", "value,set_point", "--out", str(out)]
    assert main([*argv, *[a for a in FAST if a != "--quiet"], "--no-plot"]) == 0
    err = capsys.readouterr().err
    assert "s.csv: column 'set_point' constant in the training part: not scored" in err
    report = json.loads((out / "anomalies.json").read_text())
    assert report["settings"]["unmodelled_channels"] == ["set_point"]
    scores = pd.read_csv(out / "scores.csv")
    assert scores["score"].idxmax() == 150  # the spike on 'value', not the set point's move


def test_series_without_time_column(tmp_path):
    csv = tmp_path / "plain.csv"
    v = np.sin(np.arange(200) / 5.0)
    v[150] += 4.0
    pd.DataFrame({"a": v}).to_csv(csv, index=False)
    out = tmp_path / "out"
    assert main(["detect", str(csv), "--out", str(out), "--no-plot", *FAST]) == 0
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["row", "a", "score", "is_anomaly", "alarm"]
    report = json.loads((out / "anomalies.json").read_text())
    assert "150" in [a["start"] for a in report["alarms"]]
    assert not (out / "report.png").exists()


def bad_cases(tmp):
    """(name, argv, expected stderr fragment)."""
    ok = tmp / "ok.csv"
    write_series(ok)
    cases = []

    def csv(name, text):
        p = tmp / name
        p.write_text(text)
        return str(p)

    cases.append(("missing", [str(tmp / "nope.csv")], "nope.csv: no such file"))
    cases.append(("empty", [csv("empty.csv", "")], "the file is empty"))
    cases.append(("header only", [csv("h.csv", "timestamp,value\n")], "has a header but no rows"))
    cases.append(
        (
            "no numeric",
            [csv("text.csv", "timestamp,name\n2024-01-01,a\n2024-01-02,b\n")],
            "no numeric column to analyse",
        )
    )
    cases.append(("unknown column", [str(ok), "--value-column", "temp"], "'temp' not found"))
    cases.append(
        ("unknown time column", [str(ok), "--time-column", "when"], "--time-column 'when'")
    )
    rows = "\n".join(f"2024-01-01 00:{i:02d}:00,{i % 7}" for i in range(60))
    cases.append(
        (
            "unparsable time",
            [csv("t.csv", "timestamp,value\n" + rows + "\nyesterday,3\n")],
            "unparsable timestamps at lines 62",
        )
    )
    dup = rows + "\n2024-01-01 00:59:00,1\n"
    cases.append(("duplicate", [csv("d.csv", "timestamp,value\n" + dup)], "duplicate timestamps"))
    unsorted = rows + "\n2024-01-01 00:30:30,1\n"
    cases.append(
        ("unsorted", [csv("u.csv", "timestamp,value\n" + unsorted)], "timestamps are not sorted")
    )
    nan = rows.replace("00:05:00,5", "00:05:00,")
    cases.append(("nan", [csv("n.csv", "timestamp,value\n" + nan)], "missing, NaN or inf values"))
    inf = rows.replace("00:05:00,5", "00:05:00,inf")
    cases.append(("inf", [csv("i.csv", "timestamp,value\n" + inf)], "at lines 7 (column 'value')"))
    const = "\n".join(f"2024-01-01 00:{i:02d}:00,3" for i in range(60))
    cases.append(("constant", [csv("c.csv", "timestamp,value\n" + const)], "constant"))
    short = "\n".join(f"2024-01-01 00:{i:02d}:00,{i % 7}" for i in range(20))
    cases.append(
        (
            "too short",
            [csv("s.csv", "timestamp,value\n" + short), "--window", "32"],
            "needs at least 64 (2 x window)",
        )
    )
    labels = tmp / "far.json"
    labels.write_text(json.dumps([["2030-01-01", "2030-01-02"]]))
    cases.append(("labels outside", [str(ok), "--labels", str(labels)], "lies outside the series"))
    other = tmp / "other.json"
    other.write_text(json.dumps({"a/x.csv": [], "a/y.csv": []}))
    cases.append(
        ("labels for other file", [str(ok), "--labels", str(other)], "no entry for 'ok.csv'")
    )
    cases.append(
        ("train until", [str(ok), "--train-until", "2099-01-01"], "nothing would be left to score")
    )
    cases.append(("bad option value", [str(ok), "--epochs", "-1"], "epochs must be a non-negative"))
    cases.append(
        (
            "history not in windows",
            [str(ok), "--initial-state", "conditional", "--history", "40"],
            "--history: history=40 must be a multiple of window=32",
        )
    )
    return cases


BAD = [
    "missing",
    "empty",
    "header only",
    "no numeric",
    "unknown column",
    "unknown time column",
    "unparsable time",
    "duplicate",
    "unsorted",
    "nan",
    "inf",
    "constant",
    "too short",
    "labels outside",
    "labels for other file",
    "train until",
    "bad option value",
    "history not in windows",
]


@pytest.mark.parametrize("name", BAD)
def test_bad_input_one_line_exit_2_no_output(name, tmp_path, capsys):
    argv, fragment = {n: (a, f) for n, a, f in bad_cases(tmp_path)}[name]
    out = tmp_path / "out"
    rc = main(["detect", *argv, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert fragment in err, (name, err)
    assert err.startswith("h0 detect: error: ") and err.count("\n") == 1, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_every_bad_case_is_run(tmp_path):
    assert [n for n, _, _ in bad_cases(tmp_path)] == BAD


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in [
        "--value-column",
        "--time-column",
        "--train-fraction",
        "--train-until",
        "--initial-state",
        "--labels",
        "--out",
        "--fill-missing",
        "--sort",
        "--threshold-quantile",
        "--contamination",
        "--refractory",
        "--hysteresis",
        "--tail-quantile",
        "--no-window-error",
        "--json",
    ]:
        assert option in text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("h0 ")


@pytest.mark.slow
def test_bundled_series_end_to_end(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["detect", "--out", str(out)]) == 0
    report = json.loads((out / "anomalies.json").read_text())
    windows = report["known_windows"]["windows"]
    assert len(windows) == 4 and windows[0]["in_training"]
    assert sum(w["detected"] for w in windows[1:]) >= 2
    scores = pd.read_csv(out / "scores.csv")
    assert len(scores) == 22695
    assert "known window" in capsys.readouterr().out


def test_plain_output_when_not_a_terminal_and_json_summary(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    csv = tmp_path / "s.csv"
    write_series(csv)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {"PYTHONPATH": src, "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"}
    base = [sys.executable, "-m", "h0._cli", "detect", str(csv), *FAST[:-1]]
    plain = subprocess.run(
        [*base, "--out", str(tmp_path / "a")], capture_output=True, text=True, env=env, timeout=300
    )
    assert plain.returncode == 0, plain.stderr
    assert "┃" not in plain.stdout and "│" not in plain.stdout  # no box drawing in a pipe
    assert "alarms: " in plain.stdout and "training: compiling" in plain.stderr
    as_json = subprocess.run(
        [*base, "--out", str(tmp_path / "b"), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    summary = json.loads(as_json.stdout)
    assert summary["runs"][0]["points"] == 200 and summary["out"] == str(tmp_path / "b")


def test_stdin_is_read_with_dash(tmp_path, monkeypatch):
    import io

    csv = tmp_path / "s.csv"
    write_series(csv)
    monkeypatch.setattr("sys.stdin", io.StringIO(csv.read_text()))
    out = tmp_path / "out"
    assert main(["detect", "-", *FAST, "--out", str(out), "--no-plot"]) == 0
    assert len(pd.read_csv(out / "scores.csv")) == 200
