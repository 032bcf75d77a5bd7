"""Online adaptation: causal, off = today's scores, within budget, one program = per series."""

from __future__ import annotations

import numpy as np
import pytest

from h0.anomaly import GRUAutoencoderDetector, _adapt
from h0.anomaly._alarms import decide
from h0.anomaly._config import ConfigError, DetectorConfig

from . import STREAM_RTOL

#: Robust history off: it does not apply while adapting, so "adaptation off" is compared with the
#: score adaptation starts from, the plain one.
SMALL = dict(window=8, hidden=8, epochs=2, batch_size=16, seed=3, robust_history=False)
ADAPT = dict(adapt_every=25, adapt_history=60, adapt_steps=3)


def drifting(n=400, seed=0):
    """A sine whose level drifts after the first 200 points (what adaptation is for)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.sin(t / 5.0) + 0.01 * np.maximum(t - 200, 0) + 0.05 * rng.normal(size=n)


@pytest.fixture(scope="module")
def fitted():
    x = drifting()
    return GRUAutoencoderDetector(**SMALL).fit(x[:200]), x


def adapting(det, **changes):
    """The fitted detector with other adaptation settings (the network is shared, not refitted)."""
    other = det.with_scoring()
    for name, value in {**ADAPT, **changes}.items():
        setattr(other, name, value)
    _ = other.config
    return other


def test_off_is_todays_score_bit_for_bit(fitted):
    det, x = fitted
    rest = x[200:]
    plain = det._score_features(
        det.calibrations_[0],
        det._select(det._features(det._continuation(rest[:, None], 0), 0)),
        rest[:, None],
    )[0]
    off = adapting(det, adapt_every=0, adapt_calibration=True, adapt_learning_rate=0.1)
    np.testing.assert_array_equal(det.score(rest), plain)
    np.testing.assert_array_equal(off.score(rest), plain)
    # Adaptation never touches fitting: the training part's scores are the same either way.
    with_adapt = GRUAutoencoderDetector(**SMALL, **ADAPT).fit(x[:200])
    np.testing.assert_array_equal(with_adapt.decision_scores_, det.decision_scores_)
    assert not np.allclose(with_adapt.score(rest), plain)  # and it does change the continuation


def test_no_steps_and_no_calibration_is_off_and_calibration_only_keeps_the_network(fitted):
    det, x = fitted
    rest = x[200:]
    idle = adapting(det, adapt_steps=0)  # blocks, but nothing adapts
    # Scored block by block, so in other batch shapes: XLA's kernels may round differently.
    np.testing.assert_allclose(idle.score(rest), det.score(rest), rtol=1e-5, atol=1e-5)
    cal_only = adapting(det, adapt_steps=0, adapt_calibration=True)
    scores, _, log = _adapt.score_adaptively(cal_only, rest[:, None], 0)
    assert {(a.steps, a.windows) for a in log} == {(0, 0)}
    assert not np.allclose(scores, det.score(rest))
    np.testing.assert_allclose(scores[:25], det.score(rest)[:25], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("calibration", [False, True])
def test_scores_are_causal(fitted, calibration):
    det = adapting(fitted[0], adapt_calibration=calibration)
    rest = fitted[1][200:]
    base = det.score(rest)
    for cut in (0, 24, 25, 80, 137):  # block starts, block ends, inside blocks
        changed = rest.copy()
        changed[cut:] += np.random.default_rng(cut).normal(size=changed.size - cut) * 3
        scores = det.score(changed)
        np.testing.assert_allclose(scores[:cut], base[:cut], rtol=1e-6, atol=1e-9)
        assert not np.allclose(scores[cut:], base[cut:])


def test_budget_and_history_are_respected(fitted, monkeypatch):
    det = adapting(fitted[0])
    rest = fitted[1][200:]
    calls = []
    real = _adapt.adapt_fn

    def spy(model, lr, forecast_weight=1.0):
        run = real(model, lr, forecast_weight)

        def recorded(params, opt_state, windows, ids, keys):
            calls.append((np.asarray(windows).shape, lr))
            return run(params, opt_state, windows, ids, keys)

        return recorded

    monkeypatch.setattr(_adapt, "adapt_fn", spy)
    scores, _, log = _adapt.score_adaptively(det, rest[:, None], 0)
    n_blocks = -(-rest.size // ADAPT["adapt_every"])
    assert len(log) == len(calls) == n_blocks - 1  # the first block uses the fitted network
    for k, (a, (shape, lr)) in enumerate(zip(log, calls, strict=True), start=1):
        assert a.block == k and a.end == 200 + k * ADAPT["adapt_every"]
        assert a.end - a.first == ADAPT["adapt_history"]  # only points before the block
        assert a.steps == ADAPT["adapt_steps"] and a.windows == 3 * 16
        assert shape == (ADAPT["adapt_steps"], 16, SMALL["window"], 1)
        assert lr == pytest.approx(det.learning_rate)
    np.testing.assert_array_equal(scores, det.score(rest))  # deterministic
    calls.clear()
    _adapt.score_adaptively(adapting(det, adapt_learning_rate=1e-4), rest[:, None], 0)
    assert {lr for _, lr in calls} == {1e-4}


def test_history_reaches_into_the_training_part(fitted):
    det = adapting(fitted[0], adapt_history=150)
    _, _, log = _adapt.score_adaptively(det, fitted[1][200:260, None], 0)
    assert [(a.first, a.end) for a in log] == [(75, 225), (100, 250)]


def test_predict_alarms_follow_the_adapted_score_and_the_stream_does_not_adapt(fitted):
    det = adapting(fitted[0])
    rest = fitted[1][200:]
    scores = det.score(rest)
    assert not np.allclose(scores, fitted[0].score(rest))
    labels, _, events, _ = decide(det.alarm_rule_, scores, det._alarm_states[0])
    np.testing.assert_array_equal(det.predict(rest), labels)
    assert [(e.start, e.end) for e in det.alarms(rest)] == [(e.start, e.end) for e in events]
    stream = det.stream()
    streamed = np.array([stream.update(v) for v in rest[:30]])
    np.testing.assert_allclose(streamed, fitted[0].score(rest[:30]), rtol=STREAM_RTOL, atol=1e-6)


@pytest.mark.parametrize(
    ("settings", "field", "message"),
    [
        ({"adapt_every": -1}, "adapt_every", "adapt_every must be a non-negative integer"),
        ({"adapt_steps": -1}, "adapt_steps", "adapt_steps must be a non-negative integer"),
        ({"adapt_history": 1}, "adapt_history", "adapt_history must be at least 2"),
        (
            {"adapt_every": 10, "adapt_history": 32},
            "adapt_history",
            "adapt_history=32 must exceed window=32",
        ),
        ({"adapt_learning_rate": 0.0}, "adapt_learning_rate", "finite positive number"),
        ({"adapt_learning_rate": float("nan")}, "adapt_learning_rate", "finite positive"),
        ({"adapt_calibration": "yes"}, "adapt_calibration", "must be True or False"),
    ],
)
def test_config_errors_name_the_field(settings, field, message):
    with pytest.raises(ConfigError, match=message) as caught:
        DetectorConfig.from_flat(**settings)
    assert caught.value.field == field
    with pytest.raises(ConfigError, match=message):
        GRUAutoencoderDetector(**settings)


def test_adaptation_off_by_default_and_history_only_checked_when_on():
    cfg = DetectorConfig()
    assert cfg.training.adapt_every == 0 and not cfg.training.adapts
    assert DetectorConfig.from_flat(adapt_history=10).training.adapt_history == 10


def test_one_program_equals_per_series():
    from h0.evaluate._run import H0GRUScorer

    rng = np.random.default_rng(1)
    jobs = []
    for i, n in enumerate((300, 360, 330)):
        t = np.arange(n)
        v = np.sin(t / (4 + i)) + 0.004 * t + 0.05 * rng.normal(size=n)
        jobs.append((v[:, None], 150))
    options = {**SMALL, **ADAPT, "adapt_calibration": True}
    options.pop("seed")
    scorer = H0GRUScorer(seed=0, options=tuple(sorted(options.items())))
    together = scorer.score_many(jobs)
    for (values, end), one in zip(jobs, together, strict=True):
        alone = scorer(values, end)
        for variant in ("dense", "nab"):
            np.testing.assert_allclose(one[variant], alone[variant], rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["nab", "run", "--adapt-every", "-3"],
            "--adapt-every: adapt_every must be a non-negative",
        ),
        (["bench", "--adapt-history", "1"], "--adapt-history: adapt_history must be at least 2"),
        (["nab", "run", "--adapt-every", "5", "--adapt-history", "20"], "--adapt-history: "),
    ],
)
def test_nab_run_and_bench_check_the_adaptation_flags(argv, message, tmp_path, capsys):
    from h0._cli import main

    assert (
        main(
            [
                *argv,
                "--out",
                str(tmp_path / "out"),
                "--nab" if argv[0] == "nab" else "--root",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_refitted_calibration_keeps_the_fits_one_sided_rule(fitted, monkeypatch):
    # With a forecasting head the third feature is signed: a refitted calibration must say so,
    # as the fit's does, instead of falling back to "every feature after the first is one-sided".
    det = adapting(fitted[0], adapt_calibration=True, adapt_steps=0)
    seen = []
    real = _adapt.fit_calibration

    def spy(*args, **kwargs):
        seen.append(kwargs.get("one_sided"))
        return real(*args, **kwargs)

    monkeypatch.setattr(_adapt, "fit_calibration", spy)
    det.score(fitted[1][200:])
    assert seen, "the calibration was never refitted"
    expected = det._one_sided()
    for mask in seen:
        np.testing.assert_array_equal(mask, expected)
    assert np.array_equal(det.calibrations_[0].one_sided, expected)
