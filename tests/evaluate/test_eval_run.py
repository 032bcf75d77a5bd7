from __future__ import annotations

import json

import numpy as np
import pytest

from h0._cli import main
from h0.evaluate import _run


def test_staged_zscore_variants_are_causal_and_distinct():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(600, 1))
    values[500] += 12.0
    out = _run.StagedBaselineScorer()(values, 150)
    assert set(out) == set(_run.VARIANTS)
    for name, scores in out.items():
        assert scores.shape == (600,)
        changed = values.copy()
        changed[550:] += 100.0  # the future must not move earlier scores
        np.testing.assert_array_equal(
            _run.StagedBaselineScorer()(changed, 150)[name][:550], scores[:550]
        )
    assert int(np.argmax(out["dense"])) == 500
    # The NAB shaping keeps the spike (a new extreme: the range rule) and zeroes its echo; the
    # spike's run of onsets writes no second detection (merge_runs, reported by the range rule).
    assert out["nab"][500] == out["nab"].max() > 0 and out["nab"][501] == 0
    assert np.count_nonzero(out["nab"][490:520]) == 1


SERIES = ["realKnownCause/ambient", "realKnownCause/cpu", "art_daily_flatmiddle"]


def _run_args(nab, out, detector="zscore", *extra):
    series = [arg for pattern in SERIES for arg in ("--series", pattern)]
    return [
        "nab",
        "run",
        "--detector",
        detector,
        "--nab",
        str(nab),
        "--out",
        str(out),
        *series,
        "--workers",
        "1",
        *extra,
    ]


def test_nab_run_on_a_few_series_writes_nab_layout_and_scores(nab, tmp_path, capsys):
    assert main(_run_args(nab, tmp_path)) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["series"] == 3
    assert set(summary["scores"]) == {f"zscore-{v}" for v in _run.VARIANTS}
    files = sorted((tmp_path / "results" / "zscore-nab").rglob("*.csv"))
    assert len(files) == 3 and all(f.name.startswith("zscore-nab_") for f in files)
    # h0 nab score needs every series of the corpus: partial results are refused clearly.
    capsys.readouterr()
    args = ["nab", "score", str(tmp_path / "results" / "zscore-dense"), "--nab", str(nab), "--json"]
    assert main(args) == 2
    assert "error:" in capsys.readouterr().err


def test_nab_run_on_series_without_windows_is_a_usage_error(nab, tmp_path, capsys):
    args = ["nab", "run", "--detector", "zscore", "--nab", str(nab), "--out", str(tmp_path)]
    assert main([*args, "--limit", "2", "--workers", "1"]) == 2
    assert "no anomaly windows" in capsys.readouterr().err
    assert not (tmp_path / "summary.json").exists()


def test_nab_run_bad_detector_is_a_usage_error(nab, tmp_path, capsys):
    assert main(_run_args(nab, tmp_path, "nope")) == 2
    assert "--detector 'nope' is not known" in capsys.readouterr().err


@pytest.mark.slow
def test_h0_gru_nab_run_on_a_few_series(nab, tmp_path):
    assert main(_run_args(nab, tmp_path, "h0-gru", "--epochs", "2")) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["scores"]) == {f"h0-gru-{v}" for v in _run.VARIANTS}
    assert all(0 <= row["vus_pr"] <= 1 for row in summary["scores"].values())


@pytest.mark.slow
def test_one_program_equals_one_process_per_series(nab, tmp_path):
    from h0.evaluate._nab import load_corpus

    corpus = load_corpus(nab)
    files = [f for f in corpus.files if any(p in f for p in SERIES)]
    scorer = _run.make_scorer("h0-gru", epochs=2)
    alone = _run.run_corpus(scorer, corpus, files=files, workers=1)
    together = _run.run_corpus(scorer, corpus, files=files, one_program=True)
    for rel in files:
        np.testing.assert_allclose(
            together["dense"][rel], alone["dense"][rel], rtol=2e-3, atol=2e-3
        )
