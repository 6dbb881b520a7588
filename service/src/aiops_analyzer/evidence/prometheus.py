"""Prometheus evidence: the alert's own expression over time, plus family-specific context.

Each query is a range query (``/api/v1/query_range``) over the alert window. Every series
becomes typed statistics (``series.py``: current, baseline, peak, trend, level shift, limit
and saturation, downsampled points), the alert's own series (labels matching the alert)
first, and a text rendering for the prompt. Queries run concurrently, each with its own
timeout.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from aiops_analyzer.core.config import Settings
from aiops_analyzer.evidence.common import Window, alert_window, describe_error, unavailable
from aiops_analyzer.evidence.expression import (
    alert_expression,
    is_logql,
    metric_names,
    renamed_labels,
    threshold,
    value_expression,
)
from aiops_analyzer.evidence.series import describe, label_text, render
from aiops_analyzer.evidence.target import (
    certificate_domain,
    host_label,
    host_name,
    instance_matcher,
    quote,
    short_or_qualified,
    subject_labels,
    with_any_port,
)
from aiops_analyzer.schemas import Alert, EvidenceItem, SeriesStats, Threshold

MAX_SERIES = 5
TARGET_POINTS = 60  # about one point a minute over the default 30-minute window
MAX_FAMILY_QUERIES = 20


@dataclass(frozen=True)
class NamedQuery:
    title: str
    promql: str
    kind: str = ""
    # A query for the ceiling of this one (a memory limit): its last value becomes each
    # series' ``limit`` and ``saturation``.
    limit_promql: str = ""
    # Minutes before the window this query also reads: a rate whose change began before the
    # window (a backlog alert fires long after its consumers slowed) needs its earlier level.
    reach_back_minutes: int = 0


def plan_queries(alert: Alert, instance: str | None = None) -> list[NamedQuery]:
    """The alert's own expression first, then queries chosen by what the alert is about.

    A LogQL expression (a Loki ruler alert) is not Prometheus' to run: the Loki source runs it.
    ``instance``: the host's node_exporter matcher when it was looked up (``node_instance``).
    """
    plan: list[NamedQuery] = []
    expr = alert_expression(alert)
    if is_logql(expr):
        expr = ""
    if expr:
        plan.append(NamedQuery("alert expression", expr, "alert_expression"))
    value = value_expression(expr) if expr and alert.status == "resolved" else None
    if value:
        # Whether a resolved alert's value went back to its level before the alert, or only
        # under the threshold (or stopped being reported): the expression filters those out.
        plan.append(NamedQuery("alert value, without the threshold", value, "alert_value"))
    labels = subject_labels(alert)
    family: list[NamedQuery] = []
    family += _pod_termination_queries(labels)
    # A datastore exporter's own view first: generic container and host queries fill the
    # rest of the budget.
    family += _mysql_lock_queries(labels, expr)
    family += _queue_consumer_queries(labels, expr)
    family += _replication_slot_queries(alert, expr)
    family += _raid_queries(alert, expr)
    family += _runtime_queries(labels, expr)
    family += _machine_queries(labels, expr)
    family += _container_queries(labels, expr)
    family += _host_queries(instance or instance_matcher(alert), expr)
    family += _fleet_inode_queries(alert, expr)
    family += _fleet_reboot_queries(alert, expr)
    family += _nginx_queries(labels, expr)
    family += _probe_queries(labels, expr)
    family += _certificate_file_queries(alert)
    # Last, in what budget is left: whether the machine under a service is short of memory
    # or bandwidth.
    family += _machine_resource_queries(labels, expr)
    plan += family[:MAX_FAMILY_QUERIES]
    return plan


_quote = quote


def _metrics(expr: str) -> list[str]:
    return metric_names(expr) if expr else []


# cAdvisor's cgroup path of a Docker container: /docker/<id> (cgroupfs) or
# /system.slice/docker-<id>.scope (systemd driver). It names one container as well as `name`.
_DOCKER_CGROUP = re.compile(r"^/(?:docker/|system\.slice/docker-)[0-9a-f]{12,64}(?:\.scope)?$")


def _container_selector(labels: dict[str, str], metrics: list[str]) -> str | None:
    pod = [f"{k}={_quote(labels[k])}" for k in ("namespace", "pod") if labels.get("pod")]
    for key in ("name", "container", "container_label_com_docker_compose_service"):
        if labels.get(key):
            if key == "container" and _docker_container_name(labels, metrics):
                return f"name={_quote(labels[key])}"
            return ",".join([f"{key}={_quote(labels[key])}", *pod])
    for key in sorted(labels):
        if key.startswith("container_label_") and labels[key]:
            return f"{key}={_quote(labels[key])}"
    if _DOCKER_CGROUP.match(labels.get("id", "")):
        return f"id={_quote(labels['id'])}"
    return ",".join(pod) or None


# Labels that name a Kubernetes workload whose pods are called after it.
_WORKLOAD_LABELS = ("deployment", "statefulset", "daemonset", "app", "service")


def _workload_pods_selector(labels: dict[str, str]) -> str | None:
    """A service's alert in Kubernetes (`namespace` and `service`, no pod): its pods'
    containers, by the names a Deployment, StatefulSet or DaemonSet gives them, so that their
    CPU (and its throttling), memory and restarts are read. The pod-level cgroup and the pause
    container are left out."""
    if not labels.get("namespace") or labels.get("pod") or labels.get("instance"):
        return None
    name = next((labels[k] for k in _WORKLOAD_LABELS if labels.get(k)), "")
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
        return None
    pods = _quote(f"{name}-([a-z0-9]{{6,10}}-)?[a-z0-9]{{5}}|{name}-[0-9]+")
    return f'namespace={_quote(labels["namespace"])},pod=~{pods},container!="",container!="POD"'


def _docker_container_name(labels: dict[str, str], metrics: list[str]) -> bool:
    """Whether a `container` label names a Docker container, which cAdvisor calls `name`.

    On a cAdvisor series (or next to a Kubernetes `pod` or `namespace`) `container` is
    cAdvisor's own label;
    elsewhere (a Loki ruler alert on Alloy's streams, an application's metrics) it is the
    Docker container's name, and `container="x"` would select no cAdvisor series on Docker.
    """
    from_cadvisor = any(m.startswith("container_") for m in metrics)
    return not from_cadvisor and "pod" not in labels and "namespace" not in labels


def _pod_termination_queries(labels: dict[str, str]) -> list[NamedQuery]:
    """Why a pod's container last ended, as kube-state-metrics reports it (OOMKilled, Error,
    ContainerCannotRun...): the kubelet's own word for a crash loop's restarts."""
    if not labels.get("pod"):
        return []
    keys = [k for k in ("namespace", "pod", "container") if labels.get(k)]
    matchers = ",".join(f"{k}={quote(labels[k])}" for k in keys)
    return [
        NamedQuery(
            "pod container last terminated reason",
            f"max by (container, reason) "
            f"(kube_pod_container_status_last_terminated_reason{{{matchers}}} > 0)",
            "pod_last_terminated",
        ),
        NamedQuery(
            "pod container last exit code",
            f"max by (container) "
            f"(kube_pod_container_status_last_terminated_exitcode{{{matchers}}})",
            "pod_exit_code",
        ),
        NamedQuery(
            "pod container waiting reason",
            f"max by (container, reason) "
            f"(kube_pod_container_status_waiting_reason{{{matchers}}} > 0)",
            "pod_waiting",
        ),
        NamedQuery(
            "pod container image",
            f"max by (container, image) (kube_pod_container_info{{{matchers}}})",
            "pod_image",
        ),
    ]


def _container_queries(labels: dict[str, str], expr: str) -> list[NamedQuery]:
    metrics = _metrics(expr)
    # node_systemd_unit_state{name="x.service"}: a `name` label on a host metric is no container.
    on_host = bool(metrics) and all(m.startswith("node_") for m in metrics)
    about_container = any(m.startswith("container_") for m in metrics) or (
        not on_host and any(k in labels for k in ("name", "container", "pod"))
    )
    selector = _container_selector(labels, metrics) if about_container else None
    if not selector and not on_host:
        selector = _workload_pods_selector(labels)
    if not selector:
        return []
    s = "{" + selector + "}"
    limit = f"max by (name) (container_spec_memory_limit_bytes{s} > 0)"
    return [
        NamedQuery(
            "container CPU cores used",
            f"sum by (name) (rate(container_cpu_usage_seconds_total{s}[5m]))",
            "container_cpu",
        ),
        NamedQuery(
            "container memory working set / limit",
            f"max by (name) (container_memory_working_set_bytes{s})"
            f" / max by (name) (container_spec_memory_limit_bytes{s} > 0)",
            "container_memory_ratio",
        ),
        NamedQuery(
            "container memory working set bytes",
            f"max by (name) (container_memory_working_set_bytes{s})",
            "container_memory_working_set",
            limit,
        ),
        NamedQuery(
            "container restarts in 15m",
            f"max by (name) (changes(container_start_time_seconds{s}[15m]))",
            "container_restarts",
        ),
        NamedQuery(
            "seconds since container last seen",
            f"max by (name) (time() - container_last_seen{s})",
            "container_last_seen",
        ),
        NamedQuery(
            "container OOM events",
            f"max by (name) (container_oom_events_total{s})",
            "container_oom_events",
        ),
        NamedQuery(
            "container page cache bytes",
            f"max by (name) (container_memory_cache{s})",
            "container_memory_cache",
            limit,
        ),
        NamedQuery(
            "container RSS bytes",
            f"max by (name) (container_memory_rss{s})",
            "container_memory_rss",
            limit,
        ),
        # One series per image the container ran in the window: a redeploy with no log line
        # still shows as a new image.
        NamedQuery(
            "container start time by image",
            f"max by (name, image) (container_start_time_seconds{s})",
            "container_image",
        ),
    ] + (_throttling_queries(s) if any(_CPU_OR_LATENCY.search(m) for m in metrics) else [])


# Counters of seconds spent in collector pauses, as each runtime's client exports them:
# Micrometer and OpenTelemetry (JVM), simpleclient's hotspot exports, Elasticsearch's exporter,
# Go's client_golang, prom-client (Node.js).
GC_PAUSE_SECONDS = (
    "jvm_gc_pause_seconds_sum",
    "jvm_gc_duration_seconds_sum",
    "jvm_gc_collection_seconds_sum",
    "elasticsearch_jvm_gc_collection_seconds_sum",
    "go_gc_duration_seconds_sum",
    "nodejs_gc_duration_seconds_sum",
)
# Exporters about machines, containers, probes and clusters: their alerts are not about an
# application runtime with a heap.
_INFRASTRUCTURE_METRICS = ("node_", "container_", "kube_", "probe_", "nginx_", "machine_")
_RUNTIME_SUBJECT_KEYS = ("instance", "job", "application", "app", "service")


def _runtime_queries(labels: dict[str, str], expr: str) -> list[NamedQuery]:
    """For an application's alert (latency, errors, CPU, memory of a process): how much of
    its time the runtime spends paused in garbage collection, and how full its heap is.

    A collector running back to back stalls every request, so a latency or CPU alert on a JVM,
    Go or Node.js service is often a heap that is too small for what it holds."""
    metrics = _metrics(expr)
    if not metrics or all(m.startswith(_INFRASTRUCTURE_METRICS) for m in metrics):
        return []
    key = next((k for k in _RUNTIME_SUBJECT_KEYS if labels.get(k)), None)
    if key is None:
        return []
    sel = f"{key}={_quote(labels[key])}"
    share = " or ".join(f"sum by (instance) (rate({m}{{{sel}}}[5m]))" for m in GC_PAUSE_SECONDS)
    heap = " or ".join(
        f'sum by (instance) ({used}{{{sel},area="heap"}})'
        f' / sum by (instance) ({limit}{{{sel},area="heap"}} > 0)'
        for used, limit in (
            ("jvm_memory_used_bytes", "jvm_memory_max_bytes"),
            ("jvm_memory_bytes_used", "jvm_memory_bytes_max"),
        )
    )
    return [
        NamedQuery("share of time paused in garbage collection", share, "runtime_gc_share"),
        NamedQuery("heap used / maximum heap", heap, "runtime_heap_ratio"),
        # A Go service's goroutines: a count that only climbs is a leak (each one holds its
        # stack and whatever it waits on), which shows as latency and memory growth.
        NamedQuery(
            "goroutines", f"sum by (instance) (go_goroutines{{{sel}}})", "runtime_goroutines"
        ),
    ]


def _machine_queries(labels: dict[str, str], expr: str) -> list[NamedQuery]:
    """For a service's alert (not node_exporter's own): the boot time and the clock offset of
    the machine it runs on, from a node_exporter scraped under the same host name (any port).
    A target down or failing right after its machine rebooted is the reboot's doing (a unit
    not enabled at boot, a mount or a dependency that did not come back)."""
    if any(m.startswith("node_") for m in _metrics(expr)):
        return []
    instance = labels.get("instance", "")
    host = host_name(instance) if instance else ""
    nics: list[NamedQuery] = []
    if host:
        machine = _quote(with_any_port(host))

        def of_machine(metric: str) -> str:
            return f"max by (instance) ({metric}{{instance=~{machine}}})"

        # A NIC that flaps breaks the connections to whatever runs on the machine, now and
        # then: a probe or a scrape that fails intermittently.
        nics.append(
            NamedQuery(
                "NIC carrier changes in 15m on the machine under the target",
                "max by (instance, device) (increase(node_network_carrier_changes_total"
                f"{{instance=~{machine},{_VIRTUAL_NICS}}}[15m]))",
                "host_nic_carrier_changes",
            )
        )
        nics.append(
            NamedQuery(
                "NIC receive/transmit errors and drops per second on the machine under the target",
                f"max by (instance, device) ({_nic_errors(f'instance=~{machine}')})",
                "host_nic_errors",
            )
        )

    elif node := host_label(labels):
        # A Kubernetes node or a machine named without a scrape address (KubeNodeNotReady's
        # `node`): node_exporter's series whose node name is that name, short or qualified.
        nodename = _quote(short_or_qualified(node))

        def of_machine(metric: str) -> str:
            return (
                f"max by (instance) ({metric} and on (instance) "
                f"node_uname_info{{nodename=~{nodename}}})"
            )

    else:
        return []
    return [
        NamedQuery(
            "boot time of the machine under the target",
            of_machine("node_boot_time_seconds"),
            "host_boot_time",
        ),
        # Tokens, TLS and signed requests fail on a machine whose clock is off.
        NamedQuery(
            "clock offset of the machine under the target",
            of_machine("node_timex_offset_seconds"),
            "machine_clock_offset",
        ),
        *nics,
    ]


def _machine_resource_queries(labels: dict[str, str], expr: str) -> list[NamedQuery]:
    """For a service's alert: the memory and the network of the machine it runs on
    (node_exporter, process-exporter and cAdvisor scraped under the same host name), read
    whatever the alert measures.

    A host that swaps stalls every process on it, and a full uplink drops every connection's
    packets, so a web service's latency or errors can be a batch job's memory or bandwidth on
    the same machine; the service's own metrics never show it."""
    if any(m.startswith("node_") for m in _metrics(expr)):
        return []
    instance = labels.get("instance", "")
    host = host_name(instance) if instance else ""
    if not host:
        return []
    machine = f"instance=~{_quote(with_any_port(host))}"
    return [
        NamedQuery(
            "memory available ratio of the machine under the target",
            f"max by (instance) (node_memory_MemAvailable_bytes{{{machine}}}"
            f" / node_memory_MemTotal_bytes{{{machine}}})",
            "host_memory_available",
        ),
        NamedQuery(
            "pages swapped in per second on the machine under the target",
            f"max by (instance) (rate(node_vmstat_pswpin{{{machine}}}[5m]))",
            "host_swap_in",
        ),
        NamedQuery(
            "memory pressure (share of time stalled) on the machine under the target",
            "max by (instance) "
            f"(rate(node_pressure_memory_waiting_seconds_total{{{machine}}}[5m]))",
            "host_memory_pressure",
        ),
        NamedQuery(
            "process groups' resident memory on the machine under the target (top 5)",
            "topk(5, max by (groupname) "
            f'(namedprocess_namegroup_memory_bytes{{{machine},memtype="resident"}}))',
            "host_process_memory",
        ),
        NamedQuery(
            "bytes sent per second per NIC of the machine under the target",
            "max by (instance, device) (rate(node_network_transmit_bytes_total"
            f"{{{machine},{_VIRTUAL_NICS}}}[5m]))",
            "host_nic_transmit",
            f"max(node_network_speed_bytes{{{machine},{_VIRTUAL_NICS}}} > 0)",
        ),
        NamedQuery(
            "bytes received per second per NIC of the machine under the target",
            "max by (instance, device) (rate(node_network_receive_bytes_total"
            f"{{{machine},{_VIRTUAL_NICS}}}[5m]))",
            "host_nic_receive",
            f"max(node_network_speed_bytes{{{machine},{_VIRTUAL_NICS}}} > 0)",
        ),
        NamedQuery(
            "share of TCP segments retransmitted on the machine under the target",
            f"max by (instance) (rate(node_netstat_Tcp_RetransSegs{{{machine}}}[5m])"
            f" / (rate(node_netstat_Tcp_OutSegs{{{machine}}}[5m]) > 0))",
            "host_tcp_retransmit_share",
        ),
        # cAdvisor on the same machine: which container sends the most.
        NamedQuery(
            "containers' bytes sent per second on the machine under the target (top 3)",
            "topk(3, sum by (name) (rate(container_network_transmit_bytes_total"
            f'{{{machine},name!=""}}[5m])))',
            "containers_network_transmit",
        ),
    ]


# A container's CPU, or how long its requests take: both are capped by a CPU quota.
_CPU_OR_LATENCY = re.compile(r"^container_cpu|duration|latency|response_time")


def _throttling_queries(s: str) -> list[NamedQuery]:
    """Share of CFS periods in which the cgroup hit its CPU quota: a CPU limit, not the
    machine, caps the container (requests wait while the host has idle CPU)."""
    return [
        NamedQuery(
            "container CPU throttled share of periods",
            f"sum by (name, container) (rate(container_cpu_cfs_throttled_periods_total{s}[5m]))"
            f" / sum by (name, container) (rate(container_cpu_cfs_periods_total{s}[5m]) > 0)",
            "container_cpu_throttled",
        )
    ]


def _host_queries(instance: str | None, expr: str) -> list[NamedQuery]:
    """``instance``: the matcher of the host's node_exporter series (``instance_matcher``)."""
    if not instance or not any(m.startswith("node_") for m in _metrics(expr)):
        return []
    i = instance
    fs = f'{i},fstype!~"tmpfs|overlay|squashfs|ramfs"'
    return (
        [
            NamedQuery(
                "host load1 per CPU",
                f"node_load1{{{i}}} / on (instance) count by (instance) "
                f'(node_cpu_seconds_total{{{i},mode="idle"}})',
                "host_load",
            ),
            NamedQuery(
                "host memory available ratio",
                f"node_memory_MemAvailable_bytes{{{i}}} / node_memory_MemTotal_bytes{{{i}}}",
                "host_memory_available",
            ),
            NamedQuery(
                "host filesystem available ratio",
                f"node_filesystem_avail_bytes{{{fs}}} / node_filesystem_size_bytes{{{fs}}}",
                "host_filesystem_available",
            ),
            NamedQuery(
                "host swap used ratio",
                f"1 - node_memory_SwapFree_bytes{{{i}}} / node_memory_SwapTotal_bytes{{{i}}} > -1",
                "host_swap_used",
            ),
            NamedQuery(
                "host pages swapped in per second",
                f"rate(node_vmstat_pswpin{{{i}}}[5m])",
                "host_swap_in",
            ),
            NamedQuery(
                "host memory pressure (share of time stalled)",
                f"rate(node_pressure_memory_waiting_seconds_total{{{i}}}[5m])",
                "host_memory_pressure",
            ),
            NamedQuery(
                "host OOM kills in 15m",
                f"increase(node_vmstat_oom_kill{{{i}}}[15m])",
                "host_oom_kills",
            ),
            NamedQuery(
                "host filesystem inodes free ratio",
                f"node_filesystem_files_free{{{fs}}} / node_filesystem_files{{{fs}}} > 0",
                "host_inodes_free",
            ),
            NamedQuery("host boot time", f"node_boot_time_seconds{{{i}}}", "host_boot_time"),
            NamedQuery(
                "host clock offset seconds",
                f"node_timex_offset_seconds{{{i}}}",
                "host_clock_offset",
            ),
        ]
        + (_host_cpu_queries(i) if _about_cpu_or_io(expr) else [])
        + (_host_network_queries(i) if _about_network(expr) else [])
        + (_host_process_queries(i) if _about_memory(expr) or _about_cpu_or_io(expr) else [])
    )


def _about_memory(expr: str) -> bool:
    prefixes = ("node_memory", "node_vmstat_pswp", "node_vmstat_pgmajfault", "node_pressure_memory")
    return any(m.startswith(prefixes) for m in _metrics(expr))


# The node_exporter matcher's host with any port: process-exporter (9256) runs beside it.
_EXACT_INSTANCE = re.compile(r'^instance="((?:[^"\\]|\\.)*)"$')


def _host_process_queries(i: str) -> list[NamedQuery]:
    """What holds a host's memory, by process group, when process-exporter
    (``namedprocess_*``) runs on it: the question `ps aux --sort=-rss` answers."""
    exact = _EXACT_INSTANCE.match(i)
    on_host = f"instance=~{quote(with_any_port(host_name(exact.group(1))))}" if exact else i
    return [
        NamedQuery(
            "host process groups' resident memory (top 5)",
            "topk(5, max by (groupname) "
            f'(namedprocess_namegroup_memory_bytes{{{on_host},memtype="resident"}}))',
            "host_process_memory",
        ),
        # Every process a Prometheus client instruments (process_resident_memory_bytes of
        # the process collector) on the machine, by its scrape job: a service's own metrics
        # name it where process-exporter does not run.
        NamedQuery(
            "instrumented processes' resident memory on the host (top 5)",
            f"topk(5, max by (job) (process_resident_memory_bytes{{{on_host}}}))",
            "host_instrumented_memory",
        ),
        NamedQuery(
            "instrumented processes' CPU cores used on the host (top 5)",
            f"topk(5, sum by (job) (rate(process_cpu_seconds_total{{{on_host}}}[5m])))",
            "host_instrumented_cpu",
        ),
        # Without process-exporter, cAdvisor's containers: the findings keep those of the
        # cAdvisor on this machine, or of the only cAdvisor there is (a single Docker host).
        NamedQuery(
            "containers' resident memory (top 5)",
            'topk(5, max by (name, instance) (container_memory_rss{name!=""}))',
            "containers_memory_rss",
        ),
    ]


def _about_network(expr: str) -> bool:
    return any(
        m.startswith(("node_network", "node_nf_conntrack", "node_netstat", "node_sockstat"))
        for m in _metrics(expr)
    )


# Virtual interfaces come and go with containers; only the host's own NICs say anything.
_VIRTUAL_NICS = 'device!~"lo|veth.*|docker.*|br-.*|cni.*|flannel.*|cali.*|virbr.*|tun.*|wg.*"'


def _host_network_queries(i: str) -> list[NamedQuery]:
    """For a network alert: the conntrack table against its limit, and each NIC's link."""
    return [
        NamedQuery(
            "host conntrack entries / limit",
            f"node_nf_conntrack_entries{{{i}}} / node_nf_conntrack_entries_limit{{{i}}} > 0",
            "host_conntrack",
        ),
        NamedQuery(
            "host NIC operational state (1 up)",
            f"node_network_up{{{i},{_VIRTUAL_NICS}}}",
            "host_nic_up",
        ),
        NamedQuery(
            "host NIC carrier changes in 15m",
            f"increase(node_network_carrier_changes_total{{{i},{_VIRTUAL_NICS}}}[15m])",
            "host_nic_carrier_changes",
        ),
        NamedQuery(
            "host NIC receive/transmit errors and drops per second",
            _nic_errors(i),
            "host_nic_errors",
        ),
    ]


def _nic_errors(selector: str) -> str:
    """Frames a NIC received or sent broken, or dropped, per second: a bad cable, a duplex
    mismatch or a failing NIC (node_exporter's counters, summed per device)."""
    counters = (
        "node_network_receive_errs_total",
        "node_network_transmit_errs_total",
        "node_network_receive_drop_total",
    )
    return " + ".join(
        f"sum by (instance, device) (rate({c}{{{selector},{_VIRTUAL_NICS}}}[5m]))" for c in counters
    )


def _about_cpu_or_io(expr: str) -> bool:
    """CPU, load or disk I/O: the busy time the workload does not spend is worth reading."""
    prefixes = ("node_cpu", "node_load", "node_pressure_cpu", "node_pressure_io", "node_disk_")
    return any(m.startswith(prefixes) for m in _metrics(expr))


def _host_cpu_queries(i: str) -> list[NamedQuery]:
    """For a CPU or load alert: busy time that the host's own processes do not spend.

    Steal is CPU a hypervisor gave to other guests; iowait (counted as "not idle") and a disk
    busy all the time are processes waiting on I/O. One series per mode, share of all CPUs.
    """
    return [
        NamedQuery(
            "host CPU steal and iowait share",
            "sum by (instance, mode) "
            f'(rate(node_cpu_seconds_total{{{i},mode=~"steal|iowait"}}[5m]))'
            f" / on (instance) group_left count by (instance) "
            f'(node_cpu_seconds_total{{{i},mode="idle"}})',
            "host_cpu_modes",
        ),
        NamedQuery(
            "host disk busy share (io_time)",
            f'rate(node_disk_io_time_seconds_total{{{i},device!~"loop.*|ram.*|sr.*"}}[5m])',
            "host_disk_busy",
        ),
    ]


def _replication_slot_queries(alert: Alert, expr: str) -> list[NamedQuery]:
    """For a filesystem filling on a machine: PostgreSQL's inactive replication slots there
    (postgres_exporter), each with the WAL it holds back. A slot whose standby is gone keeps
    every WAL segment since, until pg_wal fills the disk."""
    instance = subject_labels(alert).get("instance", "")
    if not instance or not any(m.startswith("node_filesystem") for m in _metrics(expr)):
        return []
    on_host = f"instance=~{quote(with_any_port(host_name(instance)))}"
    held = f"max by (instance, slot_name) (pg_replication_slots_pg_wal_lsn_diff{{{on_host}}})"
    idle = f"max by (instance, slot_name) (pg_replication_slots_active{{{on_host}}}) == 0"
    return [
        NamedQuery(
            "WAL bytes held by inactive replication slots",
            f"{held} and on (instance, slot_name) ({idle})",
            "inactive_replication_slots",
        )
    ]


def _raid_queries(alert: Alert, expr: str) -> list[NamedQuery]:
    """For a disk alert on a machine (I/O, latency, space): its md arrays' failed members and
    the share resynced. A degraded array, or one rebuilding onto a replaced disk or checking
    its members, is slow for everything."""
    instance = subject_labels(alert).get("instance", "")
    about_disk = any(m.startswith(("node_disk_", "node_filesystem")) for m in _metrics(expr))
    if not instance or not about_disk:
        return []
    on_host = f"instance=~{quote(with_any_port(host_name(instance)))}"
    return [
        NamedQuery(
            "RAID arrays' failed members",
            # No `> 0`: a member that failed and was removed since reads 0 now, and the
            # array is then rebuilding onto its replacement, not degraded.
            f'max by (device) (node_md_disks{{{on_host},state=~"failed|down"}})',
            "raid_failed_members",
        ),
        NamedQuery(
            "RAID arrays resyncing (share synced)",
            f"max by (device) (node_md_blocks_synced{{{on_host}}} / node_md_blocks{{{on_host}}})"
            " < 1",
            "raid_synced",
        ),
    ]


def _fleet_inode_queries(alert: Alert, expr: str) -> list[NamedQuery]:
    """For an alert on a container or service (whose machine is not named): the filesystems
    anywhere that are nearly out of inodes. "No space left on device" with bytes free is
    inodes, and the machine is then whichever one that is."""
    if any(m.startswith("node_") for m in _metrics(expr)) or instance_matcher(alert):
        return []
    labels = subject_labels(alert)
    if not any(labels.get(k) for k in ("container", "pod", "name", "service")):
        return []
    return [
        NamedQuery(
            "filesystems nearly out of inodes",
            'min by (instance, mountpoint) (node_filesystem_files_free{fstype!~"tmpfs|overlay|'
            'squashfs|nsfs|ramfs"} / node_filesystem_files > 0) < 0.05',
            "fleet_inodes_low",
        )
    ]


# A target's own health: its scrape (`up`), an exporter's view of its service (`redis_up`,
# `pg_up`), a probe.
_HEALTH_METRIC = re.compile(r"^(?:up|\w+_up|probe_success)$")
# How long before the alert a machine's boot still explains it (a service that comes back
# slowly, or not at all, after the boot).
REBOOT_LEAD_SECONDS = 1800


def _fleet_reboot_queries(alert: Alert, expr: str) -> list[NamedQuery]:
    """For a service found down: the machines that booted since shortly before the alert. A
    reboot takes down what runs there, and a service's address (redis-a, a virtual IP) seldom
    names its machine."""
    metrics = _metrics(expr)
    if not any(_HEALTH_METRIC.match(m) for m in metrics):
        return []
    since = int(alert.starts_at.timestamp()) - REBOOT_LEAD_SECONDS
    return [
        NamedQuery(
            "machines booted since shortly before the alert",
            f"max by (instance) (node_boot_time_seconds) > {since}",
            "fleet_reboots",
        )
    ]


def _certificate_file_queries(alert: Alert) -> list[NamedQuery]:
    """For a certificate's expiry alert: the certificate files with that name on disk (the
    x509-certificate-exporter), whose time left says whether it was renewed and not loaded."""
    domain = certificate_domain(alert)
    if not domain:
        return []
    names = quote(re.escape(domain) + "|" + re.escape("*." + domain.split(".", 1)[-1]))
    return [
        NamedQuery(
            "certificate files on disk, seconds left",
            f"max by (filepath, instance) (x509_cert_not_after{{subject_CN=~{names}}}) - time()",
            "cert_files",
        )
    ]


def _probe_queries(labels: dict[str, str], expr: str) -> list[NamedQuery]:
    """For a blackbox probe alert: which phase fails (name resolution, the HTTP answer) and
    how long the certificate the probe saw has left."""
    instance = labels.get("instance")
    if not instance or not any(m.startswith("probe_") for m in _metrics(expr)):
        return []
    i = f"instance={_quote(instance)}"
    return [
        NamedQuery(
            "probe IP protocol (0: the name did not resolve)",
            f"probe_ip_protocol{{{i}}}",
            "probe_ip_protocol",
        ),
        NamedQuery("probe HTTP status code", f"probe_http_status_code{{{i}}}", "probe_http_status"),
        NamedQuery(
            "probe certificate seconds left",
            f"probe_ssl_earliest_cert_expiry{{{i}}} - time()",
            "probe_cert_expiry",
        ),
        # Where a slow probe spends its time: resolving the name, connecting, the TLS
        # handshake, or waiting for the answer.
        NamedQuery(
            "probe duration by phase",
            f"max by (phase) (probe_http_duration_seconds{{{i}}})",
            "probe_phases",
        ),
        # What else stopped answering meanwhile (a resolver, a proxy the probe goes through).
        NamedQuery("scrape targets down", "up == 0", "targets_down"),
        *_fleet_conntrack_queries(),
        # An interface whose MTU changed on any machine (a tunnel or VLAN reconfigured): the
        # path then drops packets larger than it carries, while small probes may pass.
        NamedQuery(
            "interfaces whose MTU changed within 3h",
            "node_network_mtu_bytes and on (instance, device) "
            "(changes(node_network_mtu_bytes[3h] @ end()) > 0)",
            "fleet_mtu_changes",
        ),
        *_resolver_queries(labels, expr),
    ]


def _resolver_queries(labels: dict[str, str], expr: str) -> list[NamedQuery]:
    """For a probe of a DNS server (blackbox's dns prober, port 53): whether the resolvers
    (CoreDNS) can reach the upstreams they forward to, and how often they answer SERVFAIL.
    A forwarder whose upstreams time out fails every name it does not serve itself."""
    about_dns = (
        any(m.startswith("probe_dns_") for m in _metrics(expr))
        or "dns" in labels.get("job", "").lower()
        or labels.get("instance", "").endswith(":53")
    )
    if not about_dns:
        return []
    return [
        NamedQuery(
            "resolvers' upstreams failing health checks (per second)",
            "sum by (instance, to) (rate(coredns_forward_healthcheck_failures_total[5m])) > 0",
            "dns_upstream_failures",
        ),
        NamedQuery(
            "resolvers' SERVFAIL answers (per second)",
            'sum by (instance) (rate(coredns_dns_responses_total{rcode="SERVFAIL"}[5m]))',
            "dns_servfail",
        ),
    ]


# A conntrack table this full on any machine: the probe's path may cross it (a load balancer,
# a NAT gateway) even where the probed URL does not name that machine.
FLEET_CONNTRACK_SHARE = 0.8
_CONNTRACK_SHARE = "max by (instance) (node_nf_conntrack_entries / node_nf_conntrack_entries_limit)"
_CONNTRACK_LIMIT = "max by (instance) (node_nf_conntrack_entries_limit)"


def _fleet_conntrack_queries() -> list[NamedQuery]:
    """Machines whose connection-tracking table is nearly full, their limit now, and the
    higher limit they had within six hours (a sysctl change that lowered nf_conntrack_max)."""
    full = f"{_CONNTRACK_SHARE} > {FLEET_CONNTRACK_SHARE}"
    return [
        NamedQuery("machines with a nearly full conntrack table", full, "fleet_conntrack"),
        NamedQuery(
            "their nf_conntrack_max",
            f"{_CONNTRACK_LIMIT} and on (instance) ({full})",
            "fleet_conntrack_limit",
        ),
        NamedQuery(
            "their higher nf_conntrack_max within 6h",
            "max by (instance) (max_over_time(node_nf_conntrack_entries_limit[6h]))"
            f" > on (instance) {_CONNTRACK_LIMIT}",
            "fleet_conntrack_lowered",
        ),
    ]


def _mysql_lock_queries(labels: dict[str, str], expr: str) -> list[NamedQuery]:
    """For a MySQL alert: the threads waiting on a lock, by processlist state (mysqld_exporter's
    info_schema.processlist collector). "Waiting for table metadata lock" piles every query on
    a table behind a schema change that itself waits for an open transaction."""
    if not labels.get("instance") or not any(m.startswith("mysql_") for m in _metrics(expr)):
        return []
    i = f"instance={_quote(labels['instance'])}"
    return [
        NamedQuery(
            "threads waiting on locks, by state",
            f'sum by (state) (mysql_info_schema_processlist_threads{{{i},state=~"(?i).*lock.*"}})'
            " > 0",
            "mysql_lock_waits",
        )
    ]


# A backlog alert fires when the queue has grown past its threshold, often long after the
# consumers slowed or the publishers surged: the rates' earlier level says which side moved.
QUEUE_REACH_BACK_MINUTES = 120


def _queue_consumer_queries(labels: dict[str, str], expr: str) -> list[NamedQuery]:
    """For a queue's backlog: how many consumers it has, and how fast messages arrive and
    leave. A queue whose consumers are gone (scaled to zero, crashed, cut off) only grows,
    whatever its publishers do; one whose consumers stay but take less, or whose publishers
    send more, grows by the difference."""
    metrics = _metrics(expr)
    if labels.get("queue") and any(m.startswith("rabbitmq_") for m in metrics):
        keys = [k for k in ("queue", "vhost") if labels.get(k)]
        sel = ",".join(f"{k}={_quote(labels[k])}" for k in keys)
        # The exporters spell the queue's counters differently (the plugin's detailed
        # endpoint, kbudde's exporter): one name regex each, of which a broker has one.
        published = '__name__=~"rabbitmq_(detailed_)?queue_messages_published_total"'
        acked = '__name__=~"rabbitmq_(detailed_)?queue_messages_(ack|acked|acknowledged)_total"'
        delivered = '__name__=~"rabbitmq_(detailed_)?queue_messages_delivered(_ack)?_total"'
        unacked = '__name__=~"rabbitmq_(detailed_)?queue_messages_(unacked|unacknowledged)"'
        redelivered = '__name__=~"rabbitmq_(detailed_)?queue_messages_redelivered_total"'
        return [
            NamedQuery(
                "the queue's consumers",
                f"max by (queue) (rabbitmq_queue_consumers{{{sel}}})",
                "queue_consumers",
                reach_back_minutes=QUEUE_REACH_BACK_MINUTES,
            ),
            # Which side moved: publishers sending more, or consumers taking less.
            NamedQuery(
                "messages per second published to the queue",
                f"sum by (queue) (rate({{{published},{sel}}}[5m]))",
                "queue_publish_rate",
                reach_back_minutes=QUEUE_REACH_BACK_MINUTES,
            ),
            NamedQuery(
                "messages per second its consumers acknowledge",
                # Deliveries stand in where the exporter counts no acknowledgements.
                f"sum by (queue) (rate({{{acked},{sel}}}[5m])) "
                f"or sum by (queue) (rate({{{delivered},{sel}}}[5m]))",
                "queue_ack_rate",
                reach_back_minutes=QUEUE_REACH_BACK_MINUTES,
            ),
            # Messages delivered again: consumers rejecting or dropping them (requeued).
            NamedQuery(
                "messages per second redelivered to its consumers",
                f"sum by (queue) (rate({{{redelivered},{sel}}}[5m]))",
                "queue_redelivery_rate",
                reach_back_minutes=QUEUE_REACH_BACK_MINUTES,
            ),
            # Delivered and not yet acknowledged: consumers holding messages they work on.
            NamedQuery(
                "messages delivered and not yet acknowledged",
                f"max by (queue) ({{{unacked},{sel}}})",
                "queue_unacked",
                reach_back_minutes=QUEUE_REACH_BACK_MINUTES,
            ),
        ]
    if labels.get("consumergroup") and any(m.startswith("kafka_") for m in metrics):
        sel = f"consumergroup={_quote(labels['consumergroup'])}"
        offsets = f"kafka_consumergroup_current_offset{{{sel}}}"
        return [
            NamedQuery(
                "the consumer group's members",
                f"max by (consumergroup) (kafka_consumergroup_members{{{sel}}})",
                "queue_consumers",
                reach_back_minutes=QUEUE_REACH_BACK_MINUTES,
            ),
            # Members that stay while the commits stop: consumers stuck, not gone. The
            # exporter's offsets are gauges: deriv, not rate (a dip is no counter reset).
            NamedQuery(
                "the group's committed records per second",
                f"sum by (consumergroup) (deriv({offsets}[5m]))",
                "queue_commit_rate",
                reach_back_minutes=QUEUE_REACH_BACK_MINUTES,
            ),
            NamedQuery(
                "records per second written to the group's partitions",
                "sum(deriv(kafka_topic_partition_current_offset[5m]) "
                f"and on (topic, partition) {offsets})",
                "queue_produce_rate",
                reach_back_minutes=QUEUE_REACH_BACK_MINUTES,
            ),
        ]
    return []


def _nginx_queries(labels: dict[str, str], expr: str) -> list[NamedQuery]:
    about_nginx = any(m.startswith("nginx_") for m in _metrics(expr)) or "nginx" in labels.get(
        "job", ""
    )
    if not about_nginx:
        return []
    if labels.get("instance"):
        sel = f"instance={_quote(labels['instance'])}"
    elif labels.get("job"):
        sel = f"job={_quote(labels['job'])}"
    else:
        return []
    return [
        NamedQuery("nginx up (exporter reaches nginx)", f"nginx_up{{{sel}}}", "nginx_up"),
        NamedQuery(
            "nginx requests per second",
            f"sum(rate(nginx_http_requests_total{{{sel}}}[5m]))",
            "nginx_requests",
        ),
    ]


def _node_name_query(alert: Alert) -> str | None:
    """For a host alert that names its machine only by host or node name (a rule that
    aggregated ``by (nodename)``): the query of node_exporter's instance with that node name,
    short or fully qualified. The name is not always the instance's host: targets are often
    scraped by IP address."""
    expr = alert_expression(alert)
    if not expr or is_logql(expr) or not any(m.startswith("node_") for m in _metrics(expr)):
        return None
    labels = subject_labels(alert)
    name = host_label(labels)
    if not name or labels.get("instance") or "instance" in renamed_labels(expr, labels):
        return None
    nodename = _quote(short_or_qualified(name))
    return f"group by (instance) (node_uname_info{{nodename=~{nodename}}})"


async def node_instance(
    alert: Alert, base: str, seconds: float, http: httpx.AsyncClient
) -> str | None:
    """The matcher of the one node_exporter instance whose node name is the alert's host."""
    promql = _node_name_query(alert)
    if not promql:
        return None
    result = await instant_query(base, promql, seconds, http)
    instances = {str(labels.get("instance", "")) for labels in result or []} - {""}
    return f"instance={_quote(instances.pop())}" if len(instances) == 1 else None


async def instant_query(
    base: str, promql: str, seconds: float, http: httpx.AsyncClient, at: float | None = None
) -> list[dict[str, Any]] | None:
    """The label sets of an instant query's series (at ``at``, Unix seconds, else now), in
    Prometheus' order; None when it failed. For lookups that only need who answers."""
    params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
    try:
        async with asyncio.timeout(seconds):
            response = await http.get(f"{base}/api/v1/query", params=params, timeout=seconds)
            body = response.json() if _is_json(response) else None
    except Exception:
        return None
    result = (body.get("data") or {}).get("result") if isinstance(body, dict) else None
    if not isinstance(result, list):
        return None
    return [
        entry["metric"]
        for entry in result
        if isinstance(entry, dict) and isinstance(entry.get("metric"), dict)
    ]


async def collect(alert: Alert, settings: Settings, http: httpx.AsyncClient) -> list[EvidenceItem]:
    if not settings.prometheus_url:
        plan = plan_queries(alert)
        query = plan[0].promql if plan else ""
        return [unavailable("prom-1", "prometheus", query, "AIOPS_PROMETHEUS_URL is not set")]
    base = settings.prometheus_url.rstrip("/")
    seconds = settings.evidence_timeout_seconds
    plan = plan_queries(alert, await node_instance(alert, base, seconds, http))
    if not plan:
        why = (
            "the alert's expression is LogQL (a Loki ruler alert), which Loki runs"
            if is_logql(alert_expression(alert))
            else "the alert carries no expression (no g0.expr in generatorURL)"
        )
        return [
            EvidenceItem(
                id="prom-1",
                source="prometheus",
                status="empty",
                detail=f"{why}, and no container/host/nginx labels to query by",
            )
        ]
    window = alert_window(alert, settings)
    found = threshold(plan[0].promql) if plan[0].kind == "alert_expression" else None
    items = await _run_all(plan, 1, base, window, seconds, http, alert)
    if found and items[0].status == "ok":
        op, value = found
        items[0] = items[0].model_copy(update={"threshold": Threshold(op=op, value=value)})  # type: ignore[arg-type]
    return items


def oom_victim_queries(container_id: str) -> list[NamedQuery]:
    """The memory of the container a kernel OOM-kill line names by its cgroup id only
    (``oom_kill``): cAdvisor's ``id`` label holds that cgroup path, ``name`` its name."""
    s = '{id=~".*' + container_id + '.*"}'  # hex digits: nothing to escape
    return [
        NamedQuery(
            "OOM-killed container's memory working set bytes",
            f"max by (name) (container_memory_working_set_bytes{s})",
            "oom_victim_memory",
            f"max by (name) (container_spec_memory_limit_bytes{s} > 0)",
        )
    ]


async def follow_up(
    alert: Alert,
    settings: Settings,
    http: httpx.AsyncClient,
    queries: list[NamedQuery],
    first_number: int,
) -> list[EvidenceItem]:
    """Queries the other sources' evidence called for, numbered from ``prom-first_number``."""
    if not settings.prometheus_url or not queries:
        return []
    base = settings.prometheus_url.rstrip("/")
    window = alert_window(alert, settings)
    seconds = settings.evidence_timeout_seconds
    return await _run_all(queries, first_number, base, window, seconds, http, alert)


async def _run_all(
    plan: list[NamedQuery],
    first_number: int,
    base: str,
    window: Window,
    seconds: float,
    http: httpx.AsyncClient,
    alert: Alert,
) -> list[EvidenceItem]:
    # One request per distinct limit query, however many items divide by it.
    limits = {
        q.limit_promql: asyncio.ensure_future(_limit(q.limit_promql, base, window, seconds, http))
        for q in plan
        if q.limit_promql
    }
    items = await asyncio.gather(
        *(
            _run(f"prom-{n}", q, base, window, seconds, http, alert, limits.get(q.limit_promql))
            for n, q in enumerate(plan, start=first_number)
        )
    )
    await asyncio.gather(*limits.values(), return_exceptions=True)  # none left pending
    return list(items)


def _step_seconds(window: Window) -> int:
    return max(1, math.ceil(window.seconds / TARGET_POINTS))


def range_params(window: Window) -> dict[str, str]:
    """start/end/step with ``end - start`` a whole number of steps.

    Prometheus evaluates a range query at start, start + step, ... up to end, so with an
    unaligned start the last point falls up to one step before ``end`` and a condition that
    became true in that last step would read as "no data". Moving start back (by less than a
    step) makes ``end`` itself, normally now, the last evaluation. Integer milliseconds, as
    Prometheus parses them, so no float rounding can drop the last step.
    """
    step = _step_seconds(window)
    end_ms = math.floor(window.end.timestamp() * 1000)
    steps = math.ceil(window.seconds / step)
    start_ms = end_ms - steps * step * 1000
    return {"start": _seconds(start_ms), "end": _seconds(end_ms), "step": str(step)}


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


async def query_range(
    promql: str, base: str, window: Window, seconds: float, http: httpx.AsyncClient
) -> list[Any]:
    """The matrix of one range query; raises QueryFailed saying why there is none."""
    params = {"query": promql, **range_params(window)}
    try:
        async with asyncio.timeout(seconds):
            response = await http.get(f"{base}/api/v1/query_range", params=params, timeout=seconds)
            body = response.json() if _is_json(response) else None
    except Exception as exc:
        raise QueryFailed(f"prometheus {describe_error(exc)}") from exc
    if not isinstance(body, dict):
        raise QueryFailed(f"prometheus answered HTTP {response.status_code} without JSON")
    if body.get("status") != "success":
        error = str(body.get("error") or f"HTTP {response.status_code}")
        raise QueryFailed(f"prometheus query error: {error}")
    result = (body.get("data") or {}).get("result") or []
    return result if isinstance(result, list) else []


class QueryFailed(Exception):
    """A query got no usable answer; the message says why (never the URL)."""


async def _run(
    item_id: str,
    query: NamedQuery,
    base: str,
    window: Window,
    seconds: float,
    http: httpx.AsyncClient,
    alert: Alert,
    limit: asyncio.Future[dict[str, float]] | None = None,
) -> EvidenceItem:
    if query.reach_back_minutes:
        window = Window(window.start - timedelta(minutes=query.reach_back_minutes), window.end)
    try:
        result = await query_range(query.promql, base, window, seconds, http)
    except QueryFailed as exc:
        return unavailable(item_id, "prometheus", query.promql, str(exc))
    limits = await limit if limit is not None else {}
    series = typed_series(result, window, alert.labels, limits)
    start, end = window.start.timestamp(), window.end.timestamp()
    if not series:
        return EvidenceItem(
            id=item_id,
            source="prometheus",
            query=query.promql,
            status="empty",
            text=f"{query.title}: no data in the window",
            detail="query returned no series",
            kind=query.kind,
            title=query.title,
            window_start=start,
            window_end=end,
        )
    return EvidenceItem(
        id=item_id,
        source="prometheus",
        query=query.promql,
        kind=query.kind,
        title=query.title,
        series=series[:MAX_SERIES],
        text=render_item(query.title, series, window),
        window_start=start,
        window_end=end,
    )


async def _limit(
    promql: str, base: str, window: Window, seconds: float, http: httpx.AsyncClient
) -> dict[str, float]:
    """The last value of a limit query per ``name`` label ("" when it has none)."""
    try:
        result = await query_range(promql, base, window, seconds, http)
    except QueryFailed:
        return {}
    limits: dict[str, float] = {}
    for metric, points in _parsed(result):
        finite = [v for _, v in points if math.isfinite(v) and v > 0]
        if finite:
            limits[str(metric.get("name", ""))] = finite[-1]
    return limits


def _is_json(response: httpx.Response) -> bool:
    return "json" in response.headers.get("content-type", "")


def _number(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _parsed(result: list[Any]) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    series: list[tuple[dict[str, str], list[tuple[float, float]]]] = []
    for entry in result:
        if not isinstance(entry, dict):
            continue
        points: list[tuple[float, float]] = []
        for pair in entry.get("values") or ([entry["value"]] if "value" in entry else []):
            if isinstance(pair, list | tuple) and len(pair) == 2:
                ts, value = _number(pair[0]), _number(pair[1])
                if ts is not None and value is not None:
                    points.append((ts, value))
        if points:
            metric = entry.get("metric") or {}
            labels = {str(k): str(v) for k, v in metric.items()} if isinstance(metric, dict) else {}
            series.append((labels, sorted(points)))
    return series


def typed_series(
    result: list[Any],
    window: Window,
    alert_labels: dict[str, str],
    limits: dict[str, float] | None = None,
) -> list[SeriesStats]:
    """Statistics of every series: the alert's own series first, then the most extreme."""
    step = _step_seconds(window)
    limits = limits or {}
    stats = [
        describe(
            points,
            step,
            labels=labels,
            alert_labels=alert_labels,
            limit=limits.get(labels.get("name", ""), limits.get("")),
        )
        for labels, points in _parsed(result)
    ]
    stats.sort(key=lambda s: (not s.matches_alert, -_sort_key(s.current), label_text(s.labels)))
    return stats


def render_item(title: str, series: list[SeriesStats], window: Window) -> str:
    end_ts = window.end.timestamp()
    lines = [f"{title}: {len(series)} series over {window.seconds / 60:.0f}m"]
    lines += [render(s, end_ts) for s in series[:MAX_SERIES]]
    if len(series) > MAX_SERIES:
        lines.append(f"(+{len(series) - MAX_SERIES} more series not shown)")
    return "\n".join(lines)


def _sort_key(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else -math.inf
