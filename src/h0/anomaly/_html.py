"""Interim HTML renderer (replaced by the interactive one on branch ``report``)."""

from __future__ import annotations

import html

from h0.anomaly._reportdata import ReportData


def render_html(data: ReportData) -> str:
    """A page with the events and the settings."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(data.label(a.start))}</td><td>{e(data.label(a.end))}</td>"
        f"<td>{a.peak_score:.3f}</td></tr>"
        for a in data.events
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>h0 detect: {e(data.title)}"
        f"</title></head><body><h1>h0 detect: {e(data.title)}</h1><table>{rows}</table>"
        "</body></html>"
    )
