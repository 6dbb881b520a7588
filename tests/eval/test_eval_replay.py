"""Recorded evidence answered over real HTTP, as Prometheus and Loki would answer it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from aiops_eval.recorded import (
    LOG_LINE_SPACING_SECONDS,
    EvidenceBook,
    normalise_query,
    parse_log_query,
)
from aiops_eval.replay import ReplayServer
from aiops_eval.scenario import RecordedEvidence
from hypothesis import given
from hypothesis import strategies as st

ANCHOR = 1_800_000_000.0

EVIDENCE = RecordedEvidence.model_validate(
    {
        "prometheus": {
            'sum by (name) (rate(container_cpu_usage_seconds_total{name="svc-1"}[5m]))': [
                {"metric": {"name": "svc-1"}, "points": [0.1, 0.2, 0.4], "step_seconds": 30}
            ],
            "up == 0": [{"metric": {"job": "x"}, "values": [[1000, "0"], [1060, "0"]]}],
        },
        "loki": {
            '{container="svc-1"}': ["started", "error: boom", "request ok"],
            '{container="svc-2", job="edge"}': [["2026-11-20T03:00:00Z", "edge up"]],
            'sum(count_over_time({job="edge"}[5m]))': ["exact recording"],
        },
    }
)


def test_whitespace_outside_strings_does_not_matter() -> None:
    assert normalise_query("sum by (a) ( rate(x[5m]) )") == normalise_query(
        "sum by(a)(rate(x[5m]))"
    )
    assert normalise_query('x{a="b c"}') != normalise_query('x{a="bc"}')


def test_compact_points_end_at_the_anchor_and_recorded_times_shift() -> None:
    book = EvidenceBook(EVIDENCE, ANCHOR, shift=500.0)
    [(labels, samples)] = book.prometheus(
        'sum by(name)(rate(container_cpu_usage_seconds_total{name="svc-1"}[5m]))'
    )
    assert labels == {"name": "svc-1"}
    assert samples == [(ANCHOR - 60, "0.1"), (ANCHOR - 30, "0.2"), (ANCHOR, "0.4")]
    [(_, shifted)] = book.prometheus("up==0")
    assert [ts for ts, _ in shifted] == [1500.0, 1560.0]


def test_unknown_queries_are_empty_and_noted() -> None:
    book = EvidenceBook(EVIDENCE, ANCHOR)
    assert book.prometheus("node_load1") == []
    assert book.loki('{container="nobody"}') == []
    assert ("prometheus", "node_load1") in book.unanswered
    assert ("loki", '{container="nobody"}') in book.unanswered


def test_loki_selectors_match_streams_like_loki() -> None:
    book = EvidenceBook(EVIDENCE, ANCHOR)
    assert [s.labels for s in book.loki('{container=~"svc-.*"}')] == [
        {"container": "svc-1"},
        {"container": "svc-2", "job": "edge"},
    ]
    assert [s.labels for s in book.loki('{job="edge", container!="svc-1"}')] == [
        {"container": "svc-2", "job": "edge"}
    ]
    assert book.loki('{container!~"svc-.*"}') == []


def test_line_filters_apply_and_plain_lines_are_timestamped_before_the_anchor() -> None:
    book = EvidenceBook(EVIDENCE, ANCHOR)
    [stream] = book.loki('{container="svc-1"} |= "o" != "ok"')
    assert [line.line for line in stream.lines] == ["error: boom"]
    assert stream.lines[0].timestamp_ns == int((ANCHOR - LOG_LINE_SPACING_SECONDS) * 1e9)
    [stream] = book.loki('{container="svc-1"} |~ "^(started|request)"')
    assert [line.line for line in stream.lines] == ["started", "request ok"]


def test_exact_logql_recordings_answer_as_recorded() -> None:
    book = EvidenceBook(EVIDENCE, ANCHOR)
    [stream] = book.loki('sum( count_over_time( {job="edge"}[5m] ) )')
    assert [line.line for line in stream.lines] == ["exact recording"]


def test_recordings_no_query_asked_for_are_reported() -> None:
    book = EvidenceBook(EVIDENCE, ANCHOR)
    book.loki('{container="svc-1"}')
    assert book.unused() == [
        ("prometheus", 'sum by (name) (rate(container_cpu_usage_seconds_total{name="svc-1"}[5m]))'),
        ("prometheus", "up == 0"),
        ("loki", '{container="svc-2", job="edge"}'),
        ("loki", 'sum(count_over_time({job="edge"}[5m]))'),
    ]


def test_log_query_parser_rejects_metric_queries() -> None:
    assert parse_log_query("rate(x[5m])") is None
    parsed = parse_log_query('{a="b\\"c"} |= `raw`')
    assert parsed is not None
    assert parsed.matchers[0].value == 'b"c'
    assert parsed.line_filters == (("|=", "raw"),)


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer() as replay:
        replay.use(EvidenceBook(EVIDENCE, ANCHOR))
        yield replay


def test_prometheus_range_and_instant_queries_over_http(server: ReplayServer) -> None:
    query = 'sum by (name) (rate(container_cpu_usage_seconds_total{name="svc-1"}[5m]))'
    window = {"query": query, "start": str(ANCHOR - 60), "end": str(ANCHOR + 15), "step": "15s"}
    with httpx.Client(base_url=server.url) as client:
        matrix = client.get("/api/v1/query_range", params=window).json()
        vector = client.post("/api/v1/query", data={"query": query, "time": str(ANCHOR + 1)})
    assert matrix["data"]["resultType"] == "matrix"
    # Every step of the grid, each holding the latest sample at or before it.
    assert matrix["data"]["result"][0]["values"] == [
        [ANCHOR - 60, "0.1"],
        [ANCHOR - 45, "0.1"],
        [ANCHOR - 30, "0.2"],
        [ANCHOR - 15, "0.2"],
        [ANCHOR, "0.4"],
        [ANCHOR + 15, "0.4"],
    ]
    assert vector.json()["data"] == {
        "resultType": "vector",
        "result": [{"metric": {"name": "svc-1"}, "value": [ANCHOR + 1, "0.4"]}],
    }


def test_series_without_a_sample_in_lookback_are_left_out(server: ReplayServer) -> None:
    query = 'sum by (name) (rate(container_cpu_usage_seconds_total{name="svc-1"}[5m]))'
    later = str(ANCHOR + 301)
    with httpx.Client(base_url=server.url) as client:
        matrix = client.get(
            "/api/v1/query_range", params={"query": query, "start": later, "end": later, "step": 1}
        )
        vector = client.get("/api/v1/query", params={"query": query, "time": later})
    assert matrix.json()["data"]["result"] == []
    assert vector.json()["data"]["result"] == []


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"end": "10", "step": "5"}, '"start"'),
        ({"start": "yesterday", "end": "10", "step": "5"}, '"start"'),
        ({"start": "10", "end": "5", "step": "5"}, '"end"'),
        ({"start": "0", "end": "10", "step": "0"}, '"step"'),
        ({"start": "0", "end": "10", "step": "fast"}, '"step"'),
        ({"start": "0", "end": "1000000", "step": "1"}, "resolution"),
    ],
)
def test_bad_range_parameters_get_400_naming_them(
    server: ReplayServer, params: dict[str, str], named: str
) -> None:
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/api/v1/query_range", params={"query": "up == 0", **params})
        instant = client.get("/api/v1/query", params={"query": "up == 0", "time": "soon"})
    assert response.status_code == 400
    assert response.json()["errorType"] == "bad_data"
    assert named in response.json()["error"]
    assert instant.status_code == 400 and '"time"' in instant.json()["error"]


def test_loki_query_range_honours_limit_and_direction(server: ReplayServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        newest = client.get(
            "/loki/api/v1/query_range",
            params={"query": '{container="svc-1"}', "limit": "2", "direction": "backward"},
        ).json()
        oldest = client.get(
            "/loki/api/v1/query_range",
            params={"query": '{container="svc-1"}', "limit": "1", "direction": "forward"},
        ).json()
    assert newest["data"]["resultType"] == "streams"
    assert [v[1] for v in newest["data"]["result"][0]["values"]] == ["request ok", "error: boom"]
    assert [v[1] for v in oldest["data"]["result"][0]["values"]] == ["started"]


def test_bad_requests_get_clear_errors(server: ReplayServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        empty = client.get("/api/v1/query_range", params={"query": " "})
        unknown = client.get("/api/v1/series")
        bad_limit = client.get(
            "/loki/api/v1/query_range", params={"query": '{a="b"}', "limit": "many"}
        )
    assert (empty.status_code, empty.json()["error"]) == (400, "empty query")
    assert unknown.status_code == 404 and "/api/v1/series" in unknown.json()["error"]
    assert bad_limit.status_code == 400 and "limit" in bad_limit.json()["error"]


def test_a_source_declared_down_answers_503() -> None:
    down = EVIDENCE.model_copy(update={"unavailable": ["loki"]})
    with ReplayServer() as replay, httpx.Client(base_url=replay.url) as client:
        replay.use(EvidenceBook(down, ANCHOR))
        logs = client.get("/loki/api/v1/query_range", params={"query": '{container="svc-1"}'})
        metrics = client.get(
            "/api/v1/query_range",
            params={"query": "up == 0", "start": "1000", "end": "1060", "step": "60"},
        )
    assert logs.status_code == 503
    assert metrics.status_code == 200 and metrics.json()["data"]["result"]


@given(
    words=st.lists(st.sampled_from(["sum", "by", "(job)", "rate(x[5m])", ">", "0.5"]), min_size=1),
    label=st.text(alphabet="ab c", min_size=1, max_size=6),
    gaps=st.lists(st.sampled_from(["", " ", "  ", "\n", "\t"]), min_size=8, max_size=8),
)
def test_normalising_ignores_any_whitespace_outside_strings_only(
    words: list[str], label: str, gaps: list[str]
) -> None:
    literal = json.dumps(label)
    tight = "".join(words) + "{l=" + literal + "}"
    spaced = gaps[0].join(words) + gaps[1] + "{" + gaps[2] + "l" + gaps[3] + "=" + literal + "}"
    assert normalise_query(spaced) == normalise_query(tight)
    assert normalise_query(normalise_query(spaced)) == normalise_query(spaced)
    # Whitespace inside the string literal is part of the value and survives.
    assert literal in normalise_query(spaced)
