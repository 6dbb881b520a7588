"""The Loki stand-in's LogQL: what world scenarios answer to an engine's log queries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiops_eval import logql
from aiops_eval.world import LogLine, Stream, World
from aiops_eval.world_replay import WorldLogs, parse_loki_time

DELIVERED = 1_800_000_000.0


def _logs() -> WorldLogs:
    nginx = [
        LogLine(-250 + i * 10, f'{{"status":{500 if i % 4 == 0 else 200},"uri":"/a{i}"}}')
        for i in range(25)
    ]
    nginx.append(LogLine(-5, "2026/12/01 10:00:00 [error] 29#29: upstream timed out"))
    app = [
        LogLine(-120, "{ts} INFO starting version=2.15.0"),
        LogLine(-60, 'level=warn msg="lookup db on 127.0.0.11:53: no such host" attempt=1'),
        LogLine(-30, 'level=info msg="exiting" code=3'),
    ]
    world = World(
        datetime.fromtimestamp(DELIVERED, UTC),
        streams=[
            Stream({"container": "nginx", "service": "nginx"}, nginx),
            Stream({"container": "app", "service": "app"}, app),
        ],
    )
    return WorldLogs(world, DELIVERED)


def _range(logs: WorldLogs, query: str, **extra: str) -> tuple[int, dict[str, Any]]:
    params = {"query": query, "start": str(DELIVERED - 600), "end": str(DELIVERED + 1)}
    return logs.answer("/loki/api/v1/query_range", {**params, **extra})


def _lines(body: dict[str, Any]) -> list[str]:
    return [line for s in body["data"]["result"] for _, line in s["values"]]


def test_selectors_and_line_filters_pick_lines_as_loki_does() -> None:
    logs = _logs()
    status, body = _range(logs, '{service=~"ng.*"} |= "error" != "timed in" |~ "up(stream)?"')
    assert status == 200 and body["data"]["resultType"] == "streams"
    assert _lines(body) == ["2026/12/01 10:00:00 [error] 29#29: upstream timed out"]
    _, body = _range(logs, '{container="app"} !~ "INFO"')
    assert len(_lines(body)) == 2  # case-sensitive, as RE2
    _, body = _range(logs, '{container="app"} !~ "(?i)INFO"')
    assert len(_lines(body)) == 1


def test_placeholders_take_the_replay_time_and_entries_carry_nanoseconds() -> None:
    _, body = _range(_logs(), '{container="app"} |= "version"')
    ((ns, line),) = body["data"]["result"][0]["values"]
    assert int(ns) == int((DELIVERED - 120) * 1e9)
    assert line.startswith(datetime.fromtimestamp(DELIVERED - 120, UTC).strftime("%Y-%m-%dT%H:%M"))


def test_limit_applies_across_streams_newest_first() -> None:
    _, body = _range(_logs(), '{service=~".+"}', limit="3")
    assert len(_lines(body)) == 3
    assert "[error]" in "".join(_lines(body))  # the newest line (-5 s) is among them
    _, body = _range(_logs(), '{service=~".+"}', limit="3", direction="forward")
    assert all("/a0" in line or "/a1" in line or "/a2" in line for line in _lines(body))


def test_parsers_and_label_filters() -> None:
    logs = _logs()
    _, body = _range(logs, '{container="nginx"} | json | __error__="" | status >= 500')
    assert len(_lines(body)) == 7  # i = 0, 4, ... 24
    assert body["data"]["result"][0]["stream"]["status"] == "500"
    _, body = _range(logs, '{container="app"} | logfmt | level="warn"')
    assert len(_lines(body)) == 1 and "no such host" in _lines(body)[0]
    _, body = _range(logs, '{container="app"} | regexp "code=(?P<code>\\\\d+)" | code="3"')
    assert len(_lines(body)) == 1


def test_the_nginx_5xx_rule_evaluates_like_loki() -> None:
    rule = (
        '(sum by (service, container) (count_over_time({service="nginx"} | json | __error__=""'
        ' | status >= 500 [5m])) / sum by (service, container) (count_over_time({service="nginx"}'
        ' | json | __error__="" | status > 0 [5m]))) > 0.05 and sum by (service, container)'
        ' (count_over_time({service="nginx"} | json | __error__="" | status >= 500 [5m])) > 5'
    )
    status, body = _logs().answer("/loki/api/v1/query", {"query": rule, "time": str(DELIVERED)})
    assert status == 200 and body["data"]["resultType"] == "vector"
    ((sample,),) = [body["data"]["result"]]
    assert sample["metric"] == {"container": "nginx", "service": "nginx"}
    assert float(sample["value"][1]) == pytest.approx(7 / 25)


def test_a_metric_range_query_steps_through_the_window() -> None:
    _, body = _range(
        _logs(),
        'sum(rate({container="nginx"} |= "500" [1m]))',
        step="60",
        start=str(DELIVERED - 300),
    )
    assert body["data"]["resultType"] == "matrix"
    values = body["data"]["result"][0]["values"]
    # No point where the window holds no line (the first line is at -250 s), as in Loki.
    assert [v[0] for v in values] == [DELIVERED - 240 + 60 * i for i in range(5)]


def test_what_loki_refuses_or_the_stand_in_cannot_do_is_a_400_that_is_recorded() -> None:
    logs = _logs()
    status, body = logs.answer("/loki/api/v1/query", {"query": '{container="app"}'})
    assert status == 400 and "instant query" in body["error"]
    assert _range(logs, '{container=""}')[0] == 400
    status, body = _range(logs, '{container="app"} | line_format "{{.msg}}"')
    assert status == 400 and logs.unsupported == [
        ('{container="app"} | line_format "{{.msg}}"', "the line_format stage")
    ]
    with pytest.raises(logql.LogQLError):
        logql.parse('sum(count_over_time({a="b"}[5x]))')


def test_loki_timestamps_are_seconds_nanoseconds_or_rfc3339() -> None:
    assert parse_loki_time("1800000000", 0) == 1_800_000_000
    assert parse_loki_time("1800000000.5", 0) == 1_800_000_000.5
    assert parse_loki_time("1800000000000000000", 0) == 1_800_000_000
    assert parse_loki_time("2027-01-15T08:00:00Z", 0) == 1_800_000_000
    assert parse_loki_time(None, 42.0) == 42.0


def test_labels_and_series_endpoints() -> None:
    logs = _logs()
    assert logs.answer("/loki/api/v1/labels", {})[1]["data"] == ["container", "service"]
    assert logs.answer("/loki/api/v1/label/container/values", {})[1]["data"] == ["app", "nginx"]
    series = logs.answer("/loki/api/v1/series", {"match[]": '{service="app"}'})[1]["data"]
    assert series == [{"container": "app", "service": "app"}]
