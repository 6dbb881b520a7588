"""The server-side SVG charts and the evidence they are drawn from."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest
from aiops_analyzer.evidence.common import Window
from aiops_analyzer.evidence.expression import threshold
from aiops_analyzer.evidence.prometheus import typed_series
from aiops_analyzer.web.charts import HEIGHT, LEFT, TOP, WIDTH, Chart, Series, render_svg

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(chart: Chart) -> ET.Element:
    return ET.fromstring(str(render_svg(chart)))  # noqa: S314 -- our own output


def test_threshold_and_alert_start_sit_where_their_values_are() -> None:
    points = [(1000.0 + 60 * n, float(n)) for n in range(11)]  # 0..10 over 600 s
    svg = parse(Chart("cpu", [Series("{job=a}", points)], threshold=5.0, alert_start=1300.0))
    threshold = svg.find("svg:line[@class='threshold']", NS)
    start = svg.find("svg:line[@class='alert-start']", NS)
    assert threshold is not None and start is not None
    # Halfway in value and in time: both lines sit mid-plot.
    mid_x = LEFT + (WIDTH - LEFT - 14) / 2
    assert float(start.get("x1", "")) == pytest.approx(mid_x, abs=0.2)
    [path] = svg.findall("svg:path", NS)
    ys = [float(y) for y in re.findall(r",([\d.]+)", path.get("d", ""))]
    # The series rises: its y coordinate falls; the threshold is between its ends.
    assert ys[0] > float(threshold.get("y1", "")) > ys[-1]
    assert min(ys) >= TOP and max(ys) <= HEIGHT


def test_a_gap_or_nan_lifts_the_pen_and_labels_are_escaped() -> None:
    points = [(0.0, 1.0), (15.0, 2.0), (30.0, math.nan), (45.0, 2.0), (60.0, 1.0), (300.0, 3.0)]
    hostile = '{name="</title><script>alert(1)</script>"}'
    markup = str(render_svg(Chart("t<b>", [Series(hostile, points)])))
    assert "<script>" not in markup and "&lt;script&gt;" in markup and "t&lt;b&gt;" in markup
    d = ET.fromstring(markup).find("svg:path", NS)  # noqa: S314 -- our own output
    assert d is not None
    moves = d.get("d", "").split()
    # Start, after the NaN, after the 240 s gap: three strokes.
    assert [m[0] for m in moves] == ["M", "L", "M", "L", "M"]


def test_nothing_to_draw_renders_nothing() -> None:
    assert str(render_svg(Chart("empty", [Series("{}", [(1.0, math.nan)])]))) == ""
    assert str(render_svg(Chart("none", []))) == ""


def test_flat_series_still_gets_a_value_range() -> None:
    svg = parse(Chart("up", [Series("{}", [(0.0, 0.0), (60.0, 0.0)])], threshold=0.0))
    ticks = [t.text for t in svg.findall("svg:text[@class='tick']", NS)]
    assert "0" in ticks and len(set(ticks)) > 3


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("nginx_up == 0", 0.0),
        ("100 * (1 - a / b) > 90", 90.0),
        ("rate(x[5m]) >= bool 1.5e3", 1500.0),
        ("x < -2.5", -2.5),
        ("absent(up{job='a'})", None),
        ("x > y", None),
        ("(x > 5) and on() y", None),
    ],
)
def test_threshold_is_read_from_a_trailing_comparison(expr: str, expected: float | None) -> None:
    found = threshold(expr)
    assert (found[1] if found else None) == expected


def test_chart_series_keeps_few_finite_points_with_timestamps() -> None:
    values = [[1000 + n, "NaN" if n == 3 else str(n)] for n in range(1000)]
    result = [{"metric": {"job": "a"}, "values": values}, {"metric": {"job": "b"}, "values": []}]
    window = Window(datetime.fromtimestamp(1000, UTC), datetime.fromtimestamp(2000, UTC))
    [series] = typed_series(result, window, {})
    assert series.labels == {"job": "a"}
    assert 100 <= len(series.points) <= 120
    assert all(math.isfinite(v) for _, v in series.points)
    assert series.points[0] == (1000.0, 0.0)
