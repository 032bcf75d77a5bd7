"""The static ``report.png``: one panel per channel and the score panel, drawn with matplotlib (Agg).

Grey marks the training part, green the known anomaly windows, red the points ``predict`` flagged.
Triangles mark alarm events at their onset, on the panel of the channel that raised them and on the
score panel: filled after the training part, hollow inside it (and counted apart in the title).
The title's counts come from ``data.evaluation`` only, the same numbers ``report.html`` prints.
Up to :data:`MAX_PANELS` channels get a panel; past that the ones with the highest channel scores,
and the title says so. Dates on the x axis carry their year, and the axis label gives the span.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from h0.anomaly._html import (
    COLORS,
    GREEN,
    GREY,
    RED,
    event_channel,
    false_alarm_text,
    runs,
    shown_channels,
)
from h0.anomaly._reportdata import ReportData

MAX_PANELS = 6
"""Channel panels at most; past this the channels with the highest channel scores."""
DPI = 100


def png_size(n_panels: int) -> tuple[int, int]:
    """The picture's ``(width, height)`` in pixels with ``n_panels`` channel panels.

    Example:
        >>> png_size(1), png_size(3)
        ((1200, 570), (1200, 750))
    """
    return 1200, 100 + (300 if n_panels == 1 else 160 * n_panels) + 170


def _mpl(s: str) -> str:
    """User text for matplotlib: ``$`` would start mathtext."""
    return str(s).replace("$", r"\$")


def _short(s: str, n: int = 24) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def title(data: ReportData, n_shown: int) -> str:
    """The picture's title: the series, its alarm events and how they did against known windows.

    Example:
        >>> from h0.anomaly._reportdata import Event
        >>> ev = {"windows": [{"start": 5, "end": 6, "detected": True, "first_alarm": 5,
        ...                    "in_training": False}], "false_alarms": 2,
        ...       "false_alarms_after_training": 1}
        >>> d = ReportData("x.csv", None, np.zeros((9, 1)), ["v"], np.zeros(9), None, 0.5,
        ...                np.zeros(9, bool), [Event(1, 1, 1, .9), Event(5, 5, 5, .8),
        ...                Event(8, 8, 8, .7)], 3, [(5, 6)], ev, {})
        >>> print(title(d, 1))
        h0 detect: x.csv
        2 alarm events after training (+1 in training, hollow); 1 of 1 known windows after training detected; 1 false alarm after training (2 in all)
    """
    in_train = sum(e.start < data.n_train for e in data.events)
    parts = [
        f"{len(data.events) - in_train} alarm events after training "
        f"(+{in_train} in training, hollow)"
    ]
    if data.evaluation is not None:
        windows = [w for w in data.evaluation.get("windows", []) if not w.get("in_training")]
        hit = sum(bool(w.get("detected")) for w in windows)
        parts.append(f"{hit} of {len(windows)} known windows after training detected")
        parts.append(
            false_alarm_text(data).split(" (")[0]
            + f" ({data.evaluation.get('false_alarms', 0)} in all)"
        )
    if n_shown < len(data.columns):
        parts.append(f"showing {n_shown} of {len(data.columns)} channels (highest channel scores)")
    lines, line = [], ""
    for part in parts:  # wrap between parts, to fit the picture's width
        if line and len(line) + len(part) > 160:
            lines.append(line + ";")
            line = ""
        line = f"{line}; {part}" if line else part
    name = data.title if len(data.title) <= 120 else data.title[:119] + "…"
    return "\n".join([f"h0 detect: {_mpl(name)}", *lines, line])


def render_png(data: ReportData, path: str | Path, *, max_panels: int = MAX_PANELS) -> None:
    """Draw the run into a PNG at ``path`` (:func:`png_size` pixels).

    Args:
        data: The run to draw.
        path: Where to write the PNG.
        max_panels: Channel panels at most; past this the channels with the highest channel
            scores are drawn and the title says so.

    Example:
        >>> import tempfile
        >>> from h0.anomaly._reportdata import Event
        >>> d = ReportData("s", None, np.arange(50.0)[:, None], ["v"], np.linspace(0, 1, 50),
        ...                None, 0.9, np.linspace(0, 1, 50) > 0.9, [Event(45, 49, 49, 1.0)], 10,
        ...                [], None, {})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     render_png(d, f"{tmp}/report.png")
        ...     open(f"{tmp}/report.png", "rb").read(4)[1:]
        b'PNG'
    """
    import matplotlib.dates as mdates
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    n = len(data.scores)
    values = np.asarray(data.values, float).reshape(n, -1)
    scores = np.asarray(data.scores, float)
    channels = shown_channels(data, max_panels)
    k = len(channels)
    width, height = png_size(k)
    panel = 3.0 if k == 1 else 1.6

    if data.times is not None:
        t = data.times
        utc = t.tz is not None
        if utc:
            t = t.tz_convert("UTC").tz_localize(None)
        x = mdates.date2num(np.asarray(t, dtype="datetime64[us]"))
        span = f"{t[0]:%Y-%m-%d %H:%M} to {t[-1]:%Y-%m-%d %H:%M}" if n else ""
        x_label = f"time{' (UTC)' if utc else ''}: {span}"
    else:
        x = np.arange(n, dtype=float)
        x_label = "row"
    step = float(np.median(np.diff(x))) if n > 1 else 1.0
    least = (float(x[-1] - x[0]) if n > 1 else 1.0) / 800  # short runs stay visible (~1.5 px)

    def bands(ax, spans, color, alpha, zorder):
        verts = []
        for a, b in spans:
            lo, hi = float(x[a]) - step / 2, float(x[b]) + step / 2
            if hi - lo < least:
                mid = (lo + hi) / 2
                lo, hi = mid - least / 2, mid + least / 2
            verts.append([(lo, 0), (lo, 1), (hi, 1), (hi, 0)])
        if verts:
            ax.add_collection(
                PolyCollection(
                    verts,
                    facecolors=color,
                    edgecolors="none",
                    alpha=alpha,
                    zorder=zorder,
                    transform=ax.get_xaxis_transform(),
                ),
                autolim=False,
            )

    flagged = runs(np.asarray(data.labels, bool))
    train = [(0, min(data.n_train, n) - 1)] if data.n_train > 0 and n else []

    def markers(ax, evs, y):
        for training in (False, True):
            rows = [e.start for e in evs if (e.start < data.n_train) == training]
            if rows:
                ax.plot(
                    x[rows],
                    y[rows],
                    "v",
                    ms=7,
                    zorder=5,
                    color=RED,
                    markerfacecolor="none" if training else RED,
                    markeredgecolor=RED if training else "white",
                    markeredgewidth=1.2 if training else 0.6,
                )

    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    axes = fig.subplots(k + 1, 1, sharex=True, height_ratios=[panel] * k + [1.7 if k > 1 else 1.5])
    for ax in axes:
        bands(ax, train, GREY, 0.45, 0)
        bands(ax, data.known_windows, GREEN, 0.25, 1)
        bands(ax, flagged, RED, 0.3, 2)
        ax.grid(alpha=0.25, lw=0.5)
    for ax, c in zip(axes[:-1], channels, strict=True):
        ax.plot(x, values[:, c], lw=0.7, color=COLORS[c % len(COLORS)], zorder=3)
        markers(ax, [e for e in data.events if event_channel(e) == c], values[:, c])
        ax.set_ylabel(_mpl(_short(data.columns[c])), fontsize=9 if k > 1 else 10)
    score_ax = axes[-1]
    score_ax.plot(x, scores, lw=0.7, color="0.2", zorder=3)
    score_ax.axhline(data.threshold, color=RED, ls="--", lw=1, zorder=4)
    markers(score_ax, list(data.events), scores)
    top = float(np.nanmax(scores)) if n and np.isfinite(scores).any() else 1.0
    score_ax.set_ylim(min(-0.03, float(np.nanmin(scores)) if n else 0.0), max(1.05, top * 1.05))
    if top > 10 * max(abs(data.threshold), 1.0):
        # Scores are decades of rarity: a few huge ones would flatten the rest; linear up to the
        # threshold, logarithmic above it.
        score_ax.set_yscale("symlog", linthresh=max(abs(data.threshold), 1.0))
        score_ax.set_ylim(0, top * 1.5)
    score_ax.set_ylabel("anomaly score", fontsize=9 if k > 1 else 10)
    score_ax.set_xlabel(x_label)
    if n > 1:
        score_ax.set_xlim(x[0] - step / 2, x[-1] + step / 2)
    if data.times is not None:
        locator = mdates.AutoDateLocator(minticks=4, maxticks=12)
        score_ax.xaxis.set_major_locator(locator)
        score_ax.xaxis.set_major_formatter(
            mdates.ConciseDateFormatter(
                locator,
                formats=["%Y", "%b %Y", "%d %b", "%H:%M", "%H:%M", "%S.%f"],
                zero_formats=["", "%b %Y", "%b %Y", "%d %b %Y", "%H:%M", "%H:%M"],
                show_offset=False,
            )
        )
    handles = [Patch(color=GREY, alpha=0.45, label="training part")]
    if data.known_windows:
        handles.append(Patch(color=GREEN, alpha=0.25, label="known anomaly window"))
    handles += [
        Patch(color=RED, alpha=0.3, label="flagged by predict"),
        Line2D([], [], marker="v", ls="", color=RED, markeredgecolor="white", label="alarm event"),
        Line2D(
            [], [], marker="v", ls="", color=RED, markerfacecolor="none", label="event in training"
        ),
        Line2D([], [], color=RED, ls="--", lw=1, label=f"threshold {data.threshold:.3g}"),
    ]
    axes[0].legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0, 1.0),
        borderaxespad=0.2,
        ncols=len(handles),
        fontsize=9,
        frameon=False,
    )
    fig.suptitle(title(data, k), x=0.01, ha="left", fontsize=11)
    fig.savefig(path, dpi=DPI)
