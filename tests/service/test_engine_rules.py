"""The offline rules engine: classification by expression, metric family and labels."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from aiops_analyzer.engines.rules import RulesEngine, classify
from aiops_analyzer.evidence.runbooks import LINK_ONLY_DETAIL
from aiops_analyzer.schemas import Alert, EvidenceItem
from hypothesis import given, settings
from hypothesis import strategies as st

STARTS = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


def alert(name: str, expr: str = "", labels: dict[str, str] | None = None, **kw: object) -> Alert:
    url = f"http://prom:9090/graph?g0.expr={quote(expr)}&g0.tab=1" if expr else ""
    return Alert(
        fingerprint="0123456789abcdef",
        status="firing",
        labels={"alertname": name, **(labels or {})},
        starts_at=STARTS,
        generator_url=url,
        **kw,  # type: ignore[arg-type]
    )


# Deliberately meaningless alert names: the expression alone must decide.
@pytest.mark.parametrize(
    ("expr", "category"),
    [
        ('up{job="api"} == 0', "target_down"),
        ("nginx_up == 0", "target_down"),
        ('absent(up{job="billing"})', "target_down"),
        ("probe_success == 0", "target_down"),
        ('changes(container_start_time_seconds{name="web"}[15m]) > 2', "container_crash"),
        ("time() - container_last_seen > 60", "container_crash"),
        ("increase(kube_pod_container_status_restarts_total[10m]) > 3", "container_crash"),
        ("increase(container_oom_events_total[5m]) > 0", "oom_killed"),
        (
            "container_memory_working_set_bytes / container_spec_memory_limit_bytes > 0.9",
            "memory_pressure",
        ),
        ("node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.1", "memory_pressure"),
        ("sum by (name) (rate(container_cpu_usage_seconds_total[5m])) > 0.9", "cpu_saturation"),
        ("node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1", "disk_space"),
        (
            'node_load1 / count without (cpu, mode) (node_cpu_seconds_total{mode="idle"}) > 2',
            "host_load",
        ),
        (
            'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'
            " > 0.05",
            "error_rate",
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"
            " > 0.5",
            "latency",
        ),
        ("probe_ssl_earliest_cert_expiry - time() < 86400 * 7", "certificate_expiry"),
        (
            "kube_deployment_status_replicas_available < kube_deployment_spec_replicas",
            "workload_unavailable",
        ),
        ("rate(nginx_http_requests_total[5m]) < 0.1", "traffic_anomaly"),
        ("vector(1)", "heartbeat"),
        ('sum(rate(webhook_requests_total{code=~"[45].."}[5m])) > 0', "error_rate"),
        ('rate(llm_requests_total{outcome!="ok"}[10m]) > 0', "error_rate"),
        ("max(work_queue_depth) > 50", "queue_backlog"),
        ("max(workers_alive) < 1", "target_down"),
    ],
)
def test_unseen_rules_are_classified_by_their_expression(expr: str, category: str) -> None:
    found = classify(alert("Rule0042", expr))
    assert found.family.category == category
    assert found.matched_by == "expression"


def test_expression_outweighs_a_misleading_name() -> None:
    assert classify(alert("HighLatency", "up == 0")).family.category == "target_down"


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("DiskAlmostFull", "disk_space"),
        ("PodCrashLooping", "container_crash"),
        ("ServiceDown", "target_down"),
        ("Watchdog", "heartbeat"),
    ],
)
def test_without_an_expression_the_name_decides(name: str, category: str) -> None:
    found = classify(alert(name))
    assert found.family.category == category
    assert found.matched_by == "name"


def test_severity_from_label_or_inferred() -> None:
    engine = RulesEngine()
    assert engine.analyze(alert("X", "up == 0", {"severity": "page"}), []).severity == "critical"
    assert engine.analyze(alert("X", "up == 0", {"severity": "info"}), []).severity == "info"
    assert engine.analyze(alert("X", "up == 0"), []).severity == "critical"
    assert engine.analyze(alert("X", "node_load1 > 4"), []).severity == "warning"
    assert engine.analyze(alert("Watchdog", "vector(1)"), []).severity == "none"


def ok(item_id: str, source: str, text: str, query: str = "") -> EvidenceItem:
    return EvidenceItem(id=item_id, source=source, text=text, query=query)  # type: ignore[arg-type]


def test_cites_only_evidence_it_used_and_quotes_it() -> None:
    evidence = [
        ok(
            "prom-1",
            "prometheus",
            "alert expression: 1 series over 35m\n- {job=api} last=0 min=0 "
            "max=1 trend=falling points: -30m=1, now=0",
        ),
        EvidenceItem(id="prom-2", source="prometheus", status="unavailable", detail="timed out"),
        ok(
            "loki-1",
            "loki",
            "2 error-like log lines (newest first):\n01:00:03 FATAL: bind: "
            "address already in use\n01:00:01 error",
        ),
        ok("runbook-1", "runbook", "# TargetDown", query="monitoring/runbooks/ApiDown.md"),
    ]
    a = alert(
        "ApiDown",
        'up{job="api"} == 0',
        {"job": "api", "instance": "api:8080"},
        annotations={"runbook_url": "https://runbooks.example.com/api-down"},
    )
    result = RulesEngine().analyze(a, evidence)
    assert result.category == "target_down"
    assert result.engine == "rules"
    assert not result.inconclusive
    main = result.probable_causes[0]
    assert main.evidence_ids == ["prom-1", "loki-1"]
    assert "last=0 min=0 max=1 trend=falling" in main.cause
    cited = {i for c in result.probable_causes for i in c.evidence_ids}
    assert "prom-2" not in cited
    log_cause = result.probable_causes[1]
    assert "address already in use" in log_cause.cause
    assert log_cause.evidence_ids == ["loki-1"]
    assert result.runbook_urls == [
        "https://runbooks.example.com/api-down",
        "monitoring/runbooks/ApiDown.md",
    ]
    assert any("monitoring/runbooks/ApiDown.md" in step for step in result.remediation)
    assert main.confidence > result.probable_causes[-1].confidence


def test_with_only_the_runbook_the_causes_cite_it() -> None:
    unavailable = [
        EvidenceItem(id="prom-1", source="prometheus", status="unavailable", detail="not set"),
        EvidenceItem(id="loki-1", source="loki", status="unavailable", detail="not set"),
    ]
    runbook = ok("runbook-1", "runbook", "# NginxDown\n## Meaning", "monitoring/runbooks/N.md")
    a = alert("NginxDown", "nginx_up == 0", {"instance": "nginx-exporter:9113"})

    result = RulesEngine().analyze(a, [*unavailable, runbook])
    family_causes = result.probable_causes
    assert len(family_causes) >= 2
    assert all(c.evidence_ids == ["runbook-1"] for c in family_causes)
    # The runbook backs no number: it adds no confidence.
    without = RulesEngine().analyze(a, unavailable)
    assert [c.confidence for c in result.probable_causes] == [
        c.confidence for c in without.probable_causes
    ]
    assert all(c.evidence_ids == [] for c in without.probable_causes)

    # Metrics and logs stay what the main cause cites when there are any.
    metric = ok("prom-1", "prometheus", "alert expression: 1 series over 35m\n- {} last=0")
    with_metric = RulesEngine().analyze(a, [metric, unavailable[1], runbook])
    assert with_metric.probable_causes[0].evidence_ids == ["prom-1"]

    # A runbook_url that was only recorded, never read, is no evidence for anything.
    link = EvidenceItem(
        id="runbook-1",
        source="runbook",
        query="https://runbooks.example.com/nginx",
        text="Runbook link from the alert's runbook_url annotation (not fetched)",
        detail=LINK_ONLY_DETAIL,
    )
    linked = RulesEngine().analyze(a, [*unavailable, link])
    assert all(c.evidence_ids == [] for c in linked.probable_causes)
    assert "https://runbooks.example.com/nginx" in linked.runbook_urls


def test_container_remediation_names_the_container() -> None:
    a = alert("Whatever", "changes(container_start_time_seconds[15m]) > 2", {"name": "billing"})
    result = RulesEngine().analyze(a, [])
    assert result.category == "container_crash"
    assert any("docker logs --tail 200 billing" in step for step in result.remediation)
    assert "container name billing" in result.summary


def test_inconclusive_when_nothing_supports_a_cause() -> None:
    not_set = [
        EvidenceItem(
            id="prom-1",
            source="prometheus",
            status="unavailable",
            detail="AIOPS_PROMETHEUS_URL is not set",
        )
    ]
    unreachable = [
        EvidenceItem(id="prom-1", source="prometheus", status="unavailable", detail="timed out"),
        EvidenceItem(id="loki-1", source="loki", status="empty", query='{container="db"}'),
    ]
    with_data = [
        ok(
            "prom-1",
            "prometheus",
            "alert expression: 1 series over 35m\n- {} last=4 min=1 max=4 trend=rising",
        )
    ]
    unknown, down = alert("Xyzzy", "foo_bar_baz > 3"), alert("Xyzzy", "up == 0")

    # Unclassifiable and no evidence: nothing to go on.
    result = RulesEngine().analyze(unknown, not_set)
    assert result.category == "unknown"
    assert result.inconclusive
    assert "Unavailable evidence: prometheus" in result.summary
    # Offline (sources not configured): the expression alone still supports a family.
    assert not RulesEngine().analyze(down, not_set).inconclusive
    # Sources asked and silent: any root cause would be a guess.
    result = RulesEngine().analyze(down, unreachable)
    assert result.inconclusive
    assert "Inconclusive: no metric or log evidence" in result.summary
    assert result.probable_causes[0].confidence <= 0.3
    # Data present: conclusive, even for an unknown family.
    assert not RulesEngine().analyze(unknown, with_data).inconclusive


def test_secrets_in_annotations_do_not_reach_the_summary() -> None:
    a = alert("DbDown", "up == 0", annotations={"summary": "db down, dsn postgres://u:pw123@db/x"})
    result = RulesEngine().analyze(a, [])
    assert "pw123" not in result.summary
    assert "[REDACTED:url_password]" in result.summary


def test_deterministic() -> None:
    a = alert("X", "node_filesystem_avail_bytes < 1e9", {"instance": "n1:9100"})
    assert RulesEngine().analyze(a, []) == RulesEngine().analyze(a, [])


text = st.text(max_size=80)


@settings(max_examples=300, deadline=None)
@given(
    labels=st.dictionaries(
        st.sampled_from(["name", "container", "instance", "job", "severity", "x"])
        | st.text(min_size=1, max_size=20),
        st.text(max_size=400),
        max_size=6,
    ),
    annotations=st.dictionaries(st.text(min_size=1, max_size=20), text, max_size=4),
    expr=st.one_of(text, st.sampled_from(["up == 0", "(((", '{a="', "rate(x[5m]"])),
)
def test_any_alert_gets_a_valid_analysis(
    labels: dict[str, str], annotations: dict[str, str], expr: str
) -> None:
    a = alert("Fuzz", expr, labels, annotations=annotations)
    result = RulesEngine().analyze(a, [])
    assert result.summary
    assert len(result.summary) < 1000  # label values are clipped when quoted
    assert result.probable_causes
    assert result.remediation
    assert all(0 <= c.confidence <= 1 for c in result.probable_causes)


def summary_item(item_id: str, title: str, line: str) -> EvidenceItem:
    return ok(item_id, "prometheus", f"{title}: 1 series over 35m\n- {line} points: now=1")


def logs(item_id: str, heading: str, *lines: str) -> EvidenceItem:
    body = "\n".join(f"01:00:{n:02d} {line}" for n, line in enumerate(lines))
    return ok(item_id, "loki", f"{heading}\n{body}")


def test_flapping_condition_is_called_out_with_a_tuning_step() -> None:
    evidence = [
        summary_item(
            "prom-1",
            "alert expression",
            "{name=svc} last=91.2 min=90.8 max=92.4 trend=oscillating runs=15",
        )
    ]
    result = RulesEngine().analyze(
        alert("CpuHot", "container_cpu_usage_seconds_total > 90"), evidence
    )
    flap = [c for c in result.probable_causes if "intermittently" in c.cause]
    assert flap and flap[0].evidence_ids == ["prom-1"]
    assert "15 separate stretches" in flap[0].cause
    assert result.remediation[0].startswith("Tune the rule")


def test_memory_sawtooth_turns_restarts_into_an_oom_kill() -> None:
    evidence = [
        summary_item("prom-1", "alert expression", "{name=api} last=3 min=3 max=3 trend=flat"),
        summary_item(
            "prom-3",
            "container memory working set / limit",
            "{name=api} last=0.8 min=0.35 max=0.99 trend=flat drops=3",
        ),
    ]
    a = alert(
        "ContainerRestarting", "changes(container_start_time_seconds[15m]) >= 3", {"name": "api"}
    )
    result = RulesEngine().analyze(a, evidence)
    assert result.category == "oom_killed"
    oom = [c for c in result.probable_causes if "99% of the container's memory limit" in c.cause]
    assert oom and oom[0].evidence_ids == ["prom-3"]
    # The same restarts without the memory pattern stay a crash loop.
    calm = summary_item(
        "prom-3",
        "container memory working set / limit",
        "{name=api} last=0.2 min=0.2 max=0.2 trend=flat",
    )
    assert RulesEngine().analyze(a, [evidence[0], calm]).category == "container_crash"


def test_oom_in_logs_and_clean_shutdown_in_logs() -> None:
    down = alert("ContainerDown", "time() - container_last_seen > 60", {"name": "etl"})
    killed = logs("loki-2", "2 most recent other log lines:", "worker exited code=137 (OOMKilled)")
    assert RulesEngine().analyze(down, [killed]).category == "oom_killed"

    stopped = logs(
        "loki-2",
        "3 most recent other log lines:",
        'level=info msg="shutdown complete"',
        'level=info msg="received signal" signal=terminated',
    )
    result = RulesEngine().analyze(down, [stopped])
    assert result.category == "container_crash"
    clean = [c for c in result.probable_causes if "termination signal" in c.cause]
    assert clean and clean[0].evidence_ids == ["loki-2"]
    assert "not a crash" in clean[0].cause


def test_distinct_error_lines_are_quoted() -> None:
    errors = logs(
        "loki-1",
        "4 error-like log lines (newest first):",
        'level=info msg="process exiting after panic"',
        'level=error msg="unhandled exception" err="index out of range [3]"',
        'level=info msg="process exiting after panic"',
        "level=error msg=db timeout",
    )
    a = alert("GwRestarts", "changes(container_start_time_seconds[15m]) > 2", {"name": "gw"})
    cause = next(
        c for c in RulesEngine().analyze(a, [errors]).probable_causes if "logged errors" in c.cause
    )
    assert cause.cause.count("process exiting after panic") == 1
    assert "index out of range [3]" in cause.cause
    assert "db timeout" in cause.cause


def test_busiest_program_named_for_a_resource_alert() -> None:
    host_logs = logs(
        "loki-2",
        "4 most recent other log lines:",
        "CRON[20211]: (batch) CMD (/opt/jobs/rebuild-search-index --full)",
        "rebuild-search-index[20214]: full rebuild started",
        "rebuild-search-index[20214]: progress 1200000/9000000",
        "systemd[1]: Started session-412.scope",
    )
    a = alert(
        "HostCpuHigh", 'rate(node_cpu_seconds_total{mode="idle"}[5m]) < 0.1', {"instance": "h:9100"}
    )
    result = RulesEngine().analyze(a, [host_logs])
    assert result.category == "cpu_saturation"
    busy = next(c for c in result.probable_causes if "dominated by" in c.cause)
    assert busy.cause.startswith(
        "The logs in the window are dominated by rebuild-search-index (2 lines)"
    )
    assert busy.evidence_ids == ["loki-2"]


def test_cost_grows_linearly_with_the_expression() -> None:
    def seconds(terms: int) -> float:
        expr = " + ".join(f"rate(metric_{i}_total[5m])" for i in range(terms))
        a = alert("Generated", expr)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            RulesEngine().analyze(a, [])
            times.append(time.perf_counter() - started)
        return sorted(times)[1]

    # Eight times the expression: linear work takes about 8x as long, quadratic 64x.
    assert seconds(16_000) / seconds(2_000) < 24
