"""The alarm owner: labels with hysteresis, events with a refractory period, NAB shaping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from h0.anomaly._alarms import AlarmRule, AlarmState, decide, nab_shape


def reference(rule, scores):
    """Brute force: runs by hysteresis, then onsets merged within the refractory period."""
    labels = []
    on = False
    for s in scores:
        on = s >= rule.threshold or (on and s >= rule.low)
        labels.append(on)
    runs = []
    for i, flag in enumerate(labels):
        if flag and (i == 0 or not labels[i - 1]):
            runs.append([i, i])
        elif flag:
            runs[-1][1] = i
    events = []
    for start, end in runs:
        if events and start - events[-1][0] <= rule.refractory:
            events[-1][1] = end
        else:
            events.append([start, end])
    return np.array(labels, bool), [tuple(e) for e in events]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 3, allow_nan=False), min_size=0, max_size=80),
    st.floats(0.5, 2.5),
    st.floats(0.1, 1.0),
    st.integers(0, 10),
    st.integers(0, 80),
)
def test_batch_equals_reference_and_split_batches(scores, threshold, hysteresis, refractory, cut):
    scores = np.array(scores)
    rule = AlarmRule(threshold, hysteresis, refractory)
    labels, onsets, events, _ = decide(rule, scores)
    want_labels, want_events = reference(rule, scores)
    np.testing.assert_array_equal(labels, want_labels)
    assert [(e.start, e.end) for e in events] == want_events
    assert onsets.nonzero()[0].tolist() == [s for s, _ in want_events]
    for e in events:  # the peak is the highest score of the event
        assert e.peak_score == scores[e.start : e.end + 1].max()
    cut = min(cut, len(scores))
    first, _, ev1, state = decide(rule, scores[:cut])
    second, _, ev2, _ = decide(rule, scores[cut:], state)
    np.testing.assert_array_equal(np.r_[first, second], labels)
    starts = [e.start for e in ev1 if e.start < cut] + [e.start + cut for e in ev2]
    assert starts == [s for s, _ in want_events]


def test_stream_step_equals_batch():
    rng = np.random.default_rng(0)
    scores = rng.gamma(1.0, size=300)
    rule = AlarmRule(2.5, 0.5, 20)
    labels, onsets, _, _ = decide(rule, scores)
    state = AlarmState()
    for i, s in enumerate(scores):
        flagged, raised, _ = state.step(rule, float(s))
        assert flagged == labels[i] and raised == onsets[i]


def test_docstring_case_and_channel_attribution():
    rule = AlarmRule(threshold=1.0, hysteresis=0.5, refractory=3)
    scores = np.array([0, 1.2, 0.7, 0.3, 1.1, 0, 0, 0, 2, 0])
    channels = np.zeros((10, 2))
    channels[1, 1] = 5.0
    channels[8, 0] = 5.0
    _, _, events, _ = decide(rule, scores, channel_scores=channels)
    assert [(e.start, e.end, e.peak, e.channel) for e in events] == [(1, 4, 1, 1), (8, 8, 8, 0)]


def test_negative_threshold_has_no_hysteresis_below_it():
    assert AlarmRule(-1.0, 0.5).low == -1.0


@pytest.mark.parametrize("window", [1, 3, 7])
def test_nab_shape_brute_force(window):
    rng = np.random.default_rng(window)
    s = rng.gamma(1.0, size=60)
    got = nab_shape(s, window=window)
    for i in range(60):
        prev = s[max(0, i - window) : i]
        kept = s[i] if (prev.size == 0 or s[i] > prev.max() + 1e-12) else 0.0
        assert got[i] == pytest.approx(kept / (kept + 3.0))


def test_relative_score_brute_force():
    from h0.anomaly._alarms import relative

    rng = np.random.default_rng(3)
    s = rng.gamma(1.0, size=300)
    got = relative(s, window=50, min_points=20)
    for t in (0, 19, 20, 21, 120, 299):
        past = s[max(0, t - 50) : t]
        if len(past) < 20:
            assert got[t] == 0.0
            continue
        q1, med, q3 = np.quantile(past, [0.25, 0.5, 0.75])
        assert got[t] == pytest.approx((s[t] - med) / (q3 - q1), rel=1e-9)


def test_running_range_rule_is_a_novelty_rule():
    from h0.anomaly._alarms import running_range_flags

    x = np.r_[np.linspace(0, 1, 200), 1.2, 1.1, 1.25, 1.27, -0.5][:, None]
    flags = running_range_flags(x, margin=0.05, warmup=100)
    # 1.2 > 1 + 0.05; 1.1 and 1.25 lie within 1.2 + 0.06; 1.27 within 1.25 + 0.0625; -0.5 below
    assert flags[200:].astype(int).tolist() == [1, 0, 0, 0, 1]


def _merge_reference(kept: np.ndarray, gap: int, reported: np.ndarray) -> np.ndarray:
    """A streaming loop: hold a run open while kept points come within ``gap`` rows."""
    out = np.zeros(len(kept))
    best, last, seen = 0.0, None, False
    for t, value in enumerate(kept):
        if value > 0:
            best, last, seen = max(best, value), t, seen or bool(reported[t])
        if last is not None and t - last == gap:  # the run is known to have ended
            out[t] = max(out[t], 0.0 if seen else best)
            best, last, seen = 0.0, None, False
    if last is not None and not seen:  # the series ended first
        out[-1] = max(out[-1], best)
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 7.0]), min_size=1, max_size=40),
    st.integers(1, 6),
    st.integers(0, 2**32 - 1),
)
def test_merge_runs_matches_a_streaming_loop(values, gap, seed):
    from h0.anomaly._alarms import merge_runs

    kept = np.array(values)
    none = np.zeros(len(kept), bool)
    got = merge_runs(kept, gap)
    np.testing.assert_array_equal(got, _merge_reference(kept, gap, none))
    reported = np.random.default_rng(seed).random(len(kept)) < 0.1
    np.testing.assert_array_equal(
        merge_runs(kept, gap, reported), _merge_reference(kept, gap, reported)
    )
    # One detection per run, never earlier than the run's last point (causal).
    where = np.flatnonzero(kept > 0)
    runs = 0 if not where.size else 1 + int((np.diff(where) > gap).sum())
    assert np.count_nonzero(got) <= runs
    if where.size:
        assert np.flatnonzero(got)[0] >= where[0]


def test_nab_shape_merge_turns_a_rising_burst_into_one_detection():
    s = np.r_[np.zeros(50), 1.0, 4.0, 9.0, np.zeros(20), 12.0, np.zeros(10)]
    plain = nab_shape(s, window=400)
    merged = nab_shape(s, window=400, merge=5)
    assert np.count_nonzero(plain) == 4  # every rising point is an onset
    # The burst of three becomes its peak, five rows after its last point; 12.0 stays alone.
    assert np.flatnonzero(merged).tolist() == [52 + 5, 73 + 5]
    assert merged[57] == pytest.approx(9.0 / 12.0)
    assert merged[78] == pytest.approx(12.0 / 15.0)


def test_merge_runs_leaves_out_runs_already_reported():
    from h0.anomaly._alarms import merge_runs

    kept = np.array([0.0, 1.0, 3.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0])
    reported = np.zeros(9, bool)
    reported[2] = True  # the range rule detected the first run at its second point
    assert merge_runs(kept, 2, reported).tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 2.0]
