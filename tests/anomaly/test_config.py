"""One owner for every setting: a new field appears in --help, get_params, anomalies.json, checks."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import sklearn.base

from h0._cli import main
from h0.anomaly import GRUAutoencoderDetector, _config


@dataclasses.dataclass(frozen=True)
class AlarmsWithDebounce(_config.AlarmConfig):
    debounce: int = _config.setting(
        3, "points a label must hold before it counts", check=_config.int_at_least(0)
    )


@pytest.fixture
def new_setting(monkeypatch):
    # The one edit: a field in a group (here by swapping the group for an extended one).
    monkeypatch.setitem(_config.GROUPS, "alarms", AlarmsWithDebounce)


def test_a_new_setting_is_seen_everywhere(new_setting, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    help_text = capsys.readouterr().out
    assert "--debounce" in help_text and "points a label must hold" in help_text

    det = GRUAutoencoderDetector(debounce=5)
    assert det.get_params()["debounce"] == 5 and det.config.alarms.debounce == 5
    assert sklearn.base.clone(det).debounce == 5
    with pytest.raises(_config.ConfigError, match="debounce must be a non-negative integer"):
        GRUAutoencoderDetector(debounce=-2)

    csv = tmp_path / "s.csv"
    v = np.sin(np.arange(200) / 5.0)
    pd.DataFrame({"value": v}).to_csv(csv, index=False)
    fast = ["--window", "8", "--hidden", "8", "--epochs", "1", "--train-fraction", "0.5", "--quiet"]
    out = tmp_path / "out"
    assert main(["detect", str(csv), *fast, "--no-plot", "--out", str(out), "--debounce", "4"]) == 0
    settings = json.loads((out / "anomalies.json").read_text())["settings"]
    assert settings["alarms"]["debounce"] == 4
    capsys.readouterr()
    assert main(["detect", str(csv), *fast, "--out", str(tmp_path / "o2"), "--debounce", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("h0 detect: error: --debounce: debounce must be a non-negative integer")


def test_every_setting_has_help_a_check_and_a_flag(capsys):
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    text = capsys.readouterr().out
    for group, name, default, meta in _config.iter_settings():
        assert meta.help and meta.check is not None, name
        if meta.cli:
            flag = _config.flag(("no_" if default is True else "") + name)
            assert flag in text, (group, name)


@pytest.mark.parametrize(
    ("flat", "field"),
    [
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"learning_rate": 1e400}, "learning_rate"),
        ({"threshold": float("nan")}, "threshold"),
        ({"seed": -1}, "seed"),
        ({"window_error": "yes"}, "window_error"),
        ({"hysteresis": 0.0}, "hysteresis"),
    ],
)
def test_non_finite_and_out_of_range_values_name_their_field(flat, field):
    with pytest.raises(_config.ConfigError) as info:
        _config.DetectorConfig.from_flat(**flat)
    assert info.value.field == field and str(info.value).startswith(field)


def test_cli_rejects_bad_values_before_training(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    pd.DataFrame({"value": np.sin(np.arange(200) / 5.0)}).to_csv(csv, index=False)
    for flag, value in (("--learning-rate", "nan"), ("--threshold", "nan"), ("--seed", "-1")):
        out = tmp_path / "out"
        assert main(["detect", str(csv), flag, value, "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"h0 detect: error: {flag}: ") and err.count("\n") == 1, err
        assert not out.exists()


def test_with_scoring_accepts_only_settings_that_leave_the_network():
    names = set(_config.scoring_names())
    assert {"threshold", "refractory", "tail_quantile"} <= names
    assert not names & {"window", "hidden", "epochs", "error_span"}


def test_docs_settings_table_is_generated_from_the_config():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[2] / "docs" / "detect.md"
    text = docs.read_text()
    assert _config.with_table(text) == text, "regenerate the table: see _config.with_table"
