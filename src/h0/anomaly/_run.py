"""One detection run: fit on the first part of each series, score all of it, decide alarms.

:func:`detect` is the library's one owner of "train on the first ``n`` points, score the rest":
``h0 detect`` (one series or a fleet), and ``h0 nab run`` call it. A single series is a fleet of
one. The result, :class:`DetectionRun`, holds everything the outputs need.

Example:
    >>> import numpy as np
    >>> x = np.sin(np.arange(400) / 5); x[350] += 4
    >>> _, (run,) = detect(SeriesInput("demo", x, train_size=250),
    ...                    DetectorConfig.from_flat(window=8, hidden=8, epochs=2))
    >>> run.scores.shape, bool(run.labels[350]), [e.start for e in run.events if e.start >= 250]
    ((400,), True, [350])
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from jax.sharding import Mesh

from h0.anomaly._alarms import decide
from h0.anomaly._config import DetectorConfig
from h0.anomaly._detector import GRUAutoencoderDetector
from h0.anomaly._io import as_values
from h0.anomaly._reportdata import Event, ReportData


@dataclasses.dataclass(frozen=True)
class SeriesInput:
    """One series to run the detector on.

    Attributes:
        name: Its name (a file name, the bundled series' name).
        values: Values ``[T]`` or ``[T, C]``.
        train_size: Train on the first ``train_size`` points (score all of them).
        times: Timestamps ``[T]``, or ``None``.
        columns: Channel names (default ``value`` / ``value_0``...).
        known_windows: Known anomaly windows as inclusive row ranges, possibly empty.
    """

    name: str
    values: Any
    train_size: int
    times: pd.DatetimeIndex | None = None
    columns: Sequence[str] | None = None
    known_windows: Sequence[tuple[int, int]] = ()


@dataclasses.dataclass
class DetectionRun:
    """The outcome for one series.

    Attributes:
        name: The series' name.
        times: Timestamps or ``None``.
        values: Values ``[T, C]``.
        columns: Channel names.
        n_train: Points used for training (the first ones).
        scores: Dense score per point ``[T]``.
        channel_scores: Score per point and channel ``[T, C]``.
        labels: ``predict``'s 0/1 per point ``[T]`` (bool).
        onsets: Points that raised an alarm ``[T]`` (bool).
        events: Alarm events (rows of the whole series).
        threshold: The threshold.
        known_windows: Known anomaly windows (inclusive rows).
        settings: The run's settings (nested by concern) and facts about the series.
        timings: Seconds per phase.
    """

    name: str
    times: pd.DatetimeIndex | None
    values: np.ndarray
    columns: list[str]
    n_train: int
    scores: np.ndarray
    channel_scores: np.ndarray
    labels: np.ndarray
    onsets: np.ndarray
    events: list[Event]
    threshold: float
    known_windows: list[tuple[int, int]]
    settings: dict[str, Any]
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    def label(self, i: int) -> str:
        """Row ``i``'s timestamp or row number, as text."""
        return str(self.times[i]) if self.times is not None else str(int(i))

    def evaluation(self) -> dict[str, Any] | None:
        """Known windows found (a flagged point inside) and false alarms (events outside all).

        Returns ``None`` without known windows.
        """
        if not self.known_windows:
            return None
        found = []
        for a, b in self.known_windows:
            hits = np.flatnonzero(self.labels[a : b + 1])
            found.append(
                {
                    "start": self.label(a),
                    "end": self.label(b),
                    "detected": bool(hits.size),
                    "first_alarm": self.label(a + int(hits[0])) if hits.size else None,
                    "in_training": bool(a < self.n_train),
                }
            )
        false = [
            e
            for e in self.events
            if not any(e.start <= b and e.end >= a for a, b in self.known_windows)
        ]
        return {
            "windows": found,
            "false_alarms": len(false),
            "false_alarms_after_training": sum(e.start >= self.n_train for e in false),
        }

    def report_data(self) -> ReportData:
        """What the renderers draw."""
        return ReportData(
            title=self.name,
            times=self.times,
            values=self.values,
            columns=self.columns,
            scores=self.scores,
            channel_scores=self.channel_scores if self.values.shape[1] > 1 else None,
            threshold=self.threshold,
            labels=self.labels,
            events=self.events,
            n_train=self.n_train,
            known_windows=list(self.known_windows),
            evaluation=self.evaluation(),
            settings=self.settings,
        )

    def summary(self) -> dict[str, Any]:
        """The run in a few numbers (``h0 detect --json``, the fleet table)."""
        after = self.scores[self.n_train :]
        return {
            "series": self.name,
            "points": len(self.scores),
            "train_points": int(self.n_train),
            "threshold": float(self.threshold),
            "flagged_points": int(self.labels.sum()),
            "flagged_after_training": int(self.labels[self.n_train :].sum()),
            "alarms": len(self.events),
            "alarms_after_training": sum(e.start >= self.n_train for e in self.events),
            "max_score_after_training": float(after.max()) if after.size else None,
            "known_windows": self.evaluation(),
        }


def _channel_names(columns: Sequence[str] | None, channels: int) -> list[str]:
    if columns is not None:
        names = [str(c) for c in columns]
        if len(names) != channels:
            raise ValueError(f"columns has {len(names)} names for {channels} channels.")
        return names
    return ["value"] if channels == 1 else [f"value_{c}" for c in range(channels)]


def detect(
    series: SeriesInput | Sequence[SeriesInput],
    config: DetectorConfig | None = None,
    *,
    callback: Callable[[int, int, float], None] | None = None,
    mesh: Mesh | None = None,
) -> tuple[GRUAutoencoderDetector, list[DetectionRun]]:
    """Fit one detector on the first part of every series, score them all, decide alarms.

    Args:
        series: One series or a fleet (same channels); each trains on its first ``train_size``.
        config: The settings (default: the defaults).
        callback: Training progress, ``callback(epoch, epochs, loss)``.
        mesh: Train and score on this device mesh.

    Returns:
        ``(fitted detector, one DetectionRun per series)``.

    Raises:
        ValueError: Bad values, a ``train_size`` outside ``(0, T)``, too short a training part.
    """
    config = DetectorConfig.from_flat() if config is None else config
    fleet = [series] if isinstance(series, SeriesInput) else list(series)
    if not fleet:
        raise ValueError("series is empty: give at least one series.")
    started = time.perf_counter()
    values, trains = [], []
    for s in fleet:
        v = as_values(s.values, s.name)
        if not 0 < s.train_size < v.shape[0]:
            raise ValueError(
                f"{s.name}: train_size must lie in (0, {v.shape[0]}); got {s.train_size}."
            )
        values.append(v)
        trains.append(v[: s.train_size])
    detector = GRUAutoencoderDetector(**config.flat())
    detector.fit(trains if len(fleet) > 1 else trains[0], callback=callback, mesh=mesh)
    fitted = time.perf_counter()
    rest = detector.score_many([v[s.train_size :] for s, v in zip(fleet, values, strict=True)])
    scored = time.perf_counter()
    rule = detector.alarm_rule_
    runs = []
    for i, (s, v) in enumerate(zip(fleet, values, strict=True)):
        columns = _channel_names(s.columns, v.shape[1])
        scores = np.concatenate([detector.series_decision_scores_[i], rest[i][0]])
        channels = np.concatenate([detector._train_channel_scores[i], rest[i][1]])
        labels, onsets, events, _ = decide(rule, scores, None, channels)
        runs.append(
            DetectionRun(
                name=s.name,
                times=s.times,
                values=v,
                columns=columns,
                n_train=s.train_size,
                scores=scores,
                channel_scores=channels,
                labels=labels,
                onsets=onsets,
                events=events,
                threshold=float(detector.threshold_),
                known_windows=[(int(a), int(b)) for a, b in s.known_windows],
                settings={
                    "series": s.name,
                    "points": int(v.shape[0]),
                    "train_points": int(s.train_size),
                    "threshold_used": round(float(detector.threshold_), 6),
                    # Constant in training: neither scored nor shown to the network.
                    "unmodelled_channels": [
                        c for c, m in zip(columns, detector.modelled_[i], strict=True) if not m
                    ],
                    **config.nested(),
                },
                timings={"fit": fitted - started, "score": scored - fitted},
            )
        )
    return detector, runs
