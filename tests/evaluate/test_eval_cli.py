"""``h0 nab score`` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from h0._cli import main


def test_score_json_with_threshold_file(
    tiny_nab: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, results = tiny_nab
    thresholds = tmp_path / "thresholds.json"
    thresholds.write_text(json.dumps({"toy": {"standard": {"threshold": 0.6, "score": 0.0}}}))
    argv = ["nab", "score", str(results), "--nab", str(root), "--threshold-file", str(thresholds)]
    code = main([*argv, "--profile", "standard", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    # Raw 0.89 (see test_eval_nab.test_tiny_corpus_given_threshold): 100 * 1.89 / 2.
    assert json.loads(out) == pytest.approx({"standard": 94.5}, abs=1e-9)
    assert out.count("\n") == 1  # exactly one JSON object on stdout


def test_score_optimises_without_threshold_file(
    tiny_nab: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, results = tiny_nab
    assert main(["nab", "score", str(results), "--nab", str(root), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores == pytest.approx({"standard": 100.0, "reward_low_FN_rate": 100.0}, abs=1e-9)


def test_score_table(tiny_nab: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root, results = tiny_nab
    assert main(["nab", "score", str(results), "--nab", str(root)]) == 0
    out = capsys.readouterr().out
    assert "standard" in out
    assert "100.000" in out
    assert "0.9" in out  # the optimised threshold


def test_nab_root_from_environment(
    tiny_nab: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, results = tiny_nab
    monkeypatch.setenv("H0_NAB_ROOT", str(root))
    assert main(["nab", "score", str(results), "--json", "--profile", "standard"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx({"standard": 100.0})


def _bad_timestamps(results: Path) -> None:
    path = results / "demo" / "toy_b.csv"
    frame = pd.read_csv(path)
    frame.loc[2, "timestamp"] = "1999-01-01 00:00:00"
    frame.to_csv(path, index=False)


def test_timestamp_mismatch_is_a_warning_and_scored_by_row(
    tiny_nab: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root, results = tiny_nab
    argv = ["nab", "score", str(results), "--nab", str(root), "--json"]
    assert main(argv) == 0
    clean = json.loads(capsys.readouterr().out)
    _bad_timestamps(results)
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("h0 nab: warning: ") and "toy_b.csv" in captured.err
    assert captured.err.count("\n") == 1
    assert json.loads(captured.out) == clean  # NAB scores by row position


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda root, results: ["/no/such/results"], "results directory /no/such/results"),
        (
            lambda root, results: (
                (results / "demo" / "toy_a.csv").unlink()
                or (results / "demo" / "toy_b.csv").unlink()
            ),
            "no result files in",
        ),
        (
            lambda root, results: (root / "labels" / "combined_windows.json").unlink(),
            "NAB windows file not found",
        ),
        (
            lambda root, results: (root / "data" / "demo" / "b.csv").unlink(),
            "NAB data file not found",
        ),
        (lambda root, results: ["--profile", "nope"], "--profile 'nope' is not a NAB profile"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(
    tiny_nab: tuple[Path, Path], capsys: pytest.CaptureFixture[str], breakage, message: str
) -> None:
    root, results = tiny_nab
    extra = breakage(root, results)
    argv = ["nab", "score", str(results), "--nab", str(root), "--json"]
    if extra and extra[0].startswith("/"):
        argv[2] = extra[0]
    elif extra:
        argv += extra
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("h0 nab: error: ")
    assert message in captured.err
    assert captured.err.count("\n") == 1


def test_threshold_file_without_detector(
    tiny_nab: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, results = tiny_nab
    thresholds = tmp_path / "t.json"
    thresholds.write_text(json.dumps({"numenta": {"standard": {"threshold": 0.5}}}))
    argv = ["nab", "score", str(results), "--nab", str(root), "--threshold-file", str(thresholds)]
    assert main(argv) == 2
    assert "no entry for detector 'toy'" in capsys.readouterr().err


@pytest.mark.nab
def test_cli_reproduces_published_numenta(nab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["nab", "score", str(nab / "results" / "numenta"), "--nab", str(nab)]
    argv += ["--threshold-file", str(nab / "config" / "thresholds.json"), "--json"]
    assert main(argv) == 0
    got = json.loads(capsys.readouterr().out)
    published = json.loads((nab / "results" / "final_results.json").read_text())["numenta"]
    assert got == pytest.approx(published, abs=1e-6)


def test_every_nab_option_has_help() -> None:
    import argparse

    from h0._cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    nab = sub.choices["nab"]
    nab_sub = next(a for a in nab._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("score", "run"):
        for action in nab_sub.choices[name]._actions:
            if action.dest != "help":
                assert action.help, (name, action.dest)
    run_help = nab_sub.choices["run"].format_help()
    assert "(default 0)" in run_help and "(default 2)" in run_help
