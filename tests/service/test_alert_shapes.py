"""Alerts shaped by rules this engine did not write: public rule sets, other label conventions.

Users bring rules from awesome-prometheus-alerts, the node-exporter mixin or kube-prometheus,
and label conventions from Kubernetes, Docker Compose, systemd and blackbox probes. The family
must come from what the expression measures, and the evidence must find this alert's subject.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from aiops_analyzer.engines.rules import RulesEngine, classify, target
from aiops_analyzer.evidence.expression import renamed_labels, value_expression
from aiops_analyzer.evidence.loki import stream_selectors
from aiops_analyzer.evidence.prometheus import node_instance, plan_queries
from aiops_analyzer.evidence.series import describe
from aiops_analyzer.evidence.target import host_name, instance_matcher, subject_labels
from aiops_analyzer.schemas import Alert, EvidenceItem

NODE = {"instance": "web-3:9100", "job": "node"}
PROBE = {"instance": "https://api.example.com/health", "job": "blackbox"}


def alert(
    name: str,
    expr: str = "",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> Alert:
    url = f"http://prometheus:9090/graph?g0.expr={quote(expr)}&g0.tab=1" if expr else ""
    return Alert(
        fingerprint="0123456789abcdef",
        status="firing",
        labels={"alertname": name, **(labels or {})},
        annotations=annotations or {},
        starts_at=datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
        generator_url=url,
    )


@pytest.mark.parametrize(
    ("name", "expr", "labels", "category"),
    [
        (
            "NginxHighHttp5xxErrorRate",
            'sum(rate(nginx_http_requests_total{status=~"^5.."}[1m]))'
            " / sum(rate(nginx_http_requests_total[1m])) * 100 > 5",
            {"instance": "edge:9113", "job": "nginx"},
            "error_rate",
        ),
        (
            "BlackboxProbeHttpFailure",
            "probe_http_status_code <= 199 OR probe_http_status_code >= 400",
            PROBE,
            "error_rate",
        ),
        (
            "InfoInhibitor",
            'ALERTS{severity = "info"} == 1 unless on(namespace) '
            'ALERTS{alertname != "InfoInhibitor", severity =~ "warning|critical"} == 1',
            {"namespace": "shop", "severity": "none"},
            "heartbeat",
        ),
        (
            "KubeNodeNotReady",
            'kube_node_status_condition{job="kube-state-metrics",condition="Ready",'
            'status="true"} == 0',
            {"node": "worker-2", "job": "kube-state-metrics"},
            "target_down",
        ),
        (
            "HostUnusualDiskIo",
            "rate(node_disk_io_time_seconds_total[1m]) > 0.8",
            {**NODE, "device": "sda"},
            "disk_io",
        ),
        (
            # The acronym must split ("IO Saturation"), and node_disk_* is I/O, not space.
            "NodeDiskIOSaturation",
            'rate(node_disk_io_time_weighted_seconds_total{job="node"}[5m]) > 10',
            {**NODE, "device": "nvme0n1"},
            "disk_io",
        ),
        (
            # A RAID member's state="failed" is no failed systemd job, nor a full disk.
            "HostRaidDiskFailure",
            'node_md_disks{state="failed"} > 0',
            {**NODE, "device": "md0"},
            "disk_failure",
        ),
        (
            "NodeSystemdServiceFailed",
            'node_systemd_unit_state{job="node", state="failed"} == 1',
            {**NODE, "name": "nginx.service", "state": "failed"},
            "failed_job",
        ),
        (
            "HostOutOfInodes",
            "node_filesystem_files_free / node_filesystem_files * 100 < 10",
            {**NODE, "mountpoint": "/var"},
            "disk_space",
        ),
        (
            "ContainerKilled",
            "time() - container_last_seen > 60",
            {"name": "shop_api_1", "instance": "cadvisor:8080", "job": "cadvisor"},
            "container_crash",
        ),
        (
            "CPUThrottlingHigh",
            'sum(increase(container_cpu_cfs_throttled_periods_total{container!=""}[5m])) '
            "by (container, pod, namespace) / sum(increase(container_cpu_cfs_periods_total[5m]))"
            " by (container, pod, namespace) > (25 / 100)",
            {"namespace": "shop", "pod": "api-7d9-abc", "container": "api"},
            "cpu_saturation",
        ),
        (
            # kube-prometheus' CoreDNS mixin: the expression measures DNS, whatever the name.
            "CoreDNSErrorsHigh",
            'sum(rate(coredns_dns_responses_total{rcode="SERVFAIL"}[5m])) '
            "/ sum(rate(coredns_dns_responses_total[5m])) > 0.03",
            {"instance": "dns-1:9153", "job": "coredns"},
            "dns",
        ),
        (
            "BlackboxSlowDnsLookup",
            "probe_dns_lookup_time_seconds > 1",
            {"instance": "https://api.example.com", "job": "blackbox"},
            "dns",
        ),
        (
            "NginxTlsHandshakeErrors",
            "rate(nginx_ssl_handshake_errors_total[5m]) > 1",
            {"instance": "edge-1:9113", "job": "nginx"},
            "tls",
        ),
        (
            # The certificate's own dates stay certificate_expiry, TLS words or not.
            "BlackboxSslCertificateWillExpireSoon",
            "probe_ssl_earliest_cert_expiry - time() < 86400 * 3",
            {"instance": "https://api.example.com", "job": "blackbox"},
            "certificate_expiry",
        ),
        (
            "SqsOldestMessageTooOld",
            "aws_sqs_approximate_age_of_oldest_message_maximum > 600",
            {"queue_name": "orders"},
            "queue_lag",
        ),
    ],
)
def test_public_rule_sets_are_classified_by_what_they_measure(
    name: str, expr: str, labels: dict[str, str], category: str
) -> None:
    assert classify(alert(name, expr, labels)).family.category == category


def test_an_alert_with_only_a_description_is_classified_by_it() -> None:
    said = {"description": "Swap on the batch host is more than 80% used"}
    assert classify(alert("Rule17", "", {}, said)).family.category == "memory_pressure"
    said = {"message": "Pod shop/api-7d9 keeps restarting (5 times in 10 minutes)"}
    assert classify(alert("Rule17", "", {}, said)).family.category == "container_crash"
    # Without any annotation nor expression, nothing names a family.
    assert classify(alert("Rule17")).family.category == "unknown"


@pytest.mark.parametrize(
    ("expr", "labels", "expected"),
    [
        (
            'label_replace(up == 0, "host", "$1", "instance", "(.*):.*")',
            {"host": "web-3"},
            {"instance": ("=~", "web\\-3:.*")},
        ),
        (
            'label_replace(container_memory_working_set_bytes{name=~".+"} > 1e9, '
            '"container", "$1", "name", "(.*)")',
            {"container": "shop_api_1"},
            {"name": ("=", "shop_api_1")},
        ),
        (
            'label_replace(pg_up == 0, "svc", "db-${1}", "job", "^(.+)-exporter$")',
            {"svc": "db-orders"},
            {"job": ("=", "orders-exporter")},
        ),
        # The alert still carries the source label, or the replacement is not "$1" based.
        (
            'label_replace(up, "host", "$1", "instance", "(.*):.*")',
            {"host": "a", "instance": "a:1"},
            {},
        ),
        ('label_replace(up, "env", "prod", "job", ".*")', {"env": "prod"}, {}),
    ],
)
def test_labels_renamed_by_label_replace_are_worked_back(
    expr: str, labels: dict[str, str], expected: dict[str, tuple[str, str]]
) -> None:
    assert renamed_labels(expr, labels) == expected


@pytest.mark.parametrize(
    ("instance", "host"),
    [
        ("web-3:9100", "web-3"),
        ("10.0.0.5:9100", "10.0.0.5"),
        ("web-3.prod.example.com:9100", "web-3.prod.example.com"),
        ("[::1]:9100", "::1"),
        ("https://api.example.com/health", "api.example.com"),
        ("http://10.0.0.7:8080/ready", "10.0.0.7"),
    ],
)
def test_host_name_of_every_instance_form(instance: str, host: str) -> None:
    assert host_name(instance) == host


def test_a_probe_alert_is_about_the_probed_address_not_the_prober() -> None:
    probe = alert("SiteDown", "probe_success == 0", PROBE)
    assert subject_labels(probe) == {"alertname": "SiteDown", **{"instance": PROBE["instance"]}}
    selectors = stream_selectors(probe)
    # The probed service's streams first; the prober's own lines (why a probe failed); the
    # probed machine's kernel lines (a link that flaps, a firewall that drops), by its
    # qualified or short name; then its failure lines of any unit.
    assert selectors[:5] == [
        '{service="api.example.com"}',
        '{service="api"}',
        '{job="blackbox"}',
        '{host="api.example.com",unit="kernel"}',
        '{host="api",unit="kernel"}',
    ]
    assert [s.split(" |~ ")[0] for s in selectors[5:]] == [
        '{host="api.example.com"}',
        '{host="api"}',
    ]
    # Its node_exporter, by either name, for the NICs that flap under it.
    nics = {q.kind: q.promql for q in plan_queries(probe)}["host_nic_carrier_changes"]
    assert 'instance=~"(?:api\\\\.example\\\\.com|api)(?::[0-9]+)?"' in nics
    # An address is no name: not shortened.
    by_ip = alert("SiteDown", "probe_success == 0", {"instance": "https://10.0.3.21/health"})
    boot = {q.kind: q.promql for q in plan_queries(by_ip)}["host_boot_time"]
    assert 'instance=~"10\\\\.0\\\\.3\\\\.21(?::[0-9]+)?"' in boot
    # The blackbox exporter's own scrape target down is about the exporter.
    exporter = alert("TargetDown", "up == 0", {"instance": "probe-1:9115", "job": "blackbox"})
    assert subject_labels(exporter)["job"] == "blackbox"


def test_host_queries_find_the_machine_without_an_instance_label() -> None:
    expr = "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.1"
    by_host = alert("MemLow", expr, {"nodename": "web-3"})
    assert instance_matcher(by_host) == 'instance=~"web\\\\-3(?::[0-9]+)?"'
    queries = {q.kind: q.promql for q in plan_queries(by_host)}
    assert 'instance=~"web\\\\-3(?::[0-9]+)?"' in queries["host_memory_available"]
    renamed = alert(
        "MemLow",
        f'label_replace({expr}, "server", "$1", "instance", "([^:]+):9100")',
        {"server": "db-1"},
    )
    assert instance_matcher(renamed) == 'instance="db-1:9100"'
    assert '{host="web-3"}' in stream_selectors(by_host)


def test_container_queries_follow_docker_kubernetes_and_renamed_labels() -> None:
    cpu = "rate(container_cpu_usage_seconds_total[5m]) > 0.9"
    by_id = alert("Hot", cpu, {"id": "/system.slice/docker-" + "ab12" * 16 + ".scope"})
    assert 'id="/system.slice/docker-' in plan_queries(by_id)[1].promql
    pod = alert("Hot", cpu, {"namespace": "shop", "pod": "api-7d9-abc", "container": "api"})
    first_container_query = next(q for q in plan_queries(pod) if q.kind.startswith("container_"))
    assert 'container="api",namespace="shop",pod="api-7d9-abc"' in first_container_query.promql
    renamed = alert(
        "MemHigh",
        'label_replace(container_memory_working_set_bytes{name=~".+"} > 1e9, '
        '"container", "$1", "name", "(.*)")',
        {"container": "shop_api_1"},
    )
    assert 'name="shop_api_1"' in plan_queries(renamed)[1].promql


def test_a_kubernetes_services_alert_reads_its_pods_containers() -> None:
    """Latency by `namespace` and `service`, no pod: its pods' CPU and throttling are read."""
    latency = (
        "histogram_quantile(0.99, sum by (le, namespace, service) "
        "(rate(http_request_duration_seconds_bucket[5m]))) > 0.5"
    )
    slow = alert("PricingSlow", latency, {"namespace": "shop", "service": "pricing"})
    cpu = next(q for q in plan_queries(slow) if q.kind == "container_cpu")
    pods = re.search(r'pod=~"((?:[^"\\]|\\.)*)"', cpu.promql)
    assert pods and 'namespace="shop"' in cpu.promql and 'container!="POD"' in cpu.promql
    pattern = re.compile(pods.group(1).replace("\\\\", "\\"))
    # A Deployment's and a StatefulSet's pods, not another service sharing the prefix.
    assert pattern.fullmatch("pricing-7f9c6d5b8-x2k4q")
    assert pattern.fullmatch("pricing-0")
    assert not pattern.fullmatch("pricing-worker-7f9c6d5b8-x2k4q")
    assert any(q.kind == "container_cpu_throttled" for q in plan_queries(slow))
    # A machine's alert, or one already naming its pod, keeps its own reads.
    scraped = alert(
        "PricingSlow",
        latency,
        {"namespace": "shop", "service": "pricing", "instance": "10.1.2.3:8080"},
    )
    assert not any("pod=~" in q.promql for q in plan_queries(scraped))


def test_a_kubernetes_nodes_condition_reads_the_nodes_journal() -> None:
    """NotReady or DiskPressure: the kubelet and the container runtime log on the node."""
    expr = 'kube_node_status_condition{condition="Ready",status="true"} == 0'
    labels = {"node": "wk-6", "instance": "10.244.0.9:8080", "job": "kube-state-metrics"}
    assert '{host="wk-6"}' in stream_selectors(alert("KubeNodeNotReady", expr, labels))
    # A pod's alert that names its node is about the pod: the node's journal is not its log.
    pod = alert("Crash", "kube_pod_container_status_restarts_total > 3", {**labels, "pod": "p"})
    assert '{host="wk-6"}' not in stream_selectors(pod)


def test_a_failed_systemd_unit_reads_the_units_journal_not_a_container() -> None:
    failed = alert(
        "NodeSystemdServiceFailed",
        'node_systemd_unit_state{state="failed"} == 1',
        {**NODE, "name": "backup.service", "state": "failed"},
    )
    selectors = stream_selectors(failed)
    assert selectors[0] == '{unit="backup.service"}'
    assert '{container="backup.service"}' not in selectors
    assert '{host="web-3"}' in selectors


def test_a_pod_alert_reads_the_pods_streams() -> None:
    waiting = alert(
        "KubeContainerWaiting",
        "kube_pod_container_status_waiting_reason > 0",
        {
            "job": "kube-state-metrics",
            "namespace": "shop",
            "pod": "api-7d9-abc",
            "container": "api",
        },
    )
    # This pod's streams first; the container's name only where streams carry no pod label,
    # never an older replica's lines (its SIGTERM at a rollout is not this pod's story).
    assert stream_selectors(waiting) == [
        '{namespace="shop",pod="api-7d9-abc"}',
        '{container="api",pod=""}',
    ]


def test_a_host_named_only_by_nodename_is_found_through_node_uname_info() -> None:
    expr = (
        "sum by (nodename) (rate(node_vmstat_pgmajfault[5m]) * on (instance) "
        "group_left (nodename) node_uname_info) > 500"
    )
    faults = alert("NodeMemoryMajorPagesFaults", expr, {"nodename": "etl-2"})
    assert classify(faults).family.category == "memory_pressure"
    assert target(faults) == "nodename etl-2"
    asked: list[str] = []

    def prometheus(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.params["query"])
        # node_exporter is scraped by IP address: the node name is not the instance's host.
        result = [{"metric": {"instance": "10.0.7.14:9100"}, "value": [0, "1"]}]
        return httpx.Response(200, json={"status": "success", "data": {"result": result}})

    async def lookup(alert: Alert) -> str | None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(prometheus)) as http:
            return await node_instance(alert, "http://prom", 1.0, http)

    assert asyncio.run(lookup(faults)) == 'instance="10.0.7.14:9100"'
    assert asked == ['group by (instance) (node_uname_info{nodename=~"etl\\\\-2(?:\\\\..*)?"})']
    planned = {q.kind: q.promql for q in plan_queries(faults, 'instance="10.0.7.14:9100"')}
    assert 'node_vmstat_pswpin{instance="10.0.7.14:9100"}' in planned["host_swap_in"]
    # An alert that has its instance asks nothing more.
    asked.clear()
    assert asyncio.run(lookup(alert("X", expr, {**NODE, "nodename": "web-3"}))) is None
    assert asked == []


def test_an_fqdn_instance_reads_the_journal_by_its_short_host_name_too() -> None:
    fqdn = alert(
        "HostOutOfInodes",
        "node_filesystem_files_free / node_filesystem_files < 0.1",
        {"instance": "media-4.prod.example.net:9100", "job": "node"},
    )
    selectors = stream_selectors(fqdn)
    assert '{host="media-4.prod.example.net"}' in selectors and '{host="media-4"}' in selectors
    by_ip = alert(
        "HostOutOfInodes", "node_filesystem_files_free < 10", {"instance": "10.0.0.5:9100"}
    )
    assert [s for s in stream_selectors(by_ip) if s.startswith("{host=")] == ['{host="10.0.0.5"}']


def _series_item(
    item_id: str, kind: str, labels: dict[str, str], values: list[float]
) -> EvidenceItem:
    end = 1_780_000_000.0
    points = [(end - (len(values) - 1 - i) * 60.0, v) for i, v in enumerate(values)]
    return EvidenceItem(
        id=item_id,
        source="prometheus",
        kind=kind,
        series=[describe(points, 60.0, labels=labels, alert_labels=labels)],
        text=kind,
        window_start=end - 1800,
        window_end=end,
    )


def test_a_disk_io_alert_reads_iowait_and_busy_time_as_a_saturated_disk() -> None:
    labels = {"instance": "media-4:9100", "job": "node", "device": "nvme0n1"}
    disk = alert(
        "NodeDiskIOSaturation", "rate(node_disk_io_time_weighted_seconds_total[5m]) > 10", labels
    )
    evidence = [
        _series_item("prom-1", "alert_expression", labels, [12.0, 15.0, 19.0]),
        _series_item(
            "prom-2",
            "host_cpu_modes",
            {"instance": "media-4:9100", "mode": "iowait"},
            [0.01, 0.3, 0.29],
        ),
        _series_item(
            "prom-3",
            "host_disk_busy",
            {"device": "nvme0n1", "instance": "media-4:9100"},
            [0.1, 0.97, 0.98],
        ),
    ]
    result = RulesEngine().analyze(disk, evidence)
    assert result.category == "disk_io"
    said = " ".join(c.cause for c in result.probable_causes)
    assert "The disk is saturated" in said and "nvme0n1 was busy 98%" in said
    assert "not the CPU" not in said  # that wording is for CPU and load alerts


def test_a_job_pushed_to_a_pushgateway_is_about_the_job_not_the_gateway() -> None:
    stale = alert(
        "BackupNotPushed",
        "time() - push_time_seconds > 26 * 3600",
        {"job": "pushgateway", "instance": "pushgateway:9091", "exported_job": "pg-backup"},
    )
    labels = subject_labels(stale)
    assert labels["job"] == "pg-backup" and "instance" not in labels
    assert classify(stale).family.category == "failed_job"
    assert stream_selectors(stale)[0] == '{job="pg-backup"}'
    # Any exporter whose series had their own job renamed only reported them.
    federated = alert(
        "X",
        "up == 0",
        {
            "job": "federate",
            "exported_job": "node",
            "instance": "a:9090",
            "exported_instance": "web-3:9100",
        },
    )
    assert subject_labels(federated)["instance"] == "web-3:9100"


def test_an_alert_known_by_its_app_label_reads_the_apps_streams() -> None:
    errors = alert(
        "CheckoutErrors",
        'sum by (app) (rate(http_requests_total{app="checkout",code=~"5.."}[5m])) > 1',
        {"app": "checkout"},
    )
    assert stream_selectors(errors)[:2] == ['{app="checkout"}', '{service="checkout"}']
    assert target(errors) == "app checkout"


def test_info_inhibitor_is_harmless() -> None:
    expr = (
        'ALERTS{severity = "info"} == 1 unless on (namespace) '
        'ALERTS{alertname != "InfoInhibitor", severity =~ "warning|critical"} == 1'
    )
    result = RulesEngine().analyze(
        alert("InfoInhibitor", expr, {"namespace": "shop", "severity": "none"}), []
    )
    assert result.category == "heartbeat" and result.severity == "none"
    assert "Nothing is broken" in result.probable_causes[0].cause


def test_a_mesh_latency_alert_is_about_the_service_called() -> None:
    """Istio's request metrics name a caller and a destination; the alert's `namespace` is
    the caller's. The slow one is the destination, in its own namespace, whose CPU quota is
    asked about (a throttled container answers slowly)."""
    slow = alert(
        "IstioLatency99Percentile",
        "histogram_quantile(0.99, sum by (destination_canonical_service, le) "
        '(rate(istio_request_duration_milliseconds_bucket{namespace="payments"}[1m]))) > 1000',
        {
            "destination_canonical_service": "fraud-score",
            "destination_workload_namespace": "risk",
            "source_canonical_service": "payments-worker",
            "namespace": "payments",
        },
    )
    subject = subject_labels(slow)
    assert subject["container"] == "fraud-score" and subject["namespace"] == "risk"
    assert stream_selectors(slow)[0] == '{container="fraud-score"}'
    queries = {q.kind: q.promql for q in plan_queries(slow)}
    assert (
        'container_cpu_cfs_throttled_periods_total{container="fraud-score"}'
        in (queries["container_cpu_throttled"])
    )
    throttled = EvidenceItem(
        id="prom-2",
        source="prometheus",
        kind="container_cpu_throttled",
        series=[
            describe(
                [(slow.starts_at.timestamp() - 60 * (5 - i), 0.87) for i in range(6)],
                60.0,
                labels={"container": "fraud-score"},
                alert_labels=subject,
            )
        ],
    )
    result = RulesEngine().analyze(slow, [throttled])
    assert result.category == "cpu_saturation"
    top = result.probable_causes[0]
    assert top.cause.startswith("The container fraud-score's CPU limit throttles it: 87%")


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("a / b > 0.9", "a / b"),
        (
            'sum by (x) (rate(y{code=~"5.."}[5m])) >= bool 0.25',
            'sum by (x) (rate(y{code=~"5.."}[5m]))',
        ),
        (
            '100 * (1 - avail{fstype!="tmpfs"} / size) < 10',
            '100 * (1 - avail{fstype!="tmpfs"} / size)',
        ),
        ("up == 0", "up"),
        ("a > 1 and b > 2", None),  # what is left still filters
        ("a unless b > 3", None),
        ("absent(up)", None),  # no threshold to take away
    ],
)
def test_the_alert_value_is_the_expression_without_its_final_comparison(
    expr: str, value: str | None
) -> None:
    assert value_expression(expr) == value


def test_only_a_resolved_alert_asks_for_its_value_without_the_threshold() -> None:
    firing = Alert(
        fingerprint="f",
        status="firing",
        labels={"alertname": "Slow", "instance": "a:9100"},
        starts_at=datetime(2026, 12, 1, tzinfo=UTC),
        generator_url="http://p/graph?g0.expr=" + quote("nfs_seconds > 0.25"),
    )
    assert "alert_value" not in {q.kind for q in plan_queries(firing)}
    resolved = firing.model_copy(update={"status": "resolved"})
    plan = plan_queries(resolved)
    assert [(q.kind, q.promql) for q in plan[:2]] == [
        ("alert_expression", "nfs_seconds > 0.25"),
        ("alert_value", "nfs_seconds"),
    ]
