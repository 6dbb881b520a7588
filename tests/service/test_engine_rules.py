"""The offline rules engine: classification by expression, metric family and labels."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from aiops_analyzer.engines import findings
from aiops_analyzer.engines.rules import FAMILY_BY_CATEGORY, RulesEngine, classify
from aiops_analyzer.evidence.logrank import LogLine, rank
from aiops_analyzer.evidence.prometheus import MAX_FAMILY_QUERIES, plan_queries
from aiops_analyzer.evidence.runbooks import LINK_ONLY_DETAIL
from aiops_analyzer.evidence.series import describe
from aiops_analyzer.schemas import Alert, EvidenceItem
from hypothesis import given, settings
from hypothesis import strategies as st

STARTS = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)
WORKING_SET_OVER_90 = "container_memory_working_set_bytes / container_spec_memory_limit_bytes > 0.9"


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
            WORKING_SET_OVER_90,
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
        ("max(work_queue_depth) > 50", "queue_lag"),
        ("max(workers_alive) < 1", "target_down"),
        ("rate(jvm_gc_pause_seconds_sum[5m]) > 0.1", "garbage_collection"),
        ("rate(go_gc_duration_seconds_sum[5m]) > 0.05", "garbage_collection"),
        ("changes(node_boot_time_seconds[30m]) > 0", "reboot"),
        ("node_reboot_required > 0", "reboot"),
        ("time() - sales_report_generated_timestamp_seconds > 93600", "failed_job"),
        ('time() - node_textfile_mtime_seconds{file="backup.prom"} > 3600', "failed_job"),
        ("time() - node_boot_time_seconds < 600", "reboot"),
        (
            "certmanager_certificate_expiration_timestamp_seconds - time() < 21 * 86400",
            "certificate_expiry",
        ),
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


END = STARTS.timestamp() + 300  # the evidence window ends five minutes after startsAt


def metric(
    item_id: str,
    kind: str,
    values: list[float],
    labels: dict[str, str] | None = None,
    *,
    step: float = 60.0,
    end: float = END,
    limit: float | None = None,
) -> EvidenceItem:
    """A Prometheus item of one series whose last point is at ``end``."""
    points = [(end - (len(values) - 1 - i) * step, v) for i, v in enumerate(values)]
    series = describe(points, step, labels=labels or {}, alert_labels=labels or {}, limit=limit)
    return EvidenceItem(
        id=item_id,
        source="prometheus",
        kind=kind,
        series=[series],
        text=f"{kind}: 1 series",
        window_start=END - 1800,
        window_end=END,
    )


def log_item(item_id: str, *lines: str, baseline: tuple[str, ...] = ()) -> EvidenceItem:
    """A Loki templates item: ``baseline`` lines long before startsAt, ``lines`` just before."""
    start = STARTS.timestamp()
    mined = [LogLine(start - 1500 + i, line, False) for i, line in enumerate(baseline)]
    mined += [LogLine(start - 60 + i, line, True) for i, line in enumerate(lines)]
    return EvidenceItem(
        id=item_id,
        source="loki",
        kind="log_templates",
        templates=rank(mined, 900.0, 900.0),
        text="templates",
    )


def test_cites_only_evidence_it_used_and_quotes_it() -> None:
    evidence = [
        metric("prom-1", "alert_expression", [1, 1, 1, 0, 0, 0], {"job": "api"}),
        EvidenceItem(id="prom-2", source="prometheus", status="unavailable", detail="timed out"),
        log_item("loki-1", "FATAL: bind: address already in use", "error"),
        ok("runbook-1", "runbook", "# TargetDown", query="monitoring/runbooks/ApiDown.md"),
    ]
    a = alert(
        "ApiDown",
        'up{job="api"} == 0',
        {"job": "api", "instance": "api:8080"},
        annotations={"runbook_url": "https://runbooks.example.com/api-down"},
    )
    result = RulesEngine().analyze(a, evidence)
    # Down is the symptom; a port another process holds is the cause.
    assert result.category == "misconfiguration"
    assert result.engine == "rules"
    assert not result.inconclusive
    main = next(c for c in result.probable_causes if "Observed" in c.cause)
    assert main.evidence_ids == ["prom-1", "loki-1"]
    assert "current=0 min=0 max=1 trend=falling" in main.cause
    cited = {i for c in result.probable_causes for i in c.evidence_ids}
    assert "prom-2" not in cited
    log_cause = next(c for c in result.probable_causes if "address already in use" in c.cause)
    assert log_cause.evidence_ids == ["loki-1"]
    assert result.runbook_urls == [
        "https://runbooks.example.com/api-down",
        "monitoring/runbooks/ApiDown.md",
    ]
    assert any("monitoring/runbooks/ApiDown.md" in step for step in result.remediation)
    assert result.probable_causes[0].confidence > result.probable_causes[-1].confidence


def test_with_only_the_runbook_the_causes_cite_it() -> None:
    unavailable = [
        EvidenceItem(id="prom-1", source="prometheus", status="unavailable", detail="not set"),
        EvidenceItem(id="loki-1", source="loki", status="unavailable", detail="not set"),
    ]
    runbook = ok("runbook-1", "runbook", "# NginxDown\n## Meaning", "monitoring/runbooks/N.md")
    a = alert("NginxDown", "nginx_up == 0", {"instance": "nginx-exporter:9113"})

    result = RulesEngine().analyze(a, [*unavailable, runbook])
    family_causes = result.probable_causes
    # Both sources were asked and failed: inconclusive, so no stock cause is offered as a
    # guess; the one cause says what the alert measures and cites the runbook it was read in.
    assert result.inconclusive and result.category == "unknown"
    assert [c.cause for c in family_causes] == [
        "Inconclusive: the alert reports a scrape target or service that is down, but no "
        "metric or log evidence shows why."
    ]
    assert all(c.evidence_ids == ["runbook-1"] for c in family_causes)
    # The runbook backs no number: it adds no confidence.
    without = RulesEngine().analyze(a, unavailable)
    assert [c.confidence for c in result.probable_causes] == [
        c.confidence for c in without.probable_causes
    ]
    assert all(c.evidence_ids == [] for c in without.probable_causes)

    # Metrics and logs stay what the main cause cites when there are any.
    own = metric("prom-1", "alert_expression", [0, 0, 0])
    with_metric = RulesEngine().analyze(a, [own, unavailable[1], runbook])
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
    with_data = [metric("prom-1", "alert_expression", [1, 2, 3, 4])]
    with_cause = [*with_data, log_item("loki-1", "dial tcp: lookup db.internal: no such host")]
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
    # Numbers that explain nothing about an unknown alert: still inconclusive, said so.
    assert RulesEngine().analyze(unknown, with_data).inconclusive
    # A cause in the evidence: conclusive, even for an unknown family.
    result = RulesEngine().analyze(unknown, with_cause)
    assert not result.inconclusive
    assert any("Name resolution fails" in c.cause for c in result.probable_causes)
    # A known family whose series were read and explain nothing: no stock cause as a guess.
    result = RulesEngine().analyze(down, with_data)
    assert result.inconclusive and result.category == "unknown"
    assert result.probable_causes[0].cause.startswith("Inconclusive: the alert reports")
    # The same alert resolved: the answer is when it recovered, not "inconclusive".
    resolved = down.model_copy(
        update={"status": "resolved", "ends_at": STARTS + timedelta(minutes=4)}
    )
    assert not RulesEngine().analyze(resolved, with_data).inconclusive
    # A heartbeat explains itself.
    watchdog = alert("Watchdog", "vector(1)")
    assert not RulesEngine().analyze(watchdog, with_data).inconclusive


@pytest.mark.parametrize(
    ("name", "expr", "category"),
    [
        (
            "CertManagerCertExpirySoon",
            "certmanager_certificate_expiration_timestamp_seconds - time() < 21 * 86400",
            "certificate_expiry",
        ),
        ("HostClockSkew", "abs(node_timex_offset_seconds) > 0.05", "clock_skew"),
        ("JvmGcTimeHigh", "rate(jvm_gc_pause_seconds_sum[5m]) > 0.1", "garbage_collection"),
        ("NodeRebooted", "changes(node_boot_time_seconds[30m]) > 0", "reboot"),
    ],
)
def test_an_alert_that_measures_a_cause_is_not_inconclusive(
    name: str, expr: str, category: str
) -> None:
    """Days left on a certificate, a clock's offset, time in GC, a boot time that moved: the
    alert's own series is the evidence for its cause, even when why (a failed renewal) is not
    in the evidence."""
    with_data = [metric("prom-1", "alert_expression", [5, 5, 5, 5])]
    result = RulesEngine().analyze(alert(name, expr), with_data)
    assert not result.inconclusive and result.category == category
    assert "prom-1" in result.probable_causes[0].evidence_ids
    # Its series gone (nothing to read): no evidence of the cause, inconclusive as before.
    gone = [EvidenceItem(id="prom-1", source="prometheus", status="empty", query=expr)]
    assert RulesEngine().analyze(alert(name, expr), gone).inconclusive
    # A symptom alert with the same data stays inconclusive: CPU busy says nothing of why.
    cpu = alert("HighCpu", "rate(process_cpu_seconds_total[5m]) > 0.9")
    assert RulesEngine().analyze(cpu, with_data).inconclusive


def test_another_exporter_s_name_label_is_not_a_container() -> None:
    """cAdvisor's `name` is a container; cert-manager's is a certificate."""
    cert = alert(
        "CertManagerCertExpirySoon",
        "certmanager_certificate_expiration_timestamp_seconds - time() < 21 * 86400",
        {"name": "shop-api-tls", "exported_namespace": "shop"},
    )
    result = RulesEngine().analyze(cert, [])
    assert "container" not in result.summary.split(":")[0]
    assert (
        "container name web"
        in RulesEngine().analyze(alert("Xyzzy", labels={"name": "web"}), []).summary
    )


def test_a_slow_steady_climb_near_the_limit_is_growth() -> None:
    """86% -> 94% of the limit: under the 10% first-to-last change a trend needs, but every
    step goes up; it is a leak on its way to the limit."""
    api = {"name": "api"}
    climb = [0.86 + 0.08 * i / 29 + (0.002 if i % 2 else 0.0) for i in range(30)]
    evidence = [
        metric("prom-1", "alert_expression", [x * 100 for x in climb[-3:]], api),
        metric("prom-2", "container_cpu", [0.1] * 30, api),
        metric("prom-3", "container_memory_ratio", climb, api),
    ]
    a = alert(
        "ContainerMemoryHigh",
        WORKING_SET_OVER_90,
        api,
    )
    result = RulesEngine().analyze(a, evidence)
    growth = next(c for c in result.probable_causes if "grows steadily" in c.cause)
    assert "a leak, not load" in growth.cause and growth.evidence_ids == ["prom-3", "prom-2"]
    assert not result.inconclusive
    # The same level wandering up and down: no growth is claimed.
    wander = [0.9 + (0.03 if i % 4 < 2 else -0.03) for i in range(30)]
    flat = RulesEngine().analyze(
        a, [evidence[0], evidence[1], metric("prom-3", "container_memory_ratio", wander, api)]
    )
    assert not any("grows steadily" in c.cause for c in flat.probable_causes)
    # Steady, but weeks from the limit: a drift, not what raised today's alert.
    drift = [0.50 + 0.001 * i for i in range(30)]  # +0.1 percentage point an hour
    hourly = metric("prom-3", "container_memory_ratio", drift, api, step=3600)
    slow = RulesEngine().analyze(a, [evidence[0], evidence[1], hourly])
    assert not any("grows steadily" in c.cause for c in slow.probable_causes)


def test_a_burst_of_errors_that_resolved_by_itself_within_minutes_is_inconclusive() -> None:
    """Nothing in the evidence explains a 5xx burst that held three minutes: a blip, told as
    such, not the family's stock "a dependency, a bad deploy or overload"."""
    web = {"container": "storefront", "service": "nginx"}
    expr = 'sum(rate(nginx_http_requests_total{status=~"5.."}[5m])) > 0.05'
    # The condition's points end as it resolved, three minutes after it started.
    held = STARTS.timestamp() + 150
    ratio = metric("prom-1", "alert_expression", [0.06, 0.07, 0.06], web, end=held)
    routine = log_item("loki-1", "GET /health 200", baseline=("GET /health 200",) * 20)

    def resolved(minutes: float) -> Alert:
        return alert("NginxHigh5xxRate", expr, web).model_copy(
            update={"status": "resolved", "ends_at": STARTS + timedelta(minutes=minutes)}
        )

    blip = RulesEngine().analyze(resolved(3), [ratio, routine])
    assert blip.inconclusive and blip.category == "unknown" and blip.severity == "info"
    assert "It held 3 min and resolved by itself: a transient burst" in (
        blip.probable_causes[0].cause
    )
    assert "on container storefront:" in blip.summary
    # Half an hour of errors is no blip, even resolved: the family's answer stands.
    assert not RulesEngine().analyze(resolved(30), [ratio, routine]).inconclusive
    # Someone acted just before it recovered: not resolved by itself.
    act = log_item("loki-recovery", "ops : COMMAND=/usr/bin/systemctl restart cart-api")
    act = act.model_copy(update={"kind": "recovery_acts"})
    assert not RulesEngine().analyze(resolved(3), [ratio, routine, act]).inconclusive
    # A finding that explains the burst keeps its cause.
    refused = log_item("loki-1", *["connect() failed (111: Connection refused) upstream"] * 5)
    assert not RulesEngine().analyze(resolved(3), [ratio, refused]).inconclusive


def test_secrets_in_annotations_do_not_reach_the_summary() -> None:
    a = alert("DbDown", "up == 0", annotations={"summary": "db down, dsn postgres://u:pw123@db/x"})
    result = RulesEngine().analyze(a, [])
    assert "pw123" not in result.summary
    assert "[REDACTED:url_password]" in result.summary


def test_the_alert_s_own_words_end_as_a_sentence() -> None:
    a = alert("Rejects", "up == 0", annotations={"summary": "feed rejected rows in the last hour"})
    assert "The alert says: feed rejected rows in the last hour. " in (
        RulesEngine().analyze(a, [metric("prom-1", "alert_expression", [1, 2, 3])]).summary
    )
    done = alert("Rejects", "up == 0", annotations={"summary": "Feed is down!"})
    assert "Feed is down!." not in RulesEngine().analyze(done, []).summary


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


def test_flapping_condition_is_called_out_with_a_tuning_step() -> None:
    values = [91.0 if i % 4 < 2 else float("nan") for i in range(60)]
    evidence = [metric("prom-1", "alert_expression", values, {"name": "svc"})]
    result = RulesEngine().analyze(
        alert("CpuHot", "container_cpu_usage_seconds_total > 90", {"name": "svc"}), evidence
    )
    flap = [c for c in result.probable_causes if "intermittently" in c.cause]
    assert flap and flap[0].evidence_ids == ["prom-1"]
    assert "15 separate stretches" in flap[0].cause
    assert result.remediation[0].startswith("Tune the rule")


def test_memory_sawtooth_turns_restarts_into_an_oom_kill() -> None:
    api = {"name": "api"}
    evidence = [
        metric("prom-1", "alert_expression", [3, 3, 3], api),
        metric("prom-3", "container_memory_ratio", [0.35, 0.6, 0.8, 0.99] * 3 + [0.8], api),
    ]
    a = alert("ContainerRestarting", "changes(container_start_time_seconds[15m]) >= 3", api)
    result = RulesEngine().analyze(a, evidence)
    assert result.category == "oom_killed"
    oom = [c for c in result.probable_causes if "99% of the container's memory limit" in c.cause]
    assert oom and oom[0].evidence_ids == ["prom-3"]
    # The same restarts without the memory pattern: no OOM claimed, and no cause either.
    calm = RulesEngine().analyze(
        a, [evidence[0], metric("prom-3", "container_memory_ratio", [0.2] * 13, api)]
    )
    assert calm.inconclusive and calm.category == "unknown"
    assert not any("memory limit" in c.cause for c in calm.probable_causes)
    # The sawtooth with the restart counter at zero and no OOM event: the memory was freed
    # (a cache dropped, a batch child ended), nothing was killed.
    sawtooth = evidence[1]
    memory_alert = alert("ContainerMemoryHigh", WORKING_SET_OVER_90, api)
    unrestarted = [
        metric("prom-1", "alert_expression", [0.95, 0.96, 0.97], api),
        sawtooth,
        metric("prom-4", "container_restarts", [0] * 13, api),
        metric("prom-6", "container_oom_events", [0] * 13, api),
    ]
    result = RulesEngine().analyze(memory_alert, unrestarted)
    assert not any("oom" in c.cause.lower() for c in result.probable_causes)
    # An OOM event in the window confirms the kill, restarts or not.
    killed = [*unrestarted[:3], metric("prom-6", "container_oom_events", [0] * 6 + [1] * 7, api)]
    result = RulesEngine().analyze(memory_alert, killed)
    assert any("oom" in c.cause.lower() for c in result.probable_causes)
    # One fall at 97%, one restart, the OOM counter flat and the process saying it handled
    # SIGTERM: an orderly stop (an OOM kill is a SIGKILL, which leaves no such line).
    fell = metric("prom-3", "container_memory_ratio", [0.9, 0.93, 0.95, 0.97, 0.2, 0.21], api)
    once = metric("prom-4", "container_restarts", [0, 0, 0, 0, 1, 1], api)
    flat = metric("prom-6", "container_oom_events", [0] * 6, api)
    term = log_item(
        "loki-1",
        'level=info msg="received signal" signal=terminated',
        'level=info msg="shutdown complete"',
    )
    result = RulesEngine().analyze(memory_alert, [unrestarted[0], fell, once, flat, term])
    assert not any("oom" in c.cause.lower() for c in result.probable_causes)
    assert any("termination signal" in c.cause for c in result.probable_causes)
    # Without that line, the fall at the limit and the restart still read as a kill.
    result = RulesEngine().analyze(memory_alert, [unrestarted[0], fell, once, flat])
    assert any("oom-killed the process" in c.cause.lower() for c in result.probable_causes)


def test_container_gone_at_its_memory_limit_is_an_oom_kill() -> None:
    """Memory at 99.5% of the limit just before the container's series stopped."""
    etl = {"name": "etl"}
    ratio = [0.6 + 0.395 * i / 23 for i in range(24)]  # climbs to 0.995, then no more points
    evidence = [
        metric("prom-1", "alert_expression", [120, 180, 240, 300], etl),
        metric("prom-3", "container_memory_ratio", ratio, etl, end=END - 360),
        metric("prom-4", "container_restarts", [0] * 24, etl, end=END - 360),
    ]
    down = alert("ContainerDown", "time() - container_last_seen > 60", etl)
    result = RulesEngine().analyze(down, evidence)
    assert result.category == "oom_killed"
    cause = next(c for c in result.probable_causes if "vanished at the limit" in c.cause)
    assert "99.5%" in cause.cause and cause.evidence_ids == ["prom-3"]
    # Well below the limit when it went away: no OOM is inferred, and no crash loop either.
    low = metric("prom-3", "container_memory_ratio", [0.3] * 24, etl, end=END - 360)
    result = RulesEngine().analyze(down, [evidence[0], low, evidence[2]])
    assert result.inconclusive and result.category == "unknown"  # gone, and nothing says why
    text = " ".join(c.cause for c in result.probable_causes)
    assert "OOM" not in text and "crash loop" not in text
    assert "did not restart" in text


def test_page_cache_is_not_a_reason_to_raise_the_limit() -> None:
    web = {"name": "web"}
    gib = 1024**3
    evidence = [
        metric("prom-1", "alert_expression", [92, 93, 94], web),
        metric("prom-7", "container_memory_cache", [1.5 * gib] * 5, web, limit=2 * gib),
        metric("prom-8", "container_memory_rss", [0.3 * gib] * 5, web, limit=2 * gib),
    ]
    a = alert(
        "ContainerHighMemoryUsage",
        WORKING_SET_OVER_90,
        web,
    )
    result = RulesEngine().analyze(a, evidence)
    cache = next(c for c in result.probable_causes if "Page cache" in c.cause)
    assert cache.evidence_ids == ["prom-7", "prom-8"]
    assert "83%" in cache.cause and "keep the memory limit as it is" in cache.cause
    # Reclaimable cache is no outage: a critical label is lowered, nobody needs waking.
    critical = a.model_copy(update={"labels": {**a.labels, "severity": "critical"}})
    assert RulesEngine().analyze(critical, evidence).severity == "warning"
    # A working set that is really the process (RSS near the limit) gets no such claim.
    rss = metric("prom-8", "container_memory_rss", [1.8 * gib] * 5, web, limit=2 * gib)
    result = RulesEngine().analyze(a, [evidence[0], evidence[1], rss])
    assert not any("Page cache" in c.cause for c in result.probable_causes)
    assert RulesEngine().analyze(critical, [evidence[0], evidence[1], rss]).severity == "critical"
    # A container far from its limit: the cache explains no alert about it (a proxy's 5xx).
    small = [
        metric("prom-7", "container_memory_cache", [0.15 * gib] * 5, web, limit=2 * gib),
        metric("prom-8", "container_memory_rss", [0.05 * gib] * 5, web, limit=2 * gib),
    ]
    errors = alert("Web5xx", 'rate(nginx_http_requests_total{status=~"5.."}[5m]) > 1', web)
    result = RulesEngine().analyze(errors, [evidence[0], *small])
    assert not any("Page cache" in c.cause for c in result.probable_causes)
    # RSS climbing beside the cache is a leak the cache only hides; an OOM kill meanwhile
    # says the kernel could not reclaim what filled the memory (tmpfs, shared memory).
    growing = metric("prom-8", "container_memory_rss", [0.2 * gib, 0.25 * gib, 0.3 * gib], web)
    oom = metric("prom-6", "container_oom_events", [0, 0, 1], web)
    for refuting in ([evidence[0], evidence[1], growing], [*evidence, oom]):
        result = RulesEngine().analyze(a, refuting)
        assert not any("Page cache" in c.cause for c in result.probable_causes)


def test_cache_that_is_tmpfs_is_told_as_unreclaimable_not_as_page_cache() -> None:
    """Cache and working set climbing together to the limit with RSS flat: a hot file's pages
    or tmpfs look alike; the service's line about /dev/shm tells which."""
    worker = {"name": "render-worker-1"}
    mib = 1024**2
    climb = [600 * mib + i * 20 * mib for i in range(10)]  # 600 -> 780 MiB
    evidence = [
        metric("prom-1", "alert_expression", [90.0 + i * 0.6 for i in range(10)], worker),
        metric("prom-7", "container_memory_cache", climb, worker, limit=1024 * mib),
        metric("prom-8", "container_memory_rss", [210 * mib] * 10, worker, limit=1024 * mib),
        metric(
            "prom-9",
            "container_memory_working_set",
            [c + 170 * mib for c in climb],
            worker,
            limit=1024 * mib,
        ),
    ]
    a = alert("ContainerHighMemoryUsage", WORKING_SET_OVER_90, worker)
    spool = log_item(
        "loki-1", *[f"INFO spool: wrote /dev/shm/render-spool/seg-{n}.raw" for n in range(5)]
    )
    result = RulesEngine().analyze(a, [*evidence, spool])
    cause = result.probable_causes[0]
    assert "not reclaimed: it grew by 180.0 MiB to 780.0 MiB" in cause.cause
    assert "/dev/shm/render-spool" in cause.cause and "cannot be reclaimed" in cause.cause
    assert cause.evidence_ids == ["prom-7", "prom-9", "loki-1"]
    text = " ".join(c.cause for c in result.probable_causes)
    assert "Page cache, not the process" not in text and "a leak, not load" not in text
    assert "/dev/shm" in result.remediation[0]
    # The same numbers with no word of tmpfs: page cache of files read again and again.
    result = RulesEngine().analyze(a, evidence)
    assert "Page cache, not the process" in result.probable_causes[0].cause
    # A working set that stays low while the cache climbs: the cache is inactive, reclaimable.
    low = metric("prom-9", "container_memory_working_set", [400 * mib] * 10, worker)
    result = RulesEngine().analyze(a, [*evidence[:3], low, spool])
    assert not any("not reclaimed" in c.cause for c in result.probable_causes)


@pytest.mark.parametrize(
    ("name", "expr", "words"),
    [
        ("HighCpuUsage", 'rate(node_cpu_seconds_total{mode="idle"}[5m]) < 0.1', "not CPU"),
        ("HostSwapping", "rate(node_vmstat_pswpin[5m]) > 50", "out of memory and swapping"),
    ],
    ids=["cpu-alert", "swap-alert"],
)
def test_a_host_out_of_memory_is_memory_pressure(name: str, expr: str, words: str) -> None:
    host = {"instance": "h:9100"}
    evidence = [
        metric("prom-1", "alert_expression", [95, 96, 97], host),
        metric("prom-3", "host_memory_available", [0.2, 0.05, 0.018], host),
        metric("prom-5", "host_swap_in", [0, 800, 1200], host),
        metric("prom-6", "host_memory_pressure", [0.01, 0.3, 0.4], host),
    ]
    a = alert(name, expr, host)
    result = RulesEngine().analyze(a, evidence)
    assert result.category == "memory_pressure"
    cause = result.probable_causes[0]
    assert words in cause.cause and "1.8%" in cause.cause
    assert cause.evidence_ids == ["prom-3", "prom-5", "prom-6"]
    # Plenty of memory: no memory claim; the summary stays what the alert measures.
    roomy = metric("prom-3", "host_memory_available", [0.6, 0.6, 0.6], host)
    plain = RulesEngine().analyze(a, [evidence[0], roomy])
    assert plain.category != "memory_pressure" and classify(a).family.title in plain.summary
    # The family's own guess (a busy process, a leak) would contradict the cause the
    # evidence names: its sentence then only says what the alert measures, second to it.
    second = result.probable_causes[1]
    assert second.cause.startswith("The alert reports high memory usage; the cause the evidence")
    assert second.confidence < cause.confidence
    guesses = {classify(a).family.causes[0], FAMILY_BY_CATEGORY["memory_pressure"].causes[0]}
    assert not any(g in c.cause for g in guesses for c in result.probable_causes)


def test_a_services_latency_on_a_swapping_machine_is_the_machines_memory() -> None:
    web = {"instance": "web-cms-01:8000", "job": "cms"}
    expr = (
        "histogram_quantile(0.95, sum by (le, instance) "
        '(rate(django_http_requests_latency_seconds_bucket{job="cms"}[5m]))) > 1'
    )
    a = alert("CmsLatencyHigh", expr, web)
    # Whatever the service measures, its machine's memory is read (node_exporter and
    # process-exporter under the same host name, any port).
    planned = {q.kind: q.promql for q in plan_queries(a)}
    assert planned["host_swap_in"] == (
        "max by (instance) (rate(node_vmstat_pswpin"
        r'{instance=~"web\\-cms\\-01(?::[0-9]+)?"}[5m]))'
    )
    assert "namedprocess_namegroup_memory_bytes" in planned["host_process_memory"]
    node = {"instance": "web-cms-01:9100"}
    slow = metric("prom-1", "alert_expression", [0.4, 2.2, 4.3], web)
    workers = log_item("loki-1", *["[CRITICAL] WORKER TIMEOUT (pid:21881)"] * 3)
    swapping = [
        metric("prom-2", "host_memory_available", [0.6, 0.1, 0.04], node),
        metric("prom-3", "host_swap_in", [0, 200, 300], node),
        metric("prom-4", "host_memory_pressure", [0.0, 0.2, 0.38], node),
    ]
    result = RulesEngine().analyze(a, [slow, *swapping, workers])
    assert result.category == "memory_pressure"
    top = result.probable_causes[0]
    assert "machine the service runs on is out of memory and swapping" in top.cause
    assert top.evidence_ids == ["prom-2", "prom-3", "prom-4"]
    # Busy workers are the swapping's symptom: no advice to add more of them.
    assert not any("ran out of workers" in c.cause for c in result.probable_causes)
    assert not any("--workers" in step for step in result.remediation)
    # A machine with memory to spare: the workers are the finding again.
    roomy = metric("prom-2", "host_memory_available", [0.6, 0.6, 0.6], node)
    plain = RulesEngine().analyze(a, [slow, roomy, workers])
    assert plain.category != "memory_pressure"
    assert "ran out of workers" in plain.probable_causes[0].cause


def test_a_crash_loop_kubernetes_reports_as_oomkilled_is_an_oom_kill() -> None:
    labels = {"namespace": "catalog", "pod": "indexer-5b8d-tq7lp", "container": "indexer"}
    expr = 'kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"} >= 1'
    a = alert("KubePodCrashLooping", expr, {**labels, "job": "kube-state-metrics"})
    planned = {q.kind: q.promql for q in plan_queries(a)}
    assert planned["pod_last_terminated"] == (
        "max by (container, reason) (kube_pod_container_status_last_terminated_reason"
        '{namespace="catalog",pod="indexer-5b8d-tq7lp",container="indexer"} > 0)'
    )
    looping = metric("prom-1", "alert_expression", [1, 1, 1], labels)
    reason = metric("prom-4", "pod_last_terminated", [1, 1, 1], {**labels, "reason": "OOMKilled"})
    result = RulesEngine().analyze(a, [looping, reason])
    assert result.category == "oom_killed"
    top = result.probable_causes[0]
    assert "last run ended OOMKilled" in top.cause and top.evidence_ids == ["prom-4"]
    assert not any("last run ended with" in c.cause for c in result.probable_causes)
    # It ended with an error instead: no OOM claim, and how it ended is said.
    error = metric("prom-4", "pod_last_terminated", [1, 1, 1], {**labels, "reason": "Error"})
    code = metric("prom-5", "pod_exit_code", [1, 1, 1], {"container": "indexer"})
    result = RulesEngine().analyze(a, [looping, error, code])
    assert result.category != "oom_killed"
    ended = next(c for c in result.probable_causes if "last run ended" in c.cause)
    assert "reason Error, exit code 1" in ended.cause and "error of its own" in ended.cause
    assert ended.evidence_ids == ["prom-4", "prom-5"]


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("ImagePullBackOff", "cannot pull its image registry.local/shop/cart:2.14.3"),
        ("CreateContainerConfigError", "a ConfigMap or Secret"),
    ],
)
def test_a_container_waiting_on_its_configuration_is_misconfiguration(
    reason: str, words: str
) -> None:
    labels = {"namespace": "shop", "pod": "cart-6d9f-x2kqp", "container": "cart"}
    a = alert("KubeContainerWaiting", "kube_pod_container_status_waiting_reason > 0", labels)
    assert {"pod_waiting", "pod_image"} <= {q.kind for q in plan_queries(a)}
    image = {**labels, "image": "registry.local/shop/cart:2.14.3"}
    evidence = [
        metric("prom-1", "alert_expression", [1, 1, 1], labels),
        metric("prom-5", "pod_waiting", [1, 1, 1], {**labels, "reason": reason}),
        metric("prom-6", "pod_image", [1, 1, 1], image),
    ]
    result = RulesEngine().analyze(a, evidence)
    assert result.category == "misconfiguration" and not result.inconclusive
    top = result.probable_causes[0]
    assert f"cannot start ({reason})" in top.cause and words in top.cause
    # Waiting only because it crashed before (CrashLoopBackOff) says nothing about its config.
    looping = metric("prom-5", "pod_waiting", [1, 1, 1], {**labels, "reason": "CrashLoopBackOff"})
    result = RulesEngine().analyze(a, [evidence[0], looping])
    assert not any("cannot start" in c.cause for c in result.probable_causes)


def test_goroutines_that_only_climb_are_a_leak_behind_latency() -> None:
    labels = {"instance": "gw-3:9464", "job": "quote-gateway"}
    expr = "histogram_quantile(0.99, sum by (le) (rate(http_duration_seconds_bucket[5m]))) > 0.5"
    a = alert("GatewaySlow", expr, labels)
    planned = {q.kind: q.promql for q in plan_queries(a)}
    goroutines = 'sum by (instance) (go_goroutines{instance="gw-3:9464"})'
    assert planned["runtime_goroutines"] == goroutines
    slow = metric("prom-1", "alert_expression", [0.4, 0.8, 1.2, 1.6], labels)
    leak = metric("prom-4", "runtime_goroutines", [26000, 29000, 33000, 37000], labels)
    result = RulesEngine().analyze(a, [slow, leak])
    assert not result.inconclusive
    top = result.probable_causes[0]
    assert "goroutine leak" in top.cause and top.evidence_ids == ["prom-4"]
    # A count that follows the load up and down, or a small one, is no leak.
    for values in ([900, 1400, 800, 1300], [40, 60, 80, 120]):
        steady = metric("prom-4", "runtime_goroutines", values, labels)
        result = RulesEngine().analyze(a, [slow, steady])
        assert not any("goroutine leak" in c.cause for c in result.probable_causes)


def test_without_process_exporter_the_largest_container_on_the_host_is_named() -> None:
    host = {"instance": "etl-2:9100"}
    gib = 2**30
    expr = "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100 > 90"
    assert "containers_memory_rss" in {
        q.kind for q in plan_queries(alert("HostMemoryHigh", expr, host))
    }

    def containers(*rss: tuple[str, str, float]) -> EvidenceItem:
        return EvidenceItem(
            id="prom-9",
            source="prometheus",
            kind="containers_memory_rss",
            series=[
                describe(
                    [(END - 60.0, gb * gib), (END, gb * gib)],
                    60.0,
                    labels={"name": name, "instance": cadvisor},
                )
                for name, cadvisor, gb in rss
            ],
        )

    def analysed(rss: EvidenceItem) -> str:
        evidence = [
            metric("prom-1", "alert_expression", [90, 94, 96], host),
            metric("prom-3", "host_memory_available", [0.2, 0.05, 0.03], host),
            metric("prom-5", "host_swap_in", [0, 80, 150], host),
            rss,
        ]
        return (
            RulesEngine()
            .analyze(alert("HostMemoryHigh", expr, host), evidence)
            .probable_causes[0]
            .cause
        )

    # One cAdvisor (a single Docker host, scraped as cadvisor:8080): its containers are here.
    single = containers(("recon", "cadvisor:8080", 6.0), ("api", "cadvisor:8080", 0.5))
    assert "the largest container is recon at 6.0 GiB resident" in analysed(single)
    # Several cAdvisors: only the one on this machine counts.
    fleet = containers(("recon", "etl-9:8080", 6.0), ("loader", "etl-2:8080", 1.0))
    assert "the largest container is loader at 1.0 GiB resident" in analysed(fleet)
    elsewhere = containers(("recon", "etl-9:8080", 6.0), ("api", "etl-8:8080", 1.0))
    assert "largest container" not in analysed(elsewhere)


def test_a_host_alert_is_about_the_machine_not_the_exporters_container() -> None:
    labels = {"instance": "wp-1:9100", "job": "node-exporter", "container": "node-exporter"}
    expr = "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100 > 90"
    result = RulesEngine().analyze(alert("HostMemoryHigh", expr, labels), [])
    assert "on host instance wp-1:9100 (job node-exporter)" in result.summary
    # A container's alert still names the container.
    cpu = "rate(container_cpu_usage_seconds_total[5m]) > 0.9"
    result = RulesEngine().analyze(alert("Busy", cpu, {**labels, "name": "api-1"}), [])
    assert "on container name api-1" in result.summary


def test_the_process_group_holding_a_swapping_hosts_memory_is_named() -> None:
    host = {"instance": "wp-1:9100"}
    gib = 2**30
    points = [(END - (4 - i) * 60.0, v) for i, v in enumerate([0.4, 0.9, 1.5, 2.1, 2.4])]
    groups = EvidenceItem(
        id="prom-9",
        source="prometheus",
        kind="host_process_memory",
        series=[
            describe([(t, v * gib) for t, v in points], 60.0, labels={"groupname": "mariadbd"}),
            describe([(t, 0.9 * gib) for t, _ in points], 60.0, labels={"groupname": "php-fpm"}),
        ],
        text="host_process_memory: 2 series",
    )
    evidence = [
        metric("prom-1", "alert_expression", [90, 94, 96], host),
        metric("prom-3", "host_memory_available", [0.2, 0.05, 0.04], host),
        metric("prom-5", "host_swap_in", [0, 80, 150], host),
        groups,
    ]
    expr = "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100 > 90"
    result = RulesEngine().analyze(alert("HostMemoryHigh", expr, host), evidence)
    cause = result.probable_causes[0]
    assert "largest process group is mariadbd at 2.4 GiB resident, up from 409.6 MiB" in cause.cause
    assert "prom-9" in cause.evidence_ids
    # process-exporter beside node_exporter: the host's name with any port.
    planned = {q.kind: q.promql for q in plan_queries(alert("HostMemoryHigh", expr, host))}
    assert r'instance=~"wp\\-1(?::[0-9]+)?",memtype="resident"' in planned["host_process_memory"]
    disk = alert("HostDiskFull", "node_filesystem_avail_bytes < 1e9", host)
    assert "host_process_memory" not in {q.kind for q in plan_queries(disk)}


def test_a_memfree_rule_on_a_host_with_memory_available_is_page_cache() -> None:
    host = {"instance": "h:9100"}
    expr = "(1 - node_memory_MemFree_bytes / node_memory_MemTotal_bytes) * 100 > 90"
    used = metric("prom-1", "alert_expression", [88, 91, 93, 94], host)
    roomy = metric("prom-3", "host_memory_available", [0.64, 0.62, 0.61, 0.6], host)
    a = alert("HostMemoryHigh", expr, host)
    result = RulesEngine().analyze(a, [used, roomy])
    assert result.category == "memory_pressure"
    cause = result.probable_causes[0]
    assert "Page cache, not memory pressure" in cause.cause and "still 60% of RAM" in cause.cause
    assert cause.evidence_ids == ["prom-3"]
    assert "MemAvailable" in result.remediation[0]
    assert not any("Raise the limit" in step for step in result.remediation)
    # The unit that started reading files just before is named as what filled the cache.
    sync = log_item(
        "loki-1",
        "Starting offsite-sync.service - Weekly checksum sync of /srv/files...",
        baseline=tuple(f"CRON[{n}]: (root) CMD (run-parts /etc/cron.hourly)" for n in range(20)),
    )
    cause = RulesEngine().analyze(a, [used, roomy, sync]).probable_causes[0]
    assert "What filled it: offsite-sync.service started at" in cause.cause
    assert cause.evidence_ids == ["prom-3", "loki-1"]
    # Really short of memory: no cache excuse, whatever the rule reads.
    short = [
        metric("prom-3", "host_memory_available", [0.2, 0.06, 0.03, 0.02], host),
        metric("prom-5", "host_swap_in", [0, 500, 900, 1100], host),
    ]
    result = RulesEngine().analyze(a, [used, *short])
    assert not any("Page cache" in c.cause for c in result.probable_causes)
    assert "out of memory" in result.probable_causes[0].cause
    # A rule on MemAvailable already leaves the cache out: nothing to say about it.
    b = alert("HostMemoryHigh", "node_memory_MemAvailable_bytes < 1e9", host)
    result = RulesEngine().analyze(b, [used, roomy])
    assert not any("Page cache" in c.cause for c in result.probable_causes)


HOST_CPU_EXPR = '100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))) > 90'


def test_steal_time_is_a_noisy_neighbour_not_the_workload() -> None:
    host = {"instance": "h:9100"}
    busy = metric("prom-1", "alert_expression", [40, 70, 93, 95], host)
    steal = metric("prom-2", "host_cpu_modes", [0.01, 0.02, 0.3, 0.42], {**host, "mode": "steal"})
    a = alert("HighCpuUsage", HOST_CPU_EXPR, host)
    result = RulesEngine().analyze(a, [busy, steal])
    assert result.category == "cpu_saturation"
    cause = result.probable_causes[0]
    assert "steal time reached 42%" in cause.cause and cause.evidence_ids == ["prom-2"]
    assert "noisy neighbour" in cause.cause
    assert not any("profile" in step.lower() for step in result.remediation)
    # Two percent of steal is ordinary on shared instances: not blamed.
    calm = metric("prom-2", "host_cpu_modes", [0.01, 0.02, 0.02, 0.02], {**host, "mode": "steal"})
    result = RulesEngine().analyze(a, [busy, calm])
    assert not any("steal" in c.cause for c in result.probable_causes)


def test_iowait_and_a_busy_disk_behind_a_load_alert() -> None:
    host = {"instance": "h:9100"}
    load = metric("prom-1", "alert_expression", [0.4, 1.5, 3.1, 3.4], host)
    iowait = metric("prom-2", "host_cpu_modes", [0.01, 0.2, 0.55, 0.6], {**host, "mode": "iowait"})
    disk = metric("prom-3", "host_disk_busy", [0.1, 0.7, 0.99, 1.0], {**host, "device": "sdb"})
    idle_disk = metric("prom-3", "host_disk_busy", [0.02] * 4, {**host, "device": "sda"})
    disk.series.insert(0, idle_disk.series[0])  # the busiest device is named, not the first
    a = alert("HostHighLoad", "node_load1 > 2", host)
    result = RulesEngine().analyze(a, [load, iowait, disk])
    assert result.category == "host_load"
    cause = result.probable_causes[0]
    assert "disk, not the CPU" in cause.cause and "60% of their time in iowait" in cause.cause
    assert "disk sdb was busy 100%" in cause.cause
    assert cause.evidence_ids == ["prom-2", "prom-3"]
    assert result.remediation[0].startswith("Find who does the I/O")
    # Swapping also waits on the disk: memory exhaustion is the cause, the disk is not blamed.
    starved = [
        metric("prom-4", "host_memory_available", [0.2, 0.05, 0.02, 0.015], host),
        metric("prom-5", "host_swap_in", [0, 600, 900, 1200], host),
    ]
    result = RulesEngine().analyze(a, [load, iowait, disk, *starved])
    assert result.category == "memory_pressure"
    assert not any("disk, not the CPU" in c.cause for c in result.probable_causes)
    # A quiet disk and little iowait: no I/O cause.
    quiet = metric("prom-2", "host_cpu_modes", [0.01, 0.02, 0.03, 0.02], {**host, "mode": "iowait"})
    result = RulesEngine().analyze(a, [load, quiet, idle_disk])
    assert not any("disk" in c.cause for c in result.probable_causes)


def test_cpu_quota_throttling_caps_a_container() -> None:
    web = {"name": "web"}
    expr = 'sum by (name) (rate(container_cpu_usage_seconds_total{name="web"}[5m])) > 0.9'
    cpu = metric("prom-1", "alert_expression", [0.5, 0.95, 0.99, 1.0], web)
    cores = metric("prom-2", "container_cpu", [0.5, 0.95, 0.99, 1.0], web)
    throttled = metric("prom-3", "container_cpu_throttled", [0.02, 0.3, 0.6, 0.71], web)
    a = alert("ContainerCpuHigh", expr, web)
    result = RulesEngine().analyze(a, [cpu, cores, throttled])
    cause = result.probable_causes[0]
    assert "CPU limit throttles it: 71%" in cause.cause and "1 cores" in cause.cause
    assert cause.evidence_ids == ["prom-3", "prom-2"]
    rare = metric("prom-3", "container_cpu_throttled", [0.0, 0.01, 0.03, 0.02], web)
    result = RulesEngine().analyze(a, [cpu, cores, rare])
    assert not any("throttles" in c.cause for c in result.probable_causes)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("kernel: [UFW BLOCK] IN=eth0 SRC=10.0.0.5 DST=10.0.0.7 PROTO=TCP DPT=9100", "firewall"),
        ('level=info msg="Listening on 127.0.0.1:9100"', "listen address"),
        ("x509: certificate has expired or is not yet valid", "TLS fails"),
        ("dial tcp: lookup db.internal on 10.0.0.2:53: no such host", "Name resolution"),
        ("unattended-upgrades: Automatic reboot scheduled", "rebooted"),
        ("LOG: process 4242 still waiting for ShareLock on transaction 991", "lock"),
        ("kernel: [IPTABLES-DROP] IN=eth0 OUT= SRC=10.0.0.5 DST=10.0.0.7 DPT=9100", "firewall"),
        ("kernel: nf_conntrack: nf_conntrack: table full, dropping packet", "connection-tracking"),
        ("kernel: igb 0000:03:00.0 eno1: NIC Link is Down", "lost its link"),
        ("kernel: nfs: server nas-2 not responding, still trying", "file system's server"),
        ("kernel: md/raid1:md1: Disk failure on sdb2, disabling device.", "A disk fails"),
        ("hostctl: entering maintenance mode: ticket=CHG-20431 by=jdoe", "planned maintenance"),
        (
            "kernel: CIFS: VFS: \\\\files-1 has not responded in 180 seconds. Reconnecting...",
            "file system's server",
        ),
        ("systemd-networkd[412]: eno1: Lost carrier", "lost its link"),
        ("socket.gaierror: [Errno -3] Temporary failure in name resolution", "Name resolution"),
        ("Error: getaddrinfo EAI_AGAIN api.payments.internal", "Name resolution"),
        ("java.net.UnknownHostException: db-primary.svc: Name or service not known", "resolution"),
        (
            "certbot: Failed to renew certificate shop.example.com with error: Timeout",
            "renewal fails",
        ),
        (
            "http: TLS handshake error from 10.0.0.3:51234: remote error: tls: bad certificate",
            "TLS",
        ),
        ("chronyd[612]: Can't synchronise: no selectable sources", "clock is off"),
        ("listen tcp 0.0.0.0:9100: bind: address already in use", "listen address"),
        ("systemd-logind[522]: System is rebooting.", "rebooted"),
        (
            "sudo[4121]: alice : TTY=pts/0 ; USER=root ; COMMAND=/usr/sbin/shutdown -r now",
            "rebooted",
        ),
        ("systemd-logind[522]: System is powering down.", "rebooted"),
        ("gc 4013 @5811.2s 31%: 0.12+210+0.09 ms clock, 0.9+0.4/400/0+0.7 ms cpu", "Garbage"),
        (
            "[2026-11-28T00:58:00,112][WARN ][o.e.m.j.JvmGcMonitorService] [gc][88213] "
            "overhead, spent [2.1s] collecting in the last [2.3s]",
            "Garbage",
        ),
        (
            "[12.881s][info][gc] GC(311) Pause Full (G1 Compaction Pause) 1019M->1012M(1024M) "
            "1893.224ms",
            "Garbage",
        ),
        (
            "[4410:0x5f1c]  91023 ms: Mark-Compact 1981.2 (2043.1) -> 1979.8 (2043.6) MB, "
            "1402.1 / 0.0 ms",
            "Garbage",
        ),
    ],
    ids=[
        "firewall",
        "listen",
        "tls",
        "dns",
        "reboot",
        "lock",
        "iptables",
        "conntrack",
        "nic-down",
        "nfs",
        "md-disk-failure",
        "maintenance",
        "cifs",
        "carrier",
        "dns-python",
        "dns-node",
        "dns-java",
        "certbot",
        "tls-handshake",
        "chrony",
        "port-in-use",
        "logind-reboot",
        "operator-shutdown-r",
        "logind-power-off",
        "go-gc",
        "es-gc",
        "jvm-gc",
        "v8",
    ],
)
def test_causes_from_ranked_info_and_kernel_lines(line: str, words: str) -> None:
    """The cause is an ordinary-looking line new before the alert, not an error line."""
    logs = log_item("loki-1", line, "GET /metrics 200", baseline=("GET /metrics 200",) * 20)
    a = alert("TargetDown", 'up{job="node"} == 0', {"job": "node", "instance": "h:9100"})
    result = RulesEngine().analyze(a, [logs])
    cause = next(c for c in result.probable_causes if words in c.cause)
    assert cause.evidence_ids == ["loki-1"]
    assert "new in the window" in cause.cause


@pytest.mark.parametrize(
    "line",
    [
        'level=info msg="Listening on" address=[::]:9100',
        "Server listening on 0.0.0.0 port 22.",
        "listening on *:8080",
        "Certificate not yet due for renewal",
        "Congratulations, all renewals succeeded: /etc/letsencrypt/live/x/fullchain.pem",
        "kernel: [UFW ALLOW] IN=eth0 OUT= SRC=10.0.0.5 DST=10.0.0.7 PROTO=TCP DPT=22",
        "eno1: Link is Up - 1000Mbps/Full - flow control off",
        "systemd-timesyncd[501]: Contacted time server 10.20.0.1:123 (ntp1.internal).",
        "systemd-timesyncd[501]: Initial clock synchronization to Tue 2026-12-02 06:36:04 UTC.",
    ],
    ids=[
        "listen-all-v6",
        "sshd-listen",
        "listen-star",
        "certbot-ok",
        "renewed",
        "ufw-allow",
        "up",
        "timesync-ok",
        "first-sync",
    ],
)
def test_harmless_lines_with_the_same_words_name_no_cause(line: str) -> None:
    """A healthy start-up, renewal or allowed packet shares words with a cause; it is none."""
    logs = log_item("loki-1", line, "GET /metrics 200", baseline=("GET /metrics 200",) * 20)
    a = alert("TargetDown", 'up{job="node"} == 0', {"job": "node", "instance": "h:9100"})
    result = RulesEngine().analyze(a, [logs])
    assert not any(
        "loki-1" in c.evidence_ids and line[:30] in c.cause for c in result.probable_causes
    )


def test_conntrack_table_and_nic_link_from_host_metrics() -> None:
    host = {"instance": "h:9100", "job": "node"}
    nic = {**host, "device": "eno1"}
    expr = "node_nf_conntrack_entries / node_nf_conntrack_entries_limit > 0.8"
    evidence = [
        metric("prom-1", "alert_expression", [0.2] * 10 + [0.97] * 5, host),
        metric("prom-12", "host_conntrack", [0.2] * 10 + [0.97, 0.99, 1.0, 1.0, 1.0], host),
        metric("prom-13", "host_nic_up", [1] * 10 + [0, 0, 1, 1, 1], nic),
    ]
    result = RulesEngine().analyze(alert("HostConntrackLimit", expr, host), evidence)
    assert result.category == "network"
    text = {c.cause: c.evidence_ids for c in result.probable_causes}
    full = next(c for c in text if "connection-tracking table is full" in c)
    assert "100% of nf_conntrack_max" in full and text[full] == ["prom-12"]
    link = next(c for c in text if "eno1 went down and came back" in c)
    assert text[link] == ["prom-13"]
    assert "ethtool eno1" in " ".join(result.remediation)
    calm = [
        evidence[0],
        metric("prom-12", "host_conntrack", [0.2] * 15, host),
        metric("prom-13", "host_nic_up", [1] * 15, nic),
    ]
    quiet = RulesEngine().analyze(alert("HostConntrackLimit", expr, host), calm)
    said = " ".join(c.cause for c in quiet.probable_causes)
    assert "table is full" not in said and "went down" not in said


def test_a_failing_probe_says_which_phase_fails_and_what_its_certificate_has_left() -> None:
    site = {"instance": "https://shop.example.com", "job": "blackbox"}
    a = alert("ProbeFailed", 'probe_success{job="blackbox"} == 0', site)
    failing = metric("prom-1", "alert_expression", [0, 0, 0], site)
    unresolved = metric("prom-2", "probe_ip_protocol", [4] * 10 + [0] * 5, site)
    result = RulesEngine().analyze(a, [failing, unresolved])
    dns = next(c for c in result.probable_causes if "can no longer resolve" in c.cause)
    assert dns.evidence_ids == ["prom-2"] and "01:01:00 UTC" in dns.cause
    assert result.remediation[0].startswith("Resolve the failing name")

    resolved = metric("prom-2", "probe_ip_protocol", [4] * 15, site)
    answers = metric("prom-3", "probe_http_status", [200] * 10 + [503] * 5, site)
    expired = metric("prom-4", "probe_cert_expiry", [3600.0 - 60 * i for i in range(15)], site)
    result = RulesEngine().analyze(a, [failing, resolved, answers, expired])
    said = {c.cause: c.evidence_ids for c in result.probable_causes}
    assert not any("resolve the target" in c for c in said)
    assert said[next(c for c in said if "HTTP 503" in c)] == ["prom-3"]
    assert said[next(c for c in said if "certificate the probe saw expires in 0.8 h" in c)] == [
        "prom-4"
    ]
    healthy = metric("prom-4", "probe_cert_expiry", [60 * 86400.0] * 15, site)
    result = RulesEngine().analyze(a, [failing, resolved, healthy])
    assert not any("certificate" in c.cause for c in result.probable_causes)


def test_a_slow_probe_says_which_phase_waits_and_what_went_down_meanwhile() -> None:
    site = {"instance": "https://orders.example/healthz", "job": "blackbox"}
    a = alert(
        "BlackboxSlowProbe", 'avg_over_time(probe_duration_seconds{job="blackbox"}[1m]) > 1', site
    )
    slow = metric("prom-1", "alert_expression", [5.0, 5.0, 5.0], site)
    phases = metric("prom-2", "probe_phases", [0.001] * 25 + [5.0] * 5, {"phase": "resolve"})
    connect = metric("prom-2", "probe_phases", [0.002] * 30, {"phase": "connect"}).series
    phases.series.extend(connect)
    resolver = metric("prom-3", "targets_down", [0.0] * 4, {"instance": "dns-1:9100"})
    result = RulesEngine().analyze(a, [slow, phases, resolver])
    assert result.category == "dns"
    cause = next(c for c in result.probable_causes if "resolving the target's name" in c.cause)
    assert "Down since about then: dns-1:9100" in cause.cause
    assert cause.evidence_ids == ["prom-2", "prom-3"]

    # Down all window long: not news. A slow answer is the server's, not the path's.
    chronic = metric("prom-3", "targets_down", [0.0] * 30, {"instance": "old-1:9100"})
    result = RulesEngine().analyze(a, [slow, phases, chronic])
    assert "Down since" not in " ".join(c.cause for c in result.probable_causes)
    # A slow connect: the path loses SYNs (a regression once: no remedy for it, KeyError).
    syn = metric("prom-2", "probe_phases", [0.002] * 25 + [3.0] * 5, {"phase": "connect"})
    result = RulesEngine().analyze(a, [slow, syn])
    cause = next(c for c in result.probable_causes if "spends 3 s connecting" in c.cause)
    assert "SYNs dropped" in cause.cause and not result.inconclusive
    assert any("mtr -T" in step for step in result.remediation)
    waits = metric("prom-2", "probe_phases", [0.01] * 25 + [5.0] * 5, {"phase": "processing"})
    result = RulesEngine().analyze(a, [slow, waits])
    assert result.category != "dns"
    assert not any("spends" in c.cause for c in result.probable_causes)


def test_a_slow_probe_names_the_machine_whose_conntrack_table_is_full() -> None:
    """The probed URL does not name the load balancer in front of it: any machine whose
    connection-tracking table is full is on the suspect list, with its lowered limit."""
    site = {"instance": "https://shop.example/healthz", "job": "blackbox"}
    a = alert(
        "BlackboxSlowProbe", 'avg_over_time(probe_duration_seconds{job="blackbox"}[1m]) > 1', site
    )
    planned = {q.kind: q.promql for q in plan_queries(a)}
    assert planned["fleet_conntrack"] == (
        "max by (instance) (node_nf_conntrack_entries / node_nf_conntrack_entries_limit) > 0.8"
    )
    assert (
        "max_over_time(node_nf_conntrack_entries_limit[6h])" in planned["fleet_conntrack_lowered"]
    )
    slow = metric("prom-1", "alert_expression", [3.0, 3.0, 3.0], site)
    lb = {"instance": "lb-2:9100"}
    full = metric("prom-2", "fleet_conntrack", [0.85, 0.95, 0.99998], lb)
    limit = metric("prom-3", "fleet_conntrack_limit", [65536.0] * 3, lb)
    before = metric("prom-4", "fleet_conntrack_lowered", [262144.0] * 3, lb)
    result = RulesEngine().analyze(a, [slow, full, limit, before])
    assert result.category == "network"
    cause = next(c for c in result.probable_causes if "lb-2:9100" in c.cause)
    assert "nf_conntrack_max is 65536, lowered from 262144" in cause.cause
    assert cause.evidence_ids == ["prom-2", "prom-3", "prom-4"]

    # A table at 70% is busy, not full: nothing to blame.
    busy = metric("prom-2", "fleet_conntrack", [0.7] * 3, lb)
    result = RulesEngine().analyze(a, [slow, busy, limit, before])
    assert not any("lb-2" in c.cause for c in result.probable_causes)


def test_a_certificate_renewed_on_disk_but_still_served_old_needs_a_reload() -> None:
    site = {"instance": "https://shop.example.com/", "job": "blackbox"}
    expr = "probe_ssl_earliest_cert_expiry - time() < 86400 * 3"
    a = alert("SslCertificateWillExpireSoon", expr, site)
    planned = {q.kind: q.promql for q in plan_queries(a)}
    assert planned["cert_files"] == (
        "max by (filepath, instance) (x509_cert_not_after"
        '{subject_CN=~"shop\\\\.example\\\\.com|\\\\*\\\\.example\\\\.com"}) - time()'
    )
    served = metric("prom-1", "probe_cert_expiry", [2.9 * 86400] * 5, site)
    on_disk = metric(
        "prom-2",
        "cert_files",
        [62 * 86400.0] * 5,
        {"filepath": "/etc/letsencrypt/live/shop.example.com/cert.pem", "instance": "web-5:9793"},
    )
    result = RulesEngine().analyze(a, [served, on_disk])
    cause = next(c for c in result.probable_causes if "renewed" in c.cause)
    assert (
        "/etc/letsencrypt/live/shop.example.com/cert.pem on web-5 is valid for 62.0" in cause.cause
    )
    assert cause.evidence_ids == ["prom-1", "prom-2"]
    assert any("--deploy-hook" in step for step in result.remediation)
    # The file on disk expires as soon: the renewal itself did not happen.
    stale = metric("prom-2", "cert_files", [3.0 * 86400] * 5, {"filepath": "/x/cert.pem"})
    result = RulesEngine().analyze(a, [served, stale])
    assert not any("renewed" in c.cause for c in result.probable_causes)


def test_a_configuration_run_that_removed_a_file_before_a_job_failed_is_quoted() -> None:
    host = {"instance": "db-backup-1:9100", "name": "offsite-sync.service"}
    a = alert("HostSystemdServiceCrashed", 'node_systemd_unit_state{state="failed"} == 1', host)
    logs = log_item(
        "loki-1",
        "ansible-ansible.legacy.apt Invoked with name=['restic'] state=present",
        "ansible-ansible.legacy.file Invoked with path=/etc/credstore/offsite.env state=absent "
        "recurse=False force=False follow=True",
        "ansible-ansible.legacy.systemd Invoked with daemon_reload=True scope=system",
        "offsite-sync.service: Failed at step CREDENTIALS spawning /usr/local/bin/offsite-sync",
        baseline=("Started session 1 of user root.",) * 5,
    )
    result = RulesEngine().analyze(a, [logs])
    change = next(c for c in result.probable_causes if "configuration-management" in c.cause)
    assert "'...path=/etc/credstore/offsite.env state=absent" in change.cause


def test_an_oom_kill_says_what_the_process_was_doing() -> None:
    labels = {"namespace": "catalog", "pod": "indexer-5b8d-tq7lp", "container": "indexer"}
    expr = 'kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"} >= 1'
    a = alert("KubePodCrashLooping", expr, {**labels, "job": "kube-state-metrics"})
    looping = metric("prom-1", "alert_expression", [1, 1, 1], labels)
    reason = metric("prom-4", "pod_last_terminated", [1, 1, 1], {**labels, "reason": "OOMKilled"})
    logs = log_item(
        "loki-1",
        "INFO search-indexer 5.2.0 starting",
        "INFO FullReindex - loading catalog snapshot: 4812332 documents",
        "WARN FullReindex - slow batch 9: 14.9s (heap used 96%)",
        baseline=("INFO served query in 12 ms",) * 5,
    )
    result = RulesEngine().analyze(a, [looping, reason, logs])
    assert result.category == "oom_killed"
    doing = next(c for c in result.probable_causes if "what it was doing" in c.cause)
    assert "'WARN FullReindex - slow batch 9: 14.9s (heap used 96%)'" in doing.cause


def test_no_space_left_with_a_filesystem_out_of_inodes_is_the_inodes() -> None:
    labels = {"container": "edge-proxy", "service": "nginx"}
    a = alert(
        "NginxHigh5xxRate", 'sum(rate(nginx_http_requests_total{status=~"5.."}[5m])) > 1', labels
    )
    planned = {q.kind for q in plan_queries(a)}
    assert "fleet_inodes_low" in planned
    logs = log_item(
        "loki-1",
        'open() "/var/cache/nginx/client_temp/0044" failed (28: No space left on device)',
        baseline=("GET / 200",) * 5,
    )
    low = metric(
        "prom-5",
        "fleet_inodes_low",
        [0.01, 0.004, 0.0007],
        {"instance": "web-2:9100", "mountpoint": "/"},
    )
    result = RulesEngine().analyze(a, [logs, low])
    assert result.category == "disk_space"
    cause = next(c for c in result.probable_causes if "out of inodes" in c.cause)
    assert "/ on web-2:9100" in cause.cause and cause.evidence_ids == ["loki-1", "prom-5"]
    # Without a filesystem short of inodes, nothing is said about inodes.
    result = RulesEngine().analyze(a, [logs])
    assert not any("inodes" in c.cause for c in result.probable_causes)
    # A host's own disk alert has its own inode finding and asks for no fleet query.
    host = alert("HostOutOfDiskSpace", "node_filesystem_avail_bytes < 1", {"instance": "h:9100"})
    assert "fleet_inodes_low" not in {q.kind for q in plan_queries(host)}


def test_oom_in_logs_and_clean_shutdown_in_logs() -> None:
    down = alert("ContainerDown", "time() - container_last_seen > 60", {"name": "etl"})
    killed = log_item("loki-1", "worker exited code=137 (OOMKilled)")
    assert RulesEngine().analyze(down, [killed]).category == "oom_killed"

    stopped = log_item(
        "loki-1",
        'level=info msg="received signal" signal=terminated',
        'level=info msg="shutdown complete"',
    )
    result = RulesEngine().analyze(down, [stopped])
    assert result.category == "container_stopped"  # an orderly stop, not a crash
    clean = [c for c in result.probable_causes if "termination signal" in c.cause]
    assert clean and clean[0].evidence_ids == ["loki-1"]
    assert "not a crash" in clean[0].cause
    # The stop names the cause (0.6): the family's stock guesses (a bad deploy) are not offered.
    assert not any("bad deploy" in c.cause for c in result.probable_causes)


def test_distinct_error_lines_are_quoted() -> None:
    errors = log_item(
        "loki-1",
        'level=info msg="process exiting after panic"',
        'level=error msg="unhandled exception" err="index out of range [3]"',
        'level=info msg="process exiting after panic"',
        "level=error msg=db timeout",
    )
    a = alert("GwRestarts", "changes(container_start_time_seconds[15m]) > 2", {"name": "gw"})
    text = " ".join(c.cause for c in RulesEngine().analyze(a, [errors]).probable_causes)
    assert text.count("process exiting after panic") == 1
    assert "index out of range [3]" in text
    assert "db timeout" in text


def test_busiest_program_named_for_a_resource_alert() -> None:
    host_logs = log_item(
        "loki-2",
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


def _resolved(ends_after_minutes: float) -> Alert:
    firing = alert(
        "ContainerHighMemoryUsage",
        WORKING_SET_OVER_90,
        {"name": "api", "severity": "critical"},
    )
    ends = STARTS + timedelta(minutes=ends_after_minutes)
    return firing.model_copy(update={"status": "resolved", "ends_at": ends})


def test_resolved_alert_says_when_it_recovered_and_is_informational() -> None:
    a = _resolved(4)
    ended = STARTS.timestamp() + 240
    own = metric("prom-1", "alert_expression", [0.92, 0.95, 0.93], {"name": "api"}, end=ended)
    result = RulesEngine().analyze(a, [own])
    assert result.severity == "info"
    assert "Resolved at 01:04:00 UTC after 4 min" in result.summary
    assert "recovered" in result.summary
    # The same facts, typed, for the resolution notification.
    assert result.recovery is not None and result.recovery.recovered_at == a.ends_at
    assert result.recovery.fired_seconds == 240 and not result.recovery.cause_persists


def test_resolved_alert_whose_condition_returns_keeps_its_severity() -> None:
    a = _resolved(2)
    # The condition's series has points again after endsAt: the cause is still there.
    own = metric("prom-1", "alert_expression", [0.92, 0.95, 0.96, 0.97, 0.98], {"name": "api"})
    result = RulesEngine().analyze(a, [own])
    assert result.severity == "critical"
    assert "the cause is still there" in result.summary
    assert "prom-1" in result.summary
    assert result.recovery is not None and result.recovery.cause_persists
    assert result.recovery.evidence_ids == ["prom-1"]


def _two_exports(other_instance: str) -> tuple[Alert, EvidenceItem]:
    """An NFS latency alert on one export that resolved after 2 min, and the rule's series of
    another export (on ``other_instance``) that still holds until the window's end."""
    mine = {"instance": "render-02:9100", "export": "nas:/ingest", "severity": "warning"}
    a = alert("NfsSlow", "nfs_request_seconds > 0.25", mine)
    a = a.model_copy(update={"status": "resolved", "ends_at": STARTS + timedelta(minutes=2)})
    ended = STARTS.timestamp() + 120
    own = [(ended - 60 * (2 - i), 0.6) for i in range(3)]
    other = {"instance": other_instance, "export": "nas:/renders"}
    still = [(END - 60 * (8 - i), 0.8) for i in range(9)]
    item = EvidenceItem(
        id="prom-1",
        source="prometheus",
        kind="alert_expression",
        series=[
            describe(own, 60, labels={**mine, "severity": ""}, alert_labels=mine),
            describe(still, 60, labels=other, alert_labels=mine),
        ],
        window_start=END - 1800,
        window_end=END,
    )
    return a, item


def test_a_resolved_alert_whose_sibling_on_the_same_machine_still_holds_is_not_informational() -> (
    None
):
    a, item = _two_exports("render-02:9100")
    result = RulesEngine().analyze(a, [item])
    assert result.recovery is not None and result.recovery.cause_persists
    assert result.severity == "warning"
    assert "still holds on export=nas:/renders of the same render-02:9100" in result.summary
    # The same condition on another machine says nothing about this one's cause.
    a, item = _two_exports("render-03:9100")
    result = RulesEngine().analyze(a, [item])
    assert result.recovery is not None and not result.recovery.cause_persists
    assert result.severity == "info"


def test_a_resolved_alert_that_flapped_in_the_window_will_fire_again() -> None:
    a = _resolved(27)
    ended = STARTS.timestamp() + 27 * 60
    # Three stretches above the threshold with gaps between them, the last ending at endsAt.
    stretches = [ended - 1500, ended - 900, ended - 240]
    points = [(t + 60 * i, 0.93) for t in stretches for i in range(4)]
    series = describe(points, 60, labels={"name": "api"}, alert_labels={"name": "api"})
    own = EvidenceItem(id="prom-1", source="prometheus", kind="alert_expression", series=[series])
    result = RulesEngine().analyze(a, [own])
    assert series.runs == 3
    assert result.recovery is not None and result.recovery.cause_persists
    assert "3 separate stretches" in result.summary and "fire again" in result.summary
    # Flapping is no outage: the critical label is lowered, but not to "informational".
    assert result.severity == "warning"


def test_a_resolved_memory_alert_that_cleared_by_a_restart_will_climb_again() -> None:
    a = _resolved(5)
    ended = STARTS.timestamp() + 300
    climb = [0.60, 0.66, 0.72, 0.78, 0.84, 0.90, 0.93, 0.95]
    memory = metric("prom-3", "container_memory_ratio", [*climb, 0.2], {"name": "api"}, end=ended)
    result = RulesEngine().analyze(a, [memory])
    assert result.recovery is not None and result.recovery.cause_persists
    assert result.recovery.evidence_ids == ["prom-3"]
    assert "fell at once at 01:05:00" in result.summary and "climb again" in result.summary
    assert result.severity == "critical"
    # A fall long before the recovery, or a level that only stopped rising, ended nothing.
    early = metric(
        "prom-3", "container_memory_ratio", [*climb, 0.2], {"name": "api"}, end=END - 1200
    )
    flat = metric("prom-3", "container_memory_ratio", [*climb, 0.94], {"name": "api"}, end=ended)
    for evidence in ([early], [flat]):
        result = RulesEngine().analyze(a, evidence)
        assert result.recovery is not None and not result.recovery.cause_persists
        assert result.severity == "info"


def _error_ratio_resolved() -> Alert:
    return alert(
        "HighErrorRatio", "errors / requests > 0.05", {"job": "api", "severity": "critical"}
    ).model_copy(update={"status": "resolved", "ends_at": STARTS + timedelta(minutes=10)})


def _error_ratio_value(
    after: list[float], *, reported_until: float | None = None
) -> list[EvidenceItem]:
    """The ratio's expression (threshold 0.05) and its value: 0.001 for 20 minutes before the
    alert, 0.09 while it fired, then ``after`` (one point a minute) from its end."""
    starts, ends = STARTS.timestamp(), STARTS.timestamp() + 600
    points = [(starts - 1800 + 60 * i, 0.001) for i in range(20)]
    points += [(starts - 600 + 60 * i, 0.09) for i in range(20)]
    points += [(ends + 60 * (i + 1), v) for i, v in enumerate(after)]
    if reported_until is not None:
        points = [p for p in points if p[0] <= reported_until]
    labels = {"job": "api"}
    window_end = ends + 600
    value = EvidenceItem(
        id="prom-2",
        source="prometheus",
        kind="alert_value",
        series=[describe(points, 60, labels=labels, alert_labels=labels)],
        window_start=starts - 1800,
        window_end=window_end,
    )
    held = [p for p in points if p[1] > 0.05]
    expression = EvidenceItem(
        id="prom-1",
        source="prometheus",
        kind="alert_expression",
        series=[describe(held, 60, labels=labels, alert_labels=labels)],
        threshold={"op": ">", "value": 0.05},
        window_start=starts - 1800,
        window_end=window_end,
    )
    return [expression, value]


def test_a_resolved_alert_only_back_under_its_threshold_is_not_informational() -> None:
    a = _error_ratio_resolved()
    result = RulesEngine().analyze(a, _error_ratio_value([0.04] * 9))
    assert result.recovery is not None and result.recovery.cause_persists
    assert "not back to its level before the alert (now 0.04, 0.001 before it" in result.summary
    assert result.recovery.evidence_ids == ["prom-2"] and result.severity == "critical"
    # Back at (or near) where it was before the alert: recovered.
    result = RulesEngine().analyze(a, _error_ratio_value([0.002] * 9))
    assert result.recovery is not None and not result.recovery.cause_persists
    assert result.severity == "info"


def test_a_resolved_alert_whose_value_stopped_being_reported_did_not_recover() -> None:
    a = _error_ratio_resolved()
    ends = STARTS.timestamp() + 600
    evidence = _error_ratio_value([0.002] * 9, reported_until=ends - 60)
    result = RulesEngine().analyze(a, evidence)
    assert result.recovery is not None and result.recovery.cause_persists
    assert "has not been reported since 01:09:00" in result.summary
    assert "series disappeared" in result.summary


def test_a_resolved_disk_alert_whose_space_keeps_shrinking_after_a_cleanup_will_fire_again() -> (
    None
):
    host = {"instance": "etl-2:9100", "mountpoint": "/", "severity": "warning"}
    a = alert("HostDiskSpaceLow", "avail / size * 100 < 15", host)
    a = a.model_copy(update={"status": "resolved", "ends_at": STARTS + timedelta(minutes=5)})
    ended = STARTS.timestamp() + 300
    # Free space falls a point every ten minutes, a cleanup frees 30 points at the end, and it
    # goes on falling at the same rate.
    before = [0.20 - 0.001 * i for i in range(60)]
    after = [0.44 - 0.001 * i for i in range(12)]
    values = [*before, *after]
    end = ended + 60 * 12
    free = metric("prom-4", "host_filesystem_available", values, host, end=end)
    result = RulesEngine().analyze(a, [free])
    assert result.recovery is not None and result.recovery.cause_persists
    assert "free space keeps shrinking after the recovery (6.0 percentage points" in result.summary
    assert result.severity == "warning"
    # Flat after the cleanup: what filled it is gone.
    flat = metric("prom-4", "host_filesystem_available", [*before, *[0.44] * 12], host, end=end)
    result = RulesEngine().analyze(a, [flat])
    assert result.recovery is not None and not result.recovery.cause_persists
    assert result.severity == "info"


def test_resolved_alert_with_sources_down_does_not_claim_a_checked_recovery() -> None:
    a = _resolved(4)
    down = [
        EvidenceItem(
            id=f"{source}-1",
            source=source,
            kind="query",
            status="unavailable",
            detail=f"{source} answered HTTP 503",
            query="up",
        )
        for source in ("prometheus", "loki")
    ]
    result = RulesEngine().analyze(a, down)
    assert result.recovery is not None and not result.recovery.cause_persists
    assert "Resolved at 01:04:00 UTC after 4 min" in result.summary
    assert "could not be read" in result.summary and "not checked" in result.summary
    assert "nothing in the evidence shows" not in result.summary
    assert result.severity == "info"


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


def test_a_level_shift_right_after_a_deploy_names_the_deploy() -> None:
    api = {"job": "api"}
    # The error ratio steps up at startsAt + 3 min; the deploy line is a minute before startsAt.
    values = [0.01] * 27 + [0.2] * 3
    own = metric("prom-1", "alert_expression", values, api)
    deploy = log_item(
        "loki-1",
        'level=info msg="starting api" version=4.2.0',
        baseline=('level=info msg="GET /orders 200"',) * 10,
    )
    a = alert("ApiErrors", 'sum(rate(http_requests_total{code=~"5.."}[5m])) > 0.05', api)
    result = RulesEngine().analyze(a, [own, deploy])
    cause = next(c for c in result.probable_causes if "after a deploy" in c.cause)
    assert "version=4.2.0" in cause.cause and "shifted from 0.01 to 0.2" in cause.cause
    assert "4 min after a deploy" in cause.cause
    assert cause.evidence_ids == ["prom-1", "loki-1"]
    assert result.probable_causes[0] == cause
    assert any("roll back" in step for step in result.remediation)
    # Without the deploy line the shift is context only: when, not why.
    plain = RulesEngine().analyze(a, [own])
    shift = next(c for c in plain.probable_causes if "shifted from" in c.cause)
    assert "look for what changed then" in shift.cause


def test_inodes_not_bytes() -> None:
    host = {"instance": "h:9100", "mountpoint": "/var"}
    evidence = [
        metric("prom-1", "alert_expression", [4.0, 3.0, 2.0], host),
        metric("prom-4", "host_filesystem_available", [0.62, 0.61, 0.61], host),
        metric("prom-11", "host_inodes_free", [0.04, 0.03, 0.02], host),
    ]
    a = alert(
        "HostDiskSpaceLow",
        "100 * node_filesystem_files_free / node_filesystem_files < 5",
        host,
    )
    result = RulesEngine().analyze(a, evidence)
    assert result.category == "disk_space"
    cause = next(c for c in result.probable_causes if "inodes" in c.cause)
    assert "2.0% of its inodes" in cause.cause and "61% of its space is free" in cause.cause
    assert cause.evidence_ids == ["prom-11", "prom-4"]
    assert result.remediation[0].startswith("Find the directories with the most files")
    assert not any("du -xh" in step for step in result.remediation)  # byte-hunting advice


def test_reboot_and_clock_offset_from_host_metrics() -> None:
    host = {"instance": "h:9100", "job": "node"}
    booted = STARTS.timestamp() - 240
    evidence = [
        metric("prom-1", "alert_expression", [0, 0, 0], host),
        metric("prom-12", "host_boot_time", [1.7e9] * 20 + [booted] * 4, host),
        metric("prom-13", "host_clock_offset", [0.001] * 10 + [2.5] * 5, host),
    ]
    result = RulesEngine().analyze(alert("TargetDown", "up == 0", host), evidence)
    text = {c.cause: c.evidence_ids for c in result.probable_causes}
    reboot = next(c for c in text if c.startswith("The host (h:9100) rebooted"))
    assert "00:56:00 UTC" in reboot and text[reboot] == ["prom-12"]
    clock = next(c for c in text if "clock is off by 2.5 s" in c)
    assert text[clock] == ["prom-13"]
    assert result.category == "reboot"  # the cause, where the alert only says "down"
    # Steady boot time and a synchronised clock: neither is claimed.
    calm = [
        evidence[0],
        metric("prom-12", "host_boot_time", [1.7e9] * 24, host),
        metric("prom-13", "host_clock_offset", [0.001] * 15, host),
    ]
    calm_result = RulesEngine().analyze(alert("TargetDown", "up == 0", host), calm)
    quiet = " ".join(c.cause for c in calm_result.probable_causes)
    assert "rebooted" not in quiet and "clock" not in quiet
    assert calm_result.inconclusive and calm_result.category == "unknown"  # no cause found


def test_clock_alerts_have_a_family() -> None:
    assert classify(alert("X", "abs(node_timex_offset_seconds) > 0.05")).family.category == (
        "clock_skew"
    )


def test_steady_growth_is_projected_to_its_ceiling() -> None:
    w = {"name": "worker"}
    evidence = [
        metric("prom-1", "alert_expression", [91, 92, 93], w),
        metric("prom-2", "container_cpu", [0.2, 0.21, 0.2, 0.19, 0.2, 0.21] * 5, w),
        metric("prom-3", "container_memory_ratio", [0.6 + 0.01 * i for i in range(31)], w),
    ]
    a = alert(
        "ContainerHighMemoryUsage",
        WORKING_SET_OVER_90,
        w,
    )
    result = RulesEngine().analyze(a, evidence)
    cause = next(c for c in result.probable_causes if "grows steadily" in c.cause)
    # One point a minute: 60 percentage points an hour, 10 left to the limit.
    assert "60.0 percentage points per hour, now 90% of the limit" in cause.cause
    assert "a leak, not load" in cause.cause and "about 10 min" in cause.cause
    assert cause.evidence_ids == ["prom-3", "prom-2"]
    # A step (one jump) is no steady growth.
    step = metric("prom-3", "container_memory_ratio", [0.5] * 20 + [0.93] * 11, w)
    text = " ".join(c.cause for c in RulesEngine().analyze(a, [evidence[0], step]).probable_causes)
    assert "grows steadily" not in text


SCAN_BLOCK = (
    "[UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.23 DST=10.20.0.5 PROTO=TCP SPT=48113 DPT=23 SYN"
)


def test_background_lines_logged_as_often_before_the_alert_name_no_cause() -> None:
    # Internet scanners blocked on port 23 and an AppArmor denial, as often before as during.
    noise = (SCAN_BLOCK, 'apparmor="DENIED" operation="open" profile="snap.x"')
    logs = log_item("loki-1", *noise, baseline=noise * 2)
    a = alert("Rule0042", "increase(ledger_mismatches_total[30m]) > 0", {"job": "ledger"})
    result = RulesEngine().analyze(a, [logs])
    text = " ".join(c.cause for c in result.probable_causes)
    assert "firewall" not in text and "DENIED" not in text
    assert result.inconclusive and result.category == "unknown"
    # The same block, new in the window, is news and is named.
    fresh = RulesEngine().analyze(a, [log_item("loki-1", SCAN_BLOCK, baseline=("cron ok",) * 4)])
    assert any("firewall drops" in c.cause for c in fresh.probable_causes)


def test_an_oom_kill_repeating_as_before_still_explains_the_alert() -> None:
    kill = "Memory cgroup out of memory: Killed process 4242 (java)"
    down = alert("ContainerDown", "time() - container_last_seen > 60", {"name": "etl"})
    result = RulesEngine().analyze(down, [log_item("loki-1", kill, baseline=(kill, kill))])
    assert result.category == "oom_killed"


def test_a_user_called_deploy_is_not_a_deploy() -> None:
    logs = log_item(
        "loki-1",
        "Accepted publickey for deploy from 10.20.0.14 port 50412 ssh2",
        "pam_unix(sshd:session): session opened for user deploy(uid=1000) by (uid=0)",
        baseline=("cron ok",) * 4,
    )
    a = alert("ApiErrors", 'sum(rate(http_requests_total{code=~"5.."}[5m])) > 0.05')
    text = " ".join(c.cause for c in RulesEngine().analyze(a, [logs]).probable_causes)
    assert "deploy started" not in text
    assert not any("deploy" in t.tags for t in logs.templates)


def test_healthy_lines_after_a_resolution_are_not_the_cause_persisting() -> None:
    a = _resolved(4)
    ended = STARTS.timestamp() + 240
    own = metric("prom-1", "alert_expression", [0.92, 0.95, 0.93], {"name": "api"}, end=ended)
    start = STARTS.timestamp()
    # The cause (connections refused upstream) stops before endsAt; healthy requests that
    # mention the upstream go on after it.
    lines = [
        LogLine(start - 60 + i, "connect() failed (111: Connection refused)", True)
        for i in range(5)
    ]
    lines += [
        LogLine(start + 600 + i, '{"status":200,"upstream_status":"200"}', True) for i in range(5)
    ]
    logs = EvidenceItem(
        id="loki-1", source="loki", kind="log_templates", templates=rank(lines, 900.0, 900.0)
    )
    result = RulesEngine().analyze(a, [own, logs])
    assert result.recovery is not None and not result.recovery.cause_persists
    assert result.severity == "info"
    # The cause's own line still logged after endsAt: it persists.
    lines += [LogLine(start + 700, "connect() failed (111: Connection refused)", True)]
    logs = logs.model_copy(update={"templates": rank(lines, 900.0, 900.0)})
    result = RulesEngine().analyze(a, [own, logs])
    assert result.recovery is not None and result.recovery.cause_persists
    assert "Connection refused" in result.recovery.detail and result.severity == "critical"


def test_a_failure_logged_all_along_is_quoted_for_a_slow_burn_only() -> None:
    failing = ("LOG:  archive command failed with exit code 255",)
    logs = log_item("loki-1", *failing * 2, baseline=failing * 2)
    disk = alert("DiskLow", "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.1")
    quoted = " ".join(c.cause for c in RulesEngine().analyze(disk, [logs]).probable_causes)
    assert "archive command failed" in quoted
    api = alert("ApiErrors", 'sum(rate(http_requests_total{code=~"5.."}[5m])) > 0.05')
    quoted = " ".join(c.cause for c in RulesEngine().analyze(api, [logs]).probable_causes)
    assert "archive command failed" not in quoted


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        (
            'time=2026-12-02T19:24:49.755Z level=ERROR msg="create order failed" err="failed to '
            "connect to `host=orders-db user=orders database=orders`: server error (FATAL: sorry, "
            'too many clients already (SQLSTATE 53300))"',
            "too many clients already",
        ),
        (
            "Nov 30 14:22:01 web-1 app[811]: "
            + "request context " * 12
            + "reason: disk quota exceeded",
            "disk quota exceeded",
        ),
    ],
)
def test_a_long_quoted_line_keeps_its_reason_at_the_end(line: str, kept: str) -> None:
    from aiops_analyzer.engines.findings import MAX_QUOTED, _clip

    quoted = _clip(line)
    assert len(quoted) <= MAX_QUOTED
    assert kept in quoted
    assert not quoted.startswith(("time=", "Nov 30"))  # the finding gives the time itself


def test_a_short_line_is_quoted_whole() -> None:
    from aiops_analyzer.engines.findings import _clip

    line = "[2026-11-28 08:21:00 +0000] [7] [INFO] Listening at: http://127.0.0.1:8000 (7)"
    assert _clip(line) == line


DISK_EXPR = '100 * node_filesystem_avail_bytes{fstype!~"tmpfs"} / node_filesystem_size_bytes < 15'


def test_core_dumps_behind_a_disk_alert_are_named_with_their_process() -> None:
    crash = [
        "report-worker.service: Main process exited, code=dumped, status=11/SEGV",
        "systemd-coredump[40112]: Process 30112 (report-worker) of user 998 dumped core.",
    ] * 4
    result = RulesEngine().analyze(
        alert("DiskLow", DISK_EXPR, {"instance": "batch-2:9100", "mountpoint": "/"}),
        [log_item("loki-1", *crash, baseline=tuple(crash))],
    )
    assert result.category == "disk_space"
    top = result.probable_causes[0]
    assert "report-worker" in top.cause and "dumping core" in top.cause
    assert top.evidence_ids == ["loki-1"]
    # 4 crashes before startsAt and 4 just before, each logged twice: 8 dumps, not 16.
    assert "(8 core dumps" in top.cause
    assert any("coredumpctl" in step for step in result.remediation)


def test_a_disk_alert_without_dumps_names_none() -> None:
    lines = ["backup[311]: wrote /srv/backup/db-0412.tar.gz (2.1 GB)"] * 3
    result = RulesEngine().analyze(
        alert("DiskLow", DISK_EXPR, {"instance": "batch-2:9100", "mountpoint": "/"}),
        [log_item("loki-1", *lines)],
    )
    assert not any("core" in c.cause for c in result.probable_causes)


def test_a_long_cause_line_still_logged_after_the_resolution_is_seen_persisting() -> None:
    """The cause quotes a long line clipped (without its time stamp, its middle cut): the
    line's later entries are still recognised as that cause."""
    a = _resolved(4)
    ended = STARTS.timestamp() + 240
    own = metric("prom-1", "alert_expression", [0.92, 0.95, 0.93], {"name": "api"}, end=ended)
    start = STARTS.timestamp()
    line = (
        "2026-11-28T01:00:00.000Z ERROR c.a.Checkout: charge {i} failed after 3 attempts, "
        "giving up: java.net.ConnectException: Connection refused (payments-gateway:8443) "
        "while calling POST /v2/charges on behalf of tenant acme-international"
    )
    lines = [LogLine(start - 60 + i, line.format(i=i), True) for i in range(5)]
    lines += [LogLine(start + 700, line.format(i=9), True)]
    logs = EvidenceItem(
        id="loki-1", source="loki", kind="log_templates", templates=rank(lines, 900.0, 900.0)
    )
    result = RulesEngine().analyze(a, [own, logs])
    assert result.recovery is not None and result.recovery.cause_persists


@pytest.mark.parametrize(
    "line",
    [
        "EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm nginx: reading "
        "directory lblock 0",
        "EXT4-fs (sda1): Remounting filesystem read-only",
        "blk_update_request: I/O error, dev sdb, sector 1953525168 op 0x0:(READ) flags 0x0",
        "I/O error, dev nvme0n1, sector 88012344 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio 0",
        "Buffer I/O error on dev sdb1, logical block 244190390, async page read",
        'XFS (dm-0): metadata I/O error in "xfs_trans_read_buf_map" at daddr 0x2 len 1',
        "OSError: [Errno 30] Read-only file system: '/var/lib/app/state.json'",
    ],
    ids=["ext4-error", "ro-remount", "blk", "nvme", "buffer", "xfs", "erofs-python"],
)
def test_a_failing_filesystem_is_not_a_full_one(line: str) -> None:
    """Kernel filesystem and block errors name the device as the cause, not its free space."""
    logs = log_item("loki-1", line, "GET /metrics 200", baseline=("GET /metrics 200",) * 20)
    a = alert(
        "NodeFilesystemReadOnly",
        'node_filesystem_readonly{fstype!="tmpfs"} == 1',
        {"instance": "db-2:9100", "mountpoint": "/var/lib", "device": "/dev/sdb1"},
    )
    result = RulesEngine().analyze(a, [logs])
    assert result.category == "disk_space"
    first = result.probable_causes[0]
    assert "not its free space" in first.cause and first.evidence_ids == ["loki-1"]


@pytest.mark.parametrize(
    "line",
    [
        "EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.",
        "XFS (dm-0): Ending clean mount",
        "mount: /mnt/iso: WARNING: source write-protected, mounted read-only.",
    ],
)
def test_healthy_filesystem_lines_name_no_filesystem_failure(line: str) -> None:
    logs = log_item("loki-1", line, "GET /metrics 200", baseline=("GET /metrics 200",) * 20)
    a = alert("NodeFilesystemAlmostFull", "node_filesystem_avail_bytes < 1e9", {"instance": "h"})
    result = RulesEngine().analyze(a, [logs])
    assert not any("not its free space" in c.cause for c in result.probable_causes)


@pytest.mark.parametrize(
    "line",
    [
        "systemd-oomd[611]: Killed /system.slice/reporting.service due to memory pressure for "
        "/system.slice being 71.20% > 50.00% for > 20s with reclaim activity",
        "low memory! at or below SIGTERM limits: mem 10.00%, swap  5.00%",
        'sending SIGTERM to process 4121 uid 998 "java": badness 912, VmRSS 6913 MiB',
        "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=docker-3f2a.scope,"
        "mems_allowed=0,oom_memcg=/system.slice/docker-3f2a.scope,task=java,pid=4121,uid=0",
        "Memory cgroup out of memory: Killed process 4121 (java) total-vm:8123400kB, "
        "anon-rss:2093012kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4512kB oom_score_adj:0",
        "oom_reaper: reaped process 4121 (java), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
    ],
    ids=["systemd-oomd", "earlyoom-low", "earlyoom-kill", "oom-kill", "memcg", "reaper"],
)
def test_oom_killers_in_their_own_words_stop_a_container(line: str) -> None:
    down = alert("ContainerDown", "time() - container_last_seen > 60", {"name": "etl"})
    result = RulesEngine().analyze(down, [log_item("loki-1", line)])
    assert result.category == "oom_killed"


def test_time_paused_in_garbage_collection_explains_slow_responses() -> None:
    """A JVM's collector running back to back, its heap full: the latency alert's cause."""
    labels = {"instance": "orders-1:8080", "job": "orders"}
    slow = alert("OrdersSlow", "rate(http_server_requests_seconds_sum[5m]) > 0.5", labels)
    queries = {q.kind: q.promql for q in plan_queries(slow)}
    assert 'jvm_gc_pause_seconds_sum{instance="orders-1:8080"}' in queries["runtime_gc_share"]
    assert 'area="heap"' in queries["runtime_heap_ratio"]
    # A host's alert has no runtime to ask about.
    assert "runtime_gc_share" not in {q.kind for q in plan_queries(alert("X", "node_load1 > 4"))}

    own = metric("prom-1", "alert_expression", [0.1] * 20 + [1.2] * 10)
    gc = metric("prom-2", "runtime_gc_share", [0.005] * 20 + [0.25] * 10, {"instance": "a"})
    heap = metric("prom-3", "runtime_heap_ratio", [0.4] * 20 + [0.99] * 10, {"instance": "a"})
    result = RulesEngine().analyze(slow, [own, gc, heap])
    assert result.category == "garbage_collection" and not result.inconclusive
    top = result.probable_causes[0]
    assert "25% of its time paused in garbage collection" in top.cause
    assert "heap at 99%" in top.cause and top.evidence_ids == ["prom-2", "prom-3"]
    assert any("heap dump" in step for step in result.remediation)
    # A runtime that always pauses that much is not what changed.
    always = metric("prom-2", "runtime_gc_share", [0.25] * 30, {"instance": "a"})
    result = RulesEngine().analyze(slow, [own, always])
    assert result.category != "garbage_collection"
    assert not any("garbage collection" in c.cause for c in result.probable_causes)


def test_a_service_down_after_its_machine_rebooted_is_the_reboot() -> None:
    """The machine's node_exporter (any port, same host) shows the reboot the service's own
    series cannot."""
    down = alert("BillingDown", 'up{job="billing"} == 0', {"instance": "app-3:8080"})
    machine = {q.kind: q.promql for q in plan_queries(down)}["host_boot_time"]
    assert (
        machine == 'max by (instance) (node_boot_time_seconds{instance=~"app\\\\-3(?::[0-9]+)?"})'
    )
    # A Kubernetes node reported by kube-state-metrics: node_exporter's series by node name.
    not_ready = alert(
        "KubeNodeNotReady",
        'kube_node_status_condition{condition="Ready",status="true"} == 0',
        {"node": "worker-3", "job": "kube-state-metrics", "instance": "10.0.0.9:8080"},
    )
    node_boot = {q.kind: q.promql for q in plan_queries(not_ready)}["host_boot_time"]
    assert 'node_uname_info{nodename=~"worker\\\\-3(?:\\\\..*)?"}' in node_boot
    assert "10.0.0" not in node_boot  # never the exporter's own address
    # node_exporter's own alerts ask their host's boot time directly, not this way.
    assert all("instance=~" not in q.promql for q in plan_queries(alert("X", "node_load1 > 4")))

    long_ago = END - 20 * 86400
    boot = metric(
        "prom-2", "host_boot_time", [long_ago] * 20 + [END - 600] * 10, {"instance": "app-3:9100"}
    )
    result = RulesEngine().analyze(down, [metric("prom-1", "alert_expression", [0] * 30), boot])
    assert result.category == "reboot" and not result.inconclusive
    top = result.probable_causes[0]
    assert top.cause.startswith("The host (app-3:9100) rebooted") and top.evidence_ids == ["prom-2"]
    assert "was 2026-11-08" in top.cause  # a boot days ago is given with its date
    assert any("systemctl is-enabled" in step for step in result.remediation)


def test_a_failed_renewal_is_told_as_the_reason_the_certificate_expires() -> None:
    a = alert(
        "SslCertificateExpiresSoon",
        "probe_ssl_earliest_cert_expiry - time() < 86400 * 3",
        {"instance": "https://shop.example.net/", "job": "blackbox"},
    )
    evidence = [
        metric("prom-1", "alert_expression", [260000.0] * 6, {"instance": a.labels["instance"]}),
        log_item(
            "loki-1",
            "Failed to renew certificate shop.example.net with error: Some challenges have failed.",
            baseline=("probe ok",) * 5,
        ),
    ]
    result = RulesEngine().analyze(a, evidence)
    assert result.category == "certificate_expiry"
    top = next(c for c in result.probable_causes if "loki-1" in c.evidence_ids)
    assert "renewal fails" in top.cause and "Some challenges have failed" in top.cause


# --- what changed just before: a setting, a listen address, a machine, a primary ----------
def _reload(port: int, flag: str) -> tuple[str, ...]:
    """fare-gateway's configuration dump at a reload: one line per setting."""
    return (
        'level=INFO msg="config file changed, reloading" path=/etc/fare-gateway/config.yaml',
        'level=INFO msg="upstream configured" name=fares-db addr=fares-db:5432 timeout=2s',
        f'level=INFO msg="upstream configured" name=seatmap addr=seatmap-svc:{port} timeout=2s',
        'level=INFO msg="upstream configured" name=pricing addr=pricing:7000 timeout=3s',
        f'level=INFO msg="feature flags" fare_cache_v2={flag}',
    )


def test_a_reloaded_setting_the_failures_name_is_the_misconfiguration() -> None:
    """The reload repeats every setting word for word but one: the new port, which the
    refused calls name. The flag that also changed is not blamed."""
    refused = (
        'level=ERROR msg="upstream call failed" upstream=seatmap err="dial tcp 172.22.0.9:{}: '
        'connect: connection refused"'
    )
    probe = alert(
        "BlackboxProbeFailed", "probe_success == 0", {"instance": "http://fare-gateway:8080/"}
    )
    own = metric("prom-1", "alert_expression", [1] * 25 + [0] * 5, {"instance": "x"})
    wrong_port = log_item(
        "loki-1",
        *_reload(8081, "true"),
        *[refused.format(8081)] * 6,
        baseline=_reload(8080, "false"),
    )
    changed = next(t for t in wrong_port.templates if t.variant)
    assert "seatmap-svc:8081" in changed.variant and "seatmap-svc:8080" in changed.variant_of
    result = RulesEngine().analyze(probe, [own, wrong_port])
    assert result.category == "misconfiguration"
    top = result.probable_causes[0]
    assert "addr=seatmap-svc:8081" in top.cause and "(before: '" in top.cause
    assert "seatmap-svc:8080" in top.cause and top.evidence_ids == ["loki-1"]
    assert any("addr=seatmap-svc:8080" in step for step in result.remediation)
    # The same reload, but the calls fail on a port it did not touch: no such finding.
    other = log_item(
        "loki-1",
        *_reload(8081, "true"),
        *[refused.format(9090)] * 6,
        baseline=_reload(8080, "false"),
    )
    result = RulesEngine().analyze(probe, [own, other])
    assert not any("set a new value" in c.cause for c in result.probable_causes)


def test_lines_that_differ_on_every_line_have_no_changed_value() -> None:
    """Request lines carry ids: a recent one the baseline never had is no changed setting."""
    item = log_item(
        "loki-1",
        *(f"GET /carts/{n} 200 user=u{n}" for n in range(5)),
        baseline=tuple(f"GET /carts/{n} 200 user=u{n}" for n in range(100, 105)),
    )
    assert not any(t.variant for t in item.templates)


def test_a_structured_listening_line_on_loopback_is_the_listen_address() -> None:
    down = alert("TargetDown", 'up{job="imgresize"} == 0', {"instance": "media-3:9464"})
    own = metric("prom-1", "alert_expression", [1] * 25 + [0] * 5, {"instance": "media-3:9464"})
    loopback = log_item(
        "loki-1",
        'level=info msg="listening" component=metrics addr=127.0.0.1:9464 path=/metrics',
        baseline=("level=info msg=resized w=640",) * 5,
    )
    result = RulesEngine().analyze(down, [own, loopback])
    assert result.category == "misconfiguration"
    assert any("addr=127.0.0.1:9464" in c.cause for c in result.probable_causes)
    # Every address (`addr=:9464`) is no listen mistake.
    everywhere = log_item(
        "loki-1",
        'level=info msg="listening" component=metrics addr=:9464 path=/metrics',
        baseline=("level=info msg=resized w=640",) * 5,
    )
    assert not any("listen" in t.tags for t in everywhere.templates)


def test_a_service_down_while_another_machine_rebooted_is_the_reboot() -> None:
    """redis-a's address names no machine; the fleet's boot times show the one that went
    down with it."""
    down = alert("RedisDown", "redis_up == 0", {"instance": "redis://redis-a:6379"})
    [fleet] = [q for q in plan_queries(down) if q.kind == "fleet_reboots"]
    assert fleet.promql == (
        f"max by (instance) (node_boot_time_seconds) > {int(STARTS.timestamp()) - 1800}"
    )
    assert not [q for q in plan_queries(alert("X", "node_load1 > 4")) if q.kind == "fleet_reboots"]
    own = metric("prom-1", "alert_expression", [0] * 5, {"instance": "redis://redis-a:6379"})
    booted = STARTS.timestamp() + 90
    rebooted = metric("prom-2", "fleet_reboots", [booted] * 4, {"instance": "cache-1:9100"})
    result = RulesEngine().analyze(down, [own, rebooted])
    assert result.category == "reboot"
    top = next(c for c in result.probable_causes if "prom-2" in c.evidence_ids)
    assert top.cause.startswith("The machine cache-1:9100 booted at 01:01:30 UTC")
    assert "2 min after the target went down at 01:00:00 UTC" in top.cause
    # A boot long after the alert began is not its cause.
    late = metric("prom-2", "fleet_reboots", [STARTS.timestamp() + 3600] * 4, {"instance": "b"})
    result = RulesEngine().analyze(down, [own, late])
    assert result.category != "reboot"
    assert not any("booted" in c.cause for c in result.probable_causes)


def test_a_primary_that_changed_is_told_as_a_failover() -> None:
    down = alert("RedisDown", "redis_up == 0", {"instance": "redis://redis-a:6379"})
    own = metric("prom-1", "alert_expression", [0] * 5, {"instance": "redis://redis-a:6379"})
    logs = log_item(
        "loki-1",
        "1:X 18 Dec 2026 10:08:21.104 # +switch-master sessions 10.0.5.11 6379 10.0.5.12 6379",
        baseline=("1:X 18 Dec 2026 09:00:00.000 * Sentinel ID is 7a1c9e2b",) * 3,
    )
    result = RulesEngine().analyze(down, [own, logs])
    failover = next(c for c in result.probable_causes if "failover" in c.cause)
    assert "10.0.5.12" in failover.cause and failover.evidence_ids == ["loki-1"]


def test_iowait_from_a_file_server_that_stopped_answering_is_a_network_cause() -> None:
    """A hung NFS mount shows as iowait and load on its client: the cause is the server (or
    the path to it), not the CPU, and a firewall line beside it would explain nothing."""
    expr = 'avg by (instance) (rate(node_cpu_seconds_total{mode="iowait"}[5m])) * 100 > 10'
    a = alert("HostCpuHighIowait", expr, {"instance": "media-1:9100"})
    iowait = metric("prom-1", "alert_expression", [2.0, 9.0, 16.0], {"instance": "media-1:9100"})
    hung = log_item(
        "loki-1",
        "kernel: nfs: server nas-2 not responding, still trying",
        "CRON[1]: (root) CMD (run-parts /etc/cron.hourly)",
        baseline=("CRON[1]: (root) CMD (run-parts /etc/cron.hourly)",) * 20,
    )
    result = RulesEngine().analyze(a, [iowait, hung])
    assert result.category == "network" and not result.inconclusive
    assert "nas-2 not responding" in result.probable_causes[0].cause
    blocked = log_item(
        "loki-1",
        "kernel: [UFW BLOCK] IN=eth0 SRC=10.0.0.5 DST=10.0.0.7 PROTO=TCP DPT=9100",
        baseline=("CRON[1]: (root) CMD (run-parts /etc/cron.hourly)",) * 20,
    )
    assert RulesEngine().analyze(a, [iowait, blocked]).category != "firewall"


def test_a_failing_dns_probe_names_the_resolvers_upstreams_that_stopped_answering() -> None:
    site = {"instance": "10.20.0.53:53", "job": "blackbox-dns"}
    a = alert("BlackboxProbeFailed", "probe_success == 0", site)
    planned = {q.kind: q.promql for q in plan_queries(a)}
    assert "coredns_forward_healthcheck_failures_total" in planned["dns_upstream_failures"]
    down = metric("prom-1", "alert_expression", [0.0] * 3, site)
    edge = {"instance": "edge-2:9153"}
    upstream = metric(
        "prom-2", "dns_upstream_failures", [0.0, 1.9, 1.9], {**edge, "to": "10.40.0.2:53"}
    )
    other = metric("prom-2", "dns_upstream_failures", [1.8, 1.9], {**edge, "to": "10.40.0.3:53"})
    upstream.series.extend(other.series)
    servfail = metric("prom-3", "dns_servfail", [0.0] * 20 + [1.0] * 5, edge)
    result = RulesEngine().analyze(a, [down, upstream, servfail])
    assert result.category == "dns"
    cause = result.probable_causes[0]
    assert "10.40.0.2:53, 10.40.0.3:53 fail its health checks" in cause.cause
    assert "SERVFAIL 1/s" in cause.cause and cause.evidence_ids == ["prom-2", "prom-3"]

    # Upstreams that answer (an occasional failed check) are not the cause.
    healthy = metric("prom-2", "dns_upstream_failures", [0.05] * 3, {**edge, "to": "10.40.0.2:53"})
    result = RulesEngine().analyze(a, [down, healthy, servfail])
    assert not any("upstream servers" in c.cause for c in result.probable_causes)


def test_a_queue_whose_consumers_fell_to_zero_is_named() -> None:
    labels = {"queue": "invoices.render", "vhost": "/billing", "instance": "mq-1:9419"}
    a = alert(
        "RabbitmqTooManyMessagesInQueue",
        'rabbitmq_queue_messages_ready{queue="invoices.render"} > 1000',
        labels,
    )
    planned = {q.kind: q.promql for q in plan_queries(a)}
    assert planned["queue_consumers"] == (
        'max by (queue) (rabbitmq_queue_consumers{queue="invoices.render",vhost="/billing"})'
    )
    backlog = metric("prom-1", "alert_expression", [900.0, 1100.0, 1300.0], labels)
    gone = metric("prom-2", "queue_consumers", [3.0] * 10 + [0.0] * 5, {"queue": "invoices.render"})
    result = RulesEngine().analyze(a, [backlog, gone])
    assert result.category == "queue_lag" and not result.inconclusive
    cause = result.probable_causes[0]
    assert "invoices.render has no consumers" in cause.cause and "from 3 to 0" in cause.cause
    assert cause.evidence_ids == ["prom-2"]
    # Consumers still attached: the backlog has another reason.
    there = metric("prom-2", "queue_consumers", [3.0] * 15, {"queue": "invoices.render"})
    result = RulesEngine().analyze(a, [backlog, there])
    assert not any("no consumers" in c.cause for c in result.probable_causes)


def test_announced_maintenance_is_the_cause_of_a_target_down_and_wakes_nobody() -> None:
    a = alert(
        "TargetDown", "up == 0", {"job": "node", "instance": "kv-2:9100", "severity": "critical"}
    )
    logs = log_item(
        "loki-1",
        "hostctl: maintenance mode active; rebooting to apply firmware",
        "systemd-logind[522]: System is rebooting.",
        baseline=("CRON[1]: (root) CMD (run-parts /etc/cron.hourly)",) * 20,
    )
    result = RulesEngine().analyze(a, [logs])
    assert result.category == "maintenance" and result.severity == "warning"
    assert "planned maintenance" in result.probable_causes[0].cause
    # The same reboot unannounced is a reboot, and keeps the alert's severity.
    unannounced = log_item(
        "loki-1",
        "systemd-logind[522]: System is rebooting.",
        baseline=("CRON[1]: (root) CMD (run-parts /etc/cron.hourly)",) * 20,
    )
    result = RulesEngine().analyze(a, [unannounced])
    assert result.category == "reboot" and result.severity == "critical"
    # A maintenance window explains something that went away, not a busy CPU beside it.
    cpu = alert("HighCpuUsage", "node_load1 > 8", {"instance": "kv-2:9100", "severity": "critical"})
    result = RulesEngine().analyze(cpu, [logs])
    assert result.category != "maintenance" and result.severity == "critical"


def test_a_cpu_alert_names_the_job_retrying_in_a_loop() -> None:
    a = alert(
        "HighCpuUsage",
        'avg by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m])) * 100 > 90',
        {"instance": "reports-1"},
    )
    busy = metric("prom-1", "alert_expression", [95.0, 98.0, 98.0], {"instance": "reports-1"})
    stuck = "rebuild-aggregates: merge cursor stuck at id=88 (0 rows merged), 13000 retries so far"
    logs = log_item(
        "loki-1",
        *([stuck] * 40),
        baseline=(stuck,) * 3 + ("CRON[1]: (root) CMD (run-parts /etc/cron.hourly)",) * 20,
    )
    result = RulesEngine().analyze(a, [busy, logs])
    assert result.category == "cpu_saturation" and not result.inconclusive
    cause = result.probable_causes[0]
    assert cause.cause.startswith("rebuild-aggregates repeats the same work in a loop")
    # The same line at its usual pace is the job's normal chatter, not a loop.
    usual = log_item("loki-1", *([stuck] * 3), baseline=(stuck,) * 30)
    result = RulesEngine().analyze(a, [busy, usual])
    assert not any("in a loop" in c.cause for c in result.probable_causes)


def test_mysql_threads_piled_up_on_a_metadata_lock_are_named() -> None:
    db = {"instance": "shopdb-1:9104", "job": "mysql"}
    a = alert("MysqlSlowQueries", "increase(mysql_global_status_slow_queries[1m]) > 0", db)
    planned = {q.kind: q.promql for q in plan_queries(a)}
    assert planned["mysql_lock_waits"] == (
        'sum by (state) (mysql_info_schema_processlist_threads{instance="shopdb-1:9104",'
        'state=~"(?i).*lock.*"}) > 0'
    )
    slow = metric("prom-1", "alert_expression", [1.0, 4.0, 9.0], db)
    piled = metric(
        "prom-2",
        "mysql_lock_waits",
        [38.0, 112.0, 141.0],
        {"state": "waiting for table metadata lock"},
    )
    result = RulesEngine().analyze(a, [slow, piled])
    cause = next(c for c in result.probable_causes if "MySQL threads" in c.cause)
    assert (
        "Up to 141 MySQL threads are in the state 'waiting for table metadata lock'" in cause.cause
    )
    assert "schema change" in cause.cause and cause.evidence_ids == ["prom-2"]
    # A couple of threads waiting a moment is no pile-up.
    brief = metric(
        "prom-2", "mysql_lock_waits", [0.0, 2.0, 0.0], {"state": "waiting for table metadata lock"}
    )
    result = RulesEngine().analyze(a, [slow, brief])
    assert not any("MySQL threads" in c.cause for c in result.probable_causes)


def test_a_disk_filling_behind_an_inactive_replication_slot_names_the_slot() -> None:
    fs = {"instance": "pg-main-1:9100", "mountpoint": "/var/lib/postgresql"}
    a = alert(
        "HostDiskSpaceLow",
        "node_filesystem_avail_bytes / node_filesystem_size_bytes * 100 < 15",
        fs,
    )
    planned = {q.kind: q.promql for q in plan_queries(a)}
    assert 'instance=~"pg\\\\-main\\\\-1(?::[0-9]+)?"' in planned["inactive_replication_slots"]
    assert "pg_replication_slots_active" in planned["inactive_replication_slots"]
    low = metric("prom-1", "alert_expression", [15.0, 14.5, 14.2], fs)
    slot = {"instance": "pg-main-1:9187", "slot_name": "dr_standby_fra"}
    gib = 1024.0**3
    held = metric("prom-2", "inactive_replication_slots", [100 * gib, 110 * gib, 120 * gib], slot)
    result = RulesEngine().analyze(a, [low, held])
    cause = result.probable_causes[0]
    assert cause.cause.startswith(
        "The replication slot dr_standby_fra is inactive and holds back 120.0 GiB"
    )
    assert cause.evidence_ids == ["prom-2"]
    small = metric("prom-2", "inactive_replication_slots", [0.1 * gib] * 3, slot)
    result = RulesEngine().analyze(a, [low, small])
    assert not any("replication slot" in c.cause for c in result.probable_causes)


def test_a_datastore_exporters_own_queries_survive_the_query_budget() -> None:
    """A MySQL exporter scraped in a pod gets container and runtime queries too; the lock
    waits are planned first, so the budget cuts generic queries instead."""
    labels = {"instance": "10.42.2.31:9104", "namespace": "data", "pod": "mysql-0"}
    labels |= {"container": "metrics", "job": "mysql-metrics"}
    expr = (
        "max_over_time(mysql_global_status_threads_connected[1m])"
        " / mysql_global_variables_max_connections * 100 > 80"
    )
    kinds = [q.kind for q in plan_queries(alert("MysqlTooManyConnections", expr, labels))]
    assert "mysql_lock_waits" in kinds and len(kinds) == 1 + MAX_FAMILY_QUERIES
    piled = metric(
        "prom-2",
        "mysql_lock_waits",
        [9.0, 80.0, 166.0],
        {"state": "waiting for table metadata lock"},
    )
    result = RulesEngine().analyze(
        alert("MysqlTooManyConnections", expr, labels),
        [metric("prom-1", "alert_expression", [80.0, 85.0, 87.0], labels), piled],
    )
    assert result.category == "lock_contention"


def test_a_raid_alert_is_a_disk_failure_and_a_degraded_array_explains_slow_reads() -> None:
    raid = alert(
        "HostRaidDiskFailure",
        'node_md_disks{state="failed"} > 0',
        {"instance": "bkp-01:9100", "device": "md1", "state": "failed"},
    )
    assert classify(raid).family.category == "disk_failure"
    slow = alert(
        "HostUnusualDiskReadLatency",
        "rate(node_disk_read_time_seconds_total[1m]) / rate(node_disk_reads_completed_total[1m])"
        " > 0.1",
        {"instance": "ci-2:9100", "device": "md0"},
    )
    planned = {q.kind: q.promql for q in plan_queries(slow)}
    assert 'state=~"failed|down"' in planned["raid_failed_members"]
    latency = metric("prom-1", "alert_expression", [0.01, 0.12, 0.15], {"device": "md0"})
    failed = metric("prom-2", "raid_failed_members", [1.0] * 3, {"device": "md0"})
    synced = metric("prom-3", "raid_synced", [0.01, 0.03, 0.05], {"device": "md0"})
    result = RulesEngine().analyze(slow, [latency, failed, synced])
    assert result.category == "disk_failure"
    cause = result.probable_causes[0]
    assert "md0 runs degraded" in cause.cause and "5% synced" in cause.cause
    assert cause.evidence_ids == ["prom-2", "prom-3"]
    result = RulesEngine().analyze(slow, [latency])
    assert result.category != "disk_failure"
    # The array's logs name the member that failed; another array's failure is not it.
    md0 = log_item("loki-1", "kernel: md/raid:md0: Disk failure on sdd1, disabling device.")
    named = RulesEngine().analyze(slow, [latency, failed, synced, md0]).probable_causes[0]
    assert "failed, sdd1 ('kernel: md/raid:md0: Disk failure on sdd1" in named.cause
    assert named.evidence_ids == ["prom-2", "prom-3", "loki-1"]
    md1 = log_item("loki-1", "kernel: md/raid:md1: Disk failure on sdb1, disabling device.")
    other = RulesEngine().analyze(slow, [latency, failed, synced, md1]).probable_causes[0]
    assert "sdb1" not in other.cause


def test_a_rebuild_onto_a_replaced_disk_is_maintenance_not_a_failing_disk() -> None:
    """The failed member was removed (failed members back to 0) and a new one added: md
    rebuilds onto it. The old failure lines are history; slow queries are the rebuild's."""
    slow = alert(
        "HostDiskReadLatencyHigh",
        "rate(node_disk_read_time_seconds_total[5m]) / rate(node_disk_reads_completed_total[5m])"
        " > 0.05",
        {"instance": "pgdb-5:9100", "device": "md0"},
    )
    latency = metric("prom-1", "alert_expression", [0.005] * 5 + [0.11] * 15, {"device": "md0"})
    removed = metric("prom-2", "raid_failed_members", [1.0] * 5 + [0.0] * 15, {"device": "md0"})
    # Kept below 1 only: the series begins when the rebuild did, 14 minutes before the end.
    synced = metric("prom-3", "raid_synced", [0.01 * i for i in range(15)], {"device": "md0"})
    start = END - 14 * 60
    mined = [
        LogLine(start - 600, "DegradedArray event detected on md device /dev/md0", True),
        LogLine(start - 60, "COMMAND=/usr/sbin/mdadm --manage /dev/md0 --add /dev/sdc1", True),
        LogLine(start, "kernel: md: recovery of RAID array md0", True),
    ]
    mined += [
        LogLine(start + 60 + i, "LOG: duration: 2116.118 ms statement: SELECT 1", True)
        for i in range(5)
    ]
    history = EvidenceItem(
        id="loki-1", source="loki", kind="log_templates", templates=rank(mined, 900.0, 900.0)
    )
    result = RulesEngine().analyze(slow, [latency, removed, synced, history])
    assert result.category == "maintenance"
    cause = result.probable_causes[0]
    assert "md0 is busy with a rebuild onto a replaced member (sdc1 added" in cause.cause
    assert "14% synced, about 1.4 h left" in cause.cause and cause.evidence_ids == [
        "prom-3",
        "loki-1",
    ]
    text = " ".join(c.cause for c in result.probable_causes)
    assert "A disk fails" not in text and "missing index" not in text
    assert "sync_speed_max" in result.remediation[0]
    # The surviving disk failing during the rebuild is news, not history: it stays.
    failing = [*mined, LogLine(END - 60, "kernel: [sdb] Unrecovered read error", True)]
    worse = EvidenceItem(
        id="loki-1", source="loki", kind="log_templates", templates=rank(failing, 900.0, 900.0)
    )
    again = RulesEngine().analyze(slow, [latency, removed, synced, worse])
    assert any(
        "disk under it fails" in c.cause or "A disk fails" in c.cause for c in again.probable_causes
    )
    # Still degraded (a member failed now): the degraded finding, not maintenance.
    degraded = metric("prom-2", "raid_failed_members", [1.0] * 20, {"device": "md0"})
    assert RulesEngine().analyze(slow, [latency, degraded, synced]).category == "disk_failure"


def test_a_named_cause_drops_the_familys_other_stock_guesses() -> None:
    """A host OOM kill whose kernel line names the victim gets no "a memory leak or a traffic
    spike" guess; the same alert without that line keeps the family's alternatives."""
    host = {"instance": "app-5:9100", "job": "node"}
    a = alert("HostOomKillDetected", "increase(node_vmstat_oom_kill[1m]) > 0", host)
    counter = metric("prom-1", "alert_expression", [0, 0, 1, 1], host)
    kill = log_item(
        "loki-1",
        "kernel: Memory cgroup out of memory: Killed process 713340 (chrome) total-vm:3411kB",
        "kernel: oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/system.slice/render.service,"
        "task=chrome,pid=713340,uid=1000",
        baseline=tuple(f"CRON[{n}]: (root) CMD (run-parts /etc/cron.hourly)" for n in range(20)),
    )
    stock = "A memory leak or a traffic spike grew the working set past the limit."
    named = RulesEngine().analyze(a, [counter, kill])
    victim = next(c for c in named.probable_causes if "chrome (pid 713340)" in c.cause)
    assert "render.service" in victim.cause and victim.evidence_ids == ["loki-1"]
    assert stock not in [c.cause for c in named.probable_causes]
    unnamed = RulesEngine().analyze(a, [counter])
    assert stock in [c.cause for c in unnamed.probable_causes]


def _victim_memory(name: str) -> EvidenceItem:
    return metric("prom-9", "oom_victim_memory", [0.5e9, 1.0e9, 1.5e9], {"name": name})


def test_an_oom_kill_in_another_container_is_not_this_containers_cause() -> None:
    """One host, one delivery: the kernel's kill was in media-transcoder (its cgroup id looked
    up in cAdvisor); the reports-worker that an operator stopped is no OOM kill."""
    cid = "1d6a9c2f5b8e1d4a7c0f3b6e9d2a5c8f1b4e7d0a"
    kernel = (
        "kernel: Memory cgroup out of memory: Killed process 91822 (python3) total-vm:9kB",
        "kernel: oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/system.slice/docker-"
        f"{cid}.scope,task=python3,pid=91822,uid=1000",
    )
    stop = (
        "mlindqvist : TTY=pts/2 ; PWD=/srv ; USER=root ; "
        "COMMAND=/usr/bin/docker compose stop reports-worker"
    )
    quiet = tuple(f"CRON[{n}]: (root) CMD (run-parts /etc/cron.hourly)" for n in range(20))
    worker = {"name": "reports-worker", "severity": "critical"}
    down = alert("ContainerDown", "time() - container_last_seen > 60", worker)
    gone = metric("prom-1", "alert_expression", [120, 180, 240], worker)
    logs = log_item("loki-1", stop, *kernel, baseline=quiet)
    result = RulesEngine().analyze(down, [gone, _victim_memory("media-transcoder"), logs])
    text = " ".join(c.cause for c in result.probable_causes)
    assert result.category != "oom_killed" and "python3" not in text
    assert "mlindqvist ran `/usr/bin/docker compose stop reports-worker`" in text
    assert result.severity == "warning"  # stopped on purpose: nobody needs waking
    # The container the kill names gets it, with its name.
    transcoder = {"name": "media-transcoder", "severity": "critical"}
    killed = RulesEngine().analyze(
        alert("ContainerDown", "time() - container_last_seen > 60", transcoder),
        [
            metric("prom-1", "alert_expression", [120, 180, 240], transcoder),
            _victim_memory("media-transcoder"),
            log_item("loki-1", *kernel, baseline=quiet),
        ],
    )
    assert killed.category == "oom_killed" and killed.severity == "critical"
    # A Kubernetes container under dockershim: cAdvisor's name embeds the alert's container.
    k8s = {"container": "media-transcoder", "pod": "media-transcoder-7d9f-x2b4q"}
    under_k8s = RulesEngine().analyze(
        alert("KubeContainerOOM", "kube_pod_container_status_restarts_total > 3", k8s),
        [
            metric("prom-1", "alert_expression", [3, 4, 5], k8s),
            _victim_memory("k8s_media-transcoder_media-transcoder-7d9f-x2b4q_media_0"),
            log_item("loki-1", *kernel, baseline=quiet),
        ],
    )
    assert under_k8s.category == "oom_killed"
    assert any(
        "python3 (pid 91822) in container media-transcoder" in c.cause
        for c in killed.probable_causes
    )


def test_a_container_restarting_again_and_again_is_no_deliberate_stop() -> None:
    """Its first stop was a SIGTERM (a deploy replacing it), but it keeps restarting: a crash
    loop, not a container that was stopped."""
    hooks = {"name": "hook-dispatcher"}
    a = alert("ContainerRestarting", "changes(container_start_time_seconds[15m]) > 2", hooks)
    sigterm = log_item(
        "loki-1",
        "info: received SIGTERM, finishing 2 in-flight deliveries",
        baseline=tuple(f"info: delivered webhook {n} in 40ms" for n in range(20)),
    )
    evidence = [metric("prom-1", "alert_expression", [3, 4, 5, 6], hooks), sigterm]
    looping = [*evidence, metric("prom-2", "container_restarts", [3, 4, 5, 6], hooks)]
    assert RulesEngine().analyze(a, looping).category != "container_stopped"
    once = [*evidence, metric("prom-2", "container_restarts", [0, 0, 0, 0], hooks)]
    assert RulesEngine().analyze(a, once).category == "container_stopped"


def test_a_heap_allowed_to_outgrow_the_containers_limit_is_named() -> None:
    """-Xmx3g in a 2 GiB container: each restart prints the JVM's banner and the kernel kills
    it at the limit. The heap setting is the cause; the banner is no release."""
    indexer = {"name": "catalog-indexer"}
    a = alert("ContainerRestarting", "changes(container_start_time_seconds[15m]) > 2", indexer)
    gib = 1024.0**3
    memory = metric(
        "prom-2",
        "container_memory_working_set",
        [1.2 * gib, 1.9 * gib, 2 * gib],
        indexer,
        limit=2 * gib,
    )
    lines = log_item(
        "loki-1",
        "Picked up JAVA_TOOL_OPTIONS: -Xms512m -Xmx3g -XX:+UseG1GC",
        "ERROR Starting IndexerApplication v4.8.2 using Java 17.0.13 with PID 1",
        "kernel: Memory cgroup out of memory: Killed process 416343 (java) total-vm:9kB",
        "kernel: swap: usage 0kB, limit 0kB, failcnt 0",
        baseline=tuple(f"INFO indexed batch {n}" for n in range(20)),
    )
    oom = metric("prom-3", "container_oom_events", [0, 1, 2, 3], indexer)
    result = RulesEngine().analyze(
        a, [metric("prom-1", "alert_expression", [3] * 4, indexer), memory, oom, lines]
    )
    text = " ".join(c.cause for c in result.probable_causes)
    assert result.category == "oom_killed"
    assert "The heap may grow to 3.0 GiB (-Xmx3g" in text and "limit of 2.0 GiB" in text
    assert "deploy regression" not in text.lower() and "swapping" not in text
    # A heap well inside the limit is not blamed.
    small = log_item("loki-1", "Picked up JAVA_TOOL_OPTIONS: -Xmx1g", baseline=("INFO ok",) * 20)
    assert findings.heap_above_limit([memory], [small]) is None


def test_a_tls_alert_from_the_peer_is_about_this_sides_client_certificate() -> None:
    """'sslv3 alert certificate expired' in nginx's upstream error: the upstream rejected the
    client certificate nginx presents, not an expired certificate of the upstream's."""
    proxy = {"container": "egress-proxy"}
    a = alert("NginxHigh5xxRate", "sum(rate(nginx_http_requests_total[5m])) > 1", proxy)
    rejected = log_item(
        "loki-1",
        "[error] 31#31: *1882351 SSL_read() failed (SSL: error:0A000415:SSL routines::sslv3 "
        "alert certificate expired:SSL alert number 45) while reading response header from "
        'upstream, upstream: "https://10.30.2.40:8443/v1/entries"',
        baseline=tuple(f'10.0.0.{n} - - "GET /health HTTP/1.1" 200' for n in range(20)),
    )
    result = RulesEngine().analyze(
        a, [metric("prom-1", "alert_expression", [1, 3, 5], proxy), rejected]
    )
    cause = next(c for c in result.probable_causes if "rejects this side's" in c.cause)
    assert "TLS alert 'certificate expired'" in cause.cause and "client" in cause.cause
    # A handshake failure on the server's own certificate keeps the general sentence.
    own = log_item(
        "loki-1",
        "upstream SSL certificate verify error: (10:certificate has expired) while SSL handshaking",
        baseline=tuple(f'10.0.0.{n} - - "GET /health HTTP/1.1" 200' for n in range(20)),
    )
    result = RulesEngine().analyze(a, [metric("prom-1", "alert_expression", [1, 3, 5], proxy), own])
    assert not any("rejects this side's" in c.cause for c in result.probable_causes)


def test_gos_form_of_the_peers_tls_alert_is_about_this_sides_client_certificate() -> None:
    """Go's crypto/tls reports the peer's alert as "remote error: tls: expired certificate":
    the peer (a mutual-TLS API) rejects the client certificate this service presents."""
    orders = {"instance": "app-4:8080", "job": "orders"}
    a = alert("OrdersErrors", 'sum(rate(http_requests_total{code=~"5.."}[5m])) > 1', orders)
    rejected = log_item(
        "loki-1",
        "error ledger posting failed url=https://ledger.internal:8443/v1/postings error=Post "
        '"https://ledger.internal:8443/v1/postings": remote error: tls: expired certificate',
        baseline=("info order created",) * 20,
    )
    result = RulesEngine().analyze(
        a, [metric("prom-1", "alert_expression", [0.1, 0.3, 0.4], orders), rejected]
    )
    cause = next(c for c in result.probable_causes if "rejects this side's" in c.cause)
    assert "TLS alert 'expired certificate'" in cause.cause and "mutual TLS" in cause.cause
    assert result.category == "certificate_expiry"


def test_a_group_that_keeps_its_members_but_stopped_committing_is_stuck() -> None:
    """Lag grows, four members stay, commits stop while records keep arriving: the answer says
    the consumers are stuck (not gone) and stays inconclusive about why without their logs."""
    group = {"consumergroup": "search-feeder"}
    a = alert(
        "KafkaConsumersGroup", "sum(kafka_consumergroup_lag) by (consumergroup) > 20000", group
    )
    planned = {q.kind: q.promql for q in plan_queries(a)}
    assert planned["queue_commit_rate"].startswith("sum by (consumergroup) (deriv(")
    lag = metric("prom-1", "alert_expression", [20400 + 700 * i for i in range(6)], group)
    members = metric("prom-2", "queue_consumers", [4] * 6, group)
    produced = metric("prom-4", "queue_produce_rate", [11.7] * 6, {})
    stopped = metric("prom-3", "queue_commit_rate", [11.5, 11.8, 0.02, 0.0, -0.05, 0.01], group)
    result = RulesEngine().analyze(a, [lag, members, stopped, produced])
    stuck = next(c for c in result.probable_causes if "stopped advancing" in c.cause)
    assert "although it still has 4 member(s)" in stuck.cause and "from about" in stuck.cause
    assert set(stuck.evidence_ids) == {"prom-2", "prom-3", "prom-4"}
    assert result.inconclusive  # what stopped, not why
    # Committing at the rate records arrive: nothing is said.
    keeping_up = metric("prom-3", "queue_commit_rate", [11.6] * 6, group)
    result = RulesEngine().analyze(a, [lag, members, keeping_up, produced])
    assert not any("stopped advancing" in c.cause for c in result.probable_causes)
    assert not any("slowed down" in c.cause for c in result.probable_causes)
    # Commits at a third of their pace (not stopped) with producers at theirs: slowed, and
    # the stopped-commits sentence is not said.
    slower = metric("prom-3", "queue_commit_rate", [11.6, 11.5, 11.7, 3.9, 4.1, 4.0], group)
    result = RulesEngine().analyze(a, [lag, members, slower, produced])
    slowed = next(c for c in result.probable_causes if "slowed down" in c.cause)
    assert "commits 4 records/s against its usual 11.6" in slowed.cause
    assert "4 member(s) stay in the group" in slowed.cause and not result.inconclusive
    assert not any("stopped advancing" in c.cause for c in result.probable_causes)
    # Stopped commits are told as stopped, not as slowed.
    result = RulesEngine().analyze(a, [lag, members, stopped, produced])
    assert not any("slowed down" in c.cause for c in result.probable_causes)


def test_a_queue_whose_consumers_slowed_or_whose_publishers_surged_says_which_side_moved() -> None:
    """A RabbitMQ backlog with its consumers attached: acknowledgements fell to a third while
    publishing kept its pace, so the consumers are slow and what they wait on is the cause. A
    publish surge with consumers at their usual pace is the other side; consumers gone is
    neither."""
    queue = {"queue": "invoices.render", "vhost": "/"}
    a = alert(
        "RabbitmqBacklog", 'rabbitmq_queue_messages_ready{queue="invoices.render"} > 5000', queue
    )
    planned = {q.kind: q.promql for q in plan_queries(a)}
    assert "rabbitmq_(detailed_)?queue_messages_published_total" in planned["queue_publish_rate"]
    assert 'queue="invoices.render"' in planned["queue_ack_rate"]
    assert planned["queue_unacked"].startswith("max by (queue) ({__name__=~")
    backlog = metric("prom-1", "alert_expression", [5200 + 900 * i for i in range(8)], queue)
    consumers = metric("prom-2", "queue_consumers", [6] * 8, queue)
    steady = metric("prom-3", "queue_publish_rate", [40, 41, 39, 40, 42, 40, 39, 41], queue)
    slowed = metric("prom-4", "queue_ack_rate", [40, 40, 41, 39, 13, 12, 12, 13], queue)
    held = metric("prom-5", "queue_unacked", [12, 12, 12, 12, 60, 60, 60, 60], queue)
    result = RulesEngine().analyze(a, [backlog, consumers, steady, slowed, held])
    cause = result.probable_causes[0].cause
    assert cause.startswith("The consumers slowed down: they acknowledge 13 messages/s")
    assert "queue's 6 consumer(s) are still attached" in cause and "60 messages sit" in cause
    assert not result.inconclusive
    assert set(result.probable_causes[0].evidence_ids) == {"prom-2", "prom-3", "prom-4", "prom-5"}
    # Publishers tripled while consumers kept their pace: the surge, not the consumers.
    surged = metric("prom-3", "queue_publish_rate", [40, 40, 41, 40, 120, 125, 122, 124], queue)
    keeping = metric("prom-4", "queue_ack_rate", [40, 40, 41, 39, 44, 45, 44, 45], queue)
    result = RulesEngine().analyze(a, [backlog, consumers, surged, keeping])
    assert result.probable_causes[0].cause.startswith("The publishers send 124 messages/s")
    assert not any("slowed down" in c.cause for c in result.probable_causes)
    # No consumers left: the queue without consumers, not a slow one.
    gone = metric("prom-2", "queue_consumers", [6, 6, 6, 6, 0, 0, 0, 0], queue)
    result = RulesEngine().analyze(a, [backlog, gone, steady, slowed])
    text = " ".join(c.cause for c in result.probable_causes)
    assert "has no consumers" in text and "slowed down" not in text
    # Both rates at their usual pace: neither side moved, nothing is claimed.
    assert findings.queue_rates_moved([consumers, steady, keeping]) is None
    # Acknowledgements fell while redeliveries rose to a third of what arrives: the consumers
    # reject the messages, they are not merely slow.
    requeued = metric(
        "prom-6", "queue_redelivery_rate", [0.1, 0.1, 0.1, 0.2, 14, 15, 15, 14], queue
    )
    result = RulesEngine().analyze(a, [backlog, consumers, steady, slowed, requeued])
    cause = result.probable_causes[0]
    assert cause.cause.startswith("The consumers fail the messages they take: 14 messages/s")
    assert "prom-6" in cause.evidence_ids and "dead-letter" in " ".join(result.remediation)
    # A redelivery now and then beside slow consumers changes nothing.
    rare = metric(
        "prom-6", "queue_redelivery_rate", [0.1, 0.1, 0.2, 0.1, 0.3, 0.2, 0.3, 0.2], queue
    )
    result = RulesEngine().analyze(a, [backlog, consumers, steady, slowed, rare])
    assert result.probable_causes[0].cause.startswith("The consumers slowed down")


def test_new_info_lines_before_the_alert_are_shown_as_context_not_as_the_cause() -> None:
    """A crawler that appeared just before a latency alert is worth showing whatever its level;
    lines logged all along are not news, and the engine does not call the news the cause."""
    steady = ("GET /health 200",) * 12
    news = ("bot: Bytespider started crawling /products?page=1",) * 3
    result = RulesEngine().analyze(
        alert("ApiLatencyHigh", "histogram_quantile(0.99, rate(x[5m])) > 1", {"job": "api"}),
        [log_item("loki-1", *steady, *news, baseline=steady)],
    )
    assert "New in the logs just before the alert" in result.summary
    assert "Bytespider started crawling" in result.summary
    assert "GET /health" not in result.summary
    assert not any("Bytespider" in c.cause for c in result.probable_causes)
    # Context names no cause: with nothing else explaining the alert, it stays inconclusive.
    assert result.inconclusive


def test_context_prefers_a_tagged_line_no_finding_judged_and_puts_logins_last() -> None:
    """A load alert: a consumer group began rebalancing (a tagged line no finding quotes), a
    crawler started and an operator logged in. The context quotes the tagged line first, then
    the crawler; the login's session bookkeeping gives way to both."""
    steady = ("GET /health 200",) * 12
    recent = (
        "pam_unix(sshd:session): session opened for user ops(uid=1000) by (uid=0)",
        "bot: Bytespider started crawling /products?page=1",
        "consumer group rebalancing: members joined",
    )
    load = alert("HostHighLoad", "node_load5 > 4", {"instance": "web-04:9100"})
    result = RulesEngine().analyze(load, [log_item("loki-1", *steady, *recent, baseline=steady)])
    context = result.summary.split("New in the logs just before the alert", 1)[1]
    assert context.index("consumer group rebalancing") < context.index("Bytespider")
    assert "pam_unix" not in context


def test_context_leaves_out_variants_of_a_line_a_finding_quotes() -> None:
    from aiops_analyzer.engines.findings import Finding, news_before

    quoted = "DETAIL: Process holding the lock: 3987. Wait queue: 4121."
    variant = "DETAIL: Process holding the lock: 3987. Wait queue: 4121, 4122."
    other = "LOG: backup run 88 started for /srv/data"
    item = log_item("loki-1", quoted, variant, other, baseline=("GET /health 200",) * 12)
    finding = Finding(f"Lock contention ('{quoted}')", 0.75, ("loki-1",))
    said = news_before([item], skip=(finding,))
    assert said is not None and "backup run 88" in said and "4122" not in said


def test_a_nic_whose_errors_rose_behind_latency_is_named_and_steady_drops_are_not() -> None:
    host = {"instance": "pay-gw-02:9100", "device": "eno1"}
    latency = alert(
        "LedgerApiLatencyHigh",
        "histogram_quantile(0.99, rate(x[5m])) > 0.5",
        {"instance": "pay-gw-02:8443", "job": "ledger-api"},
    )
    own = metric("prom-1", "alert_expression", [0.4, 0.5, 2.0, 2.3], {"job": "ledger-api"})
    rising = metric("prom-8", "host_nic_errors", [0, 0, 0, 0, 6.5, 8.1], host)
    result = RulesEngine().analyze(latency, [own, rising])
    top = result.probable_causes[0]
    assert "eno1 receives or sends broken frames" in top.cause and "8.1" in top.cause
    assert top.evidence_ids == ["prom-8"] and result.category == "network"
    assert any("ethtool eno1" in step for step in result.remediation)
    steady = metric("prom-8", "host_nic_errors", [3.0] * 6, host)
    calm = RulesEngine().analyze(latency, [own, steady])
    assert not any("broken frames" in c.cause for c in calm.probable_causes)


def test_the_first_of_several_writers_to_meet_a_full_disk_is_named() -> None:
    api = {"instance": "media-2:8081", "job": "uploads-api"}
    a = alert("UploadsApiErrors", 'rate(http_requests_total{code=~"5.."}[5m]) > 1', api)
    errors = metric("prom-1", "alert_expression", [0.1, 2, 5], api)
    start = STARTS.timestamp()
    filler = "job 7: write /srv/scratch/job-7/frame-0419.raw: No space left on device"
    victim = "POST /v1/uploads failed: OSError: [Errno 28] No space left on device"
    mined = [LogLine(start - 1500 + i, "INFO uploads ok", False) for i in range(20)]
    staggered = [LogLine(start - 300, filler, True), LogLine(start - 200, victim, True)]
    logs = EvidenceItem(
        id="loki-1",
        source="loki",
        kind="log_templates",
        templates=rank(mined + staggered, 900.0, 900.0),
        text="templates",
    )
    result = RulesEngine().analyze(a, [errors, logs])
    first = next(c for c in result.probable_causes if "first write to fail" in c.cause)
    assert "job 7" in first.cause and "(look at /srv/scratch/job-7)" in first.cause
    assert result.category == "disk_space"
    # Both at the same second: no order to read, no writer named.
    together = [LogLine(start - 300, filler, True), LogLine(start - 300, victim, True)]
    logs = logs.model_copy(update={"templates": rank(mined + together, 900.0, 900.0)})
    result = RulesEngine().analyze(a, [errors, logs])
    assert not any("first write to fail" in c.cause for c in result.probable_causes)
    # The kubelet reporting the full disk first is no writer: the writer is still named.
    report = 'kubelet.go:1590] "Image garbage collection failed multiple times in a row"'
    reported = [LogLine(start - 400, report, True), *staggered]
    logs = logs.model_copy(update={"templates": rank(mined + reported, 900.0, 900.0)})
    result = RulesEngine().analyze(a, [errors, logs])
    first = next(c for c in result.probable_causes if "first write to fail" in c.cause)
    assert "job 7" in first.cause and "garbage collection" not in first.cause


def test_a_services_latency_on_a_machine_whose_link_is_full_is_the_network() -> None:
    api = {"instance": "web-3:8080", "job": "catalog"}
    a = alert("CatalogSlow", "histogram_quantile(0.95, rate(http_duration_bucket[5m])) > 0.5", api)
    kinds = {q.kind for q in plan_queries(a)}
    assert {"host_nic_transmit", "host_tcp_retransmit_share"} <= kinds
    slow = metric("prom-1", "alert_expression", [0.2, 0.2, 2.5, 3.4], api)
    nic = {"instance": "web-3:9100", "device": "eth0"}
    # 124 MB/s: a 1 Gbit/s link's line rate (node_exporter reports no speed here).
    sending = metric("prom-2", "host_nic_transmit", [2e5, 2e5, 1.24e8, 1.245e8], nic)
    lossy = metric("prom-3", "host_tcp_retransmit_share", [0.001, 0.001, 0.03, 0.04], nic)
    senders = EvidenceItem(
        id="prom-4",
        source="prometheus",
        kind="containers_network_transmit",
        series=[
            describe([(END - 60, 1.2e8), (END, 1.22e8)], 60.0, labels={"name": "assets-copy"}),
            describe([(END - 60, 1e5), (END, 1e5)], 60.0, labels={"name": "catalog"}),
        ],
        text="containers",
    )
    result = RulesEngine().analyze(a, [slow, sending, lossy, senders])
    assert result.category == "network"
    top = result.probable_causes[0]
    assert "link is saturated" in top.cause and "1 Gbit/s" in top.cause
    assert "retransmits 4.0%" in top.cause and "container assets-copy" in top.cause
    assert top.evidence_ids == ["prom-2", "prom-3", "prom-4"]
    assert any("iftop -i eth0" in step for step in result.remediation)
    # Busier than usual but far below any line rate, and no loss: nothing about the link.
    busy = metric("prom-2", "host_nic_transmit", [2e5, 2e5, 3e7, 3e7], nic)
    calm = metric("prom-3", "host_tcp_retransmit_share", [0.001] * 4, nic)
    result = RulesEngine().analyze(a, [slow, busy, calm])
    assert not any("link" in c.cause or "losing packets" in c.cause for c in result.probable_causes)
    # Loss alone: the machine is losing packets.
    result = RulesEngine().analyze(a, [slow, busy, lossy])
    assert any("losing packets" in c.cause for c in result.probable_causes)


def test_a_resolver_rewritten_by_configuration_management_is_named_as_such() -> None:
    api = {"instance": "bill-1:9400", "job": "invoicer"}
    a = alert("InvoicerSlow", "histogram_quantile(0.95, rate(x_bucket[5m])) > 2", api)
    slow = metric("prom-1", "alert_expression", [0.2, 0.2, 5.3, 5.3], api)
    puppet = log_item(
        "loki-1",
        "(/Stage[main]/Profile::Resolver/File[/etc/resolv.conf]/content) content changed "
        "'{sha256}9f2c' to '{sha256}41ab'",
        baseline=("Applied catalog in 4.92 seconds",) * 5,
    )
    result = RulesEngine().analyze(a, [slow, puppet])
    assert result.category == "dns"
    top = result.probable_causes[0]
    assert "rewrote the machine's resolver settings" in top.cause and "resolv.conf" in top.cause
    # A lookup that fails is told as a failing lookup.
    failing = log_item("loki-1", "dial tcp: lookup api.example.com: no such host")
    result = RulesEngine().analyze(a, [slow, failing])
    assert any(c.cause.startswith("Name resolution fails") for c in result.probable_causes)


def test_a_clock_alert_behind_a_firewall_dropping_the_machines_own_ntp_is_the_firewall() -> None:
    host = {"instance": "mq-2:9100", "job": "node-exporter"}
    expr = "abs(node_time_seconds - timestamp(node_time_seconds)) > 0.05"
    a = alert("TimeOff", expr, host)  # a meaningless name: the expression says clock
    assert classify(a).family.category == "clock_skew"
    off = metric("prom-1", "alert_expression", [0.01, 0.03, 0.05, 0.06], host)
    ntp_drop = (
        "kernel: [UFW BLOCK] IN= OUT=eth0 SRC=10.20.0.41 DST=10.20.0.2 LEN=76 PROTO=UDP "
        "SPT=53902 DPT=123 LEN=56"
    )
    # Dropped for hours (since the rule changed): steady, and still the cause.
    logs = log_item("loki-1", ntp_drop, ntp_drop, baseline=(ntp_drop,) * 20)
    result = RulesEngine().analyze(a, [off, logs])
    assert result.category == "clock_skew" and not result.inconclusive
    top = result.probable_causes[0]
    assert "drops its outgoing NTP traffic (port 123)" in top.cause
    assert top.evidence_ids == ["loki-1"]
    # A scanner's inbound probe of port 123 is someone else's traffic: no claim.
    scan = "kernel: [UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.23 DST=10.20.0.41 PROTO=UDP DPT=123"
    logs = log_item("loki-1", scan, baseline=(scan,) * 20)
    result = RulesEngine().analyze(a, [off, logs])
    assert not any("outgoing NTP" in c.cause for c in result.probable_causes)


def test_a_host_losing_memory_steadily_names_the_instrumented_process_that_grows() -> None:
    host = {"instance": "batch-2:9100", "job": "node-exporter"}
    expr = "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) > 90"
    a = alert("HighMemoryUsage", expr, host)
    kinds = {q.kind for q in plan_queries(a)}
    assert {"host_instrumented_memory", "host_instrumented_cpu"} <= kinds
    falling = [0.16 - 0.07 * i / 29 for i in range(30)]
    growing = [2.9e9 + 2e8 * i / 29 for i in range(30)]
    evidence = [
        metric("prom-1", "alert_expression", [(1 - x) * 100 for x in falling[-3:]], host),
        metric("prom-3", "host_memory_available", falling, host),
    ]
    processes = EvidenceItem(
        id="prom-4",
        source="prometheus",
        kind="host_instrumented_memory",
        series=[
            describe(
                [(END - (29 - i) * 60, v) for i, v in enumerate(growing)],
                60.0,
                labels={"job": "ledger-sync"},
            ),
            describe([(END - 60, 4e8), (END, 4e8)], 60.0, labels={"job": "reports-api"}),
        ],
        text="processes",
    )
    result = RulesEngine().analyze(a, [*evidence, processes])
    shrinking = next(c for c in result.probable_causes if "shrinks steadily" in c.cause)
    assert "job ledger-sync grows with it" in shrinking.cause
    assert shrinking.evidence_ids == ["prom-3", "prom-4"]
    # Every process flat: none is named.
    flat = processes.model_copy(
        update={"series": [describe([(END - 60, 4e8), (END, 4e8)], 60.0, labels={"job": "x"})]}
    )
    result = RulesEngine().analyze(a, [*evidence, flat])
    shrinking = next(c for c in result.probable_causes if "shrinks steadily" in c.cause)
    assert "grows with it" not in shrinking.cause


def test_an_unexplained_condition_that_has_held_only_minutes_is_called_a_short_spike() -> None:
    api = {"job": "search-api"}
    a = alert("SearchErrors", 'sum(rate(http_requests_total{code=~"5.."}[5m])) > 0.05', api)
    # The expression's series exists only while its condition holds: three minutes here.
    spike = metric("prom-1", "alert_expression", [0.07, 0.09, 0.08, 0.07], api)
    quiet = log_item(
        "loki-1", "INFO shard refresh completed", baseline=("INFO shard refresh completed",) * 20
    )
    result = RulesEngine().analyze(a, [spike, quiet])
    assert result.inconclusive
    top = result.probable_causes[0]
    assert "held only 3 min" in top.cause and "a short spike so far" in top.cause
    # True for the whole half hour: no spike to speak of.
    steady = metric("prom-1", "alert_expression", [0.07] * 31, api)
    result = RulesEngine().analyze(a, [steady, quiet])
    assert result.inconclusive and not any("short spike" in c.cause for c in result.probable_causes)


def test_a_missing_directory_under_run_after_a_reboot_is_a_tmpfs_emptied_at_boot() -> None:
    target = {"instance": "maps-1:9464", "job": "tilegen"}
    a = alert("TargetDown", "up == 0", target)
    down = metric("prom-1", "alert_expression", [0, 0, 0], target)
    failing = log_item(
        "loki-1",
        *[
            "FATAL: control socket: listen unix /run/tilegen/tilegen.sock: bind: no such file "
            "or directory"
        ]
        * 3,
        "kernel: ACPI BIOS Error (bug): Could not resolve symbol [\\_SB.PCI0._PRW], AE_NOT_FOUND",
    )
    result = RulesEngine().analyze(a, [down, failing])
    gone = next(c for c in result.probable_causes if "missing path under a tmpfs" in c.cause)
    assert "/run/tilegen lives in memory" in gone.cause
    assert any("RuntimeDirectory=tilegen" in step for step in result.remediation)
    # The kernel's ACPI symbol is no name lookup.
    assert not any("Name resolution" in c.cause for c in result.probable_causes)
    # A missing file elsewhere is no tmpfs matter.
    other = log_item("loki-1", "open /etc/tilegen/config.yaml: no such file or directory")
    result = RulesEngine().analyze(a, [down, other])
    assert not any("tmpfs" in c.cause for c in result.probable_causes)


def test_a_service_logging_at_debug_level_outgrows_the_disk() -> None:
    host = {"instance": "app-14:9100", "mountpoint": "/"}
    a = alert(
        "HostDiskSpaceLow", "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.15", host
    )
    free = metric("prom-1", "alert_expression", [0.16, 0.15, 0.14], host)
    debug = [
        f"2026-12-03 09:00:{i % 60:02d}.012 DEBUG [exec-{i}] c.e.Repo - rows={i}" for i in range(60)
    ]
    result = RulesEngine().analyze(a, [free, log_item("loki-1", *debug, "INFO started")])
    grows = next(c for c in result.probable_causes if c.cause.startswith("Logs outgrow the disk"))
    assert "are at DEBUG or TRACE level" in grows.cause
    assert any("log level back to INFO" in step for step in result.remediation)
    # A few debug lines among many others say nothing.
    mixed = debug[:5] + [f"INFO served request {i}" for i in range(60)]
    result = RulesEngine().analyze(a, [free, log_item("loki-1", *mixed)])
    assert not any("Logs outgrow" in c.cause for c in result.probable_causes)
