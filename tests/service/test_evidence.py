"""Evidence against loopback servers that speak Prometheus' and Loki's query APIs."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiops_analyzer.core.config import Settings
from aiops_analyzer.evidence import gather_evidence
from aiops_analyzer.evidence.series import describe, parse_summary, render
from aiops_analyzer.schemas import Alert, EvidenceItem

from tests.service.loopback import (
    LoopbackServer,
    Recorded,
    Reply,
    always,
)

STARTS = datetime.now(UTC) - timedelta(minutes=5)


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"auth_disabled": True, "evidence_timeout_seconds": 2.0}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def alert(labels: dict[str, str], expr: str = "", **fields: Any) -> Alert:
    url = f"http://prometheus:9090/graph?g0.expr={quote(expr)}&g0.tab=1" if expr else ""
    return Alert(
        fingerprint="f00dfeed12345678",
        status="firing",
        labels=labels,
        starts_at=STARTS,
        generator_url=url,
        **fields,
    )


def matrix(*series: tuple[dict[str, str], list[float]]) -> dict[str, Any]:
    now = time.time()
    result = []
    for labels, values in series:
        points = [[now - 60 * (len(values) - i), str(v)] for i, v in enumerate(values)]
        result.append({"metric": labels, "values": points})
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def by_id(items: list[EvidenceItem]) -> dict[str, EvidenceItem]:
    return {item.id: item for item in items}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_range_query_of_the_alerts_own_expression() -> None:
    expr = 'up{job="nginx"} == 0'
    reply = matrix(({"job": "nginx", "instance": "nginx:80"}, [1, 1, 1, 0, 0, 0]))
    with LoopbackServer(always(Reply(body=reply))) as prom:
        s = settings(prometheus_url=prom.url, evidence_window_minutes=30)
        items = await gather_evidence(alert({"alertname": "TargetDown"}, expr), s)
    first = prom.requests[0]
    assert first.path == "/api/v1/query_range"
    assert first.param("query") == expr
    start, end = float(first.param("start")), float(first.param("end"))
    step = float(first.param("step"))
    # The window opens one evidence window before startsAt (moved back by less than a step,
    # so that it spans whole steps and `end` is evaluated) and ends now.
    opens = (STARTS - timedelta(minutes=30)).timestamp()
    assert opens - step < start <= opens
    assert round((end - start) * 1000) % round(step * 1000) == 0
    assert end == pytest.approx(time.time(), abs=30)
    assert 0 < step <= (end - start) / 10
    prom1 = by_id(items)["prom-1"]
    assert prom1.status == "ok"
    assert prom1.query == expr
    assert "last=0 min=0 max=1 trend=falling" in prom1.text
    assert "instance=nginx:80" in prom1.text


def true_since(onset: float) -> Callable[[Recorded], Reply]:
    """A Prometheus whose alert expression holds from ``onset`` on, evaluated the way
    query_range does: at start, start + step, ... while <= end (integer milliseconds)."""

    def handle(request: Recorded) -> Reply:
        start_ms = round(float(request.param("start")) * 1000)
        end_ms = round(float(request.param("end")) * 1000)
        step_ms = round(float(request.param("step")) * 1000)
        points = [
            [ts / 1000, "1"] for ts in range(start_ms, end_ms + 1, step_ms) if ts / 1000 >= onset
        ]
        result = [{"metric": {"job": "nginx-exporter"}, "values": points}] if points else []
        return Reply(body={"status": "success", "data": {"resultType": "matrix", "result": result}})

    return handle


@pytest.mark.parametrize("extra_seconds", [0.0, 17.0, 29.5, 59.0])
async def test_a_condition_true_only_in_the_last_step_is_not_reported_as_no_data(
    extra_seconds: float,
) -> None:
    # A startsAt that leaves the window a fraction of a step too long: the last evaluation
    # of an unaligned range query then falls before the onset below, seconds before now.
    now = time.time()
    starts = datetime.fromtimestamp(now, UTC) - timedelta(minutes=5, seconds=extra_seconds)
    a = Alert(
        fingerprint="f00dfeed12345678",
        status="firing",
        labels={"alertname": "NginxDown"},
        starts_at=starts,
        generator_url="http://prometheus:9090/graph?g0.expr=nginx_up+%3D%3D+0&g0.tab=1",
    )
    with LoopbackServer(true_since(now - 1)) as prom:
        items = await gather_evidence(a, settings(prometheus_url=prom.url))
    request = prom.requests[0]
    end, step = float(request.param("end")), float(request.param("step"))
    assert end >= now and step > 1  # the onset is less than one step before the end
    prom1 = by_id(items)["prom-1"]
    assert prom1.status == "ok", prom1.detail
    assert "last=1" in prom1.text


def _answer_by_query(request: Recorded) -> Reply:
    query = request.param("query")
    return Reply(body=matrix(({"q": query[:30]}, [0.5, 0.7, 0.9])))


@pytest.mark.parametrize(
    ("labels", "expr", "expected"),
    [
        (
            {"alertname": "ContainerMemoryHigh", "name": "billing"},
            "container_memory_working_set_bytes / container_spec_memory_limit_bytes > 0.9",
            [
                'rate(container_cpu_usage_seconds_total{name="billing"}[5m])',
                'container_spec_memory_limit_bytes{name="billing"}',
                'changes(container_start_time_seconds{name="billing"}[15m])',
                'container_last_seen{name="billing"}',
            ],
        ),
        (
            {"alertname": "HostDiskFull", "instance": "node:9100"},
            "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1",
            [
                'node_load1{instance="node:9100"}',
                'node_memory_MemAvailable_bytes{instance="node:9100"}',
                'node_filesystem_avail_bytes{instance="node:9100",fstype!~',
            ],
        ),
        (
            {"alertname": "NginxDown", "instance": "nginx-exporter:9113", "job": "nginx"},
            "nginx_up == 0",
            [
                'nginx_up{instance="nginx-exporter:9113"}',
                'rate(nginx_http_requests_total{instance="nginx-exporter:9113"}[5m])',
            ],
        ),
    ],
)
async def test_family_specific_queries(
    labels: dict[str, str], expr: str, expected: list[str]
) -> None:
    with LoopbackServer(_answer_by_query) as prom:
        items = await gather_evidence(alert(labels, expr), settings(prometheus_url=prom.url))
    queries = [r.param("query") for r in prom.requests]
    assert expr in queries  # concurrent queries arrive in any order
    for fragment in expected:
        assert any(fragment in q for q in queries), f"{fragment} not queried: {queries}"
    prom_items = [i for i in items if i.source == "prometheus"]
    assert [i.id for i in prom_items] == [f"prom-{n}" for n in range(1, len(prom_items) + 1)]
    assert prom_items[0].query == expr  # ids follow the plan, not the arrival order
    assert all(i.status == "ok" for i in prom_items)


async def test_label_values_cannot_break_out_of_the_selector() -> None:
    labels = {"alertname": "X", "name": 'web"} or vector(1) #'}
    with LoopbackServer(_answer_by_query) as prom:
        await gather_evidence(
            alert(labels, "container_last_seen > 0"), settings(prometheus_url=prom.url)
        )
    assert any('name="web\\"} or vector(1) #"' in r.param("query") for r in prom.requests)


async def test_unconfigured_and_unreachable_sources_are_unavailable() -> None:
    a = alert({"alertname": "NginxDown", "job": "nginx"}, "nginx_up == 0")
    items = by_id(await gather_evidence(a, settings()))
    assert items["prom-1"].status == "unavailable"
    assert "AIOPS_PROMETHEUS_URL" in items["prom-1"].detail
    assert items["loki-1"].status == "unavailable"
    assert "AIOPS_LOKI_URL" in items["loki-1"].detail

    closed = f"http://127.0.0.1:{free_port()}"
    items = by_id(await gather_evidence(a, settings(prometheus_url=closed, loki_url=closed)))
    assert items["prom-1"].status == "unavailable"
    assert "unreachable" in items["prom-1"].detail
    assert items["loki-1"].status == "unavailable"


async def test_slow_source_times_out_without_holding_the_others() -> None:
    hang = 20.0
    a = alert({"alertname": "NginxDown", "job": "nginx"}, "nginx_up == 0")
    loki_reply = {"status": "success", "data": {"resultType": "streams", "result": []}}
    with (
        LoopbackServer(always(Reply(body=matrix(), delay=hang))) as prom,
        LoopbackServer(always(Reply(body=loki_reply))) as loki,
    ):
        started = time.perf_counter()
        items = by_id(
            await gather_evidence(
                a,
                settings(prometheus_url=prom.url, loki_url=loki.url, evidence_timeout_seconds=0.3),
            )
        )
        elapsed = time.perf_counter() - started
    assert items["prom-1"].status == "unavailable"
    assert "timed out" in items["prom-1"].detail
    assert items["loki-1"].status == "empty"
    assert elapsed < hang / 4  # the source timeout, not the server, ended the wait


async def test_prometheus_errors_and_empty_results() -> None:
    bad = {"status": "error", "errorType": "bad_data", "error": "parse error at char 4"}
    a = alert({"alertname": "X"}, "rate(foo[5m]) > 1")
    with LoopbackServer(always(Reply(400, bad))) as prom:
        items = by_id(await gather_evidence(a, settings(prometheus_url=prom.url)))
    assert items["prom-1"].status == "unavailable"
    assert "parse error at char 4" in items["prom-1"].detail

    with LoopbackServer(always(Reply(body=matrix()))) as prom:
        items = by_id(await gather_evidence(a, settings(prometheus_url=prom.url)))
    assert items["prom-1"].status == "empty"

    with LoopbackServer(always(Reply(200, "<html>proxy error</html>"))) as prom:
        items = by_id(await gather_evidence(a, settings(prometheus_url=prom.url)))
    assert items["prom-1"].status == "unavailable"


def loki_streams(lines: list[tuple[float, str]], labels: dict[str, str]) -> dict[str, Any]:
    values = [[str(int(ts * 1e9)), line] for ts, line in lines]
    return {
        "status": "success",
        "data": {"resultType": "streams", "result": [{"stream": labels, "values": values}]},
    }


async def test_loki_lines_of_the_container_errors_first() -> None:
    base = STARTS.timestamp()
    lines = [(base - 100 + i, f"GET /health 200 request {i}") for i in range(40)]
    lines += [
        (base - 30, "ERROR upstream connect failed: connection refused"),
        (base - 10, "panic: runtime error: invalid memory address"),
        (base - 5, f"retrying with password=hunter2 token {'ghp_' + 'a' * 36}"),
    ]
    reply = loki_streams(lines, {"container": "billing"})
    with LoopbackServer(always(Reply(body=reply))) as loki:
        s = settings(loki_url=loki.url, loki_max_lines=5)
        items = by_id(await gather_evidence(alert({"alertname": "X", "name": "billing"}), s))
    request = loki.requests[0]
    assert request.path == "/loki/api/v1/query_range"
    assert request.param("query") == '{container="billing"}'
    assert request.param("direction") == "backward"
    start_ns, end_ns = int(request.param("start")), int(request.param("end"))
    assert start_ns < STARTS.timestamp() * 1e9 < end_ns
    errors, context = items["loki-1"], items["loki-2"]
    assert errors.text.splitlines()[1].endswith("panic: runtime error: invalid memory address")
    assert "connection refused" in errors.text
    assert "GET /health" not in errors.text
    # At most loki_max_lines lines in total, the newest context lines fill what is left.
    shown = len(errors.text.splitlines()) - 1 + len(context.text.splitlines()) - 1
    assert shown == 5
    assert "request 39" in context.text
    assert "hunter2" not in errors.text + context.text
    assert "ghp_" not in errors.text + context.text


async def test_loki_window_stays_around_an_old_start() -> None:
    old_start = datetime.now(UTC) - timedelta(hours=5)
    reply = loki_streams([(old_start.timestamp(), "started")], {})
    old = Alert(
        fingerprint="f00dfeed12345678",
        status="firing",
        labels={"alertname": "X", "job": "api"},
        starts_at=old_start,
    )
    with LoopbackServer(always(Reply(body=reply))) as loki:
        await gather_evidence(old, settings(loki_url=loki.url, evidence_window_minutes=30))
    start_ns, end_ns = int(loki.requests[0].param("start")), int(loki.requests[0].param("end"))
    starts_ns = old_start.timestamp() * 1e9
    # As far after startsAt as before it, not up to now (five hours later).
    assert (end_ns - starts_ns) / (starts_ns - start_ns) == pytest.approx(1.0, rel=0.01)


@pytest.mark.parametrize(
    ("labels", "selector"),
    [
        ({"container": "api"}, '{container="api"}'),
        ({"compose_service": "worker"}, '{compose_service="worker"}'),
        ({"service": "analyzer", "job": "x"}, '{service="analyzer"}'),
        ({"service_name": "checkout"}, '{service_name="checkout"}'),
        ({"job": "node"}, '{job="node"}'),
    ],
)
async def test_loki_selector_from_labels(labels: dict[str, str], selector: str) -> None:
    reply = loki_streams([(STARTS.timestamp(), "started")], {})
    with LoopbackServer(always(Reply(body=reply))) as loki:
        items = by_id(
            await gather_evidence(alert({"alertname": "X", **labels}), settings(loki_url=loki.url))
        )
    assert loki.requests[0].param("query") == selector
    assert items["loki-1"].status == "ok"


async def test_loki_without_a_selecting_label_asks_nothing() -> None:
    with LoopbackServer(always(Reply(body={}))) as loki:
        items = by_id(await gather_evidence(alert({"alertname": "X"}), settings(loki_url=loki.url)))
    assert loki.requests == []
    assert items["loki-1"].status == "empty"
    assert "label" in items["loki-1"].detail


def test_runbook_lookup_order_and_fallbacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = tmp_path / "configured"
    from_env = tmp_path / "env"
    configured.mkdir()
    from_env.mkdir()
    (configured / "DiskFull.md").write_text(
        "# DiskFull\n## Mitigation\nrm old logs; api_key=abc123secret\n"
    )
    (from_env / "DiskFull.md").write_text("# env version\n")
    (from_env / "OnlyInEnv.md").write_text("# OnlyInEnv\n## Meaning\nfrom env\n")
    monkeypatch.setenv("AIOPS_RUNBOOKS_DIR", str(from_env))
    s = settings(runbooks_dir=configured)

    def runbook(a: Alert) -> EvidenceItem:
        return by_id(asyncio.run(gather_evidence(a, s)))["runbook-1"]

    item = runbook(alert({"alertname": "DiskFull"}))
    assert item.status == "ok"
    assert item.text.startswith("# DiskFull")
    assert "abc123secret" not in item.text
    assert runbook(alert({"alertname": "OnlyInEnv"})).text.startswith("# OnlyInEnv")

    link = "https://runbooks.example.com/unknown"
    item = runbook(alert({"alertname": "Unknown"}, annotations={"runbook_url": link}))
    assert item.status == "ok"
    assert item.query == link
    assert "not fetched" in item.text

    item = runbook(alert({"alertname": "../configured/DiskFull"}))
    assert item.status == "empty"


def test_bundled_runbooks_found_from_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    repo_runbooks = Path(__file__).resolve().parents[2] / "monitoring" / "runbooks"
    books = sorted(repo_runbooks.glob("*.md")) if repo_runbooks.is_dir() else []
    if not books:
        pytest.skip("no bundled runbooks in monitoring/runbooks yet")
    monkeypatch.delenv("AIOPS_RUNBOOKS_DIR", raising=False)
    name = books[0].stem
    items = by_id(asyncio.run(gather_evidence(alert({"alertname": name}), settings())))
    assert items["runbook-1"].status == "ok"
    assert items["runbook-1"].query == f"monitoring/runbooks/{name}.md"


def _points(values: list[float], step: float = 60.0) -> list[tuple[float, float]]:
    return [(1_000_000 + i * step, v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("values", "trend", "drops", "runs"),
    [
        ([1, 1, 1, 0, 0, 0], "falling", 1, 1),
        ([0.1 * i for i in range(30)], "rising", 0, 1),
        ([0.5] * 30, "flat", 0, 1),
        ([0.88, 0.91, 0.89, 0.92, 0.88, 0.91, 0.9, 0.93, 0.88, 0.91], "oscillating", 0, 1),
        ([0.6, 0.8, 0.99, 0.35, 0.6, 0.8, 0.99, 0.35, 0.6, 0.8, 0.99], "flat", 2, 1),
        ([float("nan"), 91, float("nan"), 92, float("nan"), 90, float("nan")], "flat", 0, 3),
    ],
    ids=["step-down", "ramp", "flat", "hovering", "sawtooth", "intermittent"],
)
def test_series_shape(values: list[float], trend: str, drops: int, runs: int) -> None:
    stats = describe("{}", _points(values), 60.0)
    assert (stats.trend, stats.drops, stats.runs) == (trend, drops, runs)


def test_missing_steps_split_runs() -> None:
    points = [(0.0, 1.0), (60.0, 1.0), (600.0, 1.0), (660.0, 1.0), (1500.0, 1.0)]
    assert describe("{}", points, 60.0).runs == 3


def test_summary_line_reads_back() -> None:
    stats = describe("{name=api}", _points([0.6, 0.8, 0.99, 0.35, 0.6, 0.8, 0.99]), 60.0)
    text = "container memory working set / limit: 1 series over 35m\n" + render(stats, "now=0.99")
    title, series = parse_summary(text)
    assert title == "container memory working set / limit"
    assert series == [stats]
    assert parse_summary("no summary here") == ("", [])
