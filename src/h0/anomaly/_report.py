"""What ``h0 detect`` writes: scores.csv, anomalies.json, report.png, report.html.

All files are first written into a temporary directory beside the output directory and then
renamed into it, so an interrupted or failed run leaves no partial files behind.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclasses.dataclass
class Interval:
    """A run of points whose score reaches the threshold.

    Attributes:
        start: Index of the first point.
        end: Index of the last point.
        peak: Index of the highest score.
        peak_score: The highest score.
    """

    start: int
    end: int
    peak: int
    peak_score: float


def find_intervals(scores: np.ndarray, threshold: float) -> list[Interval]:
    """Runs of consecutive points with ``score >= threshold``.

    Example:
        >>> [(i.start, i.end, i.peak) for i in find_intervals(np.array([0, .6, .9, 0, .7]), .5)]
        [(1, 2, 2), (4, 4, 4)]
    """
    above = np.concatenate([[False], scores >= threshold, [False]])
    edges = np.flatnonzero(above[1:] != above[:-1])
    out = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        peak = start + int(np.argmax(scores[start:stop]))
        out.append(Interval(int(start), int(stop - 1), int(peak), float(scores[peak])))
    return out


@dataclasses.dataclass
class DetectionRun:
    """Everything a report shows about one ``h0 detect`` run.

    Attributes:
        source: The CSV's path (or the bundled series' name).
        times: Timestamps, or ``None`` (then row numbers are used).
        values: Values ``[T, C]``.
        columns: Value column names.
        scores: Scores ``[T]``.
        alarms: Alarm points ``[T]`` (bool).
        threshold: The alarm threshold.
        n_train: Points used for training (the first ones).
        windows: Known anomaly windows ``(start, end)`` (timestamps), possibly empty.
        settings: The run's settings, for the report.
        timings: Seconds per phase.
    """

    source: str
    times: pd.DatetimeIndex | None
    values: np.ndarray
    columns: list[str]
    scores: np.ndarray
    alarms: np.ndarray
    threshold: float
    n_train: int
    windows: list[tuple[pd.Timestamp, pd.Timestamp]]
    settings: dict[str, Any]
    timings: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def axis(self) -> np.ndarray | pd.DatetimeIndex:
        """The x axis: timestamps or row numbers."""
        return self.times if self.times is not None else np.arange(len(self.scores))

    def label(self, i: int) -> str:
        """A point's timestamp (or row number) as text."""
        return str(self.times[i]) if self.times is not None else str(int(i))

    def intervals(self) -> list[Interval]:
        """Detected intervals (runs at or above the threshold)."""
        return find_intervals(self.scores, self.threshold)

    def window_masks(self) -> list[np.ndarray]:
        """For each known window, which points fall inside it."""
        if self.times is None:
            return []
        return [(self.times >= a) & (self.times <= b) for a, b in self.windows]

    def evaluation(self) -> dict[str, Any]:
        """Known windows found (an alarm inside them) and false alarms (alarms outside them)."""
        masks = self.window_masks()
        inside = np.zeros(len(self.scores), bool)
        found = []
        for (a, b), mask in zip(self.windows, masks, strict=True):
            inside |= mask
            hits = np.flatnonzero(self.alarms & mask)
            in_training = bool(np.flatnonzero(mask)[0] < self.n_train) if mask.any() else False
            found.append(
                {
                    "start": str(a),
                    "end": str(b),
                    "detected": bool(hits.size),
                    "first_alarm": self.label(hits[0]) if hits.size else None,
                    "in_training": in_training,
                }
            )
        false = np.flatnonzero(self.alarms & ~inside)
        return {
            "windows": found,
            "false_alarms": int(false.size),
            "false_alarms_after_training": int((false >= self.n_train).sum()),
        }


def _plot(run: DetectionRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    x = run.axis
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.6]}
    )
    span = len(run.scores)
    pad = max(1, span // 400)  # make one-point intervals visible

    def shade(ax, start, end, **kw):
        lo = x[max(start - pad, 0)]
        hi = x[min(end + pad, span - 1)]
        ax.axvspan(lo, hi, **kw)

    for ax in (top, bottom):
        ax.axvspan(x[0], x[max(run.n_train - 1, 0)], color="0.88", zorder=0)
        for a, b in run.windows:
            ax.axvspan(a, b, color="#2ca02c", alpha=0.22, zorder=1)
        for interval in run.intervals():
            shade(ax, interval.start, interval.end, color="#d62728", alpha=0.35, zorder=2)
    colors = ["#1f3b73", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
    for c, name in enumerate(run.columns):
        top.plot(x, run.values[:, c], lw=0.7, color=colors[c % len(colors)], label=name, zorder=3)
    alarm_idx = np.flatnonzero(run.alarms)
    if alarm_idx.size:
        top.plot(
            x[alarm_idx],
            run.values[alarm_idx, 0],
            "v",
            color="#d62728",
            ms=7,
            zorder=4,
            markeredgecolor="white",
            markeredgewidth=0.6,
        )
    bottom.plot(x, run.scores, lw=0.7, color="0.2", zorder=3)
    bottom.axhline(run.threshold, color="#d62728", ls="--", lw=1, zorder=4)
    if alarm_idx.size:
        bottom.plot(x[alarm_idx], run.scores[alarm_idx], "v", color="#d62728", ms=5, zorder=5)
    bottom.set_ylim(-0.03, max(1.05, float(np.max(run.scores)) * 1.05))
    bottom.set_ylabel("anomaly score")
    top.set_ylabel(", ".join(run.columns) if len(run.columns) <= 3 else "values")
    ev = run.evaluation()
    title = f"h0 detect: {Path(run.source).name}: {int(run.alarms.sum())} alarms"
    if run.windows:
        found = [w for w in ev["windows"] if not w["in_training"]]
        hit = sum(w["detected"] for w in found)
        title += (
            f"; {hit} of {len(found)} known windows after training detected, "
            f"{ev['false_alarms_after_training']} false alarms"
        )
    top.set_title(title, fontsize=11, loc="left")
    handles = [
        Patch(color="0.88", label="training"),
        Patch(color="#d62728", alpha=0.35, label="detected (score >= threshold)"),
        plt.Line2D([], [], marker="v", ls="", color="#d62728", label="alarm"),
    ]
    if run.windows:
        handles.insert(1, Patch(color="#2ca02c", alpha=0.22, label="known anomaly window"))
    first = top.legend(loc="upper left", fontsize=8, ncol=len(run.columns), framealpha=0.8)
    top.add_artist(first)
    top.legend(handles=handles, loc="lower left", fontsize=8, ncol=len(handles), framealpha=0.85)
    bottom.legend(
        handles=[
            plt.Line2D([], [], color="#d62728", ls="--", label=f"threshold {run.threshold:.3g}")
        ],
        loc="upper left",
        fontsize=8,
    )
    if run.times is not None:
        bottom.xaxis.set_major_formatter(
            mdates.ConciseDateFormatter(bottom.xaxis.get_major_locator())
        )
    else:
        bottom.set_xlabel("row")
    for ax in (top, bottom):
        ax.margins(x=0.005)
        ax.grid(alpha=0.25, lw=0.5)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _scores_frame(run: DetectionRun) -> pd.DataFrame:
    data: dict[str, Any] = {}
    data["timestamp" if run.times is not None else "row"] = run.axis
    for c, name in enumerate(run.columns):
        data[
            name if name not in ("timestamp", "row", "score", "is_anomaly") else f"value_{name}"
        ] = run.values[:, c]
    data["score"] = np.round(run.scores, 6)
    data["is_anomaly"] = run.alarms.astype(int)
    return pd.DataFrame(data)


def _anomalies(run: DetectionRun) -> dict[str, Any]:
    return {
        "source": run.source,
        "threshold": run.threshold,
        "train_points": run.n_train,
        "intervals": [
            {
                "start": run.label(i.start),
                "end": run.label(i.end),
                "peak": run.label(i.peak),
                "peak_score": round(i.peak_score, 6),
                "points": i.end - i.start + 1,
                "in_training": i.start < run.n_train,
            }
            for i in run.intervals()
        ],
        "alarms": [run.label(i) for i in np.flatnonzero(run.alarms)],
        "known_windows": run.evaluation() if run.windows else None,
        "settings": run.settings,
        "timings_s": {k: round(v, 3) for k, v in run.timings.items()},
    }


def _html(run: DetectionRun, anomalies: dict[str, Any], png: Path | None) -> str:
    e = html.escape
    picture = ""
    if png is not None:
        data = base64.b64encode(png.read_bytes()).decode()
        picture = f'<img alt="report" src="data:image/png;base64,{data}" style="max-width:100%">'
    rows = "".join(
        f"<tr><td>{e(i['start'])}</td><td>{e(i['end'])}</td><td>{e(i['peak'])}</td>"
        f"<td>{i['peak_score']:.3f}</td><td>{i['points']}</td><td>{'yes' if i['in_training'] else ''}</td></tr>"
        for i in anomalies["intervals"]
    )
    windows = ""
    if run.windows:
        windows = "<h2>Known windows</h2><table><tr><th>start</th><th>end</th><th>detected</th><th>first alarm</th><th>in training</th></tr>"
        windows += "".join(
            f"<tr><td>{e(w['start'])}</td><td>{e(w['end'])}</td><td>{'yes' if w['detected'] else 'no'}</td>"
            f"<td>{e(str(w['first_alarm'] or ''))}</td><td>{'yes' if w['in_training'] else ''}</td></tr>"
            for w in anomalies["known_windows"]["windows"]
        )
        windows += f"</table><p>False alarms (alarms outside the known windows): {anomalies['known_windows']['false_alarms']}</p>"
    settings = "".join(
        f"<tr><td>{e(str(k))}</td><td>{e(str(v))}</td></tr>" for k, v in run.settings.items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>h0 detect: {e(Path(run.source).name)}</title>
<style>body{{font-family:sans-serif;max-width:1250px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:0.5em 0}}td,th{{border:1px solid #ccc;padding:2px 8px;font-size:90%}}
th{{background:#f3f3f3}}</style></head><body>
<h1>h0 detect: {e(Path(run.source).name)}</h1>
<p>{len(run.scores)} points, trained on the first {run.n_train}; threshold {run.threshold:.4g};
{int(run.alarms.sum())} alarms in {len(anomalies["intervals"])} intervals.</p>
{picture}
<h2>Detected intervals</h2>
<table><tr><th>start</th><th>end</th><th>peak</th><th>peak score</th><th>points</th><th>in training</th></tr>{rows}</table>
{windows}
<h2>Settings</h2><table>{settings}</table>
</body></html>
"""


def write_report(run: DetectionRun, out: Path, *, plot: bool = True) -> list[Path]:
    """Write scores.csv, anomalies.json, report.png and report.html into ``out``, atomically.

    Returns:
        The written files.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _scores_frame(run).to_csv(tmp / "scores.csv", index=False)
        anomalies = _anomalies(run)
        (tmp / "anomalies.json").write_text(json.dumps(anomalies, indent=1))
        png = None
        if plot:
            png = tmp / "report.png"
            _plot(run, png)
        (tmp / "report.html").write_text(_html(run, anomalies, png))
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for f in sorted(tmp.iterdir()):
            os.replace(f, out / f.name)
            written.append(out / f.name)
        return written
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
