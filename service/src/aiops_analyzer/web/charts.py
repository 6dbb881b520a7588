"""Evidence series as inline SVG, drawn on the server: no script, no CDN, works offline.

One chart per Prometheus evidence item: a line per series, the alert's threshold or limit as a
dashed line, and the moment the alert started as a vertical marker. Colours come from the
page's stylesheet (classes, not inline styles), so the strict CSP holds and dark mode applies.
Every text that reaches the SVG (series labels come from alert labels) is escaped.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup, escape

from aiops_analyzer.evidence.series import fmt

WIDTH, HEIGHT = 560, 250
LEFT, RIGHT, TOP, BOTTOM = 62, 14, 26, 26
MAX_SERIES = 5


@dataclass(frozen=True)
class Series:
    label: str
    points: list[tuple[float, float]]  # (unix seconds, value), sorted by time


@dataclass(frozen=True)
class Chart:
    title: str
    series: list[Series]
    threshold: float | None = None  # a dashed line: the alert's threshold or a limit
    threshold_label: str = ""
    alert_start: float | None = None  # unix seconds
    # The x axis (unix seconds); default: the points' own span. A page gives every chart the
    # same span, the evidence window, so a series that only exists late is seen to start late.
    time_span: tuple[float, float] | None = None

    @property
    def drawable(self) -> bool:
        return any(any(math.isfinite(v) for _, v in s.points) for s in self.series)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M")


def _value_range(chart: Chart) -> tuple[float, float]:
    values = [v for s in chart.series for _, v in s.points if math.isfinite(v)]
    if chart.threshold is not None and math.isfinite(chart.threshold):
        values.append(chart.threshold)
    low, high = min(values), max(values)
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.08
    # A chart of values that never go below 0 keeps 0 as its floor (ratios, counts).
    floor = 0.0 if low >= 0 and low - pad < 0 else low - pad
    return floor, high + pad


def _time_range(chart: Chart) -> tuple[float, float]:
    times = [t for s in chart.series for t, _ in s.points]
    if chart.time_span is not None:
        times += list(chart.time_span)
    if chart.alert_start is not None:
        times.append(chart.alert_start)
    start, end = min(times), max(times)
    return (start, end) if end > start else (start - 60, end + 60)


def _typical_step(points: list[tuple[float, float]]) -> float:
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(points) if b[0] > a[0]]
    return statistics.median(gaps) if gaps else 0.0


def _path(points: list[tuple[float, float]], x: object, y: object) -> str:
    """Line segments; a NaN or a missing step (a gap over 1.5 steps) lifts the pen."""
    step = _typical_step(points)
    parts: list[str] = []
    previous: float | None = None
    for ts, value in points:
        if not math.isfinite(value):
            previous = None
            continue
        pen = "M" if previous is None or (step and ts - previous > 1.5 * step) else "L"
        parts.append(f"{pen}{x(ts):.1f},{y(value):.1f}")  # type: ignore[operator]
        previous = ts
    return " ".join(parts)


def render_svg(chart: Chart) -> Markup:
    """The chart as an <svg> element, or an empty Markup when there is nothing to draw."""
    if not chart.drawable:
        return Markup("")
    t0, t1 = _time_range(chart)
    v0, v1 = _value_range(chart)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(ts: float) -> float:
        return LEFT + (ts - t0) / (t1 - t0) * plot_w

    def y(value: float) -> float:
        clamped = min(max(value, v0), v1)
        return TOP + (v1 - clamped) / (v1 - v0) * plot_h

    out: list[str] = []
    add = out.append
    add(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(chart.title)}" data-series="{min(len(chart.series), MAX_SERIES)}" '
        'xmlns="http://www.w3.org/2000/svg">'
    )
    add(f"<title>{escape(chart.title)}</title>")
    for n in range(5):
        value = v0 + (v1 - v0) * n / 4
        gy = y(value)
        add(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}"/>')
        add(
            f'<text class="tick" x="{LEFT - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(value))}</text>"
        )
    base = HEIGHT - BOTTOM
    add(f'<text class="tick" x="{LEFT}" y="{base + 16}">{_clock(t0)}</text>')
    add(f'<text class="tick" x="{WIDTH - RIGHT}" y="{base + 16}" text-anchor="end">')
    add(f"{_clock(t1)} UTC</text>")
    if chart.alert_start is not None:
        ax = x(chart.alert_start)
        add(
            f'<line class="alert-start" x1="{ax:.1f}" x2="{ax:.1f}" y1="{TOP}" y2="{base}">'
            f"<title>alert started {_clock(chart.alert_start)} UTC</title></line>"
        )
        anchor = "end" if ax > LEFT + plot_w * 0.7 else "start"
        dx = -4 if anchor == "end" else 4
        add(
            f'<text class="marker-label" x="{ax + dx:.1f}" y="{TOP - 8}" '
            f'text-anchor="{anchor}">fired {_clock(chart.alert_start)}</text>'
        )
    for n, series in enumerate(chart.series[:MAX_SERIES]):
        d = _path(series.points, x, y)
        if d:
            add(f'<path class="line s{n}" d="{d}"><title>{escape(series.label)}</title></path>')
    if chart.threshold is not None and math.isfinite(chart.threshold):
        ty = y(chart.threshold)
        label = chart.threshold_label or f"threshold {fmt(chart.threshold)}"
        add(
            f'<line class="threshold" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
            f'y1="{ty:.1f}" y2="{ty:.1f}"><title>{escape(label)}</title></line>'
        )
        ly = ty - 5 if ty - 5 > TOP + 8 else ty + 14
        add(
            f'<text class="marker-label" x="{WIDTH - RIGHT - 4}" y="{ly:.1f}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    add("</svg>")
    return Markup("".join(out))  # noqa: S704 -- every interpolated text above is escaped
