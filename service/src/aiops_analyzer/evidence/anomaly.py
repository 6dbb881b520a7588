"""Robust statistics on one short series: level shift (change point), slope, spread.

A 30-minute window holds about 60 points, so exact scans are cheap: the best single split
is found over every index with prefix sums (O(n)), and the slope is Theil-Sen (the median of
pairwise slopes, O(n^2) on at most 120 points), which a few outliers cannot tilt. A library
such as ``ruptures`` solves the multi-change-point problem on long signals, at the price of
numpy and scipy in the image; one split on a short window does not need it.
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

# A split must leave at least this many points on each side to count as a new level.
MIN_SEGMENT = 3
# A level shift must explain this share of the variance a straight line leaves; otherwise
# the series is a ramp (a trend), not a step.
STEP_BEATS_LINE = 0.5
# The two levels must differ by this many robust standard deviations of the noise.
MIN_SHIFT_SIGMAS = 4.0


@dataclass(frozen=True)
class Shift:
    index: int  # first point of the new level
    before: float
    after: float


def median(values: list[float]) -> float:
    return statistics.median(values)


def noise_sigma(values: list[float]) -> float:
    """Robust noise level: MAD of first differences (insensitive to steps and ramps)."""
    diffs = [b - a for a, b in itertools.pairwise(values)]
    if not diffs:
        return 0.0
    centre = statistics.median(diffs)
    mad = statistics.median(abs(d - centre) for d in diffs)
    return 1.4826 * mad / math.sqrt(2)


def theil_sen_slope(points: list[tuple[float, float]]) -> float:
    """Median slope over all pairs (value per second); 0 for fewer than two points."""
    slopes = [
        (v2 - v1) / (t2 - t1)
        for (t1, v1), (t2, v2) in itertools.combinations(points, 2)
        if t2 != t1
    ]
    return statistics.median(slopes) if slopes else 0.0


def kendall_tau(points: list[tuple[float, float]]) -> float:
    """How monotonic a series is, -1 (always falling) to 1 (always rising); 0 for fewer than
    two points. Unlike a start-to-end comparison it sees a slow, steady climb near a
    ceiling (86% -> 94% of a limit) as clearly as a steep one."""
    concordant = discordant = 0
    for (t1, v1), (t2, v2) in itertools.combinations(points, 2):
        if t2 == t1 or v2 == v1:
            continue
        if (v2 > v1) == (t2 > t1):
            concordant += 1
        else:
            discordant += 1
    pairs = len(points) * (len(points) - 1) // 2
    return (concordant - discordant) / pairs if pairs else 0.0


def _line_sse(points: list[tuple[float, float]]) -> float:
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var_t = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    slope = cov / var_t if var_t else 0.0
    return sum((v - mean_v - slope * (t - mean_t)) ** 2 for t, v in points)


def level_shift(points: list[tuple[float, float]]) -> Shift | None:
    """The single most significant step in the level, or None when the series has none."""
    values = [v for _, v in points]
    n = len(values)
    if n < 2 * MIN_SEGMENT:
        return None
    prefix = [0.0, *itertools.accumulate(values)]
    prefix_sq = [0.0, *itertools.accumulate(v * v for v in values)]

    def sse(lo: int, hi: int) -> float:
        count = hi - lo
        total = prefix[hi] - prefix[lo]
        return (prefix_sq[hi] - prefix_sq[lo]) - total * total / count

    best_index, best_sse = 0, math.inf
    for k in range(MIN_SEGMENT, n - MIN_SEGMENT + 1):
        cost = sse(0, k) + sse(k, n)
        if cost < best_sse:
            best_index, best_sse = k, cost
    before = median(values[:best_index])
    after = median(values[best_index:])
    scale = max(abs(before), abs(after), 1e-12)
    if abs(after - before) < 0.05 * scale:
        return None
    sigma = noise_sigma(values)
    if sigma > 0 and abs(after - before) < MIN_SHIFT_SIGMAS * sigma:
        return None
    if best_sse > STEP_BEATS_LINE * _line_sse(points):
        return None  # a straight line explains the data about as well: a ramp
    return Shift(best_index, before, after)
