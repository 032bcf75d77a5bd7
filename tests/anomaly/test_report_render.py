"""The report renderers (report.html and report.png) on hand-built ReportData."""

from __future__ import annotations

import base64
import json
import re
import struct

import numpy as np
import pandas as pd
import pytest

from h0.anomaly._html import decimate, merge_runs, render_html, runs, shown_channels
from h0.anomaly._png import png_size, render_png, title
from h0.anomaly._reportdata import Event, ReportData

EVIL = "<script>alert(1)</script>"


def univariate() -> ReportData:
    """300 points at 5 min (UTC), one event in training, two after, two known windows."""
    n = 300
    times = pd.date_range("2013-12-31 20:00", periods=n, freq="5min", tz="UTC")
    rng = np.random.default_rng(0)
    values = (80 + np.cumsum(rng.normal(size=n)))[:, None]
    scores = np.abs(rng.normal(size=n)) * 0.1
    for row, s in [(20, 0.8), (150, 0.9), (151, 0.7), (260, 0.95)]:
        scores[row] = s
    labels = scores >= 0.6
    events = [Event(20, 20, 20, 0.8), Event(150, 151, 150, 0.9), Event(260, 260, 260, 0.95)]
    evaluation = {
        "windows": [
            {
                "start": str(times[140]),
                "end": str(times[160]),
                "detected": True,
                "first_alarm": str(times[150]),
                "in_training": False,
            },
            {
                "start": 200,
                "end": 220,
                "detected": False,
                "first_alarm": None,
                "in_training": False,
            },
        ],
        "false_alarms": 2,
        "false_alarms_after_training": 1,
    }
    return ReportData(
        title="machine_temperature.csv",
        times=times,
        values=values,
        columns=["temperature"],
        scores=scores,
        channel_scores=None,
        threshold=0.6,
        labels=labels,
        events=events,
        n_train=60,
        known_windows=[(140, 160), (200, 220)],
        evaluation=evaluation,
        settings={"model": {"hidden": 32, "window": 64}, "seed": 0, "note": "a < b & c"},
    )


def multivariate(c: int = 3, n: int = 400) -> ReportData:
    """Row-numbered, ``c`` channels, column 1 named like an attack, events on channels 1 and 2."""
    rng = np.random.default_rng(1)
    values = np.cumsum(rng.normal(size=(n, c)), axis=0)
    channel_scores = np.abs(rng.normal(size=(n, c))) * 0.1
    channel_scores[100, 1 % c] = 0.9
    channel_scores[300, 2 % c] = 0.8
    channel_scores[10, 0] = 0.7
    scores = channel_scores.max(axis=1)
    columns = [f"sensor {i}" for i in range(c)]
    columns[1 % c] = EVIL
    events = [
        Event(10, 10, 10, 0.7, 0),
        Event(100, 101, 100, 0.9, 1 % c),
        Event(300, 300, 300, 0.8, 2 % c),
    ]
    return ReportData(
        title='<img src=x onerror="alert(2)">.csv',
        times=None,
        values=values,
        columns=columns,
        scores=scores,
        channel_scores=channel_scores,
        threshold=0.5,
        labels=scores >= 0.5,
        events=events,
        n_train=50,
        known_windows=[],
        evaluation=None,
        settings={EVIL: EVIL},
    )


def figure_of(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="h0-figure">(.*?)</script>', page, re.S)
    assert m, "no figure JSON in the page"
    return json.loads(m.group(1))


def arr(v) -> np.ndarray:
    """A plotly array: a list, or a base64 typed array {dtype, bdata[, shape]}."""
    if isinstance(v, dict):
        out = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        if "shape" in v:
            out = out.reshape([int(s) for s in str(v["shape"]).split(",")])
        return out
    return np.asarray(v, float)


def traces(fig: dict, kind: str, **meta) -> list[dict]:
    return [
        t
        for t in fig["data"]
        if t["meta"]["kind"] == kind and all(t["meta"].get(k) == v for k, v in meta.items())
    ]


def ms(times: pd.DatetimeIndex) -> np.ndarray:
    return (times.tz_convert("UTC").tz_localize(None) - pd.Timestamp(0)) / pd.Timedelta(1, "ms")


def page_without_plotlyjs(page: str) -> str:
    """The page less the inlined plotly.js bundle (whose own text we do not check)."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    assert page.count(js) == 1
    return page.replace(js, "PLOTLY")


def png_dims(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


# --- report.html ---------------------------------------------------------------------------------


def test_univariate_figure_holds_every_point_and_the_threshold():
    d = univariate()
    fig = figure_of(render_html(d))
    (line,) = traces(fig, "values", channel=0)
    np.testing.assert_allclose(arr(line["x"]), ms(d.times))
    np.testing.assert_allclose(arr(line["y"]), d.values[:, 0])
    custom = arr(line["customdata"])
    np.testing.assert_allclose(custom[:, 0], d.scores)  # hover shows the score
    assert "%{customdata[0]" in line["hovertemplate"]
    (score,) = traces(fig, "score")
    np.testing.assert_allclose(arr(score["y"]), d.scores)
    (thr,) = traces(fig, "threshold")
    assert arr(thr["y"]).tolist() == [0.6, 0.6]
    assert fig["layout"]["xaxis"]["type"] == "date"
    assert fig["layout"]["xaxis"]["matches"] == "x2"  # one shared x axis
    assert line["yaxis"] != score["yaxis"]  # a panel each
    step = 5 * 60 * 1000
    bottom = fig["layout"]["xaxis2"]
    assert bottom["range"] == pytest.approx([ms(d.times)[0] - step / 2, ms(d.times)[-1] + step / 2])
    assert bottom["title"]["text"] == "time (UTC)"


def test_naive_timestamps_are_drawn_as_given():
    d = univariate()
    naive = d.times.tz_localize(None) + pd.Timedelta(hours=1)
    fig = figure_of(render_html(ReportData(**{**d.__dict__, "times": naive})))
    (line,) = traces(fig, "values", channel=0)
    np.testing.assert_allclose(arr(line["x"]), ms(d.times) + 3_600_000)
    assert fig["layout"]["xaxis2"]["title"]["text"] == "time"


def test_event_markers_sit_at_each_onset_on_the_raising_channel_and_the_score_panel():
    d = univariate()
    fig = figure_of(render_html(d))
    x = ms(d.times)
    (line,) = traces(fig, "values", channel=0)
    (score,) = traces(fig, "score")
    for training, rows in [(False, [150, 260]), (True, [20])]:
        (on_channel,) = traces(fig, "events", channel=0, training=training)
        np.testing.assert_allclose(arr(on_channel["x"]), x[rows])
        np.testing.assert_allclose(arr(on_channel["y"]), d.values[rows, 0])
        assert on_channel["yaxis"] == line["yaxis"]
        (on_score,) = traces(fig, "events", channel=None, training=training)
        np.testing.assert_allclose(arr(on_score["y"]), d.scores[rows])
        assert on_score["yaxis"] == score["yaxis"]
        assert on_channel["marker"]["symbol"] == (
            "triangle-down-open" if training else "triangle-down"
        )


def test_multivariate_gets_one_panel_per_channel_and_markers_on_the_raising_channel():
    d = multivariate()
    fig = figure_of(render_html(d))
    lines = traces(fig, "values")
    assert [t["meta"]["channel"] for t in lines] == [0, 1, 2]
    assert len({t["yaxis"] for t in lines}) == 3
    for t in lines:
        assert len(arr(t["y"])) == 400
        np.testing.assert_allclose(arr(t["x"]), np.arange(400))
        c = t["meta"]["channel"]
        np.testing.assert_allclose(arr(t["customdata"])[:, 1], d.channel_scores[:, c])
    for ev in d.events:
        training = ev.start < d.n_train
        (marker,) = traces(fig, "events", channel=ev.channel, training=training)
        assert arr(marker["x"]).tolist() == [ev.start]
        assert marker["yaxis"] == lines[ev.channel]["yaxis"]
    assert arr(traces(fig, "events", channel=None, training=False)[0]["x"]).tolist() == [100, 300]
    assert "xaxis" not in fig["layout"] or fig["layout"]["xaxis"].get("type") != "date"


def test_shaded_training_windows_and_flagged_runs():
    d = univariate()
    shapes = figure_of(render_html(d))["layout"]["shapes"]
    by = {}
    for s in shapes:
        by.setdefault(s["name"], []).append(s)
    x = ms(d.times)
    step = 5 * 60 * 1000
    (train,) = by["training part"]
    assert train["x0"] == pytest.approx(x[0] - step / 2)
    assert train["x1"] == pytest.approx(x[59] + step / 2)
    assert [(s["x0"] + step / 2, s["x1"] - step / 2) for s in by["known anomaly window"]] == [
        pytest.approx((x[a], x[b])) for a, b in d.known_windows
    ]
    flagged = by["flagged by predict"]
    assert len(flagged) == len(runs(d.labels)) == 3
    assert [s["showlegend"] for s in flagged] == [True, False, False]
    assert all(s["yref"] == "paper" for s in shapes)  # across every panel


def test_user_text_is_escaped_in_the_page_and_in_the_figure():
    d = multivariate()
    page = render_html(d)
    rest = page_without_plotlyjs(page)
    assert "<script>alert" not in rest and "<img" not in rest
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rest  # tables, escaped
    assert "<title>h0 detect: &lt;img src=x onerror=&quot;alert(2)&quot;&gt;.csv</title>" in rest
    raw = re.search(r'id="h0-figure">(.*?)</script>', page, re.S).group(1)
    assert "<" not in raw  # the JSON cannot close its <script>
    fig = figure_of(page)
    yaxis = fig["layout"]["yaxis2"]["title"]["text"]  # channel 1's panel
    assert yaxis.startswith("&lt;script&gt;alert(1)")  # plotly shows entities as text
    assert all("<script" not in t.get("name", "") for t in fig["data"])


def test_percent_in_a_column_name_is_not_a_hover_template_field():
    d = multivariate()
    d = ReportData(**{**d.__dict__, "columns": ["a%{y}", "b", "c"]})
    (line,) = traces(figure_of(render_html(d)), "values", channel=0)
    assert line["hovertemplate"].startswith("a&#37;{y}")


def test_works_offline():
    page = render_html(univariate())
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert not re.search(r"<link\b", page, re.I)
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js inlined


def test_summary_and_tables():
    d = univariate()
    rest = page_without_plotlyjs(render_html(d))
    assert (
        "300 points, the first 60 used for training; threshold 0.6; 4 points flagged "
        "(3 after training); 3 alarm events (2 after training, 1 in training)."
    ) in rest
    events = re.search(r"<h2>Alarm events</h2>\s*<table>(.*?)</table>", rest, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", events)
    assert len(rows) == 1 + 3
    assert (
        "<td>2</td><td>2014-01-01 08:30:00+00:00</td><td>2014-01-01 08:35:00+00:00</td>"
        "<td>2014-01-01 08:30:00+00:00</td><td>0.900</td><td>temperature</td><td>no</td>"
    ) in rows[2]
    assert rows[1].endswith("<td>yes</td>")  # the event in training
    windows = re.search(r"<h2>Known anomaly windows</h2>\s*<table>(.*?)</table>", rest, re.S)
    cells = re.findall(r"<td>(.*?)</td>", windows.group(1))
    assert cells[:5] == [str(d.times[140]), str(d.times[160]), "yes", str(d.times[150]), "no"]
    assert cells[5:] == [str(d.times[200]), str(d.times[220]), "no", "", "no"]  # rows as times
    assert "1 false alarm after training (2 in all;" in rest
    assert "<td>model.hidden</td><td>32</td>" in rest
    assert "<td>note</td><td>a &lt; b &amp; c</td>" in rest


def test_long_series_are_decimated_but_keep_spikes_and_exact_events():
    n = 20_000
    d = multivariate(c=1, n=n)
    values = d.values.copy()
    values[12_345, 0] = 1e3
    d = ReportData(**{**d.__dict__, "values": values, "columns": ["v"]})
    page = render_html(d, max_points=2_000)
    fig = figure_of(page)
    (line,) = traces(fig, "values", channel=0)
    x = arr(line["x"])
    assert len(x) <= 2_002 and 12_345 in x and x[0] == 0 and x[-1] == n - 1
    np.testing.assert_allclose(arr(line["y"]), values[x.astype(int), 0])
    np.testing.assert_allclose(arr(line["customdata"])[:, 0], d.scores[x.astype(int)])
    markers = traces(fig, "events", channel=0)
    assert sorted(float(v) for t in markers for v in arr(t["x"])) == [10, 100, 300]
    assert "drawn from the minimum and maximum" in page


def test_many_channels_show_the_highest_scoring_and_say_so():
    d = multivariate(c=9)
    cs = d.channel_scores.copy()
    cs[5, [4, 7]] = 2.0
    d = ReportData(**{**d.__dict__, "channel_scores": cs})
    assert shown_channels(d, 4) == [1, 2, 4, 7]
    page = render_html(d, max_panels=4)
    assert [t["meta"]["channel"] for t in traces(figure_of(page), "values")] == [1, 2, 4, 7]
    assert "Showing 4 of 9 channels" in page
    assert "Showing" not in page_without_plotlyjs(render_html(multivariate(c=3)))


def test_no_events_no_training_no_windows():
    d = univariate()
    d = ReportData(
        **{**d.__dict__, "events": [], "n_train": 0, "known_windows": [], "evaluation": None}
    )
    page = render_html(d)
    fig = figure_of(page)
    assert not traces(fig, "events")
    assert "No alarm events." in page and "Known anomaly windows" not in page


def test_runs_and_merge_runs():
    assert runs(np.array([1, 1, 0, 1], bool)) == [(0, 1), (3, 3)]
    assert runs(np.zeros(3, bool)) == []
    assert merge_runs([(0, 0), (5, 5), (7, 7), (20, 21)], 2) == [(0, 7), (20, 21)]
    assert merge_runs([(0, 0)], 5) == [(0, 0)]
    y = np.sin(np.arange(10_000) / 50)
    rows = decimate(y, 100)
    assert len(rows) <= 102 and y[rows].max() == y.max() and y[rows].min() == y.min()


# --- report.png ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "panels"), [(univariate, 1), (multivariate, 3), (lambda: multivariate(c=9), 6)]
)
def test_png_is_written_at_its_size(tmp_path, make, panels):
    path = tmp_path / "report.png"
    render_png(make(), path)
    assert png_dims(path) == png_size(panels)


def test_png_title_counts_from_evaluation_and_training_events_apart():
    d = univariate()
    text = title(d, 1)
    assert text.splitlines() == [
        "h0 detect: machine_temperature.csv",
        "2 alarm events after training (+1 in training, hollow); 1 of 2 known windows "
        "after training detected; 1 false alarm after training (2 in all)",
    ]
    wide = ReportData(**{**d.__dict__, "columns": ["v"] * 9})
    assert title(wide, 6).splitlines()[1:] == [
        "2 alarm events after training (+1 in training, hollow); 1 of 2 known windows "
        "after training detected; 1 false alarm after training (2 in all);",
        "showing 6 of 9 channels (highest channel scores)",
    ]
    assert r"\$" in title(ReportData(**{**d.__dict__, "title": "a$b$.csv"}), 1)  # no mathtext


def test_png_draws_the_time_axis_with_years(tmp_path, monkeypatch):
    import matplotlib.figure

    seen = {}
    save = matplotlib.figure.Figure.savefig

    def spy(self, *args, **kw):
        save(self, *args, **kw)
        axes = self.axes
        seen["ticks"] = [t.get_text() for t in axes[-1].get_xticklabels()]
        seen["xlabel"] = axes[-1].get_xlabel()
        seen["legend_in_axes"] = [ax.get_legend() is not None for ax in axes]
        seen["hollow"] = [
            line.get_markerfacecolor()
            for ax in axes
            for line in ax.get_lines()
            if line.get_marker() == "v"
        ]

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    render_png(univariate(), tmp_path / "r.png")
    assert "01 Jan 2014" in seen["ticks"]  # the day ticks at midnight carry the year
    assert seen["xlabel"] == "time (UTC): 2013-12-31 20:00 to 2014-01-01 20:55"
    legend = seen["legend_in_axes"]
    assert legend == [True, False]  # one legend, anchored above the first panel
    assert seen["hollow"].count("none") == 2  # the training event, on both panels


def test_thousands_of_flagged_runs_are_drawn_as_at_most_500_bands():
    d = multivariate(c=1, n=20_000)
    labels = np.zeros(20_000, bool)
    labels[::7] = True
    d = ReportData(**{**d.__dict__, "labels": labels, "columns": ["v"]})
    page = render_html(d)
    flagged = [s for s in figure_of(page)["layout"]["shapes"] if s["name"] == "flagged by predict"]
    assert len(flagged) == 500
    assert flagged[0]["x0"] < 0 and flagged[-1]["x1"] > 19_999 - 1  # first and last run kept
    assert "drawn merged into at most 500 bands" in page
