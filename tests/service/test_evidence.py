"""Evidence against loopback servers that speak Prometheus' and Loki's query APIs."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiops_analyzer.core.config import Settings
from aiops_analyzer.engines import analyze
from aiops_analyzer.evidence import gather_evidence
from aiops_analyzer.evidence.logrank import is_background
from aiops_analyzer.evidence.loki import (
    CHANGE_FILTER,
    LOCK_WAIT_FILTER,
    LOG_BASELINE,
    MAX_TAGGED_KEPT_PAST_CAP,
    MAX_TEMPLATES_KEPT,
    NEIGHBOUR_FILTER,
    RECENT_LEAD,
    certificate_domain,
    lock_wait_selector,
    missing_path_selector,
    neighbour_selector,
    stream_selectors,
    subject_mention_selectors,
)
from aiops_analyzer.evidence.loki import (
    LOG_VOLUME_QUERY as LOKI_VOLUME_QUERY,
)
from aiops_analyzer.evidence.prometheus import QUEUE_REACH_BACK_MINUTES, plan_queries
from aiops_analyzer.evidence.series import MAX_POINTS, describe, matches
from aiops_analyzer.schemas import Alert, EvidenceItem

from tests.service.loopback import (
    Handler,
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
    # The queries run concurrently: the expression's is any one of the requests.
    first = next(r for r in prom.requests if r.param("query") == expr)
    assert first.path == "/api/v1/query_range"
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
    series = prom1.series[0]
    assert (series.current, series.minimum, series.peak, series.trend) == (0, 0, 1, "falling")
    assert series.labels == {"job": "nginx", "instance": "nginx:80"}
    assert prom1.threshold is not None and (prom1.threshold.op, prom1.threshold.value) == ("==", 0)
    # The prompt's text renders the same numbers.
    assert "current=0 baseline=1 peak=1 min=0 trend=falling" in prom1.text
    assert "instance=nginx:80" in prom1.text


async def test_a_queues_rates_reach_back_before_the_window() -> None:
    """A backlog alert fires long after its consumers slowed: the queue's rates are read two
    hours further back than the alert's own expression, so their earlier level is known."""
    expr = 'rabbitmq_queue_messages_ready{queue="exports"} > 5000'
    reply = matrix(({"queue": "exports"}, [1, 2, 3]))
    with LoopbackServer(always(Reply(body=reply))) as prom:
        s = settings(prometheus_url=prom.url, evidence_window_minutes=30)
        await gather_evidence(alert({"alertname": "Backlog", "queue": "exports"}, expr), s)
    starts = {r.param("query"): float(r.param("start")) for r in prom.requests}
    acked = next(q for q in starts if "queue_messages_(ack|acked|acknowledged)_total" in q)
    opens = (STARTS - timedelta(minutes=30)).timestamp()
    assert opens - 120 < starts[expr] <= opens
    reach = opens - QUEUE_REACH_BACK_MINUTES * 60
    assert reach - 300 < starts[acked] <= reach


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
    assert prom1.series[0].current == 1


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


def _loki_by_window(lines: list[tuple[float, str]], labels: dict[str, str]) -> Handler:
    """A Loki that answers each query_range with the lines inside its [start, end]."""

    def handle(request: Recorded) -> Reply:
        start, end = int(request.param("start")), int(request.param("end"))
        # A line filter (`|~ "regex"`), applied as Loki would: RE2 and Python agree on these.
        wanted = re.search(r'\|~ "(.*)"$', request.param("query"))
        keep = re.compile(wanted.group(1).replace("\\\\", "\\")) if wanted else None
        inside = [
            (ts, line)
            for ts, line in lines
            if start <= ts * 1e9 <= end and (keep is None or keep.search(line))
        ]
        inside.sort(reverse=True)
        return Reply(body=loki_streams(inside[: int(request.param("limit"))], labels))

    return handle


async def test_a_causes_first_lines_in_the_lead_in_before_a_long_for_count_as_recent() -> None:
    """A load rule with `for: 15m`: the kernel said the NFS server stopped answering 18
    minutes before startsAt, before the recent window. Those lines are the lead-up; the
    firewall's drops there are not (they came all along), nor the hung task's stack frames."""
    base = STARTS.timestamp()
    lines = [
        (base - 10800 + 60 * i, f"CRON[{i}]: (root) CMD (run-parts /etc/cron.hourly)")
        for i in range(170)
    ]
    lines += [
        (base - 10800 + 660 * i, f"[UFW BLOCK] IN=eth0 SRC=198.51.100.{i} DPT=23")
        for i in range(17)
    ]
    lines += [
        (base - 1080 + 17 * i, "nfs: server nfs-01 not responding, still trying") for i in range(6)
    ]
    lines += [(base - 1075, "nfs4_proc_getattr+0x7b/0x100 [nfsv4]")]
    with LoopbackServer(_loki_by_window(lines, {"host": "web-04", "unit": "kernel"})) as loki:
        load = alert({"alertname": "HostHighLoad", "instance": "web-04:9100"}, "node_load5 > 4")
        items = by_id(await gather_evidence(load, settings(loki_url=loki.url)))
    recent = {t.example: t for t in items["loki-1"].templates if t.count}
    nfs = next(t for e, t in recent.items() if "not responding" in e)
    assert nfs.novelty == "new" and nfs.count == 6
    assert not any("+0x7b/0x100" in e for e in recent)
    assert all(t.count <= 2 for e, t in recent.items() if "UFW BLOCK" in e)


async def test_loki_templates_new_before_the_alert_rank_first_whatever_their_level() -> None:
    base = STARTS.timestamp()
    # A steady baseline of health checks, then in the minutes before startsAt a firewall
    # block (an info-level kernel line), an error and a secret.
    lines = [(base - 1700 + 20 * i, f"GET /health 200 request {i} 3ms") for i in range(85)]
    lines += [
        (base - 300 + i, f"kernel: [UFW BLOCK] IN=eth0 SRC=10.0.0.{i} DST=10.0.0.9 DPT=8080")
        for i in range(4)
    ]
    lines += [
        (base - 30, "ERROR upstream connect failed: connection refused"),
        (base - 5, f"retrying with password=hunter2 token {'ghp_' + 'a' * 36}"),
    ]
    with LoopbackServer(_loki_by_window(lines, {"container": "billing"})) as loki:
        s = settings(loki_url=loki.url, loki_max_lines=5)
        items = by_id(await gather_evidence(alert({"alertname": "X", "name": "billing"}), s))
    billing = alert({"alertname": "X", "name": "billing"})
    own_reads = {r.param("query") for r in loki.requests} - {
        lock_wait_selector(billing, '{container="billing"}'),
        *subject_mention_selectors(billing),
    }
    assert own_reads == {'{container="billing"}'}
    assert all(r.param("direction") == "backward" for r in loki.requests)
    assert all(int(r.param("limit")) <= 1000 for r in loki.requests)  # bounded reads
    ranked = items["loki-1"]
    assert ranked.kind == "log_templates"
    top = ranked.templates[0]
    assert "UFW BLOCK" in top.example
    assert (top.novelty, top.count, top.baseline_count) == ("new", 4, 0)
    assert {"firewall", "kernel"} <= set(top.tags)
    health = next(t for t in ranked.templates if "/health" in t.example)
    assert health.novelty == "steady" and health.baseline_count > 0
    assert ranked.templates.index(health) > 1
    # Newest lines as context, at most loki_max_lines; secrets scrubbed everywhere.
    context = items["loki-2"]
    assert len(context.text.splitlines()) - 1 == 5
    dumped = ranked.model_dump_json() + context.model_dump_json()
    assert "hunter2" not in dumped and "ghp_" not in dumped


async def test_a_tagged_new_line_is_kept_past_the_template_cap() -> None:
    """A boot floods the window with new lines; the one that says the NIC was renamed ranks
    below the cap of ten but is kept, since a tag names it; untagged ones past it are not."""
    base = STARTS.timestamp()
    lines = [(base - 1700 + 20 * i, f"GET /health 200 request {i} 3ms") for i in range(85)]
    for n in range(14):
        word = "abcdefghijklmnopqrstuvwxyz"[n] * 3
        lines += [
            (base - 300 + i, f"{word}-worker ERROR step failed attempt {i}") for i in range(20)
        ]
    lines += [(base - 200, "kernel: virtio_net virtio2 ens19: renamed from eth1")]
    with LoopbackServer(_loki_by_window(lines, {"container": "stock-api"})) as loki:
        subject = alert({"alertname": "X", "name": "stock-api"})
        items = by_id(await gather_evidence(subject, settings(loki_url=loki.url)))
    kept = items["loki-1"].templates
    renamed = next(t for t in kept if "renamed from eth1" in t.example)
    assert kept.index(renamed) >= MAX_TEMPLATES_KEPT
    assert len(kept) <= MAX_TEMPLATES_KEPT + MAX_TAGGED_KEPT_PAST_CAP
    assert len([t for t in kept if "-worker ERROR step" in t.example]) == 10


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
    starts_ns = old_start.timestamp() * 1e9
    start_ns = min(int(r.param("start")) for r in loki.requests)
    end_ns = max(int(r.param("end")) for r in loki.requests)
    # One evidence window after startsAt, not up to now (five hours later); before it, the
    # recent window's lead-up and the logs' hours-long baseline.
    assert (end_ns - starts_ns) / 1e9 == pytest.approx(30 * 60, abs=2)
    lead_and_baseline = RECENT_LEAD + LOG_BASELINE
    assert (starts_ns - start_ns) / 1e9 == pytest.approx(lead_and_baseline.total_seconds(), abs=2)


async def test_a_deploy_logged_before_the_recent_window_is_part_of_the_lead_up() -> None:
    """A rule with `for: 15m` starts well after the release that broke it: the deploy line,
    logged before the quarter hour preceding startsAt, is still new; an older one is not."""
    base = STARTS.timestamp()
    lines = [(base - 3 * 3600 + 60 * i, f"GET /invoices 200 request {i}") for i in range(185)]
    lines += [
        (base - 5 * 3600 + 600, "invoicing version=5.2.7 ready"),  # hours ago: not read
        (base - 2 * 3600, "cache warm-up version=3.1.0 applied"),  # in the baseline: history
        (base - 17 * 60, "invoicing version=5.3.0 ready (git 4be81c2)"),
        (base - 16 * 60, "GET /health 200 heartbeat"),  # not a deploy: stays in the baseline
    ]
    with LoopbackServer(_loki_by_window(lines, {"container": "invoicing"})) as loki:
        s = settings(loki_url=loki.url)
        items = by_id(await gather_evidence(alert({"alertname": "X", "name": "invoicing"}), s))
    by_example = {t.example: t for t in items["loki-1"].templates}
    deploy = by_example["invoicing version=5.3.0 ready (git 4be81c2)"]
    assert deploy.novelty == "new" and "deploy" in deploy.tags
    assert deploy.first_seen == pytest.approx(base - 17 * 60, abs=1)
    assert not any("warm-up" in example for example in by_example)
    assert not any("heartbeat" in example for example in by_example)


@pytest.mark.parametrize(
    ("labels", "expr", "domain"),
    [
        (
            {"instance": "https://shop.example.net/healthz", "job": "blackbox"},
            "probe_ssl_earliest_cert_expiry - time() < 86400 * 3",
            "shop.example.net",
        ),
        (
            {"subject_CN": "*.api.example.org", "job": "x509"},
            "(x509_cert_not_after - time()) / 86400 < 14",
            "api.example.org",
        ),
        # Not about a certificate's dates, or no domain to name: no search.
        ({"instance": "https://shop.example.net/", "job": "blackbox"}, "probe_success == 0", ""),
        ({"name": "shop-api-tls"}, "certmanager_certificate_expiration_timestamp_seconds", ""),
    ],
)
def test_the_domain_of_a_certificate_expiry_alert(
    labels: dict[str, str], expr: str, domain: str
) -> None:
    assert certificate_domain(alert({"alertname": "X", **labels}, expr)) == domain


async def test_a_certificate_alert_reads_its_renewals_failures_hours_back() -> None:
    """certbot failed two hours before the alert, on another machine's journal: the failure
    lines that name the domain are read from any stream and count as recent."""
    base = STARTS.timestamp()
    renewal = (base - 2 * 3600, "Failed to renew certificate shop.example.net with error: x")
    lines = [(base - 3 * 3600 + 60 * i, f"probe ok {i}") for i in range(185)] + [renewal]

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if "shop.example.net" in query:  # the renewal search, filtered as Loki would
            assert query.startswith('{job=~".+"} |= "shop.example.net" |~')
            return Reply(body=loki_streams([renewal], {"unit": "certbot.service"}))
        return _loki_by_window(lines, {"job": "blackbox"})(request)

    labels = {"alertname": "SslExpiry", "instance": "https://shop.example.net/healthz"}
    with LoopbackServer(loki) as server:
        items = by_id(
            await gather_evidence(
                alert({**labels, "job": "blackbox"}, "probe_ssl_earliest_cert_expiry < 3e5"),
                settings(loki_url=server.url),
            )
        )
    [found] = [t for t in items["loki-1"].templates if "Failed to renew" in t.example]
    assert found.novelty == "new" and "tls" in found.tags


async def _api_latency_evidence(loki: Handler) -> dict[str, EvidenceItem]:
    """The evidence of a latency alert on orders-api, its logs from ``loki``."""
    expr = "histogram_quantile(0.99, sum by (le) (rate(http_duration_seconds_bucket[5m]))) > 2"
    with LoopbackServer(loki) as server:
        return by_id(
            await gather_evidence(
                alert({"alertname": "ApiSlow", "service": "orders-api"}, expr),
                settings(loki_url=server.url),
            )
        )


async def test_a_service_alert_reads_lock_waits_its_database_logged() -> None:
    """PostgreSQL logs the lock waits (log_lock_waits) in its own stream, not the API's: a
    latency alert on the API reads them from the other services' streams, named by theirs."""
    base = STARTS.timestamp()
    own = [(base - 3 * 3600 + 60 * i, f"GET /orders 200 request {i}") for i in range(185)]
    waits = [
        (base - 300 + 40 * i, f"LOG:  process 48{i} still waiting for ShareLock on transaction 9")
        for i in range(6)
    ]

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if "still waiting for" in query:  # the lock-wait read, filtered as Loki would
            assert query.startswith('{service=~".+",service!="orders-api"} |~ "(?i)')
            return Reply(body=loki_streams(waits, {"service": "postgres", "container": "pg-1"}))
        assert query == '{service="orders-api"}'
        return _loki_by_window(own, {"service": "orders-api"})(request)

    items = await _api_latency_evidence(loki)
    [found] = [t for t in items["loki-1"].templates if "ShareLock" in t.example]
    assert found.example.startswith("postgres: LOG: process")  # which stream said it
    assert found.novelty == "new" and "lock" in found.tags


async def test_a_database_with_chronic_lock_waits_leaves_the_baseline_whole() -> None:
    """Hundreds of lock waits over the hours before are background, and reading them does
    not cut short the baseline an hourly line is compared with."""
    base = STARTS.timestamp()
    hourly = "nightly-cache-warmer run finished"
    own = [(base - 3 * 3600 + 60 * i, f"GET /orders 200 request {i}") for i in range(185)]
    own += [(base - 3600 * h - 600, hourly) for h in range(4)]
    chronic = [
        (base - 3 * 3600 - 900 + 30 * i, f"LOG:  process {i} still waiting for ShareLock")
        for i in range(420)
    ]
    db = _loki_by_window(chronic, {"service": "postgres"})

    def loki(request: Recorded) -> Reply:
        if "still waiting for" in request.param("query"):
            return db(request)
        return _loki_by_window(own, {"service": "orders-api"})(request)

    items = await _api_latency_evidence(loki)
    by_example = {t.example: t for t in items["loki-1"].templates}
    assert by_example[hourly].novelty == "steady" and by_example[hourly].baseline_count == 3
    waits = next(t for t in by_example.values() if "ShareLock" in t.example)
    assert waits.novelty == "steady"


async def test_an_aggregated_alert_reads_the_machine_of_the_series_behind_it() -> None:
    """`sum by (proxy)` keeps no instance: the series contributing most when the alert
    started names the machine, whose kernel and unit journal are then read."""
    expr = "sum by (proxy) (rate(haproxy_backend_connection_errors_total[1m])) > 100"
    labels = {"alertname": "HaproxyBackendConnectionErrors", "proxy": "be_checkout"}
    behind = {"instance": "lb-3:8405", "job": "haproxy", "proxy": "be_checkout"}

    def prometheus(request: Recorded) -> Reply:
        if request.path.endswith("/api/v1/query"):
            result = [{"metric": behind, "value": [STARTS.timestamp(), "240"]}]
            return Reply(body={"status": "success", "data": {"result": result}})
        return Reply(body=matrix())

    full = "kernel: nf_conntrack: nf_conntrack: table full, dropping packet"
    reply = loki_streams([(STARTS.timestamp() - 60, full)], {})
    with LoopbackServer(prometheus) as prom, LoopbackServer(always(Reply(body=reply))) as loki:
        subject = alert(labels, expr)
        items = await gather_evidence(subject, settings(prometheus_url=prom.url, loki_url=loki.url))
        result = await analyze(subject, items, settings())
    [asked] = [r.param("query") for r in prom.requests if r.path.endswith("/api/v1/query")]
    assert asked == (
        'topk(1, rate(haproxy_backend_connection_errors_total{proxy="be_checkout"}[5m]))'
    )
    assert by_id(items)["prom-subject"].series[0].labels == {
        "instance": "lb-3:8405",
        "job": "haproxy",
    }
    read = {r.param("query") for r in loki.requests}
    assert {'{host="lb-3",unit="kernel"}', '{host="lb-3",unit="haproxy.service"}'} <= read
    assert "lb-3:8405" in result.summary
    assert "conntrack" in " ".join(c.cause for c in result.probable_causes)


async def test_a_consumer_groups_lag_reads_the_lines_that_name_its_group_or_partition() -> None:
    """kafka_exporter's own pod is not the consumer; the consumer is named otherwise than its
    group, and the producer logs the partition: one read across streams finds both."""
    labels = {
        "alertname": "TooLargeConsumerGroupLag",
        "consumergroup": "shipment-events",
        "topic": "shipments.v1",
        "partition": "3",
        "pod": "kafka-exporter-6f9c7d8b5-t4wzq",
        "container": "kafka-exporter",
        "namespace": "kafka",
        "job": "kafka-exporter",
    }
    base = STARTS.timestamp()
    lines = [
        (base - 120 + 10 * i, "Record shipments.v1-3@1882211 failed, seeking back and retrying")
        for i in range(12)
    ]
    lines += [(base - 130, "msg=published type=X topic=shipments.v1 partition=3 offset=1882211")]
    lines += [(base - 100, "processed 30 events from shipments.v1-30 in 12 ms")]
    lines += [
        (base - 3 * 3600 + 600 * i, f"processed {i} events from shipments.v1-3") for i in range(17)
    ]

    def loki(request: Recorded) -> Reply:
        if '|~ "(?i)shipment-events' in request.param("query"):  # not the group's name
            return _loki_by_window(lines, {"service": "shipment-tracker"})(request)
        return _loki_by_window([], {})(request)

    with LoopbackServer(loki) as server:
        subject = alert(labels, "kafka_consumergroup_lag > 1000")
        items = by_id(await gather_evidence(subject, settings(loki_url=server.url)))
        result = await analyze(subject, list(items.values()), settings())
    asked = [r.param("query") for r in server.requests]
    assert '{service=~".+"} |~ "(?i)shipment-events|shipments\\\\.v1-3\\\\b|' in " ".join(asked)
    # Not the exporter's own pod: only the mentions, across every stream (Kubernetes' too).
    assert not any('namespace="kafka"' in q or "kafka-exporter" in q for q in asked)
    assert any(q.startswith('{namespace=~".+"} |~ "(?i)shipment-events') for q in asked)
    examples = [t.example for t in items["loki-1"].templates]
    assert not any("v1-30" in e for e in examples)  # another partition
    assert result.category == "queue_lag"
    top = result.probable_causes[0].cause
    assert top.startswith("One record blocks the consumer: 'shipment-tracker: Record shipments")
    assert "The same record in another stream: 'shipment-tracker: msg=published" in top


async def test_a_proxys_errors_read_its_stacks_other_services_failures() -> None:
    """nginx answers 5xx because the app behind it cannot get a database connection: the
    proxy's own streams name its Compose project, whose other services' failures are read."""
    base = STARTS.timestamp()
    access = [(base - 3 * 3600 + 60 * i, f"GET /orders/{i} 200") for i in range(175)]
    access += [(base - 100 + 10 * i, f"GET /orders/{i} 500") for i in range(10)]
    app = [(base - 3 * 3600 + 900 * i, "WARN slow request GET /orders") for i in range(12)]
    app += [
        (base - 120 + 10 * i, "ERROR HikariPool-1 - Connection is not available, request timed out")
        for i in range(12)
    ]
    # Since the release two hours ago, every five minutes: old news, still the reason.
    leak = "WARN ProxyLeakTask : Apparent connection leak detected"
    app += [(base - 7200 + 300 * i, leak) for i in range(24)]

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if query.startswith('{stack="shop",service!="nginx"} |~ "(?i)error|'):
            return _loki_by_window(app, {"service": "storefront", "stack": "shop"})(request)
        if query == '{container="edge-nginx"}':
            labels = {"container": "edge-nginx", "service": "nginx", "stack": "shop"}
            return _loki_by_window(access, labels)(request)
        return _loki_by_window([], {})(request)

    labels = {"alertname": "NginxHigh5xxRate", "container": "edge-nginx", "service": "nginx"}
    with LoopbackServer(loki) as server:
        subject = alert(labels, 'sum(rate(nginx_http_requests_total{status=~"5.."}[5m])) > 1')
        items = await gather_evidence(subject, settings(loki_url=server.url))
        result = await analyze(subject, items, settings())
    causes = " ".join(c.cause for c in result.probable_causes)
    assert "connection pool has no free connection: 'storefront: ERROR HikariPool-1" in causes
    assert "leaked connections: 'storefront: WARN ProxyLeakTask" in causes


def test_a_journal_units_alert_reads_its_machines_other_units_failures() -> None:
    a = alert(
        {"alertname": "LedgerSyncErrorLogs", "host": "sync-2", "unit": "ledger-sync.service"},
        'sum by (host, unit) (count_over_time({unit="ledger-sync.service"} |= "error" [5m])) > 20',
    )
    own = [{"job": "systemd-journal", "host": "sync-2", "unit": "ledger-sync.service"}]
    assert neighbour_selector(a, own) == (
        '{host="sync-2",unit!="ledger-sync.service"}' + NEIGHBOUR_FILTER
    )
    # A service that is no proxy and has no unit of its own reads no neighbours.
    api = alert({"alertname": "ApiErrors", "service": "orders"}, "rate(x_total[5m]) > 1")
    assert neighbour_selector(api, [{"service": "orders", "stack": "shop"}]) == ""
    # A broker's backlog reads its stack's other services: its consumers run there and may
    # never name the queue.
    backlog = alert(
        {"alertname": "QueueBacklog", "job": "rabbitmq", "queue": "orders.fulfilment"},
        "rabbitmq_queue_messages_ready > 2000",
    )
    assert neighbour_selector(backlog, [{"service": "rabbitmq", "stack": "orders"}]) == (
        '{stack="orders",service!="rabbitmq"}' + NEIGHBOUR_FILTER
    )


async def test_a_brokers_stack_is_read_whole_for_consumers_that_only_slowed_down() -> None:
    """A RabbitMQ backlog: the broker's stream names its stack; the consumer beside it logs no
    failure, only that each invoice now waits on the PDF renderer. Its stack is read whole,
    each window on its own, and that new line is ranked; its steady lines stay background."""
    base = STARTS.timestamp()
    steady = [
        (base - 10800 + 30 * i, f'level=info msg="invoice rendered" n={i}') for i in range(370)
    ]
    waiting = 'level=warn msg="renderer queue is long, waiting for a slot" upstream=pdf-render:8080'
    consumer = steady + [(base - 900 + 20 * i, waiting) for i in range(60)]
    broker = [
        (base - 10800 + 600 * i, "[info] <0.9.0> accepting AMQP connection") for i in range(19)
    ]

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if query == '{stack="billing",service!="rabbitmq"}':
            return _loki_by_window(consumer, {"service": "invoicer", "stack": "billing"})(request)
        if query == '{service="rabbitmq"}':
            labels = {"service": "rabbitmq", "stack": "billing"}
            return _loki_by_window(broker, labels)(request)
        # No other stream, and no failure line among the consumer's.
        return Reply(body={"status": "success", "data": {"resultType": "streams", "result": []}})

    backlog = alert(
        {"alertname": "QueueBacklog", "job": "rabbitmq", "queue": "invoices.render"},
        "rabbitmq_queue_messages_ready > 2000",
    )
    with LoopbackServer(loki) as server:
        items = by_id(await gather_evidence(backlog, settings(loki_url=server.url)))
    found = {t.example: t for t in items["loki-1"].templates}
    wait = next(t for e, t in found.items() if "waiting for a slot" in e)
    assert wait.novelty == "new" and wait.count == 60
    assert all(t.novelty == "steady" for e, t in found.items() if "invoice rendered" in e)
    whole = [
        r for r in server.requests if r.param("query") == '{stack="billing",service!="rabbitmq"}'
    ]
    assert len(whole) == 2  # the recent window and the baseline, each read on its own


async def test_a_probe_reads_the_failures_that_name_its_host_whenever_they_began() -> None:
    """The edge proxy has been out of file descriptors for half an hour when the probe's
    alert fires: its lines naming the probed host are read, and a filtered read's first line
    is not taken for its stream's beginning (which would make them look old)."""
    base = STARTS.timestamp()
    fd = "[crit] open() failed (24: Too many open files), server: shop.example.com"
    lines = [(base - 2040 + 60 * i, fd) for i in range(36)]

    def loki(request: Recorded) -> Reply:
        if '|= "shop.example.com"' in request.param("query"):
            return _loki_by_window(lines, {"service": "edge"})(request)
        return _loki_by_window([], {})(request)

    site = {"alertname": "BlackboxProbeFailed", "instance": "https://shop.example.com/healthz"}
    with LoopbackServer(loki) as server:
        items = by_id(
            await gather_evidence(alert(site, "probe_success == 0"), settings(loki_url=server.url))
        )
    [found] = items["loki-1"].templates
    assert found.example.startswith("edge: [crit] open() failed (24: Too many open files)")
    assert found.novelty == "surging"
    # Kubernetes' streams (an ingress controller's) are read for the host's name too.
    asked = [r.param("query") for r in server.requests]
    assert any(q.startswith('{namespace=~".+"} |= "shop.example.com"') for q in asked)


async def test_an_alert_naming_its_subject_asks_no_subject_query() -> None:
    with LoopbackServer(always(Reply(body=matrix()))) as prom:
        await gather_evidence(
            alert({"alertname": "X", "instance": "api:8080"}, "sum by (instance) (x_total) > 1"),
            settings(prometheus_url=prom.url),
        )
    assert not [r for r in prom.requests if r.path.endswith("/api/v1/query")]


async def test_a_capped_chatty_stream_shortens_only_its_own_baseline() -> None:
    """The unit's access log hits its line limit within the last hour; the kernel's scanner
    blocks every ten minutes for three hours stay background, not new."""
    base = STARTS.timestamp()
    access = [(base - 3 * 3600 + 2 * i, f"GET /item/{i} 200") for i in range(5600)]
    block = "kernel: [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.23 DST=10.0.0.5 PROTO=TCP DPT=23"
    blocks = [(base - 3 * 3600 + 600 * i, block) for i in range(19)]
    streams = {"kernel": blocks, "haproxy.service": access}

    def loki(request: Recorded) -> Reply:
        unit = re.search(r'unit="([^"]+)"', request.param("query"))
        lines = streams.get(unit.group(1), []) if unit else []
        return _loki_by_window(lines, {})(request)

    with LoopbackServer(loki) as server:
        items = by_id(
            await gather_evidence(
                alert(
                    {"alertname": "X", "instance": "lb-3:8405", "job": "haproxy"},
                    "rate(haproxy_backend_connection_errors_total[1m]) > 100",
                ),
                settings(loki_url=server.url),
            )
        )
    [found] = [t for t in items["loki-1"].templates if "UFW" in t.example]
    assert found.novelty == "steady" and found.baseline_count >= 15


@pytest.mark.parametrize(
    ("labels", "expr", "selector"),
    [
        # A pod's namespace bounds the read; a container alert leaves its own streams out.
        ({"namespace": "shop", "pod": "api-7f"}, "x > 1", '{namespace="shop"}'),
        (
            {"name": "billing"},
            "container_memory_usage_bytes > 1",
            '{service=~".+",container!="billing"}',
        ),
        # A host, a scheduled job, a scrape: nothing waits on a database's rows.
        ({"instance": "h:9100"}, "node_load1 > 4", ""),
        ({"job": "backup"}, "time() - backup_last_success_timestamp_seconds > 3600", ""),
        ({"job": "api", "instance": "api:80"}, "up == 0", ""),
    ],
)
def test_which_alerts_read_their_neighbours_lock_waits(
    labels: dict[str, str], expr: str, selector: str
) -> None:
    subject = alert({"alertname": "X", **labels}, expr)
    found = lock_wait_selector(subject, stream_selectors(subject)[0])
    assert found.removesuffix(LOCK_WAIT_FILTER) == selector
    assert found.endswith(LOCK_WAIT_FILTER) == bool(selector)


async def test_host_alert_reads_the_hosts_own_streams() -> None:
    expr = '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))) > 90'
    labels = {"alertname": "HighCpu", "instance": "10.0.3.17:9100", "job": "node"}
    reply = loki_streams([(STARTS.timestamp(), "kernel: Out of memory: Killed process 4242")], {})
    with LoopbackServer(always(Reply(body=reply))) as loki:
        await gather_evidence(alert(labels, expr), settings(loki_url=loki.url))
    asked = {r.param("query") for r in loki.requests} - set(
        subject_mention_selectors(alert(labels, expr))
    )
    assert asked == {'{job="node"}', '{instance="10.0.3.17:9100"}', '{host="10.0.3.17"}'}


@pytest.mark.parametrize(
    ("instance", "read"),
    [
        ("ledger:8080", True),  # Docker's DNS: the container's name
        ("ledger.prod.example.net:8080", False),  # a machine's name: its journal, not this
        ("10.0.0.7:8080", False),
    ],
)
def test_a_service_scraped_by_its_containers_name_reads_that_container(
    instance: str, read: bool
) -> None:
    subject = alert({"alertname": "LedgerErrors", "service": "ledger-api", "instance": instance})
    assert ('{container="ledger"}' in stream_selectors(subject)) is read


@pytest.mark.parametrize(
    ("labels", "selector"),
    [
        ({"container": "api"}, '{container="api"}'),
        ({"compose_service": "worker"}, '{compose_service="worker"}'),
        ({"service": "analyzer", "job": "x"}, '{service="analyzer"}'),
        ({"service_name": "checkout"}, '{service_name="checkout"}'),
        ({"application": "invoices", "job": "x"}, '{service="invoices"}'),
        ({"job": "node"}, '{job="node"}'),
        # kafka_exporter's consumer group: the consuming service, as it is usually named.
        ({"consumergroup": "shipment-indexer"}, '{service="shipment-indexer"}'),
    ],
)
async def test_loki_selector_from_labels(labels: dict[str, str], selector: str) -> None:
    reply = loki_streams([(STARTS.timestamp(), "started")], {})
    with LoopbackServer(always(Reply(body=reply))) as loki:
        items = by_id(
            await gather_evidence(alert({"alertname": "X", **labels}), settings(loki_url=loki.url))
        )
    # The subject's own streams are read (the reads run concurrently, in any order).
    assert selector in {r.param("query") for r in loki.requests}
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
    stats = describe(_points(values), 60.0)
    assert (stats.trend, stats.drops, stats.runs) == (trend, drops, runs)


def test_missing_steps_split_runs() -> None:
    points = [(0.0, 1.0), (60.0, 1.0), (600.0, 1.0), (660.0, 1.0), (1500.0, 1.0)]
    assert describe(points, 60.0).runs == 3


def test_typed_statistics_of_a_step() -> None:
    """current/baseline/peak, the level shift and its moment, saturation against a limit."""
    values = [0.30 + 0.01 * (i % 3) for i in range(20)] + [0.95 + 0.01 * (i % 2) for i in range(10)]
    points = _points(values)
    stats = describe(points, 60.0, limit=2.0)
    assert stats.current == pytest.approx(0.96)
    assert stats.baseline == pytest.approx(0.31, abs=0.011)
    assert stats.peak == pytest.approx(0.96)
    assert stats.change_point is not None
    assert stats.change_point.at == points[20][0]
    assert stats.change_point.before == pytest.approx(0.31, abs=0.011)
    assert stats.change_point.after == pytest.approx(0.955, abs=0.006)
    assert stats.saturation == pytest.approx(0.48)
    assert stats.last_seen == points[-1][0]


@pytest.mark.parametrize(
    "values",
    [
        [0.1 * i for i in range(30)],  # a ramp is a trend, not a step
        [0.5 + 0.01 * ((i * 7) % 5) for i in range(30)],  # noise around a level
        [1.0] * 30,
    ],
    ids=["ramp", "noise", "flat"],
)
def test_no_level_shift_without_a_step(values: list[float]) -> None:
    assert describe(_points(values), 60.0).change_point is None


def test_slope_is_robust_to_an_outlier() -> None:
    values = [float(i) for i in range(30)]
    values[10] = 1000.0
    stats = describe(_points(values), 60.0)
    assert stats.slope_per_hour == pytest.approx(60.0, rel=0.01)  # one per minute


def test_points_are_downsampled_keeping_the_last_and_dropping_non_finite() -> None:
    values = [float(i) for i in range(500)]
    values[3] = float("nan")
    stats = describe(_points(values, 15.0), 15.0)
    assert len(stats.points) <= MAX_POINTS
    assert stats.points[-1] == (1_000_000 + 499 * 15.0, 499.0)
    assert all(v == v for _, v in stats.points)
    # The typed evidence survives JSON (the store and the web page read it back).
    assert type(stats).model_validate_json(stats.model_dump_json()) == stats


def test_series_matching_the_alert() -> None:
    alert_labels = {"alertname": "X", "name": "api", "job": "cadvisor", "severity": "warning"}
    assert matches({"name": "api", "instance": "c:8080"}, alert_labels)
    assert not matches({"name": "worker"}, alert_labels)
    assert matches({}, alert_labels)  # an aggregate without labels belongs to every alert


async def test_grouped_alerts_each_get_their_own_series() -> None:
    """Bug: in a grouped delivery every alert was analysed with the expression's first series."""
    expr = "sum by (name) (changes(container_start_time_seconds[15m])) >= 3"
    reply = matrix(
        ({"name": "api"}, [3, 4, 5, 9]),
        ({"name": "worker"}, [3, 3, 3, 3]),
        ({"name": "cron"}, [4, 4, 4, 4]),
    )
    with LoopbackServer(always(Reply(body=reply))) as prom:
        s = settings(prometheus_url=prom.url)
        for name in ("worker", "cron", "api"):
            items = by_id(await gather_evidence(alert({"alertname": "R", "name": name}, expr), s))
            own = items["prom-1"].series[0]
            assert own.labels == {"name": name} and own.matches_alert
            assert [x.matches_alert for x in items["prom-1"].series[1:]] == [False, False]
            assert (
                items["prom-1"].text.splitlines()[1].startswith(f"- {{name={name}}} (this alert)")
            )


async def test_loki_ruler_logql_goes_to_loki_not_prometheus() -> None:
    """Bug: a Loki ruler alert's LogQL was sent to Prometheus, which can only reject it."""
    logql = (
        'sum by (compose_service) (count_over_time({compose_service="edge"} |~ " 5.. " [5m])) > 20'
    )
    metric = matrix(({"compose_service": "edge"}, [3, 30, 45]))
    metric["data"]["resultType"] = "matrix"

    def loki_answer(request: Recorded) -> Reply:
        if request.param("query") == logql:
            return Reply(body=metric)
        return Reply(body=loki_streams([(STARTS.timestamp(), '"GET / HTTP/1.1" 502')], {}))

    with (
        LoopbackServer(always(Reply(body=matrix()))) as prom,
        LoopbackServer(loki_answer) as loki,
    ):
        s = settings(prometheus_url=prom.url, loki_url=loki.url)
        labels = {"alertname": "Nginx5xxBurst", "compose_service": "edge"}
        items = by_id(await gather_evidence(alert(labels, logql), s))
    assert [r.param("query") for r in prom.requests] == []
    assert logql in [r.param("query") for r in loki.requests]
    assert items["prom-1"].status == "empty" and "LogQL" in items["prom-1"].detail
    expression = items["loki-expr"]
    assert expression.kind == "alert_expression" and expression.series[0].current == 45


async def test_kube_state_metrics_labels_query_the_subject_not_the_exporter() -> None:
    """Bug: the exporter's own container/pod labels made the evidence about the exporter."""
    expr = "increase(kube_pod_container_status_restarts_total[15m]) > 3"
    labels = {
        "alertname": "KubePodCrashLooping",
        "job": "kube-state-metrics",
        "container": "kube-state-metrics",
        "pod": "kube-state-metrics-6d9f7-x2k",
        "exported_container": "checkout",
        "exported_pod": "checkout-7c9-abcde",
        "namespace": "shop",
    }
    with (
        LoopbackServer(always(Reply(body=matrix()))) as prom,
        LoopbackServer(always(Reply(body=loki_streams([], {})))) as loki,
    ):
        s = settings(prometheus_url=prom.url, loki_url=loki.url)
        await gather_evidence(alert(labels, expr), s)
    asked = [r.param("query") for r in prom.requests + loki.requests]
    assert not any("kube-state-metrics" in q for q in asked), asked
    assert any('container="checkout"' in q for q in asked)


async def test_background_lines_rank_below_news_and_leave_the_newest_lines_to_it() -> None:
    base = STARTS.timestamp()
    # All day: scanners blocked by the firewall (kernel, tagged) and a health check every 10 s.
    scans = [
        (base - 1740 + 60 * i, "[UFW BLOCK] IN=eth0 SRC=198.51.100.23 DPT=23") for i in range(34)
    ]
    health = [(base - 1790 + 10 * i, f"GET /health 200 request {i}") for i in range(205)]
    # News: an ordinary info line at startsAt, then a job logging progress.
    news = [(base - 240, "Starting reindex.service - rebuild the search index...")]
    news += [(base - 200 + 10 * i, f"reindex: {i}00000 documents done") for i in range(8)]
    with LoopbackServer(_loki_by_window(scans + health + news, {"unit": "kernel"})) as loki:
        s = settings(loki_url=loki.url, loki_max_lines=6)
        items = by_id(await gather_evidence(alert({"alertname": "X", "name": "search"}), s))
    ranked = items["loki-1"].templates
    block = next(t for t in ranked if "UFW BLOCK" in t.example)
    # The stream is the kernel's: its lines read as kernel lines, as syslog would show them.
    assert block.example.startswith("kernel: [UFW BLOCK]") and "kernel" in block.tags
    assert block.rate_ratio is not None and block.rate_ratio <= 1.5
    starting = next(t for t in ranked if "Starting reindex" in t.example)
    assert ranked.index(starting) < ranked.index(block)
    newest = items["loki-2"].text.splitlines()[1:]
    assert len(newest) == 6
    # The first line of the news is there although eight newer lines follow it.
    assert any("Starting reindex" in line for line in newest)
    assert sum("documents done" in line for line in newest) <= 1 + 3  # first + newest
    # Background only fills what the news leaves (six lines, five of them news).
    assert sum("UFW BLOCK" in line or "/health" in line for line in newest) <= 1


async def test_a_chatty_stream_after_the_start_does_not_crowd_out_the_lead_up() -> None:
    starts = datetime.now(UTC) - timedelta(minutes=45)
    base = starts.timestamp()
    # A request line every 2 s for the whole hour; the cause, once, just before startsAt.
    lines = [(base - 1800 + 2 * i, f"GET /v1/prices 200 req={i}") for i in range(2700)]
    lines.append((base - 120, "price cache empty after restart, warming from postgres"))
    resolved = Alert(
        fingerprint="f00dfeed12345678",
        status="resolved",
        labels={"alertname": "X", "name": "pricing"},
        starts_at=starts,
        ends_at=starts + timedelta(minutes=20),
    )
    with LoopbackServer(_loki_by_window(lines, {"container": "pricing"})) as loki:
        items = by_id(await gather_evidence(resolved, settings(loki_url=loki.url)))
    # Every read is bounded, the recent window is read as its lead-up and what followed.
    own_reads = [r for r in loki.requests if "|~" not in r.param("query")]
    assert all(int(r.param("limit")) <= 500 for r in own_reads)
    assert all(int(r.param("limit")) <= 1000 for r in loki.requests)
    # Three reads of its own streams, plus the line-filtered reads of other services' lock
    # waits, of the lines naming it (three collectors' labelling) and, the alert being
    # resolved, of what was done before it recovered.
    assert sorted("|~" in r.param("query") for r in loki.requests) == [False] * 3 + [True] * 5
    assert any("warming from postgres" in t.example for t in items["loki-1"].templates)


@pytest.mark.parametrize(
    ("labels", "expr", "kinds"),
    [
        (
            {"instance": "h:9100"},
            '100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m]))) > 90',
            {"host_cpu_modes", "host_disk_busy"},
        ),
        ({"instance": "h:9100"}, "node_load1 > 4", {"host_cpu_modes", "host_disk_busy"}),
        ({"instance": "h:9100"}, "node_filesystem_avail_bytes < 1e9", set()),
        (
            {"name": "web"},
            'rate(container_cpu_usage_seconds_total{name="web"}[5m]) > 0.9',
            {"container_cpu_throttled"},
        ),
        ({"name": "web"}, "container_memory_working_set_bytes > 1e9", set()),
    ],
    ids=["host-cpu", "host-load", "host-disk", "container-cpu", "container-memory"],
)
def test_cpu_breakdown_is_queried_only_for_cpu_alerts(
    labels: dict[str, str], expr: str, kinds: set[str]
) -> None:
    """Steal, iowait, disk busy and CFS throttling explain CPU alerts; other alerts skip them."""
    cpu_kinds = {"host_cpu_modes", "host_disk_busy", "container_cpu_throttled"}
    planned = {q.kind for q in plan_queries(alert(labels, expr))}
    assert planned & cpu_kinds == kinds
    assert "host_clock_offset" in planned or "instance" not in labels  # nothing cut off


async def test_a_scrape_target_down_reads_its_hosts_journal() -> None:
    labels = {"alertname": "TargetDown", "instance": "web-3:9100", "job": "node"}
    with LoopbackServer(always(Reply(body=loki_streams([], {})))) as loki:
        await gather_evidence(
            alert(labels, 'up{job!="analyzer"} == 0'), settings(loki_url=loki.url)
        )
    asked = {r.param("query") for r in loki.requests}
    # The exporter's unit, the kernel's firewall lines and reboots are in the host's journal.
    assert {'{instance="web-3:9100"}', '{host="web-3"}'} <= asked


async def test_an_hourly_line_is_background_and_a_line_new_for_hours_is_news() -> None:
    base = STARTS.timestamp()
    cron = "(root) CMD (cd / && run-parts --report /etc/cron.hourly)"
    lines = [(base - 3600 * h - 120, cron) for h in range(4)]
    lines += [(base - 600 + 60 * i, f"GET /health 200 request {i}") for i in range(10)]
    lines += [(base - 11000 + 60 * i, f"GET /health 200 request {i}") for i in range(170)]
    lines.append((base - 90, 'level=info msg="Listening on" address=127.0.0.1:9100'))
    with LoopbackServer(_loki_by_window(lines, {"unit": "cron.service"})) as loki:
        s = settings(loki_url=loki.url)
        items = by_id(await gather_evidence(alert({"alertname": "X", "job": "cron"}), s))
    ranked = items["loki-1"].templates
    hourly = next(t for t in ranked if "cron.hourly" in t.example)
    # Seen in the baseline hours ago: once an hour is its pace, not news.
    assert hourly.baseline_count == 3 and hourly.novelty == "steady" and is_background(hourly)
    listening = next(t for t in ranked if "Listening on" in t.example)
    assert listening.novelty == "new" and ranked[0] is listening


async def test_a_read_that_hits_its_limit_counts_only_the_baseline_it_covers() -> None:
    base = STARTS.timestamp()
    # A request line every 2 s for four hours: the baseline read returns only its newest 500.
    lines = [(base - 14400 + 2 * i, f"GET /v1/prices 200 req={i}") for i in range(7500)]
    with LoopbackServer(_loki_by_window(lines, {"container": "pricing"})) as loki:
        s = settings(loki_url=loki.url)
        items = by_id(await gather_evidence(alert({"alertname": "X", "name": "pricing"}), s))
    assert all(int(r.param("limit")) <= 1000 for r in loki.requests)
    [requests] = [t for t in items["loki-1"].templates if "/v1/prices" in t.example]
    # Over the 17 minutes the capped read covers, the pace is the recent window's own.
    assert requests.novelty == "steady" and requests.rate_ratio is not None
    assert requests.rate_ratio == pytest.approx(1.0, abs=0.2)


def test_a_traefik_service_reads_the_logs_of_the_service_it_routes_to() -> None:
    """Traefik names its services <name>@<provider>; the logs carry the name alone."""
    errors = alert(
        {"alertname": "TraefikHighHttp5xxErrorRateService", "service": "cart-api@docker"},
        'sum by (service) (rate(traefik_service_requests_total{code=~"5.*"}[3m])) > 5',
    )
    selectors = stream_selectors(errors)
    assert '{service="cart-api"}' in selectors and '{container="cart-api"}' in selectors
    # A service label without a provider is read as it is.
    plain = alert({"alertname": "X", "service": "mail@example"}, "rate(x_total[5m]) > 1")
    assert not any('"mail"' in s for s in stream_selectors(plain))


def test_a_proxys_neighbours_are_read_for_their_stalls_too() -> None:
    """A proxy's upstream that times out may be paused in garbage collection, logged at info
    level: the neighbours' filter keeps those lines (RE2 and Python agree on it)."""
    pattern = re.compile(re.search(r'\|~ "(.*)"$', NEIGHBOUR_FILTER).group(1))  # type: ignore[union-attr]
    for stall in (
        "[info][gc] GC(40816) Pause Full (G1 Compaction Pause) 4096M->3978M(4096M) 8311.270ms",
        "[Full GC (Allocation Failure)  3967M->3921M(4096M), 7.1 secs]",
        "[gc][1203] overhead, spent [2.1s] collecting in the last [2.3s], gc overhead",
    ):
        assert pattern.search(stall), stall
    assert not pattern.search("[info][gc] GC(40211) Concurrent Mark Cycle 402.881ms")


def test_a_neighbours_start_up_line_naming_its_version_is_read_either_way_round() -> None:
    """The release of an upstream just before its errors: "2.14.0 starting" or "starting
    search-api" with its version after the name (JSON logs), once the LogQL string's escapes
    are undone."""
    quoted = re.search(r'\|~ "(.*)"$', NEIGHBOUR_FILTER).group(1)  # type: ignore[union-attr]
    pattern = re.compile(quoted.replace("\\\\", "\\"))
    for banner in (
        "pricing-engine 5.0.1 (rev 3be81c0) starting",
        '{"level":"INFO","msg":"starting search-api","version":"2.14.0","commit":"9c1e4ab"}',
        "Started orders-api v3.2.1",
    ):
        assert pattern.search(banner), banner
    assert not pattern.search('{"level":"INFO","msg":"served","path":"/api","took_ms":12}')


async def test_a_further_selector_filled_by_its_recent_lines_has_its_baseline_read() -> None:
    """The alert's own selector (a Traefik name) finds nothing; the service's chatty stream,
    read over both windows at once, returns only recent lines. Its baseline is read on its
    own, so the warning that began before the alert is new, not merely steady."""
    base = STARTS.timestamp()
    lines = [(base - 7200 + i / 2, f"GET /v2/orders 200 {i % 7}ms") for i in range(15000)]
    lines += [(base - 300 + 3 * i, "WARN token is not valid yet") for i in range(60)]

    def loki(request: Recorded) -> Reply:
        if request.param("query") == '{service="orders-api"}':
            return _loki_by_window(lines, {"service": "orders-api"})(request)
        return _loki_by_window([], {})(request)

    errors = alert(
        {"alertname": "TraefikHighHttp4xxErrorRateService", "service": "orders-api@docker"},
        'sum by (service) (rate(traefik_service_requests_total{code=~"4.*"}[3m])) > 5',
    )
    with LoopbackServer(loki) as server:
        items = by_id(await gather_evidence(errors, settings(loki_url=server.url)))
    reads = [r for r in server.requests if r.param("query") == '{service="orders-api"}']
    assert len(reads) == 2  # both windows at once, then the baseline alone
    templates = {t.example: t for t in items["loki-1"].templates}
    assert templates["WARN token is not valid yet"].novelty == "new"
    steady = next(t for t in templates.values() if t.example.startswith("GET /v2/orders"))
    assert steady.baseline_count > 0 and steady.novelty == "steady"


def test_a_kubernetes_jobs_alert_reads_its_pods() -> None:
    """kube-state-metrics names the Job (`job_name`); its pods are `<job>-<5 chars>`."""
    failed = alert(
        {
            "alertname": "KubeJobFailed",
            "job_name": "pg-dump-nightly-29953550",
            "namespace": "billing",
            "job": "kube-state-metrics",
        },
        'kube_job_failed{job="kube-state-metrics"} > 0',
    )
    assert stream_selectors(failed)[0] == (
        '{namespace="billing",pod=~"pg-dump-nightly-29953550-[a-z0-9]{5}"}'
    )


def test_connections_timing_out_read_the_kernels_drops_for_that_port_on_any_machine() -> None:
    from aiops_analyzer.evidence.loki import peer_drop_selector

    lines = [
        (1, "SocketTimeoutException: Connect timed out (host db-2.internal:5432)"),
        (2, "dial tcp 10.20.1.13:6379: i/o timeout"),
        (3, "GET /healthz 200 from 10.0.0.9:51234"),  # no failure: its port is no lead
    ]
    assert peer_drop_selector([lines]) == '{unit="kernel"} |~ "DPT=(?:5432|6379)\\\\b"'
    assert peer_drop_selector([[(1, "connection refused: db-2:5432")], "HTTP 503"]) == ""
    # Elasticsearch's transport, in a later read than the first.
    transport = [(1, "failed to join error.message=[es-3][10.40.0.13:9300] connect_timeout[30s]")]
    assert peer_drop_selector([[], transport]) == '{unit="kernel"} |~ "DPT=(?:9300)\\\\b"'


def test_a_pods_alert_naming_its_node_reads_the_nodes_kubelet() -> None:
    evicted = alert(
        {
            "alertname": "KubePodEvicted",
            "namespace": "shop",
            "pod": "cart-5f7d8-kq2xz",
            "node": "wk-3",
        }
    )
    agents = [s for s in stream_selectors(evicted) if s.startswith('{host="wk-3",unit=~')]
    assert agents and "kubelet" in agents[0] and "containerd" in agents[0]
    unplaced = alert(
        {"alertname": "KubePodEvicted", "namespace": "shop", "pod": "cart-5f7d8-kq2xz"}
    )
    assert not any("kubelet" in s for s in stream_selectors(unplaced))


def test_a_service_scraped_by_ip_reads_its_unit_and_then_that_units_machine() -> None:
    from aiops_analyzer.evidence.loki import NEIGHBOUR_FILTER, unit_machine_selectors

    down = alert({"alertname": "TargetDown", "job": "stock-api", "instance": "10.50.0.21:8080"})
    assert '{unit="stock-api.service"}' in stream_selectors(down)
    found = [
        {"host": "stock-2", "unit": "stock-api.service", "job": "systemd-journal"},
        {"host": "stock-2", "unit": "kernel"},
    ]
    assert unit_machine_selectors(down, found) == [
        '{host="stock-2",unit="kernel"}',
        '{host="stock-2",unit!="stock-api.service"}' + NEIGHBOUR_FILTER,
    ]
    # The unit on two machines: which one is the target's is unknown.
    other = {"host": "stock-3", "unit": "stock-api.service"}
    assert unit_machine_selectors(down, [*found, other]) == []
    # A named machine is read by its name already.
    named = alert({"alertname": "TargetDown", "job": "stock-api", "instance": "stock-2:8080"})
    assert not any(s.startswith("{unit=") for s in stream_selectors(named))


def test_failing_calls_name_the_dependencies_whose_own_failures_are_read() -> None:
    from aiops_analyzer.evidence.loki import NEIGHBOUR_FILTER, dependency_selectors

    orders = alert({"alertname": "OrdersErrors", "job": "orders", "instance": "orders:8080"})
    lines = [
        (1, "POST http://ledger.internal:8080/v1/entries: 503 Service Unavailable"),
        (2, "dial tcp ledger.internal:8080: connect: connection refused"),
        (3, "panic: runtime error at handler.go:214 (status:503)"),  # a file, a status: no host
        (4, "GET /healthz from lb-1:41234 200"),  # no failure: no lead
        (5, "upstream timed out calling https://api.payments.example/v2/charge"),
        (6, "orders:8080 refused a connection"),  # the subject itself
    ]
    pattern = '"ledger\\\\.internal|ledger|api\\\\.payments\\\\.example"'
    assert dependency_selectors(orders, [lines, "HTTP 503"]) == [
        f"{{container=~{pattern}}}{NEIGHBOUR_FILTER}",
        f"{{service=~{pattern}}}{NEIGHBOUR_FILTER}",
        f"{{host=~{pattern}}}{NEIGHBOUR_FILTER}",
    ]
    assert dependency_selectors(orders, [[(1, "GET /v1/entries 200 ledger.internal:8080")]]) == []
    # The kernel names an NFS client's file server as it stops answering.
    hung = [(1, "kernel: nfs: server nfs-01 not responding, still trying")]
    load = alert({"alertname": "HostHighLoad", "instance": "web-04:9100"})
    assert dependency_selectors(load, [hung])[-1] == '{host=~"nfs-01"}' + NEIGHBOUR_FILTER


async def test_a_dependency_named_by_failing_calls_has_its_own_failures_read() -> None:
    """orders' calls to ledger.internal are refused; ledger's container logs why (its pool
    is exhausted), which orders' own lines never say."""
    base = STARTS.timestamp()
    refused = "POST http://ledger.internal:8080/v1/entries failed: connection refused"
    exhausted = "FATAL: remaining connection slots are reserved for superuser connections"

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if query == '{service="orders"}':
            lines = [(base - 200 + 10 * i, refused) for i in range(10)]
            return _loki_by_window(lines, {"service": "orders"})(request)
        if query.startswith('{container=~"ledger'):
            lines = [(base - 260 + 10 * i, exhausted) for i in range(10)]
            return _loki_by_window(lines, {"container": "ledger"})(request)
        return _loki_by_window([], {})(request)

    errors = alert(
        {"alertname": "OrdersErrors", "service": "orders", "instance": "10.0.0.7:8080"},
        "rate(http_requests_total{code=~'5..'}[5m]) > 1",
    )
    with LoopbackServer(loki) as server:
        items = by_id(await gather_evidence(errors, settings(loki_url=server.url)))
    examples = [t.example for t in items["loki-1"].templates]
    assert any(e.startswith("ledger: FATAL: remaining connection slots") for e in examples)


async def test_calls_failing_toward_an_address_read_the_stacks_other_services() -> None:
    """A Compose API's health check is refused by 172.23.0.4:5432 and names no container:
    its stack's other services' failure lines (the database's full disk) are read."""
    base = STARTS.timestamp()
    refused = (
        'database ping failed: connection to server at "172.23.0.4", port 5432 failed: '
        "Connection refused"
    )
    full = 'PANIC: could not write to file "pg_wal/xlogtemp.41": No space left on device'
    own = {"container": "ledger-api-1", "service": "api", "stack": "ledger"}

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if query == '{container="ledger-api-1"}':
            lines = [(base - 10800 + 300 * i, "GET /healthz 200") for i in range(34)]
            lines += [(base - 200 + 10 * i, refused) for i in range(10)]
            return _loki_by_window(lines, own)(request)
        if query.startswith('{stack="ledger",service!="api"}'):
            db = {"container": "ledger-db-1", "service": "db", "stack": "ledger"}
            return _loki_by_window([(base - 240, full)], db)(request)
        return _loki_by_window([], {})(request)

    restarting = alert({"alertname": "ContainerRestarting", "name": "ledger-api-1"})
    with LoopbackServer(loki) as server:
        evidence = await gather_evidence(restarting, settings(loki_url=server.url))
    examples = [t.example for t in by_id(evidence)["loki-1"].templates]
    assert any("No space left on device" in e for e in examples)
    result = await analyze(restarting, evidence, settings())
    assert result.category == "disk_space"
    # Calls refused by a named service read that service instead, not the whole stack.
    named = refused.replace('"172.23.0.4"', '"ledger-db"').replace(
        'at "ledger-db", port 5432', "ledger-db:5432"
    )
    with LoopbackServer(_loki_by_window([(base - 100, named)], own)) as server:
        await gather_evidence(restarting, settings(loki_url=server.url))
    assert not any(r.param("query").startswith("{stack=") for r in server.requests)
    # An access log's 502 beside a client's address is no failing call of its own.
    access = '10.30.0.8 - - "GET /v1/entries HTTP/1.1" 502 0'
    with LoopbackServer(_loki_by_window([(base - 100, access)], own)) as server:
        await gather_evidence(restarting, settings(loki_url=server.url))
    assert not any(r.param("query").startswith("{stack=") for r in server.requests)


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("psycopg.errors.UndefinedColumn: column customers.tier_code does not exist", "tier_code"),
        ("(1054, \"Unknown column 'o.region' in 'field list'\")", "region"),
        ('ERROR:  relation "public.orders_v2" does not exist at character 15', "orders_v2"),
        ("sqlite3.OperationalError: no such column: users.plan", "plan"),
        ("Table 'shop.carts' doesn't exist", "carts"),
        ("GET /v1/members/m-1/tier 500", ""),
    ],
)
def test_a_query_naming_what_the_database_lacks_names_it(line: str, name: str) -> None:
    from aiops_analyzer.evidence.schema_change import missing_object

    assert missing_object(line) == name


async def test_a_missing_column_reads_the_schema_change_that_dropped_it() -> None:
    """loyalty's queries fail on a column another team's migration dropped: the database's
    DDL line and the other service's Flyway run are read and told as the cause."""
    base = STARTS.timestamp()
    failing = (
        "ERROR loyalty.api: GET /v1/members/m-1/tier failed: psycopg.errors.UndefinedColumn: "
        "column customers.tier_code does not exist"
    )
    ddl = "crm_admin@crm LOG:  statement: ALTER TABLE public.customers DROP COLUMN tier_code"
    flyway = 'DbMigrate - Migrating schema "public" to version "57 - consolidate customer tiers"'
    select = "loyalty@crm STATEMENT:  SELECT customers.tier_code FROM customers"

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if query == '{service="loyalty-api"}':
            lines = [(base - 10800 + 300 * i, "GET /v1/members/m-1 200") for i in range(34)]
            lines += [(base - 400 + 15 * i, failing) for i in range(20)]
            return _loki_by_window(lines, {"service": "loyalty-api"})(request)
        if query.startswith('{host=~".+"} |~'):
            lines = [(base - 430, ddl), (base - 300, select)]
            return _loki_by_window(lines, {"host": "pg-crm-1", "unit": "postgresql"})(request)
        if query.startswith('{service=~".+"} |~'):
            return _loki_by_window([(base - 431, flyway)], {"service": "crm-admin"})(request)
        return _loki_by_window([], {})(request)

    errors = alert(
        {"alertname": "LoyaltyErrors", "service": "loyalty-api", "instance": "10.0.0.7:8000"},
        'rate(http_requests_total{status="5xx"}[5m]) > 1',
    )
    with LoopbackServer(loki) as server:
        evidence = await gather_evidence(errors, settings(loki_url=server.url))
    examples = [t.example for t in by_id(evidence)["loki-1"].templates]
    assert not any("STATEMENT:  SELECT" in e for e in examples)  # names it, changes nothing
    result = await analyze(errors, evidence, settings())
    cause = result.probable_causes[0]
    assert cause.cause.startswith("The database no longer has what the service queries")
    assert "DROP COLUMN tier_code' at " in cause.cause and "Migrating schema" in cause.cause
    assert cause.confidence == 0.85
    assert "a restart will not help" in result.remediation[0]


def test_the_subjects_machine_and_container_names_are_looked_for_in_every_stream() -> None:
    down = alert({"alertname": "ContainerDown", "name": "orders-db", "instance": "db-host-2:8080"})
    pattern = '"(?i)\\\\borders-db\\\\b|\\\\bdb-host-2\\\\b"'
    # Other machines' journals only: the subject's own names itself in every syslog line.
    assert subject_mention_selectors(down) == [
        f'{{host=~".+",host!="db-host-2"}} |~ {pattern}',
        f'{{service=~".+"}} |~ {pattern}',
        f'{{namespace=~".+"}} |~ {pattern}',
    ]
    # Names too short to be told from words are not looked for; nor is an unnamed subject.
    assert subject_mention_selectors(alert({"alertname": "Down", "name": "db"})) == []
    # A probed host's name in other machines' journals (its services' lines naming it are
    # the probe's neighbours, read already); a queue's name is read by its own mentions.
    probe = alert({"alertname": "ProbeFailed", "instance": "https://shop.example.com/health"})
    probed = '"(?i)\\\\bshop\\\\.example\\\\.com\\\\b"'
    assert subject_mention_selectors(probe) == [
        f'{{host=~".+",host!="shop.example.com"}} |~ {probed}'
    ]
    backlog = alert(
        {"alertname": "Backlog", "queue": "exports"}, "rabbitmq_queue_messages_ready > 1"
    )
    assert subject_mention_selectors(backlog) == []


async def test_another_machines_lines_naming_the_subject_are_read() -> None:
    """files-1's disk alert: its own journal is quiet; the backup server's journal says it
    started pushing snapshots to files-1, which no label links to the alert."""
    base = STARTS.timestamp()
    pushing = "rsnapshot: syncing /srv/exports to files-1:/backup (daily.0)"

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if query.startswith('{host=~".+",host!="files-1"} |~'):
            lines = [(base - 240 + 20 * i, pushing) for i in range(8)]
            return _loki_by_window(lines, {"host": "backup-1", "unit": "rsnapshot.service"})(
                request
            )
        if query.startswith('{host="files-1"'):
            lines = [
                (base - 3000 + 300 * i, "systemd: Started Session of user ops.") for i in range(10)
            ]
            return _loki_by_window(lines, {"host": "files-1", "unit": "systemd"})(request)
        return _loki_by_window([], {})(request)

    full = alert(
        {"alertname": "HostDiskFull", "instance": "files-1:9100", "mountpoint": "/backup"},
        "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1",
    )
    with LoopbackServer(loki) as server:
        items = by_id(await gather_evidence(full, settings(loki_url=server.url)))
    examples = [t.example for t in items["loki-1"].templates]
    assert any("syncing /srv/exports to files-1" in e for e in examples), examples


async def test_another_machines_journal_naming_a_probed_host_is_read() -> None:
    """A probe of wiki-01 fails; a cron job on the admin box restarts wiki-01's service just
    before, in lines that name wiki-01 and no failure. Only other machines' journals are asked."""
    base = STARTS.timestamp()
    restart = "CRON[2201]: (root) CMD (/usr/local/bin/rotate-certs --host wiki-01 --restart)"

    def loki(request: Recorded) -> Reply:
        if request.param("query").startswith('{host=~".+",host!="wiki-01"} |~'):
            lines = [(base - 200 + 30 * i, restart) for i in range(3)]
            return _loki_by_window(lines, {"host": "admin-1", "unit": "cron.service"})(request)
        return _loki_by_window([], {})(request)

    probe = alert(
        {"alertname": "ProbeFailed", "instance": "http://wiki-01:8080/", "job": "blackbox"},
        "probe_success == 0",
    )
    with LoopbackServer(loki) as server:
        items = by_id(await gather_evidence(probe, settings(loki_url=server.url)))
    assert any("rotate-certs --host wiki-01" in t.example for t in items["loki-1"].templates)


async def test_a_timeout_in_any_of_the_subjects_streams_reads_the_peers_kernel_drops() -> None:
    """The alert's first selector finds nothing; the service's stream has the join timing out
    to es-3:9300, and es-3's kernel logs the firewall's drops of it."""
    base = STARTS.timestamp()
    timeout = "failed to join error.message=[es-3][10.40.0.13:9300] connect_timeout[30s]"
    drop = "nft-drop-in: IN=ens18 SRC=10.40.0.11 DST=10.40.0.13 PROTO=TCP DPT=9300 SYN"

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if query == '{service="elasticsearch"}':
            lines = [(base - 200 + 10 * i, timeout) for i in range(10)]
            return _loki_by_window(lines, {"service": "elasticsearch"})(request)
        if query.startswith('{unit="kernel"}') and "9300" in query:
            lines = [(base - 200 + 10 * i, drop) for i in range(10)]
            return _loki_by_window(lines, {"host": "es-3", "unit": "kernel"})(request)
        return _loki_by_window([], {})(request)

    nodes = alert(
        {"alertname": "ElasticsearchHealthyNodes", "job": "elasticsearch", "instance": "es-1"},
        "elasticsearch_cluster_health_number_of_nodes < 3",
    )
    with LoopbackServer(loki) as server:
        items = by_id(await gather_evidence(nodes, settings(loki_url=server.url)))
    assert any("nft-drop-in" in t.example for t in items["loki-1"].templates)


def test_oom_kill_lines_name_the_victim_and_its_cgroup() -> None:
    from aiops_analyzer.evidence.oom_kill import read_oom_kill

    memcg = read_oom_kill(
        [
            "kernel: Memory cgroup out of memory: Killed process 4242 (java) total-vm:9000kB",
            "kernel: oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
            "oom_memcg=/system.slice/reportd.service,task_memcg=/system.slice/reportd.service,"
            "task=java,pid=4242,uid=998",
        ]
    )
    assert memcg is not None
    assert (memcg.process, memcg.pid, memcg.at_cgroup_limit) == ("java", "4242", True)
    assert (memcg.unit, memcg.container_id) == ("reportd.service", "")
    assert "Killed process 4242 (java)" in memcg.line
    machine = read_oom_kill(
        [
            "kernel: Out of memory: Killed process 991 (postgres) total-vm:4000kB, anon-rss:3900kB",
            "kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=postgres,pid=991",
        ]
    )
    assert machine is not None and machine.at_cgroup_limit is False
    assert machine.process == "postgres" and not machine.unit
    assert read_oom_kill(["kernel: eth0: link up", "Started cron"]) is None


async def test_a_host_oom_kill_names_the_container_its_cgroup_id_belongs_to() -> None:
    """The kernel names a killed container only by its cgroup id: the id is looked up in
    cAdvisor's series, and the analysis names the container, the process and the limit."""
    cid = "5d7f9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c3e5b7d9f1a3c5e7b9d1f3a5c7e"
    base = STARTS.timestamp()
    lines = [
        (base - 3000 + 60 * i, "CRON[1]: (root) CMD (run-parts /etc/cron.hourly)")
        for i in range(45)
    ]
    lines += [
        (base - 62, "kernel: chrome invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0"),
        (
            base - 61,
            "kernel: oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),"
            f"oom_memcg=/system.slice/docker-{cid}.scope,"
            f"task_memcg=/system.slice/docker-{cid}.scope,task=chrome,pid=713340,uid=1000",
        ),
        (
            base - 60,
            "kernel: Memory cgroup out of memory: Killed process 713340 (chrome) "
            "total-vm:34112220kB, anon-rss:712004kB, file-rss:88120kB",
        ),
    ]
    gib = 1024**3

    def prometheus(request: Recorded) -> Reply:
        query = request.param("query")
        if f'id=~".*{cid[:12]}' not in query:
            return Reply(body=matrix())
        if "container_spec_memory_limit_bytes" in query:
            return Reply(body=matrix(({"name": "docrender-2"}, [gib] * 6)))
        working_set = [0.4 * gib, 0.6 * gib, 0.99 * gib, 0.36 * gib]
        return Reply(body=matrix(({"name": "docrender-2"}, working_set)))

    labels = {"alertname": "HostOomKillDetected", "instance": "app-5:9100", "job": "node"}
    oom = alert(labels, "increase(node_vmstat_oom_kill[1m]) > 0")
    with (
        LoopbackServer(prometheus) as prom,
        LoopbackServer(_loki_by_window(lines, {"host": "app-5", "unit": "kernel"})) as loki,
    ):
        s = settings(prometheus_url=prom.url, loki_url=loki.url)
        evidence = await gather_evidence(oom, s)
        result = await analyze(oom, evidence, s)
    followed = [r.param("query") for r in prom.requests if cid[:12] in r.param("query")]
    assert followed, "the container's id was not looked up"
    assert len({item.id for item in evidence}) == len(evidence)  # ids stay unique
    victim = next(c for c in result.probable_causes if "pid 713340" in c.cause)
    assert "chrome" in victim.cause and "container docrender-2" in victim.cause
    assert "1.0 GiB" in victim.cause  # the container's own limit
    cited = {item.id: item for item in evidence}
    assert any(cited[i].kind == "oom_victim_memory" for i in victim.evidence_ids)
    assert result.category == "oom_killed"


async def test_a_probe_reads_its_machines_failure_lines_of_any_unit() -> None:
    """Which unit answers the probed port is unknown: the machine's journal is read for its
    failure lines, and a service out of file descriptors is named."""
    base = STARTS.timestamp()
    emfile = "http: Accept error: accept tcp [::]:8080: accept4: too many open files"
    lines = [(base - 600 + 20 * i, emfile) for i in range(30)]

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if query.startswith('{host="media-1"} |~'):
            return _loki_by_window(lines, {"host": "media-1", "unit": "media-proxy.service"})(
                request
            )
        return _loki_by_window([], {})(request)

    probe = alert(
        {"alertname": "BlackboxProbeFailed", "instance": "http://media-1:8080/healthz"},
        "probe_success == 0",
    )
    with LoopbackServer(loki) as server:
        s = settings(loki_url=server.url)
        evidence = await gather_evidence(probe, s)
        result = await analyze(probe, evidence, s)
    assert any("too many open files" in t.example for t in by_id(evidence)["loki-1"].templates)
    assert any("file descriptors" in c.cause for c in result.probable_causes)
    assert not result.inconclusive


async def test_a_probe_failing_after_a_tunnels_mtu_changed_names_the_interface() -> None:
    """The prober's own machine got a new MTU on its tunnel: any machine's MTU change in the
    window is read for a probe, and named with its old and new value."""
    mtu = [1380.0] * 20 + [1420.0] * 5

    def prometheus(request: Recorded) -> Reply:
        query = request.param("query")
        if query.startswith("node_network_mtu_bytes and"):
            return Reply(body=matrix(({"instance": "mon-1:9100", "device": "wg-dc2"}, mtu)))
        if query == "probe_success == 0":
            return Reply(body=matrix(({"instance": "http://billing:8080/x"}, [0.0] * 5)))
        return Reply(body=matrix())

    probe = alert(
        {"alertname": "BlackboxProbeFailed", "instance": "http://billing:8080/x"},
        "probe_success == 0",
    )
    with LoopbackServer(prometheus) as prom:
        s = settings(prometheus_url=prom.url)
        result = await analyze(probe, await gather_evidence(probe, s), s)
    assert result.category == "network" and not result.inconclusive
    cause = next(c for c in result.probable_causes if "MTU" in c.cause)
    assert "wg-dc2 on mon-1:9100 changed from 1380 to 1420" in cause.cause


DISK_SPACE_EXPR = (
    '100 * node_filesystem_avail_bytes{fstype!~"tmpfs"} / node_filesystem_size_bytes < 15'
)


def volume_matrix(per_container: dict[str, list[float]]) -> dict[str, Any]:
    """Loki's answer to the log-volume query: bytes per 15 minutes, one point per 15 minutes."""
    now = time.time()
    result = [
        {
            "metric": {"container": name},
            "values": [[now - 900 * (len(values) - 1 - i), str(v)] for i, v in enumerate(values)],
        }
        for name, values in per_container.items()
    ]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


@pytest.mark.parametrize(
    ("mountpoint", "asked"),
    [("/var/lib/docker", True), ("/", True), ("/var", True), ("/srv/postgres", False)],
)
async def test_a_container_log_filesystem_alert_reads_each_containers_log_volume(
    mountpoint: str, asked: bool
) -> None:
    """A chatty container's logs fill the filesystem Docker keeps them on: the evidence has
    each container's log bytes over 3 h, and the engine names the one whose output surged."""
    volume = volume_matrix(
        {
            "ingest-gw-1": [2600, 2700, 2500, 2650, 81000, 82000, 81500, 82100, 81900, 82000],
            "ingest-worker-1": [1440, 1500, 1440, 1460, 1440, 1440, 1500, 1440, 1440, 1440],
            "ingest-worker-2": [90, 1440, 1500, 1440, 1460, 1440, 1440, 1500, 1440, 1440],
        }
    )

    def loki_answer(request: Recorded) -> Reply:
        if request.param("query") == LOKI_VOLUME_QUERY:
            return Reply(body=volume)
        return Reply(body=loki_streams([(STARTS.timestamp(), "kernel: all quiet")], {}))

    labels = {"alertname": "HostDiskSpaceLow", "instance": "ingest-1:9100", "job": "node"}
    labels["mountpoint"] = mountpoint
    with (
        LoopbackServer(always(Reply(body=matrix()))) as prom,
        LoopbackServer(loki_answer) as loki,
    ):
        s = settings(prometheus_url=prom.url, loki_url=loki.url)
        evidence = await gather_evidence(alert(labels, DISK_SPACE_EXPR), s)
    queries = [r.param("query") for r in loki.requests]
    assert (LOKI_VOLUME_QUERY in queries) is asked
    if not asked:
        assert "loki-volume" not in by_id(evidence)
        return
    item = by_id(evidence)["loki-volume"]
    assert item.kind == "log_volume" and len(item.series) == 3
    result = await analyze(alert(labels, DISK_SPACE_EXPR), evidence, s)
    top = result.probable_causes[0]
    assert top.evidence_ids == ["loki-volume"]
    assert "ingest-gw-1" in top.cause and "31 times" in top.cause
    assert any("max-size" in step for step in result.remediation)


async def test_steady_container_logs_are_not_blamed_for_a_filling_disk() -> None:
    volume = volume_matrix({"api-1": [5000, 5200, 5100, 4900, 5000, 5300, 5100, 5000]})

    def loki_answer(request: Recorded) -> Reply:
        if request.param("query") == LOKI_VOLUME_QUERY:
            return Reply(body=volume)
        return Reply(body=loki_streams([(STARTS.timestamp(), "kernel: all quiet")], {}))

    labels = {"alertname": "HostDiskSpaceLow", "instance": "db-1:9100", "mountpoint": "/"}
    with (
        LoopbackServer(always(Reply(body=matrix()))) as prom,
        LoopbackServer(loki_answer) as loki,
    ):
        s = settings(prometheus_url=prom.url, loki_url=loki.url)
        evidence = await gather_evidence(alert(labels, DISK_SPACE_EXPR), s)
        result = await analyze(alert(labels, DISK_SPACE_EXPR), evidence, s)
    assert "loki-volume" in by_id(evidence)
    assert not any("api-1" in cause.cause for cause in result.probable_causes)


async def test_a_missing_path_is_traced_to_the_line_that_removed_it_hours_before() -> None:
    """A timer job cannot find its binary; the prune that removed its release ran five hours
    earlier, in another unit's journal: the evidence reads the removal lines naming the path
    on that machine over the last day, and the engine quotes the one that removed it."""
    base = STARTS.timestamp()
    job = {"job": "systemd-journal", "host": "batch-1", "unit": "export.service"}
    failing = [
        (
            base - 120,
            "export.service: Failed at step EXEC spawning "
            "/opt/app/releases/1.2.0/bin/export: No such file or directory",
        ),
        (base - 120, "export.service: Main process exited, code=exited, status=203/EXEC"),
    ]
    prune = (base - 5 * 3600, "prune: removing /opt/app/releases/1.2.0 (42 days old)")

    def loki_answer(request: Recorded) -> Reply:
        query, start = request.param("query"), int(request.param("start")) / 1e9
        if '|= "/opt/app/releases/1.2.0"' in query:
            assert 'host="batch-1"' in query and start <= prune[0]
            return Reply(body=loki_streams([prune], {**job, "unit": "prune.service"}))
        wanted = [(ts, line) for ts, line in failing if start <= ts]
        return Reply(body=loki_streams(wanted, job))

    labels = {
        "alertname": "HostSystemdServiceCrashed",
        "instance": "batch-1:9100",
        "name": "export.service",
        "state": "failed",
    }
    expr = 'node_systemd_unit_state{state="failed"} == 1'
    with (
        LoopbackServer(always(Reply(body=matrix()))) as prom,
        LoopbackServer(loki_answer) as loki,
    ):
        s = settings(prometheus_url=prom.url, loki_url=loki.url)
        evidence = await gather_evidence(alert(labels, expr), s)
        result = await analyze(alert(labels, expr), evidence, s)
    asked = [r.param("query") for r in loki.requests]
    assert any("/opt/app/releases/1.2.0" in q and "prun" in q for q in asked)
    text = " ".join(c.cause for c in result.probable_causes)
    assert "prune: removing /opt/app/releases/1.2.0" in text and "removed it" in text


def test_no_missing_path_asks_for_no_removal_lines() -> None:
    own = [{"host": "batch-1", "unit": "export.service"}]
    assert missing_path_selector([[(1, "export: connection refused")]], own) == ""
    # Two machines' streams: whose removal would it be?
    two = [*own, {"host": "batch-2", "unit": "export.service"}]
    missing = [[(1, "open /srv/x/y.conf: No such file or directory")]]
    assert missing_path_selector(missing, two) == ""
    assert missing_path_selector(missing, own).startswith('{host="batch-1"} |= "/srv/x"')


async def test_a_disk_alert_reads_the_machines_disk_failure_lines_of_the_last_day() -> None:
    """An array member that failed 85 minutes before the reads got slow is in the baseline:
    the machine's disk-failure lines are read over the last day, like a job's last runs."""
    base = STARTS.timestamp()
    failure = (base - 85 * 60, "md/raid:md0: Disk failure on sdd1, disabling device.")

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if query.startswith('{host="ci-2"} |~ "(?i)disk failure on'):
            return _loki_by_window([failure], {"host": "ci-2", "unit": "kernel"})(request)
        return _loki_by_window([(base - 30, "CRON[1]: (root) CMD (true)")], {})(request)

    slow = alert(
        {"alertname": "HostUnusualDiskReadLatency", "instance": "ci-2:9100", "device": "md0"},
        "rate(node_disk_read_time_seconds_total[1m]) > 0.1",
    )
    with LoopbackServer(loki) as server:
        items = by_id(await gather_evidence(slow, settings(loki_url=server.url)))
    assert any("Disk failure on sdd1" in t.example for t in items["loki-1"].templates)
    # A service's latency alert does not read a machine's disks.
    api = alert({"alertname": "ApiSlow", "job": "api"}, "histogram_quantile(0.99, x) > 1")
    with LoopbackServer(loki) as server:
        await gather_evidence(api, settings(loki_url=server.url))
    assert not any("disk failure" in r.param("query") for r in server.requests)


async def test_a_write_failing_for_space_names_the_machines_first_writer_to_fail() -> None:
    """The API cannot write its uploads; the job that filled the root filesystem logged its
    own failure first, in another unit's journal, which the API's streams do not include."""
    base = STARTS.timestamp()
    filler = "transcode[5122]: job 7: write /var/tmp/transcode/7/seg-9.y4m: no space left on device"
    victim = "ERROR uploads.api: POST /v1/uploads failed: [Errno 28] No space left on device"
    journal = [(base - 300, filler), (base - 280, victim)]

    def loki(request: Recorded) -> Reply:
        query = request.param("query")
        if query.startswith('{host="media-2"} |~ "(?i)no space left on device'):
            return _loki_by_window(journal, {"host": "media-2", "unit": "transcode.service"})(
                request
            )
        if query.startswith('{host="media-2",unit="uploads-api.service"}'):
            lines = [(base - 280 + 10 * i, victim) for i in range(5)]
            lines += [
                (base - 3000 + 60 * i, "INFO uploads.api: POST /v1/uploads 201") for i in range(40)
            ]
            return _loki_by_window(lines, {"host": "media-2", "unit": "uploads-api.service"})(
                request
            )
        return _loki_by_window([], {})(request)

    errors = alert(
        {"alertname": "UploadsApiErrors", "job": "uploads-api", "instance": "media-2:8081"},
        'sum(rate(http_requests_total{job="uploads-api",code=~"5.."}[5m])) > 1',
    )
    with LoopbackServer(loki) as server:
        evidence = await gather_evidence(errors, settings(loki_url=server.url))
    result = await analyze(errors, evidence, settings())
    first = next(c for c in result.probable_causes if "first write to fail" in c.cause)
    assert "transcode[5122]" in first.cause and "/var/tmp/transcode" in first.cause
    assert result.category == "disk_space"
    assert any("du -xh --max-depth=2 /var/tmp/transcode" in step for step in result.remediation)
    # Without a failed write, the machine's "no space" lines are not read.
    quiet = alert({"alertname": "ApiSlow", "job": "api", "instance": "media-2:8080"}, "x > 1")
    with LoopbackServer(loki) as server:
        await gather_evidence(quiet, settings(loki_url=server.url))
    assert not any("no space left" in r.param("query") for r in server.requests)


def test_an_exporters_view_of_its_datastore_reads_the_machines_journal() -> None:
    """`pg_up == 0`: the database's own unit (postgresql@16-main.service) is named by no
    label, so its machine's journal is read whole, like a scrape target's."""
    down = alert(
        {"alertname": "PostgresqlDown", "job": "postgres", "instance": "db-3:9187"}, "pg_up == 0"
    )
    assert '{host="db-3"}' in stream_selectors(down)
    # A service's own latency reads only its unit and the kernel there.
    slow = alert({"alertname": "ApiSlow", "job": "api", "instance": "db-3:8080"}, "latency > 1")
    assert '{host="db-3"}' not in stream_selectors(slow)


def test_a_service_on_a_named_machine_reads_what_configuration_management_changed_there() -> None:
    slow = alert({"alertname": "InvoicerSlow", "job": "invoicer", "instance": "bill-1:9400"})
    changes = [s for s in stream_selectors(slow) if "content changed" in s]
    assert changes == ['{host="bill-1"}' + CHANGE_FILTER]
    pattern = re.compile(re.search(r'\|~ "(.*)"$', CHANGE_FILTER).group(1))  # type: ignore[union-attr]
    puppet = "(/Stage[main]/Resolver/File[/etc/resolv.conf]/content) content changed '{sha256}9f'"
    assert pattern.search(puppet) and pattern.search("PLAY RECAP *********")
    assert not pattern.search('level=info msg="invoice issued" dur=184ms')
    # A probe's machine is whatever answers the address: its failure lines are read instead.
    probe = alert(
        {"alertname": "ProbeFailed", "job": "blackbox", "instance": "https://shop-1.example.com"}
    )
    assert not any("content changed" in s for s in stream_selectors(probe))


async def test_a_filling_mount_reads_what_writes_under_it_over_the_last_day() -> None:
    """Heap dumps written every 12 minutes for hours into a data directory: the lines that
    name the mount's paths are read over the last day, from any unit of the machine."""
    base = STARTS.timestamp()
    dumps = [
        (base - 8400 + 720 * i, f"Dumping heap to /var/lib/indexer/java_pid{4000 + i}.hprof ...")
        for i in range(11)
    ]
    reads = [(base - 600 + i, f"opened segment /var/lib/indexer/seg-{i}") for i in range(30)]

    def loki(request: Recorded) -> Reply:
        if request.param("query") == '{host="ingest-3"} |= "/var/lib/indexer/"':
            return _loki_by_window(dumps + reads, {"host": "ingest-3", "unit": "indexer"})(request)
        return _loki_by_window([(base - 30, "CRON[1]: (root) CMD (true)")], {})(request)

    full = alert(
        {
            "alertname": "HostDiskSpaceLow",
            "instance": "ingest-3:9100",
            "mountpoint": "/var/lib/indexer",
        },
        "node_filesystem_avail_bytes / node_filesystem_size_bytes * 100 < 5",
    )
    with LoopbackServer(loki) as server:
        evidence = await gather_evidence(full, settings(loki_url=server.url))
    assert "Dumping heap" in by_id(evidence)["loki-mount"].text
    result = await analyze(full, evidence, settings())
    writer = next(c for c in result.probable_causes if c.evidence_ids == ["loki-mount"])
    assert "What writes under /var/lib/indexer" in writer.cause and "11x" in writer.cause
    assert "hprof" in writer.cause  # the writer, not the more frequent reads
    # The root filesystem is not read this way: every line names a path under /.
    root = alert(
        {"alertname": "HostDiskSpaceLow", "instance": "ingest-3:9100", "mountpoint": "/"},
        "node_filesystem_avail_bytes / node_filesystem_size_bytes * 100 < 5",
    )
    with LoopbackServer(loki) as server:
        evidence = await gather_evidence(root, settings(loki_url=server.url))
    assert "loki-mount" not in by_id(evidence)


def test_a_kubernetes_services_alert_reads_its_workloads_pods() -> None:
    """kube-prometheus names the Service (`service`), not the pods; Kubernetes streams carry
    namespace and pod, never `service`: the workload's pods are found by their names."""
    slow = alert({"alertname": "HttpLatencyHigh", "namespace": "shop", "service": "catalog-api"})
    pods = [s for s in stream_selectors(slow) if "pod=~" in s]
    assert len(pods) == 1 and pods[0].startswith('{namespace="shop",pod=~"catalog-api-')
    pattern = re.compile(re.search(r'pod=~"(.*)"\}$', pods[0]).group(1))  # type: ignore[union-attr]
    for pod in ("catalog-api-7d9f8b6c4-x2kqp", "catalog-api-x2kqp", "catalog-api-0"):
        assert pattern.fullmatch(pod), pod
    assert not pattern.fullmatch("catalog-api-db-migrate-4xkzp")
    # A pod's own alert reads that pod only.
    own = alert({"alertname": "X", "namespace": "shop", "pod": "catalog-api-7d9f8b6c4-x2kqp"})
    assert not any("pod=~" in s for s in stream_selectors(own))


async def test_a_nightly_job_that_started_before_a_long_for_and_finished_is_the_load() -> None:
    """A reindex unit started 25 minutes before a CPU alert with `for: 15m` (before the recent
    window) and finished two minutes before the alert resolved: its start counts as news, its
    end is read as the alert recovered, and the answer says the load was the job and is over."""
    base = STARTS.timestamp()
    ends = STARTS + timedelta(minutes=90)
    unit = "Nightly full rebuild of the search index"
    journal = [
        (base - 10800 + 600 * i, f"CRON[{i}]: (root) CMD (run-parts /etc/cron.hourly)")
        for i in range(18)
    ]
    journal += [(base - 1500, f"Started reindex.service - {unit}.")]
    journal += [(base - 1200 + 600 * i, f"reindex: {i * 9}% documents") for i in range(12)]
    journal += [
        (base + 88 * 60, f"Finished reindex.service - {unit}."),
        (base + 88 * 60, "reindex.service: Consumed 2h41min 7.412s CPU time."),
    ]
    busy = alert(
        {"alertname": "HighCpuUsage", "instance": "srch-3:9100", "job": "node-exporter"},
        'avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) < 0.1',
    )
    resolved = busy.model_copy(update={"status": "resolved", "ends_at": ends})
    with LoopbackServer(_loki_by_window(journal, {"host": "srch-3"})) as server:
        evidence = await gather_evidence(resolved, settings(loki_url=server.url))
    started = next(t for t in by_id(evidence)["loki-1"].templates if "Started" in t.example)
    assert started.novelty == "new"
    result = await analyze(resolved, evidence, settings())
    cause = result.probable_causes[0]
    assert cause.cause.startswith("The unit reindex.service started at ")
    assert "25 min before the alert fired" in cause.cause
    assert "after using 2h41min 7.412s of CPU time" in cause.cause
    assert "the job's own work was the load, and it is over" in cause.cause
    assert cause.evidence_ids == ["loki-1", "loki-recovery"]
    assert result.severity == "info" and result.category == "cpu_saturation"
    # Still firing: the job is the likely load, no word of its end.
    with LoopbackServer(_loki_by_window(journal, {"host": "srch-3"})) as server:
        read = await gather_evidence(busy, settings(loki_url=server.url))
    firing = await analyze(busy, read, settings())
    job = next(c for c in firing.probable_causes if "reindex.service" in c.cause)
    assert "its work is the likely load" in job.cause and job.confidence == 0.6
    # A unit that starts every hour is routine, not news.
    hourly = [(base - 10800 + 3600 * i, f"Started reindex.service - {unit}.") for i in range(3)]
    with LoopbackServer(_loki_by_window(journal + hourly, {"host": "srch-3"})) as server:
        read = await gather_evidence(busy, settings(loki_url=server.url))
    routine = await analyze(busy, read, settings())
    assert not any("reindex.service started" in c.cause for c in routine.probable_causes)


async def test_a_resolved_alert_reads_what_was_done_just_before_it_recovered() -> None:
    """An operator killed the runaway process 68 minutes after the CPU alert fired: the
    machine's journal just before the resolution says so."""
    base = STARTS.timestamp()
    ends = STARTS + timedelta(minutes=68)
    kill = "ops : TTY=pts/0 ; PWD=/home/ops ; USER=root ; COMMAND=/usr/bin/kill -TERM 28741"
    journal = [(base + 68 * 60 - 90, kill), (base + 68 * 60 - 60, "Started thumbsync.service")]

    def loki(request: Recorded) -> Reply:
        if request.param("query").startswith('{host="crm-1"} |~ "(?i)COMMAND='):
            return _loki_by_window(journal, {"host": "crm-1", "unit": "sudo"})(request)
        return _loki_by_window([(base - 30, "CRON[1]: (root) CMD (true)")], {})(request)

    busy = alert(
        {"alertname": "HighCpuUsage", "instance": "crm-1:9100", "job": "node-exporter"},
        'avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])) < 0.1',
    ).model_copy(update={"status": "resolved", "ends_at": ends})
    with LoopbackServer(loki) as server:
        evidence = await gather_evidence(busy, settings(loki_url=server.url))
    result = await analyze(busy, evidence, settings())
    assert result.recovery is not None and "loki-recovery" in result.recovery.evidence_ids
    # The operator's command, not the automatic start after it.
    assert "just before, 'sudo: ops : TTY=pts/0" in result.summary
    assert "COMMAND=/usr/bin/kill -TERM 28741" in result.summary
    # A firing alert reads no recovery.
    with LoopbackServer(loki) as server:
        await gather_evidence(
            busy.model_copy(update={"status": "firing", "ends_at": None}),
            settings(loki_url=server.url),
        )
    assert not any("COMMAND=" in r.param("query") for r in server.requests)


async def test_a_free_space_alert_reads_the_machines_log_rotation_failures_of_the_last_day() -> (
    None
):
    base = STARTS.timestamp()
    failed = [
        (base - 3600 * h - 44, "logrotate.service: Failed with result 'exit-code'.")
        for h in (1, 2, 3)
    ]

    def loki(request: Recorded) -> Reply:
        if request.param("query").startswith('{host="app-14"} |~ "(?i)logrotate'):
            return _loki_by_window(failed, {"host": "app-14", "unit": "logrotate.service"})(request)
        return _loki_by_window([(base - 30, "CRON[1]: (root) CMD (true)")], {})(request)

    full = alert(
        {"alertname": "HostDiskSpaceLow", "instance": "app-14:9100", "mountpoint": "/"},
        "node_filesystem_avail_bytes / node_filesystem_size_bytes * 100 < 15",
    )
    with LoopbackServer(loki) as server:
        evidence = await gather_evidence(full, settings(loki_url=server.url))
    result = await analyze(full, evidence, settings())
    grows = next(c for c in result.probable_causes if c.cause.startswith("Logs outgrow the disk"))
    assert "log rotation fails ('logrotate.service: Failed with result" in grows.cause
    assert any("logrotate -d /etc/logrotate.conf" in step for step in result.remediation)
