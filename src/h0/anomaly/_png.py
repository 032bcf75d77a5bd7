"""Interim PNG renderer (replaced by the full one on branch ``report``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from h0.anomaly._reportdata import ReportData


def render_png(data: ReportData, path: Path) -> None:
    """Values and score with the threshold, training part and events."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    x = data.times if data.times is not None else np.arange(len(data.scores))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5), sharex=True)
    for ax in (top, bottom):
        ax.axvspan(x[0], x[max(data.n_train - 1, 0)], color="0.88")
        for a, b in data.known_windows:
            ax.axvspan(x[a], x[b], color="#2ca02c", alpha=0.22)
    for c, name in enumerate(data.columns):
        top.plot(x, data.values[:, c], lw=0.7, label=name)
    starts = [e.start for e in data.events]
    if starts:
        top.plot(x[starts], data.values[starts, 0], "v", color="#d62728")
    bottom.plot(x, data.scores, lw=0.7, color="0.2")
    bottom.axhline(data.threshold, color="#d62728", ls="--")
    top.set_title(f"h0 detect: {Path(data.title).name}", loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
