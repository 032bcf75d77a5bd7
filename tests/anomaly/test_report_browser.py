"""report.html opened in headless Chromium, offline: the plot is drawn, the text is text.

Needs Debian's chromium (``.ci/install-browser`` installs it); skips without it. Name resolution is
switched off, so a page that needed the network would show no plot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from h0.anomaly._html import render_html

from .test_report_render import EVIL, arr, figure_of, multivariate, traces, univariate

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("H0_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: no host resolves
    "--window-size=1400,1000",
    "--virtual-time-budget=30000",  # run the page's scripts before dumping
]


def chromium(tmp_path, page: str, *args: str) -> subprocess.CompletedProcess:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"no chromium at {CHROMIUM} (run .ci/install-browser, or set H0_CHROMIUM)")
    tmp_path.mkdir(parents=True, exist_ok=True)
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, html.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_plot_is_drawn_with_every_trace_marker_and_escaped_label(tmp_path):
    d = multivariate()
    page = render_html(d)
    fig = figure_of(page)
    dom = chromium(tmp_path, page, "--dump-dom").stdout
    assert re.search(r'<div id="h0-plot" class="js-plotly-plot', dom), "Plotly.newPlot did not run"
    assert 'class="main-svg"' in dom
    assert len(re.findall(r'<g class="trace scatter', dom)) == len(fig["data"])
    lines = [t for t in fig["data"] if t["mode"] == "lines"]
    legend_free = re.sub(r'<g class="legendlines">.*?</g>', "", dom)
    drawn = re.findall(r'<path class="js-line" d="([^"]*)"', legend_free)
    assert len(drawn) == len(lines) and all(len(p) > 20 for p in drawn)
    markers = sum(len(arr(t["x"])) for t in traces(fig, "events"))
    assert len(re.findall(r'<path class="point" transform="translate\(', dom)) == markers == 6
    assert dom.count('class="shape-group"') == len(fig["layout"]["shapes"])
    # the column name is shown as text, in the axis title and the events table
    assert ">&lt;script&gt;alert(1)&lt;/script&gt;</text>" in dom
    assert dom.count(">&lt;script&gt;alert(1)&lt;/script&gt;</td>") >= 2
    assert EVIL not in dom and "<img" not in dom
    assert len(re.findall(r"<script\b", dom)) == 3  # plotly.js, the figure, the call


HOVER = """<script>setTimeout(function () {
  var drag = document.querySelector('#h0-plot .nsewdrag'), box = drag.getBoundingClientRect();
  drag.dispatchEvent(new MouseEvent('mousemove', {clientX: box.left + 0.4 * box.width,
    clientY: box.top + 0.5 * box.height, bubbles: true}));
  var out = document.createElement('pre'); out.id = 'hovered';
  out.textContent = document.querySelector('#h0-plot .hoverlayer').textContent;
  document.body.appendChild(out);
}, 1000);</script></body>"""


def test_screenshot_shows_the_plot_with_dated_ticks_and_hover(tmp_path):
    import matplotlib.image

    page = render_html(univariate())
    dom = chromium(tmp_path / "dom", page.replace("</body>", HOVER), "--dump-dom").stdout
    ticks = re.findall(r'data-unformatted="([^"]*)"', dom)
    assert any("2013" in t for t in ticks) and any("2014" in t for t in ticks), ticks
    # a mouse over the first panel: the timestamp (with its year), the value and the score
    hovered = re.search(r'<pre id="hovered">(.*?)</pre>', dom, re.S).group(1)
    assert re.fullmatch(
        r"201[34]-\d\d-\d\d \d\d:\d\d:\d\dtemperature -?[\d.]+score [\d.]+", hovered
    ), hovered
    chromium(tmp_path, page, f"--screenshot={tmp_path / 'shot.png'}")
    rgb = matplotlib.image.imread(tmp_path / "shot.png")[..., :3]
    assert rgb.shape[:2] == (1000, 1400)
    ink = (rgb < 0.9).any(axis=-1).mean()
    assert ink > 0.03, f"only {ink:.1%} of the screenshot is not white"
    red = (rgb[..., 0] > 0.7) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)  # markers, threshold
    assert red.sum() > 50
    blue = np.abs(rgb - np.array([0x1F, 0x3B, 0x73]) / 255).max(axis=-1) < 0.08  # the value line
    assert blue.sum() > 200
