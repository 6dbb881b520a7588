"""One time series reduced to typed statistics (``SeriesStats``), and rendered as one line.

Engines reason from the typed fields; ``render`` writes the same numbers for the LLM prompt and
for people. Shape words: ``rising``/``falling``/``flat`` compare the first and last third;
``oscillating`` means the direction changes at least every other step (a value hovering around
a level). ``drops`` counts sharp falls of more than half the range (a process restarting, a
cache flushed); ``runs`` counts separate stretches with data, which for an alert expression
means the condition held intermittently (a flapping alert).
"""

from __future__ import annotations

import itertools
import math

from aiops_analyzer.evidence.anomaly import level_shift, median, theil_sen_slope
from aiops_analyzer.schemas import ChangePoint, SeriesStats, Trend

# Moves smaller than this share of the range are noise for the direction count.
NOISE_SHARE = 0.02
# Points kept per series for charts (the analysis page draws them).
MAX_POINTS = 120
# Labels that never tell series of one query apart from the alert's point of view.
_IGNORED_LABELS = frozenset({"__name__", "alertname", "severity"})


def matches(series_labels: dict[str, str], alert_labels: dict[str, str]) -> bool:
    """True when every label the series shares with the alert has the alert's value.

    A grouped delivery holds several alerts of one rule; each must be analysed with *its*
    series of the rule's expression, not with whichever series sorts first.
    """
    shared = (set(series_labels) & set(alert_labels)) - _IGNORED_LABELS
    return all(series_labels[key] == alert_labels[key] for key in shared)


def describe(
    points: list[tuple[float, float]],
    step: float,
    *,
    labels: dict[str, str] | None = None,
    alert_labels: dict[str, str] | None = None,
    limit: float | None = None,
) -> SeriesStats:
    """Statistics of one series; ``points`` are (unix seconds, value) in time order."""
    labels = labels or {}
    finite = [(t, v) for t, v in points if math.isfinite(v)]
    values = [v for _, v in finite]
    if not values:
        return SeriesStats(labels=labels, runs=0, trend="single point")
    half = values[: max(1, len(values) // 2)]
    shift = level_shift(finite)
    current = values[-1]
    return SeriesStats(
        labels=labels,
        matches_alert=matches(labels, alert_labels or {}),
        points=downsample(finite),
        current=current,
        baseline=median(half),
        peak=max(values),
        minimum=min(values),
        trend=_trend(values),
        slope_per_hour=theil_sen_slope(downsample(finite, 40)) * 3600,
        change_point=ChangePoint(at=finite[shift.index][0], before=shift.before, after=shift.after)
        if shift
        else None,
        drops=_drops(values),
        runs=_runs(points, step),
        last_seen=finite[-1][0],
        limit=limit,
        saturation=current / limit if limit else None,
    )


def downsample(
    points: list[tuple[float, float]], limit: int = MAX_POINTS
) -> list[tuple[float, float]]:
    """At most ``limit`` evenly spaced points, always keeping the last one."""
    if len(points) <= limit:
        return list(points)
    stride = math.ceil(len(points) / (limit - 1))
    return [*points[:-1:stride][: limit - 1], points[-1]]


def _trend(values: list[float]) -> Trend:
    if len(values) < 2:
        return "single point"
    if _oscillating(values):
        return "oscillating"
    third = max(1, len(values) // 3)
    first = sum(values[:third]) / third
    last = sum(values[-third:]) / third
    scale = max(abs(first), abs(last), 1e-9)
    if abs(last - first) / scale < 0.1:
        return "flat"
    return "rising" if last > first else "falling"


def _significant_moves(values: list[float]) -> list[float]:
    spread = max(values) - min(values)
    if spread <= 0:
        return []
    deltas = [b - a for a, b in itertools.pairwise(values)]
    return [d for d in deltas if abs(d) > NOISE_SHARE * spread]


def _oscillating(values: list[float]) -> bool:
    moves = _significant_moves(values)
    if len(moves) < 6:
        return False
    turns = sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0))
    return turns >= (len(moves) - 1) / 2


def _drops(values: list[float]) -> int:
    if _oscillating(values):
        return 0
    spread = max(values) - min(values)
    if spread < 0.1 * max(abs(v) for v in values):  # wiggles around a level are no drops
        return 0
    return sum(1 for d in _significant_moves(values) if d < -0.5 * spread)


def _runs(points: list[tuple[float, float]], step: float) -> int:
    """Stretches of consecutive finite points; a missing step or a NaN starts a new one."""
    runs = 0
    previous: float | None = None
    for ts, value in points:
        if not math.isfinite(value):
            previous = None
            continue
        if previous is None or ts - previous > 1.5 * step:
            runs += 1
        previous = ts
    return runs


def fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def label_text(labels: dict[str, str], limit: int = 6) -> str:
    parts = [f"{k}={str(v)[:60]}" for k, v in sorted(labels.items())][:limit]
    return "{" + ", ".join(parts) + "}"


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return "now" if seconds < 1 else f"-{seconds:.0f}s"
    return f"-{seconds / 60:.0f}m"


def render(stats: SeriesStats, end_ts: float, *, shown: int = 5) -> str:
    """One line for the prompt: labels, the numbers, the shape and a few points."""
    mark = " (this alert)" if stats.matches_alert else ""
    text = (
        f"- {label_text(stats.labels)}{mark} current={fmt(stats.current)} "
        f"baseline={fmt(stats.baseline)} peak={fmt(stats.peak)} min={fmt(stats.minimum)} "
        f"trend={stats.trend}"
    )
    if stats.trend in ("rising", "falling"):
        text += f" ({stats.slope_per_hour:+.3g}/h)"
    if stats.change_point:
        cp = stats.change_point
        text += f" level shift at {ago(end_ts - cp.at)}: {fmt(cp.before)} -> {fmt(cp.after)}"
    if stats.drops:
        text += f" drops={stats.drops}"
    if stats.runs > 1:
        text += f" runs={stats.runs}"
    if stats.limit:
        text += f" limit={fmt(stats.limit)} saturation={stats.saturation or 0:.0%}"
    sample = downsample(stats.points, shown)
    if sample:
        text += " points: " + ", ".join(f"{ago(end_ts - t)}={fmt(v)}" for t, v in sample)
    return text
