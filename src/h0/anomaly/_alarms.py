"""The one owner of alarm decisions: per-point labels, alarm events, and NAB's alarm shaping.

A dense score becomes two things (:class:`AlarmRule`):

- **labels** (``predict``): point ``t`` is anomalous when a flagged run holds it: a run starts
  where the score reaches the threshold and continues while it stays at or above
  ``hysteresis * threshold`` (so a long anomalous segment stays flagged while its score wavers);
- **events** (``alarms``): a run's onset raises an alarm unless it falls within ``refractory``
  points of the previous alarm's onset; then the run extends that alarm instead. An event has a
  start (the onset), an end (its last flagged point), a peak and the channel that scored highest
  at the peak.

Batch and stream are the same code: :meth:`AlarmState.step` takes one point; the batch form
loops over the points with it, so a stream and a batch cannot disagree.

NAB's cost model rewards one early detection per window and charges every later point above the
threshold, so the NAB results writer shapes the score with :func:`nab_shape` (keep a score only
where it beats the previous ``window`` scores, one detection per run of such onsets); the
library's score stays dense.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from h0.anomaly._reportdata import Event

#: Far enough in the past that the first onset always raises an alarm.
_NEVER = 1 << 40


@dataclasses.dataclass(frozen=True)
class AlarmRule:
    """Threshold, hysteresis and refractory period.

    Attributes:
        threshold: A point starts a flagged run when its score reaches this.
        hysteresis: A run continues while the score is at least ``hysteresis * threshold``
            (``1``: no hysteresis). For a threshold <= 0 runs continue while at the threshold.
        refractory: Points after an alarm's onset during which a new run extends that alarm
            instead of raising a new one.
    """

    threshold: float
    hysteresis: float = 0.5
    refractory: int = 100

    @property
    def low(self) -> float:
        """The score a flagged run must keep."""
        return self.threshold * self.hysteresis if self.threshold > 0 else self.threshold


@dataclasses.dataclass
class AlarmState:
    """Where the decision stands after a point: the open run and the open event.

    Attributes:
        t: Points seen.
        in_run: Whether the last point was flagged.
        since_onset: Points since the last alarm's onset.
        event: The open event as ``[start, end, peak, peak_score, channel]`` (rows counted from
            the first point this state saw), or ``None``.
    """

    t: int = 0
    in_run: bool = False
    since_onset: int = _NEVER
    event: list | None = None

    def copy(self) -> AlarmState:
        """An independent copy."""
        return AlarmState(
            self.t, self.in_run, self.since_onset, None if self.event is None else list(self.event)
        )

    def step(
        self, rule: AlarmRule, score: float, channel: int | None = None
    ) -> tuple[bool, bool, Event | None]:
        """Decide one point: ``(flagged, alarm raised here, event closed by this point)``.

        An event closes when a new alarm is raised (the previous one is complete).
        """
        flagged = score >= rule.threshold or (self.in_run and score >= rule.low)
        raised = False
        closed = None
        self.since_onset = min(self.since_onset + 1, _NEVER)
        if flagged:
            if not self.in_run and self.since_onset > rule.refractory:
                closed = self._close()
                self.event = [self.t, self.t, self.t, float(score), channel]
                self.since_onset = 0
                raised = True
            elif self.event is not None:
                self.event[1] = self.t
                if score > self.event[3]:
                    self.event[2], self.event[3], self.event[4] = self.t, float(score), channel
        self.in_run = flagged
        self.t += 1
        return flagged, raised, closed

    def _close(self) -> Event | None:
        if self.event is None:
            return None
        start, end, peak, peak_score, channel = self.event
        self.event = None
        return Event(int(start), int(end), int(peak), float(peak_score), channel)


def decide(
    rule: AlarmRule,
    scores: np.ndarray,
    state: AlarmState | None = None,
    channel_scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[Event], AlarmState]:
    """Labels, alarm onsets and events of ``scores``, continuing from ``state``.

    Args:
        rule: The decision rule.
        scores: Scores ``[N]``.
        state: The state after earlier points (not modified); ``None``: a fresh start.
        channel_scores: Per-channel scores ``[N, C]`` to attribute each event's peak, or ``None``.

    Returns:
        ``(labels [N] bool, onsets [N] bool, events, state_after)``; events are those whose onset
        lies in these points, with rows relative to ``scores[0]`` (an event still open at the end
        is included as it stands, and stays open in ``state_after``).

    Example:
        >>> rule = AlarmRule(threshold=1.0, hysteresis=0.5, refractory=3)
        >>> labels, onsets, events, _ = decide(rule, np.array([0, 1.2, .7, .3, 1.1, 0, 0, 0, 2, 0]))
        >>> labels.astype(int).tolist()
        [0, 1, 1, 0, 1, 0, 0, 0, 1, 0]
        >>> [(e.start, e.end, e.peak) for e in events]
        [(1, 4, 1), (8, 8, 8)]
    """
    state = AlarmState() if state is None else state.copy()
    offset = state.t
    n = len(scores)
    labels = np.zeros(n, bool)
    onsets = np.zeros(n, bool)
    events: list[Event] = []
    winners = (
        None if channel_scores is None or channel_scores.shape[1] < 2 else channel_scores.argmax(1)
    )
    for i, score in enumerate(np.asarray(scores, np.float64)):
        channel = None if winners is None else int(winners[i])
        labels[i], onsets[i], closed = state.step(rule, float(score), channel)
        if closed is not None and closed.start >= offset:
            events.append(closed)
    if state.event is not None and state.event[0] >= offset:
        s, e, p, ps, ch = state.event
        events.append(Event(int(s), int(e), int(p), float(ps), ch))
    shifted = [
        Event(e.start - offset, e.end - offset, e.peak - offset, e.peak_score, e.channel)
        for e in events
    ]
    return labels, onsets, shifted, state


def running_range_flags(values: np.ndarray, margin: float = 0.05, warmup: int = 100) -> np.ndarray:
    """Points beyond the running min/max (all earlier points) by more than ``margin`` of its range.

    The rule fires from point ``warmup`` on; it is a novelty rule (each new extreme fires once).

    Example:
        >>> running_range_flags(np.r_[np.zeros(100), 1.0, 0.0, 5.0][:, None]).astype(int).tolist()[-3:]
        [1, 0, 1]
    """
    values = np.asarray(values, np.float64).reshape(len(values), -1)
    lo = np.minimum.accumulate(values, axis=0)
    hi = np.maximum.accumulate(values, axis=0)
    before_lo = np.concatenate([np.full((1, values.shape[1]), np.inf), lo[:-1]])
    before_hi = np.concatenate([np.full((1, values.shape[1]), -np.inf), hi[:-1]])
    span = margin * (before_hi - before_lo)
    with np.errstate(invalid="ignore"):
        outside = (values > before_hi + span) | (values < before_lo - span)
    return outside.any(axis=1) & (np.arange(len(values)) >= max(warmup, 1))


def onsets_only(scores: np.ndarray, window: int = 400) -> np.ndarray:
    """Keep a score where it beats every score of the previous ``window`` points, else 0.

    Example:
        >>> onsets_only(np.array([0.0, 3.0, 2.0, 6.0, 1.0]), window=2).tolist()
        [0.0, 3.0, 0.0, 6.0, 0.0]
    """
    scores = np.asarray(scores, np.float64)
    padded = np.concatenate([np.full(window, -np.inf), scores])
    previous = np.lib.stride_tricks.sliding_window_view(padded[:-1], window).max(axis=1)
    return np.where(
        scores > previous + 1e-12 * np.abs(np.where(np.isfinite(previous), previous, 0)) + 1e-12,
        scores,
        0.0,
    )


def relative(
    scores: np.ndarray,
    window: int = 4000,
    min_points: int = 100,
    *,
    spread_floor: float | None = 1e-6,
) -> np.ndarray:
    """How far a score stands out from the previous ``window`` scores: ``(s - median) / IQR``.

    Causal (the statistics of points ``t - window .. t - 1``); 0 before ``min_points`` points.
    The IQR is floored at ``spread_floor``; with ``spread_floor=None`` nothing is divided:
    ``s - median``, in the score's own units.

    Example:
        >>> r = relative(np.r_[np.tile([0.0, 1.0], 100), 9.0], window=100, min_points=10)
        >>> float(r[-1])
        8.5
        >>> float(relative(np.r_[np.zeros(200), 9.0], 100, 10, spread_floor=None)[-1])
        9.0
    """
    s = pd.Series(np.asarray(scores, np.float64))
    roll = s.rolling(window, min_periods=min_points)
    median = roll.median().shift(1)
    out = s - median
    if spread_floor is not None:
        iqr = (roll.quantile(0.75) - roll.quantile(0.25)).shift(1)
        out = out / np.maximum(iqr, spread_floor)
    return np.nan_to_num(out.to_numpy(), nan=0.0)


def merge_runs(kept: np.ndarray, gap: int, reported: np.ndarray | None = None) -> np.ndarray:
    """One detection per run of kept points: the run's largest, ``gap`` rows after its last.

    A run is kept (non-zero) points at most ``gap`` rows apart. Its largest value is written on
    the row ``gap`` rows after its last point, when the run is known to have ended (causal; the
    series' last row if it ends sooner); every other point is 0. A run that holds a ``reported``
    point (bool ``[T]``: already detected there, e.g. by the range rule) writes nothing.

    Example:
        >>> merge_runs(np.array([0.0, 1.0, 2.0, 0.0, 0.0, 5.0, 0.0]), 1).tolist()
        [0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 5.0]
        >>> merge_runs(np.array([0.0, 1.0, 2.0, 0.0]), 1, np.array([0, 1, 0, 0], bool)).tolist()
        [0.0, 0.0, 0.0, 0.0]
    """
    kept = np.asarray(kept, np.float64)
    out = np.zeros_like(kept)
    where = np.flatnonzero(kept > 0)
    if not where.size:
        return out
    breaks = np.flatnonzero(np.diff(where) > gap)
    starts = np.r_[0, breaks + 1]
    ends = np.r_[breaks, where.size - 1]
    for a, b in zip(starts, ends, strict=True):
        rows = where[a : b + 1]
        if reported is not None and reported[rows].any():
            continue
        row = min(int(rows[-1]) + gap, kept.shape[0] - 1)
        out[row] = max(out[row], float(kept[rows].max()))
    return out


#: The NAB writer's shaping (chosen on NAB's dev half by ``benchmarks/nab_shaping.py``; see
#: docs/nab.md): scores relative to the previous 2000, the running range rule, onsets over 400,
#: one detection per run of onsets at most 5 rows apart (session 12).
NAB_SHAPING = {"window": 400, "trailing": 2000, "range_margin": 0.05, "merge": 5}


def nab_shape(
    scores: np.ndarray,
    values: np.ndarray | None = None,
    *,
    window: int = 400,
    trailing: int | None = None,
    range_margin: float | None = None,
    spread_floor: float | None = 1e-6,
    merge: int | None = None,
) -> np.ndarray:
    """NAB's alarm shaping of a dense score, squashed into ``[0, 1)`` for NAB's threshold sweep.

    NAB rewards the first detection in a window and charges every later point above the threshold,
    so only onsets are kept (:func:`onsets_only`). With ``trailing``, the score is first made
    relative to its own recent past (:func:`relative`), so slow drift after training does not read
    as one long anomaly (``spread_floor``: see :func:`relative`). With ``range_margin`` (and
    ``values``), points beyond the running range (:func:`running_range_flags`) score above
    everything else. With ``merge``, each run of onsets becomes one detection
    (:func:`merge_runs`; none where the range rule already detected the run). The kept value
    ``x`` becomes ``x / (x + 3)``; range points 0.99.

    Example:
        >>> nab_shape(np.array([0.0, 3.0, 2.0, 6.0, 1.0]), window=2).round(3).tolist()
        [0.0, 0.5, 0.0, 0.667, 0.0]
    """
    s = np.maximum(np.asarray(scores, np.float64), 0.0)
    if trailing:
        s = np.maximum(relative(s, trailing, spread_floor=spread_floor), 0.0)
    flags = None
    if range_margin is not None and values is not None:
        flags = running_range_flags(values, range_margin)
    kept = onsets_only(s, window)
    if merge:
        kept = merge_runs(kept, merge, flags)
    out = kept / (kept + 3.0)
    if flags is not None:
        out = np.where(flags, 0.99, out)
    return out
