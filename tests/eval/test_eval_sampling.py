"""Recorded samples read back as Prometheus reads samples: on the step grid, with lookback."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from aiops_analyzer.evidence import gather_evidence
from aiops_eval.recorded import EvidenceBook
from aiops_eval.replay import ReplayServer
from aiops_eval.runner import evaluation_settings
from aiops_eval.sampling import (
    LOOKBACK_SECONDS,
    QueryParamError,
    evaluation_times,
    parse_step,
    parse_time,
    resample,
    value_at,
)
from aiops_eval.scenario import Scenario
from hypothesis import given
from hypothesis import strategies as st

from tests.eval.eval_helpers import make_settings

# One sample a minute, as the scenarios record them.
MINUTELY = [(1000.0 + 60 * i, str(i)) for i in range(5)]  # 1000 .. 1240


def test_points_fall_exactly_on_the_requested_grid() -> None:
    assert evaluation_times(1000, 1093, 31) == [1000, 1031, 1062, 1093]
    assert evaluation_times(1000, 1092.999, 31) == [1000, 1031, 1062]
    # Integer milliseconds: a fractional step does not drift away from the grid.
    times = evaluation_times(0, 1, 0.1)
    assert len(times) == 11 and times[-1] == 1.0
    points = resample(MINUTELY, evaluation_times(1000, 1240, 31))
    assert [ts for ts, _ in points] == [1000 + 31 * k for k in range(8)]


def test_each_point_holds_the_latest_sample_at_or_before_it() -> None:
    points = resample(MINUTELY, [999.9, 1000, 1059.9, 1060, 1061, 1239, 1240, 1241])
    assert points == [
        (1000, "0"),
        (1059.9, "0"),
        (1060, "1"),
        (1061, "1"),
        (1239, "3"),
        (1240, "4"),
        (1241, "4"),
    ]
    assert value_at(MINUTELY, 1119) == "1"
    assert value_at(MINUTELY, 999) is None  # nothing recorded yet


def test_no_point_beyond_the_five_minute_lookback() -> None:
    last = MINUTELY[-1][0]
    assert LOOKBACK_SECONDS == 300
    assert value_at(MINUTELY, last + 299.9) == "4"
    assert value_at(MINUTELY, last + 300) is None
    grid = evaluation_times(last, last + 600, 60)
    assert [ts - last for ts, _ in resample(MINUTELY, grid)] == [0, 60, 120, 180, 240]


def test_a_gap_longer_than_the_lookback_stays_a_gap() -> None:
    before = [(float(t), "1") for t in range(0, 301, 60)]  # 0 .. 300
    after = [(float(t), "1") for t in range(900, 1201, 60)]  # 900 .. 1200: 10 minutes later
    points = resample(after + before, evaluation_times(0, 1200, 30))  # any order goes in
    times = [ts for ts, _ in points]
    assert times[0] == 0 and times[-1] == 1200
    assert [b - a for a, b in itertools.pairwise(times) if b - a > 30] == [330]
    assert max(ts for ts in times if ts < 900) == 570  # 300 + lookback, exclusive


def test_a_nan_sample_is_a_value_not_a_fill_from_before() -> None:
    flapping = [(0.0, "91"), (60.0, "NaN"), (120.0, "92")]
    assert [v for _, v in resample(flapping, evaluation_times(0, 150, 30))] == [
        "91",
        "91",
        "NaN",
        "NaN",
        "92",
        "92",
    ]


@given(
    offsets=st.lists(st.integers(0, 3600), min_size=1, max_size=40, unique=True),
    start=st.integers(-600, 3600),
    length=st.integers(0, 3600),
    step=st.integers(1, 400),
)
def test_every_point_is_on_the_grid_and_is_a_recent_enough_sample(
    offsets: list[int], start: int, length: int, step: int
) -> None:
    samples = [(float(t), f"v{t}") for t in offsets]
    grid = evaluation_times(start, start + length, step)
    points = resample(samples, grid)
    assert {ts for ts, _ in points} <= set(grid)
    for at, value in points:
        sample_time = int(value[1:])
        assert 0 <= at - sample_time < LOOKBACK_SECONDS
        # No later sample that the point should have shown instead.
        assert not any(sample_time < t <= at for t in offsets)
    # A grid time is left out only when no sample is within the lookback.
    missing = set(grid) - {ts for ts, _ in points}
    assert all(not any(0 <= at - t < LOOKBACK_SECONDS for t in offsets) for at in missing)


def test_times_and_steps_parse_as_prometheus_parses_them() -> None:
    assert parse_time("start", "1763608440.5") == 1763608440.5
    assert (
        parse_time("end", "2026-11-20T03:14:00Z")
        == datetime(2026, 11, 20, 3, 14, tzinfo=UTC).timestamp()
    )
    assert [parse_step(s) for s in ("31", "0.5", "30s", "1m30s", "1h")] == [31, 0.5, 30, 90, 3600]
    for bad in ("", "-1", "0", "3x", "nan"):
        with pytest.raises(QueryParamError, match='"step"'):
            parse_step(bad)
    with pytest.raises(QueryParamError, match='"time"'):
        parse_time("time", "noon")
    with pytest.raises(QueryParamError, match='"end"'):
        evaluation_times(10, 5, 1)


async def _alert_series(scenario: Scenario) -> list[tuple[str, int]]:
    """(query title, runs) of every series the real evidence client summarised."""
    now = datetime.now(UTC)
    replayed = scenario.replayed_at(now)
    with ReplayServer() as replay:
        replay.use(EvidenceBook(replayed.evidence, now.timestamp(), replayed.shift_seconds))
        settings = evaluation_settings(
            make_settings(), engine="rules", replay_url=replay.url, llm_url=None
        )
        evidence = await gather_evidence(replayed.alert, settings)
    return [
        (item.title, series.runs)
        for item in evidence
        if item.source == "prometheus"
        for series in item.series
    ]


async def test_minutely_recordings_read_as_continuous_through_the_real_client(
    scenarios: list[Scenario],
) -> None:
    """The client asks for a ~31 s step; one point a minute must not read as separate stretches.

    Before the replay resampled, every recorded point was a stretch of its own and the rules
    engine called 15 of the 18 alerts flapping.
    """
    by_name = {s.name: s for s in scenarios}
    steady = await _alert_series(by_name["container-memory-leak"])
    assert steady and all(runs == 1 for _, runs in steady), steady
    flapping = dict(await _alert_series(by_name["flapping-cpu-threshold"]))
    assert flapping["alert expression"] > 5  # a recording that really flaps still does
