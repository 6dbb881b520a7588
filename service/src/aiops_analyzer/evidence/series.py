"""A time series in one line: min/max/last, its shape, and how to read that line back.

Prometheus evidence is text (engines and prompts read it), but the rules engine also wants
the numbers. Both sides use this module, so the format is defined once:

    - {labels} last=0.99 min=0.35 max=0.99 trend=rising drops=3 points: -30m=0.62, ...

Shape words: ``rising``/``falling``/``flat`` compare the first and last third;
``oscillating`` means the direction changes at least every other step (a value hovering
around a level). ``drops=N`` counts sharp falls of more than half the range (a process
restarting, a cache flushed); ``runs=N`` counts separate stretches with data, which for an
alert expression means the condition held intermittently (a flapping alert).
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

# Moves smaller than this share of the range are noise for the direction count.
NOISE_SHARE = 0.02


@dataclass(frozen=True)
class SeriesStats:
    labels: str
    last: float
    min: float
    max: float
    trend: str
    drops: int = 0
    runs: int = 1


def describe(labels: str, points: list[tuple[float, float]], step: float) -> SeriesStats:
    values = [v for _, v in points]
    finite = [v for v in values if math.isfinite(v)] or values
    return SeriesStats(
        labels=labels,
        last=values[-1],
        min=min(finite),
        max=max(finite),
        trend=_trend(finite),
        drops=_drops(finite),
        runs=_runs(points, step),
    )


def _trend(values: list[float]) -> str:
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        return "single point" if len(values) < 2 else "flat"
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
    if not all(math.isfinite(v) for v in values) or _oscillating(values):
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


def fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def render(stats: SeriesStats, sample: str) -> str:
    shape = f"trend={stats.trend}"
    if stats.drops:
        shape += f" drops={stats.drops}"
    if stats.runs > 1:
        shape += f" runs={stats.runs}"
    return (
        f"- {stats.labels} last={fmt(stats.last)} min={fmt(stats.min)} max={fmt(stats.max)} "
        f"{shape} points: {sample}"
    )


_TITLE = re.compile(r"^(?P<title>.*): \d+ series over ")
_LINE = re.compile(
    r"^- (?P<labels>\{.*?\}) last=(?P<last>\S+) min=(?P<min>\S+) max=(?P<max>\S+) "
    r"trend=(?P<trend>single point|\w+)(?: drops=(?P<drops>\d+))?(?: runs=(?P<runs>\d+))?"
)


def parse_summary(text: str) -> tuple[str, list[SeriesStats]]:
    """(title, series) from a summary written by ``render``; ("", []) for other text."""
    lines = text.splitlines()
    title = _TITLE.match(lines[0]) if lines else None
    if not title:
        return "", []
    series = []
    for line in lines[1:]:
        m = _LINE.match(line)
        if m:
            series.append(
                SeriesStats(
                    labels=m["labels"],
                    last=float(m["last"]),
                    min=float(m["min"]),
                    max=float(m["max"]),
                    trend=m["trend"],
                    drops=int(m["drops"] or 0),
                    runs=int(m["runs"] or 1),
                )
            )
    return title["title"], series
