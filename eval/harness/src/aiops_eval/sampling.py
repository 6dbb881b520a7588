"""Recorded samples read back the way Prometheus reads stored samples at query time.

Prometheus answers a range query at exactly ``start, start + step, ...`` up to ``end``, and an
instant query at ``time``. At each of those times a series' value is its latest sample at or
before that time, provided the sample is younger than the lookback delta (5 minutes); a series
with no such sample has no point there. Answering with the recorded points as they are would
hand a client asking for a 31 s step one point a minute, which reads as a gap between every
two points (an alert that "flaps"). A gap longer than the lookback stays a gap, and a recorded
``NaN`` is a value like any other, so a genuinely intermittent recording still looks it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime

# Prometheus' default --query.lookback-delta.
LOOKBACK_SECONDS = 300.0
# Prometheus refuses range queries that would return more points per series than this.
MAX_POINTS_PER_SERIES = 11_000

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}

Sample = tuple[float, str]


class QueryParamError(ValueError):
    """A query parameter Prometheus would reject; the message names the parameter."""


def parse_time(name: str, raw: str) -> float:
    """Unix seconds (``1763608440.5``) or RFC 3339 (``2026-11-20T03:14:00Z``), as Prometheus."""
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise QueryParamError(
                f'invalid parameter "{name}": cannot parse "{raw}" to a valid timestamp'
            ) from None
    if not math.isfinite(value):
        raise QueryParamError(f'invalid parameter "{name}": cannot parse "{raw}" to a timestamp')
    return value


def parse_step(raw: str) -> float:
    """Seconds (``31``, ``0.5``) or a Prometheus duration (``30s``, ``1m30s``); must be > 0."""
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = list(_DURATION_PART.finditer(text))
        if not text or "".join(p.group(0) for p in parts) != text:
            raise QueryParamError(
                f'invalid parameter "step": cannot parse "{raw}" to a valid duration'
            ) from None
        seconds = sum(int(p.group(1)) * _UNIT_SECONDS[p.group(2)] for p in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise QueryParamError(
            'invalid parameter "step": zero or negative query resolution step widths are not '
            "accepted. Try a positive integer"
        )
    return seconds


def evaluation_times(start: float, end: float, step: float) -> list[float]:
    """``start, start + step, ...`` while not after ``end``, stepped in integer milliseconds
    as Prometheus does, so float rounding can neither add nor drop the last point."""
    if end < start:
        raise QueryParamError('invalid parameter "end": end timestamp must not be before start')
    start_ms, end_ms, step_ms = round(start * 1000), round(end * 1000), round(step * 1000)
    if step_ms <= 0:
        raise QueryParamError('invalid parameter "step": the step must be at least 1ms')
    if (end_ms - start_ms) // step_ms + 1 > MAX_POINTS_PER_SERIES:
        raise QueryParamError(
            f"exceeded maximum resolution of {MAX_POINTS_PER_SERIES} points per timeseries. "
            "Try decreasing the query resolution (?step=XX)"
        )
    return [ms / 1000 for ms in range(start_ms, end_ms + 1, step_ms)]


def resample(samples: Sequence[Sample], times: Sequence[float]) -> list[Sample]:
    """The series as a range query sees it: one point per evaluation time that has a value.

    ``times`` ascending (as ``evaluation_times`` gives them); one walk over both lists.
    """
    ordered = sorted(samples, key=lambda sample: sample[0])
    points: list[Sample] = []
    latest = -1  # index of the latest sample at or before the current evaluation time
    for at in times:
        while latest + 1 < len(ordered) and ordered[latest + 1][0] <= at:
            latest += 1
        # A sample exactly 5 minutes old is no longer seen (Prometheus 3; 2.x still saw it).
        if latest >= 0 and at - ordered[latest][0] < LOOKBACK_SECONDS:
            points.append((at, ordered[latest][1]))
    return points


def value_at(samples: Sequence[Sample], at: float) -> str | None:
    """What an instant query at ``at`` sees: the latest sample at or before it, if that
    sample is younger than the lookback, else nothing."""
    points = resample(samples, [at])
    return points[0][1] if points else None
