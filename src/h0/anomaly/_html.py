"""The interactive ``report.html``: one plotly figure and the run's tables, in one offline file.

The figure has one panel per channel and a score panel under them, on one shared x axis (zoom and
pan move all panels together). Grey marks the training part, green the known anomaly windows, red
the points ``predict`` flagged; triangles mark alarm events at their onset, on the panel of the
channel that raised them and on the score panel (hollow: events in the training part). plotly.js is
inlined, so the file opens with no network. Lines are SVG (WebGL is not always there: headless
browsers, remote desktops); past ``max_points`` points a line is drawn from the min and max of each
of ``max_points // 2`` buckets, which keeps every spike, and event markers and flagged runs are
always drawn in full.

All text that comes from the user (the title, column names, settings) is escaped, both in the page
and in the figure (plotly reads a subset of HTML in its labels).
"""

from __future__ import annotations

import html
import itertools
from typing import Any

import numpy as np

from h0.anomaly._reportdata import Event, ReportData

MAX_PANELS = 12
"""Channel panels shown at most; past this the channels with the highest channel scores."""
MAX_POINTS = 20_000
"""Points per line drawn in full; longer lines are min/max decimated."""
MAX_RUNS = 500
"""Flagged runs drawn at most; past this the closest runs are drawn merged."""

COLORS = ["#1f3b73", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#bcbd22", "#e377c2"]
RED = "#d62728"
GREEN = "#2ca02c"
GREY = "#bdbdbd"


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive ``True`` as ``(start, end)`` rows, both inclusive.

    Example:
        >>> runs(np.array([0, 1, 1, 0, 1], bool))
        [(1, 2), (4, 4)]
    """
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def merge_runs(spans: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """At most ``limit`` runs: runs separated by the smallest gaps are joined.

    Example:
        >>> merge_runs([(0, 0), (2, 2), (10, 11)], 2)
        [(0, 2), (10, 11)]
    """
    if len(spans) <= limit:
        return list(spans)
    gaps = np.array([b[0] - a[1] for a, b in itertools.pairwise(spans)])
    join = np.zeros(len(gaps), bool)
    join[np.argsort(gaps, kind="stable")[: len(spans) - limit]] = True
    out = [spans[0]]
    for span, merge in zip(spans[1:], join, strict=True):
        out[-1:] = [(out[-1][0], span[1])] if merge else [out[-1], span]
    return out


def event_channel(event: Event) -> int:
    """The channel that raised ``event`` (``None`` means the only channel, 0)."""
    return 0 if event.channel is None else int(event.channel)


def shown_channels(data: ReportData, limit: int) -> list[int]:
    """The channels that get a panel: all up to ``limit``, else the ``limit`` highest-scoring.

    Channels are ranked by their maximum channel score (without channel scores: the first
    ``limit``) and returned in column order.

    Example:
        >>> import numpy as np
        >>> from h0.anomaly._reportdata import ReportData
        >>> cs = np.array([[0.1, 0.9, 0.2, 0.5]])
        >>> d = ReportData("s", None, np.zeros((1, 4)), list("abcd"), np.zeros(1), cs, 0.5,
        ...                np.zeros(1, bool), [], 0, [], None, {})
        >>> shown_channels(d, 2)
        [1, 3]
    """
    n = len(data.columns)
    if n <= limit:
        return list(range(n))
    if data.channel_scores is None:
        return list(range(limit))
    cs = np.asarray(data.channel_scores, float)
    peak = np.where(np.isfinite(cs), cs, -np.inf).max(axis=0)
    return sorted(int(i) for i in np.argsort(-peak, kind="stable")[:limit])


def decimate(y: np.ndarray, limit: int) -> np.ndarray:
    """Rows to draw of a line: all up to ``limit``, else the min and max of ``limit // 2`` buckets.

    The first and last rows are always kept, so the line spans the whole axis.

    Example:
        >>> y = np.zeros(1000); y[345] = 9.0
        >>> rows = decimate(y, 20)
        >>> len(rows) <= 22, 345 in rows, int(rows[0]), int(rows[-1])
        (True, True, 0, 999)
    """
    n = len(y)
    if n <= limit:
        return np.arange(n)
    buckets = max(1, limit // 2)
    size = -(-n // buckets)
    y = np.asarray(y, float)
    pad = size * buckets - n
    low = np.concatenate([np.where(np.isnan(y), np.inf, y), np.full(pad, np.inf)])
    high = np.concatenate([np.where(np.isnan(y), -np.inf, y), np.full(pad, -np.inf)])
    start = np.arange(buckets) * size
    rows = np.concatenate(
        [
            [0, n - 1],
            start + low.reshape(buckets, size).argmin(axis=1),
            start + high.reshape(buckets, size).argmax(axis=1),
        ]
    )
    return np.unique(rows[rows < n])


def _text(s: Any) -> str:
    """User text for a plotly label: HTML-escaped, and ``%`` so it is never a template field."""
    return html.escape(str(s)).replace("%", "&#37;")


def _short(s: str, n: int = 28) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def x_values(data: ReportData) -> tuple[np.ndarray, str]:
    """The x axis as numbers (ms since the epoch, UTC, or row numbers) and its title.

    Example:
        >>> import pandas as pd
        >>> t = pd.date_range("2014-01-01", periods=2, freq="5min", tz="UTC")
        >>> d = ReportData("s", t, np.zeros((2, 1)), ["v"], np.zeros(2), None, 0.5,
        ...                np.zeros(2, bool), [], 0, [], None, {})
        >>> x_values(d)
        (array([1.3885344e+12, 1.3885347e+12]), 'time (UTC)')
    """
    if data.times is None:
        return np.arange(len(data.scores), dtype=float), "row"
    t = data.times
    title = "time"
    if t.tz is not None:
        t, title = t.tz_convert("UTC").tz_localize(None), "time (UTC)"
    return t.as_unit("us").asi8 / 1e3, title


def figure(
    data: ReportData, *, max_panels: int = MAX_PANELS, max_points: int = MAX_POINTS
) -> dict[str, Any]:
    """The report's plotly figure as JSON text and what it leaves out.

    Args:
        data: The run to draw.
        max_panels: Channel panels at most (see :func:`shown_channels`).
        max_points: Points per line drawn in full (see :func:`decimate`).

    Returns:
        ``{"json": figure JSON (plotly's, ``<``, ``>`` and ``/`` escaped), "channels": the
        channels shown, "decimated": whether any line was decimated, "merged_runs": whether
        flagged runs were merged for drawing}``.

    Example:
        >>> d = ReportData("s", None, np.arange(4.0)[:, None], ["v"], np.array([0, 0, .9, 0]),
        ...                None, 0.5, np.array([0, 0, 1, 0], bool), [Event(2, 2, 2, 0.9)], 1, [],
        ...                None, {})
        >>> import json
        >>> fig = json.loads(figure(d)["json"])
        >>> [t["meta"]["kind"] for t in fig["data"]]
        ['values', 'events', 'score', 'threshold', 'events']
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x, x_title = x_values(data)
    n = len(x)
    values = np.asarray(data.values, float).reshape(n, -1)
    scores = np.asarray(data.scores, float)
    channels = shown_channels(data, max_panels)
    k = len(channels)
    panel = 300 if k == 1 else 170
    fig = make_subplots(
        rows=k + 1,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.04, 0.3 / (k + 1)),
        row_heights=[1.0] * k + [0.8 if k > 1 else 0.6],
    )
    decimated = False

    def drawn_rows(y: np.ndarray) -> np.ndarray:
        nonlocal decimated
        rows = decimate(y, max_points)
        decimated |= len(rows) < n
        return rows

    cs = None if data.channel_scores is None else np.asarray(data.channel_scores, float)
    legend_seen: set[str] = set()

    def legend(group: str) -> dict[str, Any]:
        first = group not in legend_seen
        legend_seen.add(group)
        return {"legendgroup": group, "showlegend": first}

    def markers(evs: list[Event], y: np.ndarray, row: int, channel: int | None) -> None:
        for training in (False, True):
            chosen = [e for e in evs if (e.start < data.n_train) == training]
            if not chosen:
                continue
            group = "events in training" if training else "alarm events"
            text = [
                f"alarm at {_text(data.label(e.start))}<br>"
                f"until {_text(data.label(e.end))}<br>"
                f"peak {_text(data.label(e.peak))}, score {e.peak_score:.3f}<br>"
                f"channel {_text(data.columns[event_channel(e)])}"
                + ("<br>in the training part" if training else "")
                for e in chosen
            ]
            fig.add_trace(
                go.Scatter(
                    x=[float(x[e.start]) for e in chosen],
                    y=[float(y[e.start]) for e in chosen],
                    mode="markers",
                    name=group,
                    marker={
                        "symbol": "triangle-down-open" if training else "triangle-down",
                        "size": 11,
                        "color": RED,
                        "line": {
                            "width": 1.5 if training else 0.8,
                            "color": RED if training else "white",
                        },
                    },
                    text=text,
                    hovertemplate="%{text}<extra></extra>",
                    meta={"kind": "events", "channel": channel, "training": training},
                    **legend(group),
                ),
                row=row,
                col=1,
            )

    for row, c in enumerate(channels, start=1):
        name = data.columns[c]
        rows = drawn_rows(values[:, c])
        custom = np.stack(
            [scores[rows]] + ([cs[rows, c]] if cs is not None and cs.ndim == 2 else []), axis=1
        )
        tip = f"{_text(name)} %{{y:.5g}}<br>score %{{customdata[0]:.3f}}"
        if custom.shape[1] > 1:
            tip += " (channel %{customdata[1]:.3f})"
        fig.add_trace(
            go.Scatter(
                x=x[rows],
                y=values[rows, c],
                customdata=custom,
                mode="lines",
                name=_text(name),
                line={"width": 1, "color": COLORS[c % len(COLORS)]},
                hovertemplate=tip + "<extra></extra>",
                showlegend=False,
                meta={"kind": "values", "channel": c},
            ),
            row=row,
            col=1,
        )
        markers([e for e in data.events if event_channel(e) == c], values[:, c], row, c)
        fig.update_yaxes(title_text=_text(_short(name)), row=row, col=1)

    rows = drawn_rows(scores)
    fig.add_trace(
        go.Scatter(
            x=x[rows],
            y=scores[rows],
            mode="lines",
            name="score",
            line={"width": 1, "color": "#333333"},
            hovertemplate="score %{y:.3f}<extra></extra>",
            showlegend=False,
            meta={"kind": "score"},
        ),
        row=k + 1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[float(x[0]), float(x[-1])] if n else [],
            y=[data.threshold, data.threshold] if n else [],
            mode="lines",
            name=f"threshold {data.threshold:.4g}",
            line={"width": 1.2, "color": RED, "dash": "dash"},
            hoverinfo="skip",
            meta={"kind": "threshold"},
        ),
        row=k + 1,
        col=1,
    )
    markers(list(data.events), scores, k + 1, None)
    fig.update_yaxes(title_text="anomaly score", row=k + 1, col=1)

    step = float(np.median(np.diff(x))) if n > 1 else 1.0
    least = (float(x[-1] - x[0]) if n > 1 else 1.0) / 800  # short runs stay visible (~2 px)

    shapes: list[dict[str, Any]] = []  # set at once: fig.add_shape is quadratic in shapes

    def band(a: int, b: int, color: str, opacity: float, group: str, layer: str) -> None:
        lo, hi = float(x[a]) - step / 2, float(x[b]) + step / 2
        if hi - lo < least:
            lo, hi = (lo + hi - least) / 2, (lo + hi + least) / 2
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": lo,
                "x1": hi,
                "y0": 0,
                "y1": 1,
                "fillcolor": color,
                "opacity": opacity,
                "line": {"width": 0},
                "layer": layer,
                "name": group,
                **legend(group),
            }
        )

    if data.n_train > 0 and n:
        band(0, min(data.n_train, n) - 1, GREY, 0.35, "training part", "below")
    for a, b in data.known_windows:
        band(a, b, GREEN, 0.22, "known anomaly window", "below")
    flagged = runs(np.asarray(data.labels, bool))
    drawn = merge_runs(flagged, MAX_RUNS)
    for a, b in drawn:
        band(a, b, RED, 0.22, "flagged by predict", "below")

    height = 60 + panel * k + (200 if k > 1 else 190)
    fig.update_layout(
        shapes=shapes,
        height=height,
        margin={"l": 70, "r": 20, "t": 40, "b": 50},
        hovermode="x unified",
        dragmode="zoom",
        template="plotly_white",
        legend={
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 1.0 + 8 / height,
            "yanchor": "bottom",
        },
    )
    axis = {"showspikes": True, "spikemode": "across", "spikethickness": 1}
    if data.times is not None:
        axis |= {"type": "date", "hoverformat": "%Y-%m-%d %H:%M:%S"}
    fig.update_xaxes(**axis)
    fig.update_xaxes(title_text=x_title, row=k + 1, col=1)
    if n:  # the data's span, not plotly's padding for markers (double-click comes back here)
        fig.update_xaxes(range=[float(x[0]) - step / 2, float(x[-1]) + step / 2], row=k + 1, col=1)
    text = fig.to_json()
    return {
        "json": text,
        "channels": channels,
        "decimated": decimated,
        "merged_runs": len(drawn) < len(flagged),
    }


CONFIG = (
    '{"displaylogo": false, "responsive": true, "scrollZoom": true, '
    '"toImageButtonOptions": {"filename": "report"}}'
)

STYLE = """body{font-family:system-ui,sans-serif;max-width:1400px;margin:1.5em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:90%;text-align:left}
th{background:#f3f3f3}td.num{text-align:right}p.summary{font-size:105%}p.note{color:#555;font-size:90%}"""


def _table(head: list[str], rows: list[list[Any]]) -> str:
    e = html.escape
    out = ["<table><tr>", *(f"<th>{e(h)}</th>" for h in head), "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _flatten(settings: dict[str, Any], prefix: str = "") -> list[list[Any]]:
    out = []
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append([f"{prefix}{key}", value])
    return out


def _when(data: ReportData, v: Any) -> str:
    """A row (int) as its label; anything else (text, None) as text."""
    if v is None:
        return ""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return data.label(int(v))
    return str(v)


def _yes(v: Any) -> str:
    return "yes" if v else "no"


def summary(data: ReportData) -> str:
    """The one-line summary under the plot (plain text).

    Example:
        >>> d = ReportData("s", None, np.zeros((5, 1)), ["v"], np.array([0, .9, 0, 0, .8]), None,
        ...                0.5, np.array([0, 1, 0, 0, 1], bool),
        ...                [Event(1, 1, 1, .9), Event(4, 4, 4, .8)], 2, [], None, {})
        >>> summary(d)
        '5 points, the first 2 used for training; threshold 0.5; 2 points flagged (1 after training); 2 alarm events (1 after training, 1 in training).'
    """
    labels = np.asarray(data.labels, bool)
    n_flag = int(labels.sum())
    n_flag_after = int(labels[data.n_train :].sum())
    in_train = sum(e.start < data.n_train for e in data.events)
    return (
        f"{len(data.scores):,} points, the first {data.n_train:,} used for training; "
        f"threshold {data.threshold:.4g}; {n_flag:,} points flagged ({n_flag_after:,} after "
        f"training); {len(data.events):,} alarm events ({len(data.events) - in_train:,} after "
        f"training, {in_train:,} in training)."
    )


def render_html(
    data: ReportData, *, max_panels: int = MAX_PANELS, max_points: int = MAX_POINTS
) -> str:
    """The interactive report as one self-contained HTML page (works offline).

    Args:
        data: The run to report.
        max_panels: Channel panels at most; past this the channels with the highest channel
            scores are shown, and the page says so.
        max_points: Points per line drawn in full; longer lines are min/max decimated.

    Returns:
        The page. plotly.js is inlined (about 5 MB); the figure is the JSON in
        ``<script type="application/json" id="h0-figure">``.

    Example:
        >>> d = ReportData("<b>s</b>.csv", None, np.arange(4.0)[:, None], ["v"],
        ...                np.array([0, 0, .9, 0]), None, 0.5, np.array([0, 0, 1, 0], bool),
        ...                [Event(2, 2, 2, 0.9)], 1, [], None, {"window": 32})
        >>> page = render_html(d)
        >>> "<h1>h0 detect: &lt;b&gt;s&lt;/b&gt;.csv</h1>" in page, "<script src" in page
        (True, False)
    """
    from plotly.offline import get_plotlyjs

    e = html.escape
    fig = figure(data, max_panels=max_panels, max_points=max_points)
    notes = []
    if len(fig["channels"]) < len(data.columns):
        notes.append(
            f"Showing {len(fig['channels'])} of {len(data.columns)} channels, those with the "
            "highest channel scores; the score panel marks every event."
        )
    if fig["decimated"]:
        notes.append(
            f"Lines longer than {max_points:,} points are drawn from the minimum and maximum of "
            f"{max_points // 2:,} buckets (every spike stays); events and flagged runs are exact."
        )
    if fig["merged_runs"]:
        notes.append(f"Flagged runs are drawn merged into at most {MAX_RUNS} bands.")
    events = [
        [
            i,
            data.label(ev.start),
            data.label(ev.end),
            data.label(ev.peak),
            f"{ev.peak_score:.3f}",
            data.columns[event_channel(ev)],
            _yes(ev.start < data.n_train),
        ]
        for i, ev in enumerate(data.events, start=1)
    ]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>h0 detect: {e(data.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>h0 detect: {e(data.title)}</h1>",
        '<div id="h0-plot"></div>',
        "<noscript>The interactive plot needs JavaScript; report.png shows the same run.</noscript>",
        f'<p class="summary">{e(summary(data))}</p>',
        *(f'<p class="note">{e(note)}</p>' for note in notes),
        "<h2>Alarm events</h2>",
        _table(["#", "start", "end", "peak", "peak score", "channel", "in training"], events)
        if events
        else "<p>No alarm events.</p>",
    ]
    if data.evaluation is not None:
        ev = data.evaluation
        parts += [
            "<h2>Known anomaly windows</h2>",
            _table(
                ["start", "end", "detected", "first alarm", "in training"],
                [
                    [
                        _when(data, w.get("start")),
                        _when(data, w.get("end")),
                        _yes(w.get("detected")),
                        _when(data, w.get("first_alarm")),
                        _yes(w.get("in_training")),
                    ]
                    for w in ev.get("windows", [])
                ],
            ),
            f"<p>{e(false_alarm_text(data))}</p>",
        ]
    elif data.known_windows:
        parts += [
            "<h2>Known anomaly windows</h2>",
            _table(
                ["start", "end"], [[data.label(a), data.label(b)] for a, b in data.known_windows]
            ),
        ]
    parts += [
        "<h2>Settings</h2>",
        _table(["setting", "value"], _flatten(data.settings)),
        f"<script>{get_plotlyjs()}</script>",
        f'<script type="application/json" id="h0-figure">{fig["json"]}</script>',
        "<script>(function () {"
        " var fig = JSON.parse(document.getElementById('h0-figure').textContent);"
        f" Plotly.newPlot('h0-plot', fig.data, fig.layout, {CONFIG});"
        " })();</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def false_alarm_text(data: ReportData) -> str:
    """How many false alarms, in the words both reports use (from ``data.evaluation``).

    Example:
        >>> d = ReportData("s", None, np.zeros((1, 1)), ["v"], np.zeros(1), None, 0.5,
        ...                np.zeros(1, bool), [], 0, [(0, 0)],
        ...                {"windows": [], "false_alarms": 5, "false_alarms_after_training": 4}, {})
        >>> false_alarm_text(d)
        '4 false alarms after training (5 in all; a false alarm is an alarm event outside every known window).'
    """
    ev = data.evaluation or {}
    after = int(ev.get("false_alarms_after_training", 0))
    total = int(ev.get("false_alarms", 0))
    return (
        f"{after} false alarm{'s' if after != 1 else ''} after training ({total} in all; a false "
        "alarm is an alarm event outside every known window)."
    )
