"""What a report shows about one detection run: the renderers' only input.

The detection run (``h0.anomaly._run``) builds a :class:`ReportData`; the renderers
(``h0.anomaly._html`` for the interactive ``report.html``, ``h0.anomaly._png`` for
``report.png``) read nothing else, so they can be written and tested on their own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd


@dataclasses.dataclass(frozen=True)
class Event:
    """One alarm event: a run of anomalous points reported as one alarm.

    Attributes:
        start: Row of the first point (the alarm's onset).
        end: Row of the last point (inclusive).
        peak: Row of the highest score.
        peak_score: The highest score.
        channel: Index of the channel that contributed most at the peak (``None``: one channel).
    """

    start: int
    end: int
    peak: int
    peak_score: float
    channel: int | None = None


@dataclasses.dataclass(frozen=True)
class ReportData:
    """Everything the renderers draw.

    Attributes:
        title: The series' name (a file name, or the bundled series' name).
        times: Timestamps ``[T]`` (tz-aware UTC or naive), or ``None``: rows are numbered.
        values: Values ``[T, C]``.
        columns: The ``C`` value column names.
        scores: Anomaly score per point ``[T]`` (dense, higher is more anomalous).
        channel_scores: Score per point and channel ``[T, C]``, or ``None`` (one channel).
        threshold: The threshold ``predict`` applies to ``scores``.
        labels: ``predict``'s 0/1 per point ``[T]`` (bool).
        events: Alarm events (onsets with refractory applied), in time order.
        n_train: The first ``n_train`` points were used for training.
        known_windows: Known anomaly windows as ``(start_row, end_row)`` pairs (inclusive),
            possibly empty.
        evaluation: Counts against the known windows, or ``None`` without them: ``{"windows":
            [{"start", "end", "detected", "first_alarm", "in_training"}], "false_alarms",
            "false_alarms_after_training"}`` (false alarms are events outside every window).
        settings: The run's settings (name -> value), shown as a table.
    """

    title: str
    times: pd.DatetimeIndex | None
    values: np.ndarray
    columns: list[str]
    scores: np.ndarray
    channel_scores: np.ndarray | None
    threshold: float
    labels: np.ndarray
    events: list[Event]
    n_train: int
    known_windows: list[tuple[int, int]]
    evaluation: dict[str, Any] | None
    settings: dict[str, Any]

    def label(self, i: int) -> str:
        """Row ``i``'s timestamp (ISO text) or row number."""
        return str(self.times[i]) if self.times is not None else str(int(i))
