"""What ``h0 detect`` writes: scores.csv, anomalies.json, report.png, report.html (and fleets).

An output directory is replaced as one unit: everything is built in a sibling temporary directory
and swapped into place only when complete (:mod:`h0._atomic`), so an interrupted run leaves the
previous report whole and a finished run leaves no file of an older one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from h0.anomaly._run import DetectionRun

#: Columns of ``fleet.csv``.
FLEET_COLUMNS = (
    "series",
    "points",
    "train_points",
    "flagged_points",
    "alarms",
    "alarms_after_training",
    "max_score_after_training",
)
REPORT_KIND = "h0-report"
FLEET_KIND = "h0-fleet-report"


def scores_frame(run: DetectionRun) -> pd.DataFrame:
    """``scores.csv``: time (or row), values, score, per-point label, alarm onsets."""
    data: dict[str, Any] = {}
    data["timestamp" if run.times is not None else "row"] = (
        run.times if run.times is not None else np.arange(len(run.scores))
    )
    reserved = ("timestamp", "row", "score", "is_anomaly", "alarm")
    for c, name in enumerate(run.columns):
        data[name if name not in reserved else f"value_{name}"] = run.values[:, c]
    data["score"] = np.round(run.scores, 6)
    data["is_anomaly"] = run.labels.astype(int)
    data["alarm"] = run.onsets.astype(int)
    return pd.DataFrame(data)


def anomalies(run: DetectionRun) -> dict[str, Any]:
    """``anomalies.json``: the events, the summary, the known windows, the settings."""
    return {
        "source": run.name,
        "threshold": run.threshold,
        "train_points": run.n_train,
        "alarms": [
            {
                "start": run.label(e.start),
                "end": run.label(e.end),
                "peak": run.label(e.peak),
                "peak_score": round(e.peak_score, 6),
                "points": e.end - e.start + 1,
                "channel": run.columns[e.channel if e.channel is not None else 0],
                "in_training": e.start < run.n_train,
            }
            for e in run.events
        ],
        "summary": run.summary(),
        "known_windows": run.evaluation(),
        "settings": run.settings,
        "timings_s": {k: round(v, 3) for k, v in run.timings.items()},
    }


def _render(run: DetectionRun, folder: Path, *, plot: bool) -> None:
    from h0.anomaly._html import render_html
    from h0.anomaly._png import render_png

    data = run.report_data()
    if plot:
        render_png(data, folder / "report.png")
    (folder / "report.html").write_text(render_html(data), encoding="utf-8")


def write_series(
    run: DetectionRun, folder: Path, *, plot: bool = True, pictures: bool = True
) -> None:
    """Write one run's files into ``folder`` (which exists)."""
    scores_frame(run).to_csv(folder / "scores.csv", index=False)
    (folder / "anomalies.json").write_text(json.dumps(anomalies(run), indent=1))
    if pictures:
        _render(run, folder, plot=plot)


def write_report(run: DetectionRun, out: Path, *, plot: bool = True) -> list[Path]:
    """Write scores.csv, anomalies.json, report.png and report.html as ``out``, atomically.

    Returns:
        The written files.
    """
    from h0._atomic import atomic_directory

    with atomic_directory(Path(out), kind=REPORT_KIND) as tmp:
        write_series(run, tmp, plot=plot)
        names = sorted(p.name for p in tmp.iterdir() if not p.name.startswith("."))
    return [Path(out) / n for n in names]


def fleet_summary(runs: list[DetectionRun]) -> pd.DataFrame:
    """One row per series (``fleet.csv``)."""
    rows = [{k: run.summary()[k] for k in FLEET_COLUMNS} for run in runs]
    return pd.DataFrame(rows, columns=list(FLEET_COLUMNS))


def write_fleet(
    runs: list[DetectionRun], names: list[str], settings: dict[str, Any], out: Path
) -> list[Path]:
    """Write ``<series>/scores.csv``, ``<series>/anomalies.json``, ``fleet.csv``, ``fleet.json``.

    ``out`` is replaced as one unit (build a sibling, swap).
    """
    from h0._atomic import atomic_directory

    summary = fleet_summary(runs)
    summary["series"] = names
    with atomic_directory(Path(out), kind=FLEET_KIND) as tmp:
        for run, name in zip(runs, names, strict=True):
            folder = tmp / name
            folder.mkdir()
            write_series(run, folder, pictures=False)
        summary.to_csv(tmp / "fleet.csv", index=False)
        fleet = {
            "series": json.loads(summary.to_json(orient="records")),
            "settings": settings,
        }
        (tmp / "fleet.json").write_text(json.dumps(fleet, indent=1))
        entries = sorted(p.name for p in tmp.iterdir() if not p.name.startswith("."))
    return [Path(out) / n for n in entries]
