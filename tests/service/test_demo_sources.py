"""The demo's Prometheus/Loki stand-in answers as those APIs would (scripts/demo_sources.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.service.apptools import REPO

sys.path.insert(0, str(REPO / "scripts"))
from demo_sources import parse_time, replaying

NOW = datetime.fromisoformat("2026-12-02T12:00:00+00:00").timestamp()
RECORDED = parse_time("2026-11-28T10:06:30Z")
SHIFT = NOW - RECORDED


@pytest.fixture
def sources() -> Iterator[tuple[httpx.Client, list[str]]]:
    with replaying(NOW) as (url, queries), httpx.Client(base_url=url, timeout=5) as client:
        yield client, queries


def query_range(client: httpx.Client, query: str, start: float, end: float, step: float) -> Any:
    params = {"query": query, "start": start, "end": end, "step": step}
    response = client.get("/api/v1/query_range", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]["result"]


def test_a_series_replays_its_recorded_values_shifted_to_now(
    sources: tuple[httpx.Client, list[str]],
) -> None:
    client, queries = sources
    down = parse_time("2026-11-28T09:57:25Z") + SHIFT
    [series] = query_range(client, 'nginx_up{instance="x"}', down - 120, down + 120, 60)
    assert series["metric"]["job"] == "nginx-exporter"
    assert [v for _, v in series["values"]] == ["1.0", "1.0", "0.0", "0.0", "0.0"]
    assert queries == ['nginx_up{instance="x"}']


def test_a_trailing_comparison_keeps_only_the_points_where_it_holds(
    sources: tuple[httpx.Client, list[str]],
) -> None:
    client, _ = sources
    down = parse_time("2026-11-28T09:57:25Z") + SHIFT
    [series] = query_range(client, "nginx_up == 0", down - 120, down + 120, 60)
    assert [float(v) for _, v in series["values"]] == [0.0, 0.0, 0.0]
    assert series["values"][0][0] >= down
    assert query_range(client, "nginx_up == 5", down - 120, down + 120, 60) == []
    assert query_range(client, "never_recorded_metric", down - 120, down, 60) == []


def test_loki_lines_are_filtered_by_time_limited_and_newest_first(
    sources: tuple[httpx.Client, list[str]],
) -> None:
    client, _ = sources
    start = int((parse_time("2026-11-28T09:50:00Z") + SHIFT) * 1e9)
    end = int((parse_time("2026-11-28T10:00:00Z") + SHIFT) * 1e9)
    params: dict[str, Any] = {
        "query": '{container="checkout-api"}',
        "start": start,
        "end": end,
        "limit": 2,
        "direction": "backward",
    }
    [stream] = client.get("/loki/api/v1/query_range", params=params).json()["data"]["result"]
    assert stream["stream"]["container"] == "checkout-api"
    times = [int(ns) for ns, _ in stream["values"]]
    assert len(times) == 2 and times == sorted(times, reverse=True)
    assert all(start <= ns <= end for ns in times)
    assert stream["values"][0][1].startswith("FATAL")


def test_bad_parameters_get_a_400_like_prometheus(
    sources: tuple[httpx.Client, list[str]],
) -> None:
    client, _ = sources
    response = client.get("/api/v1/query_range", params={"query": "up", "start": "x"})
    assert response.status_code == 400 and response.json()["status"] == "error"
    assert client.get("/api/v1/labels").status_code == 404
