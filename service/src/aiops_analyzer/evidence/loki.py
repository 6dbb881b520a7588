"""Loki evidence: the target's log lines mined into templates and ranked (``logrank``).

Streams are selected by the alert's subject labels (container/name, compose_service, service,
service_name, job); for a host, also by its host name or instance, where the host's system and
kernel lines live; for a Loki ruler alert, by its LogQL's own selector. Two windows are read:
the *recent* one from shortly before startsAt to one evidence window after it (or now), and
the *baseline* before it, at most ``MAX_FETCH_LINES`` lines each, newest first. The items:

- ``loki-1`` (kind ``log_templates``): templates new or surging before the alert, best first;
- ``loki-2`` (kind ``log_lines``): the newest recent lines, at most ``loki_max_lines``;
- ``loki-expr`` (kind ``alert_expression``): a Loki ruler alert's LogQL, run by Loki.
"""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from aiops_analyzer.core.config import Settings
from aiops_analyzer.evidence.common import Window, alert_window, describe_error, unavailable
from aiops_analyzer.evidence.expression import (
    JOB_METRICS,
    STALE_OUTPUT,
    alert_expression,
    is_logql,
    logql_selector,
    metric_names,
)
from aiops_analyzer.evidence.logrank import (
    CRON_COMMAND,
    TAGS,
    UNIT_START,
    LogLine,
    rank_with_lines,
)
from aiops_analyzer.evidence.missing_path import REMOVAL_FILTER, ancestors, missing_path
from aiops_analyzer.evidence.prometheus import render_item, typed_series
from aiops_analyzer.evidence.schema_change import missing_object, schema_change_filter
from aiops_analyzer.evidence.target import (
    certificate_domain,
    host_label,
    host_name,
    is_name,
    is_probe,
    scope,
    subject_labels,
)
from aiops_analyzer.schemas import Alert, EvidenceItem, LogTemplate

MAX_LINE_CHARS = 300
# Lines read per window and selector: bounded work whatever the log volume (mining and
# ranking 500 + 500 lines takes some 10 ms).
MAX_FETCH_LINES = 500
# The logs' baseline: what was logged this long before the recent window. Hours, not the
# metrics' half hour: an hourly cron line, a scanner blocked every twenty minutes or a periodic
# AppArmor denial is background, and a short baseline would call it new. Reads stay bounded
# by their line limit; a read that hits it covers less, and the rates count only what it covers.
LOG_BASELINE = timedelta(hours=3)
# The recent window starts this long before startsAt (a rule's `for:` plus the lead-up).
RECENT_LEAD = timedelta(minutes=15)
# A deploy logged this long before the recent window still belongs to the lead-up: a rule
# with a long `for:` (15 or 30 minutes) starts its alert well after the release that broke it.
DEPLOY_LEAD_IN = timedelta(minutes=30)
_DEPLOY_LINE = TAGS["deploy"]
# A configuration-management run is a change too: its lines join the lead-up the same way.
_CHANGE_LINE = TAGS["change"]
# A cause's own words (a server not responding, a link down, a kill) logged in that lead-in
# for the first time: a rule's `for:` starts the alert long after them.
_LEAD_IN_CAUSES = tuple(
    TAGS[tag]
    for tag in (
        "nfs",
        "dns",
        "tls",
        "link",
        "disk_failure",
        "fs_error",
        "oom",
        "conntrack",
        "mtu",
        "store_full",
        "resource_limit",
        "firewall",
        "clock",
        "reboot",
    )
)
# A scheduled job starting in that lead-in (a unit, a cron command) for the first time in the
# baseline: a nightly job that loads the machine starts well before a rule's `for:` fires.
_LEAD_IN_STARTS = (UNIT_START, CRON_COMMAND)
# The lead-up read of the recent window runs this far past startsAt.
LEAD_UP_AFTER_START = timedelta(minutes=5)
# Filesystems that hold the container runtime's logs (Docker's json-file logs live under
# /var/lib/docker/containers, containerd's CRI logs under /var/log/pods on the root or /var
# filesystem), and the containers' log volume read for an alert on one: a chatty container
# fills them, unrotated unless the runtime caps its logs.
_CONTAINER_LOG_FILESYSTEM = re.compile(
    r"^/(?:var(?:/lib(?:/(?:docker|containerd|containers))?|/log(?:/pods)?)?)?$"
)
LOG_VOLUME_SPAN = timedelta(hours=3)
MAX_VOLUME_SERIES = 8
LOG_VOLUME_QUERY = 'sum by (container, host) (bytes_over_time({container=~".+"}[15m]))'
MAX_TEMPLATES_KEPT = 10
MAX_TAGGED_KEPT_PAST_CAP = 5
MAX_TEMPLATES_SHOWN = 10
# Newest lines per template in the raw lines item.
PER_TEMPLATE_LINES = 3

# (alert label, Loki stream label) in order of preference.
_SELECTOR_LABELS = (
    ("container", "container"),
    ("name", "container"),  # cAdvisor calls the Docker container "name"
    ("compose_service", "compose_service"),
    ("container_label_com_docker_compose_service", "compose_service"),
    ("service", "service"),  # the local stack's Alloy sets `service` on every stream
    ("service_name", "service_name"),
    # Kubernetes' app label, which log collectors keep on the pod's streams.
    ("app", "app"),
    ("app_kubernetes_io_name", "app"),
    # Micrometer's common tag (Spring Boot's management.metrics.tags.application): the service.
    ("application", "service"),
    # A consumer group (kafka_exporter's `consumergroup`, KMinion's `group_id`) is usually
    # named after the service that consumes: its lag's cause is in that service's lines.
    ("consumergroup", "service"),
    ("group_id", "service"),
    ("job", "job"),
)
# An alert about a scheduled job (a backup's last success, a failed systemd unit): its cause is
# the failure line of its last runs, which may be many hours before the alert; those lines are
# read back this far, filtered to failures, and count as recent. A systemd unit's state counts
# too: a failed unit logs why in the journal.
_JOB_METRICS = re.compile(JOB_METRICS + "|systemd_unit_state", re.I)
LAST_RUN_LOOKBACK = timedelta(hours=26)
LAST_RUN_FILTER = ' |~ "(?i)fail|error|denied|fatal|refused|timed out|exit (?:code|status)"'
MAX_LAST_RUN_LINES = 200
# A certificate's renewal is a job too (certbot, acme.sh, a cert-manager challenge): for an
# alert on a certificate's expiry, the failure lines that name its domain in any stream over
# the same lookback. One bounded read; the domain comes from the probed URL or a label.
RENEWAL_FILTER = (
    ' |~ "(?i)fail|error|denied|refused|timed out|invalid|unauthorized|could not|unable"'
)
# Databases log their own lock waits (PostgreSQL's log_lock_waits, its DETAIL naming the
# holder, its CONTEXT the table, MySQL's and InnoDB's timeouts and deadlocks) in their own
# streams, not in those of the service that waits. A service's alert (latency, errors) reads
# these lines from its neighbours' streams too: one bounded read over its log window, each
# line named by its stream.
LOCK_WAIT_FILTER = (
    ' |~ "(?i)still waiting for [a-z]*lock|holding the lock|lock wait timeout'
    "|deadlock (?:detected|found)|lock timeout|while (?:updating|locking|deleting) tuple"
    # A schema change (a migration's ALTER) takes the table's exclusive lock.
    '|metadata lock|alter table|create (?:unique )?index|rename table|truncate table"'
)
# As many as any other extra stream's read: a read that hits its limit shortens the baseline
# every template is compared with (``_baseline_covered_from``), and a database with chronic
# lock waits logs hundreds in three hours.
MAX_LOCK_WAIT_LINES = 1000
# Stream label under which collectors (Alloy's loki.source.journal, promtail) commonly file a
# host's journal and syslog; `instance` is asked too.
_HOST_STREAM_LABELS = ("host",)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


# node_systemd_unit_state{name="backup.service"}: a unit, whose lines the journal files under
# `unit` (Alloy's and promtail's journal relabelling of _SYSTEMD_UNIT), not a container.
_SYSTEMD_UNIT = re.compile(r"\.(?:service|timer|socket|mount|scope|target|path)$")


def stream_selector(alert: Alert) -> str | None:
    labels = subject_labels(alert)
    unit = labels.get("name", "")
    if _SYSTEMD_UNIT.search(unit) and scope(alert) == "host":
        return "{" + f"unit={_quote(unit)}" + "}"
    pod = _pod_selector(labels)
    if pod:
        return pod
    job, namespace = labels.get("job_name", ""), labels.get("namespace", "")
    if job and namespace:  # a Kubernetes Job (kube-state-metrics): its pods are <job>-<5 chars>
        pods = _quote(_literal(job) + "-[a-z0-9]{5}")
        return "{" + f"namespace={_quote(namespace)},pod=~{pods}" + "}"
    for alert_label, stream_label in _SELECTOR_LABELS:
        value = labels.get(alert_label)
        if value:
            return "{" + f"{stream_label}={_quote(value)}" + "}"
    return None


_WORKLOAD_KEYS = ("deployment", "statefulset", "daemonset", "app", "service", "job")


def _workload_pods(labels: dict[str, str]) -> list[str]:
    """The pods of the workload a namespaced alert names: a Deployment's
    <name>-<replicaset hash>-<5 chars>, a DaemonSet's <name>-<5 chars>, a StatefulSet's
    <name>-<ordinal>."""
    name = next((labels[k] for k in _WORKLOAD_KEYS if labels.get(k) and is_name(labels[k])), "")
    if not name:
        return []
    pods = _quote(_literal(name) + "-(?:[a-z0-9]{6,10}-)?[a-z0-9]{5}|" + _literal(name) + "-[0-9]+")
    return ["{" + f"namespace={_quote(labels['namespace'])},pod=~{pods}" + "}"]


def _pod_selector(labels: dict[str, str]) -> str | None:
    """Kubernetes log collectors label streams by namespace and pod: this pod's lines, not
    those of an older replica whose container has the same name."""
    if not labels.get("pod"):
        return None
    keys = [k for k in ("namespace", "pod") if labels.get(k)]
    return "{" + ",".join(f"{k}={_quote(labels[k])}" for k in keys) + "}"


def stream_selectors(alert: Alert) -> list[str]:
    """Every selector to read, the subject's own first."""
    selectors: list[str] = []
    own = stream_selector(alert)
    if own:
        selectors.append(own)
    expr = alert_expression(alert)
    if is_logql(expr):
        selector = logql_selector(expr)
        if selector:
            selectors.append(selector)
    labels = subject_labels(alert)
    instance = labels.get("instance", "")
    service, provider = _traefik_service(labels.get("service", ""))
    if provider:  # the service Traefik routes to, by the name its logs carry
        selectors += ["{" + f"{key}={_quote(service)}" + "}" for key in ("service", "container")]
    if labels.get("namespace") and not labels.get("pod"):
        # A Kubernetes workload named by its Service, Deployment or app (kube-prometheus'
        # `service`, `job`): its pods' streams, whatever its controller calls them.
        selectors += _workload_pods(labels)
    if labels.get("pod") and labels.get("container"):
        # Where streams carry no pod label (Docker, Compose), the container's name finds them.
        selectors.append("{" + f"container={_quote(labels['container'])}" + ',pod=""}')
    # A host alert's subject is the host, not the exporter that reports it; a probe's is the
    # probed address, not the prober.
    app = labels.get("app") or labels.get("app_kubernetes_io_name")
    if app and own and own.startswith("{app="):  # Compose and Alloy call it the service
        selectors.append("{" + f"service={_quote(app)}" + "}")
    if (own and own.startswith("{job=") and scope(alert) != "host") or is_probe(alert):
        selectors += _service_selectors(labels.get("job", ""), instance)
    selectors += _container_named_by_instance(alert)
    prober = alert.labels.get("job", "")
    if prober and is_probe(alert):  # the prober may log why a probe failed (its debug lines)
        selectors.append("{" + f"job={_quote(prober)}" + "}")
    host_alert = scope(alert) == "host" or about_job(alert) or about_scrape(alert)
    if instance and host_alert:
        selectors.append("{" + f"instance={_quote(instance)}" + "}")
    # A rule that kept only the machine's name (by (nodename), a renamed instance).
    host = host_name(instance) if instance else host_label(labels)
    if about_node(alert):  # its kubelet and container runtime log in the node's journal
        host_alert, host = True, labels["node"]
    # Journal collectors file a host under its short name; node_exporter is often scraped by
    # the FQDN (web-3.prod.example.net:9100).
    names = list(dict.fromkeys([host, host.split(".")[0]] if is_name(host) else [host]))
    if host and host_alert:
        selectors += [
            "{" + f"{label}={_quote(name)}" + "}" for name in names for label in _HOST_STREAM_LABELS
        ]
    elif instance and is_name(host):
        # A service scraped or probed on a named machine: the kernel's lines there (a full
        # conntrack table, OOM kills, firewall drops, a link going down) and, on a VM, a
        # scraped service's systemd unit's journal (Alloy's `unit`, "kernel" for the kernel's
        # lines; a probe's job is the prober's).
        job = "" if is_probe(alert) else labels.get("job", "")
        units = ["kernel", f"{job}.service"] if is_name(job) else ["kernel"]
        selectors += [
            "{" + f"{label}={_quote(name)},unit={_quote(unit)}" + "}"
            for name in names
            for label in _HOST_STREAM_LABELS
            for unit in units
        ]
        if not is_probe(alert):
            # What configuration management changed on the machine (a rewritten resolv.conf,
            # a firewall rule, a removed file): in its own unit's journal, never the service's.
            selectors += [
                "{" + f"{label}={_quote(name)}" + "}" + CHANGE_FILTER
                for name in names[:1]
                for label in _HOST_STREAM_LABELS
            ]
        if is_probe(alert):
            # Which unit answers the probed port is unknown: the machine's failure lines, of
            # any unit (a service out of file descriptors, a crash at start-up).
            selectors += [
                "{" + f"{label}={_quote(name)}" + "}" + NEIGHBOUR_FILTER
                for name in names
                for label in _HOST_STREAM_LABELS
            ]
    if unit := _unit_of_job(alert):
        # Scraped by address only: the job's systemd unit, on whichever machine runs it.
        selectors.append("{" + f"unit={_quote(unit)}" + "}")
    if labels.get("pod") and is_name(node := labels.get("node", "")):
        # A pod's alert that names its node: the node's kubelet and container runtime tell
        # why it was evicted, killed, could not pull its image or failed its probes.
        selectors += [
            "{" + f"{label}={_quote(node)},unit=~{_quote(_NODE_AGENTS)}" + "}"
            for label in _HOST_STREAM_LABELS
        ]
    return list(dict.fromkeys(selectors))


# The node agents' journal units (kubeadm's kubelet and containerd, k3s, CRI-O).
_NODE_AGENTS = r"kubelet\.service|containerd\.service|crio\.service|k3s(?:-agent)?\.service"


def _unit_of_job(alert: Alert) -> str:
    """``<job>.service`` for a service scraped by an IP address (its machine unknown by name),
    or ""."""
    labels = subject_labels(alert)
    job, instance = labels.get("job", ""), labels.get("instance", "")
    if not instance or is_probe(alert) or scope(alert) == "host" or not is_name(job):
        return ""
    return "" if is_name(host_name(instance)) else f"{job}.service"


def unit_machine_selectors(alert: Alert, streams: list[dict[str, str]]) -> list[str]:
    """Once the job's unit was found on one machine (its journal's ``host``): that machine's
    kernel lines (a renamed NIC, a link down, drops) and its other units' failures."""
    unit = _unit_of_job(alert)
    hosts = {s.get("host", "") for s in streams if unit and s.get("unit") == unit} - {""}
    if len(hosts) != 1:
        return []
    host = _quote(hosts.pop())
    return [
        "{" + f"host={host},unit=" + _quote("kernel") + "}",
        "{" + f"host={host},unit!={_quote(unit)}" + "}" + NEIGHBOUR_FILTER,
    ]


# Traefik names its services <name>@<provider> (cart-api@docker, api@file,
# shop-web-80@kubernetes, auth@kubernetescrd).
_TRAEFIK_SERVICE = re.compile(
    r"^([\w.-]+)@(docker|swarm|file|kubernetes\w*|consul\w*|ecs|nomad|http)$"
)


def _traefik_service(value: str) -> tuple[str, str]:
    """(name, provider) of a Traefik service label, or (value, "")."""
    found = _TRAEFIK_SERVICE.match(value)
    return (found.group(1), found.group(2)) if found else (value, "")


def _service_selectors(job: str, instance: str) -> list[str]:
    """Container streams of a subject known only by its scrape job and address.

    Alloy files container logs under the service (`service`), never a scrape job, and on a
    Compose or Docker network the scrape target's host name is the service's alias: an alert on
    `job="analyzer", instance="analyzer:8080"` finds its logs under `{service="analyzer"}`.
    """
    names = [job, host_name(instance)] if instance else [job]
    if "://" in instance:  # a probed URL: the service is often its host's first name
        names.append(host_name(instance).split(".")[0])
    return ["{" + f"service={_quote(name)}" + "}" for name in dict.fromkeys(names) if is_name(name)]


def _container_named_by_instance(alert: Alert) -> list[str]:
    """On a Docker network Prometheus scrapes a container by its name (`instance="ledger:8080"`):
    that container's own streams, whatever service or job label the alert carries."""
    instance = subject_labels(alert).get("instance", "")
    host = host_name(instance) if instance and "://" not in instance else ""
    if not is_name(host) or scope(alert) == "host" or "." in host:
        return []
    return ["{" + f"container={_quote(host)}" + "}"]


def _promql(alert: Alert) -> str:
    """The alert's PromQL expression, or "" (none, or a Loki ruler's LogQL)."""
    expr = alert_expression(alert)
    return "" if not expr or is_logql(expr) else expr


def about_node(alert: Alert) -> bool:
    """A Kubernetes node's own condition (NotReady, disk or memory pressure), not a pod's:
    kube-state-metrics' ``kube_node_*`` series with a ``node`` label."""
    labels = subject_labels(alert)
    expr = _promql(alert)
    return (
        bool(labels.get("node"))
        and not labels.get("pod")
        and any(m.startswith("kube_node_") for m in metric_names(expr))
    )


# An exporter's view of whether its datastore answers (pg_up, mysql_up, redis_up...).
_EXPORTER_UP = re.compile(r"^[a-z][a-z0-9]*_up$")


def about_scrape(alert: Alert) -> bool:
    """The alert's expression is a scrape target's health (`up == 0`) or an exporter's view of
    its datastore (`pg_up == 0`): why a target stopped answering is often only in its host's
    journal (the exporter's unit restarted on another address, a firewall rule, the host
    rebooting, the database's own unit under a name no label gives), not in the target's
    own streams."""
    expr = _promql(alert)
    return bool(expr) and any(m == "up" or _EXPORTER_UP.match(m) for m in metric_names(expr))


def about_job(alert: Alert) -> bool:
    """The alert's expression measures a scheduled job (its last success, a failed unit)."""
    expr = _promql(alert)
    if not expr:
        return False
    return any(_JOB_METRICS.search(m) for m in metric_names(expr)) or bool(
        re.search(STALE_OUTPUT, expr)
    )


def log_volume_query(alert: Alert) -> str:
    """The bytes each container logged per 15 minutes, for a free-space alert on a filesystem
    that holds container logs; "" for any other alert."""
    mountpoint = alert.labels.get("mountpoint", "")
    about_space = any(
        name.startswith("node_filesystem") for name in metric_names(alert_expression(alert))
    )
    if not about_space or not _CONTAINER_LOG_FILESYSTEM.match(mountpoint.rstrip("/") or "/"):
        return ""
    return LOG_VOLUME_QUERY


def lock_wait_selector(alert: Alert, own: str) -> str:
    """The streams a service's alert reads lock waits from (its neighbours'), or "" for a
    host's, a job's or a scrape's alert. ``own`` is the subject's selector: its streams are
    read already."""
    if scope(alert) == "host" or about_job(alert) or about_scrape(alert):
        return ""
    namespace = subject_labels(alert).get("namespace", "")
    matchers = [f"namespace={_quote(namespace)}" if namespace else 'service=~".+"']
    own_matcher = re.fullmatch(r'\{(\w+)=("(?:[^"\\]|\\.)*")\}', own)
    if own_matcher:
        matchers.append(f"{own_matcher.group(1)}!={own_matcher.group(2)}")
    return "{" + ",".join(matchers) + "}" + LOCK_WAIT_FILTER


# kafka_exporter's and KMinion's labels of a consumer group's lag.
_GROUP_LABELS = ("consumergroup", "group_id", "group")
MAX_QUEUE_MENTION_LINES = 1000


def queue_mention_selector(alert: Alert) -> str:
    """For a consumer group's lag or a RabbitMQ queue's: the lines of any stream that name the
    group, the queue or the lagging topic-partition ("shipments.v1-3@1882211",
    "groupId=shipment-events"), or "".

    The consumer is often named otherwise than its group, and the producer of what it cannot
    process logs the partition too: one bounded read finds both, each line named by its
    stream."""
    labels = subject_labels(alert)
    group = next((labels[k] for k in _GROUP_LABELS if labels.get(k)), "")
    topic, partition = labels.get("topic", ""), labels.get("partition", "")
    # A RabbitMQ queue (its exporter's `queue`): its consumers log its name when they attach.
    queue = labels.get("queue", "") if "rabbitmq" in alert_expression(alert) else ""
    words = [_literal(name) for name in (group, queue) if name]
    if topic and partition.isdigit():
        words += [
            _literal(f"{topic}-{partition}") + r"\b",
            _literal(topic) + r".{0,60}partition[=: ]*" + partition + r"\b",
        ]
    elif topic:
        words.append(_literal(topic))
    if not words:
        return ""
    return '{service=~".+"} |~ ' + _quote("(?i)" + "|".join(words))


# Every stream, as each collector labels it: Compose and Alloy's Docker discovery file a
# container under `service`; Kubernetes under `namespace` (no `service` label there).
_ANY_STREAM = ('{service=~".+"}', '{namespace=~".+"}')


def queue_mention_selectors(alert: Alert) -> list[str]:
    """``queue_mention_selector`` over the streams of Docker hosts and of Kubernetes."""
    return _on_any_stream(queue_mention_selector(alert))


# The subject's names other machines' and services' lines may carry: a load balancer marking
# a backend down, a backup server failing to reach it, a cron job on another box acting on it.
_MENTIONED_LABELS = ("name", "container")
_MIN_MENTIONED_CHARS = 4
MAX_SUBJECT_MENTION_LINES = 500


def subject_mention_selectors(alert: Alert) -> list[str]:
    """Reads of every stream (journals by machine, Docker's and Kubernetes' by collector) for
    the lines that name the subject's machine or container, or []: another machine's lines
    about it (its NFS server, its backup host) share no label with it."""
    if queue_mention_selector(alert):
        return []  # its name is read already, by the queue's mentions
    labels = subject_labels(alert)
    names = [labels.get(k, "") for k in _MENTIONED_LABELS]
    if labels.get("instance"):
        names.append(host_name(labels["instance"]))
    names = list(dict.fromkeys(n for n in names if len(n) >= _MIN_MENTIONED_CHARS))
    if not names:
        return []
    naming = " |~ " + _quote("(?i)" + "|".join(r"\b" + _literal(n) + r"\b" for n in names))
    # Other machines' journals: the subject's own is read already, and its syslog-style lines
    # carrying its host name would fill the read's limit before any other machine's.
    own_host = host_name(labels["instance"]) if labels.get("instance") else ""
    others = {
        label: f",{label}!={_quote(own_host)}" if own_host else "" for label in _HOST_STREAM_LABELS
    }
    journals = ["{" + f'{label}=~".+"{other}' + "}" + naming for label, other in others.items()]
    if is_probe(alert):
        return journals  # the services' lines naming its host are the probe's neighbours
    return journals + _on_any_stream(_ANY_STREAM[0] + naming)


def _on_any_stream(selector: str) -> list[str]:
    """A read of every Docker or Compose stream (``{service=~".+"} |...``) as one read per
    collector's labelling, or [] for ""."""
    if not selector.startswith(_ANY_STREAM[0]):
        return [selector] if selector else []
    line_filter = selector.removeprefix(_ANY_STREAM[0])
    return [stream + line_filter for stream in _ANY_STREAM]


# Proxies, load balancers and gateways: their 5xx and timeouts are their upstreams' failures.
_PROXY = re.compile(r"nginx|haproxy|envoy|traefik|caddy|proxy|gateway|ingress|\bedge\b|\blb\b")
_PROXY_METRICS = ("nginx_", "haproxy_", "envoy_", "traefik_", "caddy_")
# Labels under which collectors file a deployment's group of services.
_STACK_LABELS = ("stack", "compose_project", "namespace")
# Failures, and the stalls behind a neighbour's slowness (collector pauses, swapping).
# Configuration management's lines that say what it changed: Puppet's resource events,
# Ansible's module invocations and recap, Chef's and Salt's runs (the "change" log tag).
CHANGE_FILTER = (
    ' |~ "(?i)content changed|ensure changed|ensure removed|ensure: (absent|removed|created)'
    "|ansible-[a-z_.]+ Invoked with|PLAY RECAP|Applied catalog in|Chef (Infra )?Client finished"
    '|salt-minion.*(changed|Executing state)"'
)
NEIGHBOUR_FILTER = (
    ' |~ "(?i)error|exception|fatal|panic|refused|timed? ?out|too many|not available'
    "|exhausted|denied|fail|leak|unavailable|reset by peer|pause (?:full|young)|full gc"
    # A neighbour's start-up line naming its version: a release just before its errors.
    r"|gc overhead|\\b\\d+\\.\\d+\\.\\d+\\b.{0,60}\\bstart(?:ing|ed)\\b"
    r'|\\bstart(?:ing|ed)\\b.{0,60}\\bv?\\d+\\.\\d+\\.\\d+\\b"'
)
MAX_NEIGHBOUR_LINES = 1000

# A connection to a dependency that times out or finds no route: its packets may be dropped
# by a firewall on the dependency's machine, which only that machine's kernel logs.
_CONNECT_FAILED = re.compile(
    r"connect(?:ion)? timed out|timed out (?:while )?connecting|i/o timeout|no route to host"
    r"|connect: connection timed out|ETIMEDOUT|EHOSTUNREACH"
    # Elasticsearch's and Netty's transport: "[es-3][10.40.0.13:9300] connect_timeout[30s]".
    r"|connect_timeout|ConnectTimeout(?:Exception|Error)?|connection timeout",
    re.I,
)
_ENDPOINT = re.compile(
    r"(?<![\w.-])(?:[A-Za-z][\w-]*(?:\.[\w-]+)*|\d{1,3}(?:\.\d{1,3}){3}):(\d{2,5})\b"
)
MAX_PEER_PORTS = 3
MAX_PEER_DROP_LINES = 1000
# Lines that removed a path the subject could not find, read over ``LAST_RUN_LOOKBACK``.
MAX_REMOVAL_LINES = 100
# A disk alert on a machine: its disks' failure lines over ``LAST_RUN_LOOKBACK`` (an array
# member that failed an hour before the reads got slow, smartd's pending sectors).
DISK_FAILURE_FILTER = (
    ' |~ "(?i)disk failure on|fail(?:spare)? event detected|degradedarray|medium error'
    '|unrecovered read error|currently unreadable|offline uncorrectable"'
)
MAX_DISK_FAILURE_LINES = 50
# logrotate failing (its unit's journal, its own "error:" lines): the logs grow unrotated.
ROTATION_FAILURE_FILTER = ' |~ "(?i)logrotate.*(fail|error|status=[1-9])|error: .*rotat"'


def peer_drop_selector(reads: list[list[tuple[int, str]] | str]) -> str:
    """The kernel's drop lines, on any machine, for the ports the subject's connections time
    out to ("Connect timed out (host db-2.internal:5432)"), or "". A firewall changed on the
    dependency's machine logs there ([UFW BLOCK] ... DPT=5432), not here."""
    ports: list[str] = []
    for read in reads:
        if isinstance(read, str):
            continue
        for _, text in read:
            if not _CONNECT_FAILED.search(text):
                continue
            for match in _ENDPOINT.finditer(text):
                if match.group(1) not in ports and int(match.group(1)) <= 65535:
                    ports.append(match.group(1))
        if len(ports) >= MAX_PEER_PORTS:
            break
    if not ports:
        return ""
    alternatives = "|".join(ports[:MAX_PEER_PORTS])
    return '{unit="kernel"} |~ ' + _quote(f"DPT=(?:{alternatives})\\b")


# A failing call to a dependency that names it by host (dial tcp ledger-db:5432: connection
# refused, https://auth.internal/token: 503): the dependency's own lines tell its side.
_DEPENDENCY_FAILED = re.compile(
    r"refused|timed? ?out|timeout|reset by peer|unavailable|unreachable|no route|broken pipe"
    r"|\bEOF\b|handshake|x509|certificate|could not connect|can(?:no|')t connect"
    r"|failed to connect|connection (?:error|closed|aborted)|no such host|\b50[0-4]\b"
    r"|not responding",
    re.I,
)
# A file server the kernel names as it stops answering (nfs: server nas-2 not responding).
_SERVER_NOT_RESPONDING = re.compile(r"\bserver ([A-Za-z][\w.-]*) not responding", re.I)
_URL_HOST = re.compile(r"\b[a-z][a-z0-9+.-]*://(?:[^@/\s]+@)?([A-Za-z][\w.-]*)", re.I)
_ENDPOINT_HOST = re.compile(r"(?<![\w.\"'-])([A-Za-z][\w-]*(?:\.[\w-]+)*):\d{2,5}\b")
# Words a "word:number" pair is made of that name no host (status:503, line:42).
_NOT_HOSTS = re.compile(
    r"(?:status|code|line|port|time|error|err|https?|level|id|pid|timeout|latency|ms|at"
    r"|localhost|attempt|retry|try)"
)
# A stack trace's "file.go:123" names source code, not a host.
_SOURCE_FILE = re.compile(r"\.(?:go|java|kt|scala|py|rb|js|ts|c|cc|cpp|h|rs|php|cs|ex|erl)$")
# Private suffixes whose first label is the name a container or journal carries
# (ledger.internal -> ledger); a public name's first label ("api", "www") says nothing.
_PRIVATE_SUFFIX = re.compile(r"\.(?:internal|local|lan|corp|svc|intra|private|home\.arpa)$")
MAX_DEPENDENCIES = 2


def dependency_selectors(alert: Alert, reads: list[list[tuple[int, str]] | str]) -> list[str]:
    """The failure lines of the (at most two) dependencies the subject's failing calls name
    most, by the names a stream may carry (a container, a Compose service, a machine's
    journal), or []: a refused or timed-out call is told from its other side too."""
    labels = subject_labels(alert)
    own = {labels.get(k, "").lower() for k in ("job", "service", "container", "name", "app")}
    if labels.get("instance"):
        own.add(host_name(labels["instance"]).lower())
    counts: dict[str, int] = {}
    for read in reads:
        for _, text in read if not isinstance(read, str) else ():
            if not _DEPENDENCY_FAILED.search(text):
                continue
            hosts = {m.group(1) for m in _URL_HOST.finditer(text)}
            hosts |= {m.group(1) for m in _ENDPOINT_HOST.finditer(text)}
            hosts |= {m.group(1) for m in _SERVER_NOT_RESPONDING.finditer(text)}
            for host in hosts:
                name = host.lower().rstrip(".")
                if name in own or _NOT_HOSTS.fullmatch(name) or _SOURCE_FILE.search(name):
                    continue
                if is_name(name):
                    counts[name] = counts.get(name, 0) + 1
    peers = sorted(counts, key=lambda h: -counts[h])[:MAX_DEPENDENCIES]
    names = list(
        dict.fromkeys(
            n
            for h in peers
            for n in ((h, h.split(".")[0]) if _PRIVATE_SUFFIX.search(h) or "." not in h else (h,))
            if n not in own
        )
    )
    if not names:
        return []
    pattern = _quote("|".join(_literal(n) for n in names))
    return [
        "{" + f"{label}=~{pattern}" + "}" + NEIGHBOUR_FILTER
        for label in ("container", "service", *_HOST_STREAM_LABELS)
    ]


def neighbour_selector(alert: Alert, own: list[dict[str, str]]) -> str:
    """The failure lines of the subject's neighbours, or "": the other services in a proxy's
    stack, or the other units of the machine whose journal unit the alert is about (a job on
    the same host competing for its ports, memory or quota), or, for a probe of a URL, the
    failure lines that name its host in any stream (a proxy's error lines carry
    `server: shop.example.com`)."""
    if is_probe(alert):
        domain = host_name(subject_labels(alert).get("instance", ""))
        if "." not in domain or not is_name(domain):
            return ""
        return '{service=~".+"} |= ' + _quote(domain) + NEIGHBOUR_FILTER
    if scope(alert) == "host" or about_job(alert) or about_scrape(alert):
        return ""
    hosts = {s.get("host", "") for s in own}
    units = {s.get("unit", "") for s in own}
    if len(hosts) == 1 and len(units) == 1 and "" not in hosts | units and "kernel" not in units:
        host, unit = hosts.pop(), units.pop()
        return "{" + f"host={_quote(host)},unit!={_quote(unit)}" + "}" + NEIGHBOUR_FILTER
    labels = subject_labels(alert)
    names = " ".join(labels.get(k, "") for k in ("container", "service", "job", "name", "app"))
    metrics = alert_expression(alert)
    # A broker's backlog: its consumers usually run beside it, and may never name the queue.
    broker = bool(queue_mention_selector(alert))
    if not (broker or _PROXY.search(names) or any(m in metrics for m in _PROXY_METRICS)):
        return ""
    return stack_neighbours(own)


def schema_change_selectors(reads: list[list[tuple[int, str]] | str]) -> list[str]:
    """When the subject's queries name a column or table the database lacks, the lines in
    any stream (the database's journal, another service's migration tool) that changed the
    schema: DDL naming it, a migration's run. [] otherwise."""
    for read in reads:
        for _, text in read if not isinstance(read, str) else ():
            if name := missing_object(text):
                streams = ['{host=~".+"}', *_ANY_STREAM]
                return [stream + schema_change_filter(name) for stream in streams]
    return []


def stack_neighbours(own: list[dict[str, str]]) -> str:
    """The failure lines of the other services in the subject's stack (a Compose project, a
    namespace), or "" when its streams name no one stack."""
    for key in _STACK_LABELS:
        values = {s.get(key, "") for s in own}
        if len(values) == 1 and (value := values.pop()):
            services = sorted({s["service"] for s in own if s.get("service")})
            others = [f"service!={_quote(name)}" for name in services] or ['service=~".+"']
            return "{" + ",".join([f"{key}={_quote(value)}", *others]) + "}" + NEIGHBOUR_FILTER
    return ""


# An IPv4 address: a call that fails toward one names no container or service to read.
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
# A connection that failed (not a status code: an access log's 502 beside a client's address
# is no call of the subject's).
_CONNECTION_FAILED = re.compile(
    r"refused|timed? ?out|reset by peer|unreachable|no route|broken pipe|could not connect"
    r"|can(?:no|')t connect|failed to connect|connection (?:error|closed|aborted)"
    r"|server closed the connection",
    re.I,
)


def calls_fail_by_address(reads: list[list[tuple[int, str]] | str]) -> bool:
    """Whether the subject's failing calls name their dependency by address only
    (`connection to server at "172.23.0.4", port 5432 failed: Connection refused`)."""
    return any(
        _CONNECTION_FAILED.search(text) and _IPV4.search(text)
        for read in reads
        if not isinstance(read, str)
        for _, text in read
    )


def disk_failure_selector(alert: Alert) -> str:
    """For an alert on a machine's disks or arrays, that machine's disk-failure lines; for a
    free-space alert, its log rotation's failures (what should keep the logs small); else
    ""."""
    instance = subject_labels(alert).get("instance", "")
    metrics = metric_names(alert_expression(alert))
    about_disks = any(m.startswith(("node_disk_", "node_md_")) for m in metrics)
    about_space = any(m.startswith("node_filesystem_") for m in metrics)
    if not instance or not (about_disks or about_space) or scope(alert) != "host":
        return ""
    wanted = DISK_FAILURE_FILTER if about_disks else ROTATION_FAILURE_FILTER
    return "{" + f"host={_quote(host_name(instance))}" + "}" + wanted


def missing_path_selector(
    reads: list[list[tuple[int, str]] | str], own: list[dict[str, str]]
) -> str:
    """The removal lines that name a path the subject could not find ("No such file or
    directory"), on the subject's machine: what pruned or deleted it, however long before.
    "" when no line names a missing path or the streams name no one machine."""
    hosts = {s.get("host", "") for s in own} - {""}
    if len(hosts) != 1:
        return ""
    for read in reads:
        for _, line in read if not isinstance(read, str) else ():
            if path := missing_path(line):
                # The highest directory the engine matches, so a removal of it counts too.
                top = ancestors(path)[-1]
                return "{" + f"host={_quote(hosts.pop())}" + "} |= " + _quote(top) + REMOVAL_FILTER
    return ""


# "No space left on device" as Python's OSError, Go's and the C library say it.
NO_SPACE = re.compile(r"no space left on device|\bENOSPC\b|\[Errno 28\]", re.I)
NO_SPACE_FILTER = ' |~ "(?i)no space left on device|ENOSPC"'
MAX_NO_SPACE_LINES = 200


def full_disk_selector(
    alert: Alert, reads: list[list[tuple[int, str]] | str], own: list[dict[str, str]]
) -> str:
    """When the subject could not write for lack of space, every unit's "No space left on
    device" lines on its machine (its streams' host, else its instance's host name): which
    writer failed first (what likely filled the disk) is in another unit's journal. ""
    otherwise, or when no one machine is known."""
    hosts = {s.get("host", "") for s in own} - {""}
    instance = subject_labels(alert).get("instance", "")
    if not hosts and instance and is_name(host_name(instance)):
        hosts = {host_name(instance).split(".")[0]}
    if len(hosts) != 1:
        return ""
    for read in reads:
        for _, line in read if not isinstance(read, str) else ():
            if NO_SPACE.search(line):
                return "{" + f"host={_quote(hosts.pop())}" + "}" + NO_SPACE_FILTER
    return ""


MAX_MOUNT_LINES = 500
# Templates kept from a mined line-filtered read (a mount's writers, a recovery's acts).
MAX_MINED_TEMPLATES = 5


def mount_path_selector(alert: Alert) -> str:
    """For a free-space alert on a machine's mount other than /, the machine's lines that
    name a path under it over the last day: what writes there (heap dumps, a cache, an
    export) is usually in another unit's journal than the alert's subject. "" otherwise."""
    labels = subject_labels(alert)
    mount, instance = labels.get("mountpoint", ""), labels.get("instance", "")
    metrics = metric_names(alert_expression(alert))
    about_space = any(m.startswith("node_filesystem_") for m in metrics)
    host = host_name(instance) if instance else ""
    if not about_space or mount in ("", "/") or not mount.startswith("/") or not is_name(host):
        return ""
    return "{" + f"host={_quote(host.split('.')[0])}" + "} |= " + _quote(mount.rstrip("/") + "/")


def _literal(text: str) -> str:
    """``text`` as a regular expression that matches it literally (RE2 and Python alike)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", text)


def windows(alert: Alert, settings: Settings) -> tuple[Window, Window]:
    """(baseline, recent): logs *around* startsAt, even for an alert analysed hours later."""
    window = alert_window(alert, settings)
    span = timedelta(minutes=settings.evidence_window_minutes)
    starts = window.start + span
    lead = min(RECENT_LEAD, span / 2)
    recent = Window(
        starts - lead, max(starts - lead + timedelta(seconds=1), min(window.end, starts + span))
    )
    baseline = Window(starts - lead - LOG_BASELINE, starts - lead)
    return baseline, recent


def _lead_up(recent: Window) -> list[Window]:
    """The recent window as the lead-up to startsAt and what came after, read separately.

    Reads go newest first with a line limit: in one read of a chatty stream, the lines after
    the start (a resolved alert's recent window runs a full window past it) would crowd out
    the lead-up, where the cause is logged.
    """
    cut = recent.start + RECENT_LEAD + LEAD_UP_AFTER_START
    if recent.end <= cut:
        return [recent]
    return [Window(recent.start, cut), Window(cut, recent.end)]


async def collect(alert: Alert, settings: Settings, http: httpx.AsyncClient) -> list[EvidenceItem]:
    selectors = stream_selectors(alert)
    expr = alert_expression(alert)
    logql = expr if is_logql(expr) else ""
    if not settings.loki_url:
        query = selectors[0] if selectors else logql
        return [unavailable("loki-1", "loki", query, "AIOPS_LOKI_URL is not set")]
    if not selectors:
        return [
            EvidenceItem(
                id="loki-1",
                source="loki",
                status="empty",
                detail="no container, name, compose_service, service_name or job label "
                "to select log streams by",
            )
        ]
    baseline, recent = windows(alert, settings)
    url = settings.loki_url.rstrip("/") + "/loki/api/v1/query_range"
    timeout = settings.evidence_timeout_seconds
    # The subject's own streams in two windows, so a noisy recent window cannot crowd out the
    # baseline; the host's extra streams (quieter system logs) in one read spanning both.
    span = Window(baseline.start, recent.end)
    # (read, its line limit, whether it reaches into the baseline)
    own_streams: list[dict[str, str]] = []
    planned = [
        (_read(url, selectors[0], w, timeout, http, streams=own_streams), MAX_FETCH_LINES, False)
        for w in _lead_up(recent)
    ]
    planned.append((_read(url, selectors[0], baseline, timeout, http), MAX_FETCH_LINES, True))
    # The further selectors' streams: where a broker alert's own selector finds none, its
    # `service` streams name its stack.
    other_streams: list[dict[str, str]] = []
    planned += [
        (
            _read(url, s, span, timeout, http, 2 * MAX_FETCH_LINES, streams=other_streams),
            2 * MAX_FETCH_LINES,
            True,
        )
        for s in selectors[1:]
    ]
    # Which stream set each read is of (the subject's own reads are one), for its coverage.
    streams = [0] * (len(planned) - len(selectors) + 1) + list(range(1, len(selectors)))
    # The reads filtered to some lines (lock waits, a group's mentions, neighbours' failures)
    # after the selectors': they say nothing about when their streams began.
    lock_key, mention_key, neighbour_key, peer_key, full_key, follow_up_key, stack_key = (
        len(selectors) + k for k in range(7)
    )
    if lock_waits := lock_wait_selector(alert, selectors[0]):
        limit = MAX_LOCK_WAIT_LINES
        planned.append(
            (_read(url, lock_waits, span, timeout, http, limit, named=True), limit, True)
        )
        streams.append(lock_key)
    for mentions in queue_mention_selectors(alert):
        limit = MAX_QUEUE_MENTION_LINES
        planned.append((_read(url, mentions, span, timeout, http, limit, named=True), limit, True))
        streams.append(mention_key)
    for mentions in subject_mention_selectors(alert):
        limit = MAX_SUBJECT_MENTION_LINES
        planned.append((_read(url, mentions, span, timeout, http, limit, named=True), limit, True))
        streams.append(mention_key)
    # A probe's neighbours are whatever names its host: no need to wait for its own streams.
    mentioning = neighbour_selector(alert, []) if is_probe(alert) else ""
    # In Kubernetes' streams too (an ingress controller's lines name the host it serves).
    for reading in _on_any_stream(mentioning):
        limit = MAX_NEIGHBOUR_LINES
        read = _read(url, reading, span, timeout, http, limit, named=True)
        planned.append((read, limit, True))
        streams.append(neighbour_key)
    # A job alert: the failure lines of its last runs, however long before the alert.
    last_runs = Window(recent.start - LAST_RUN_LOOKBACK, recent.start)
    job_alert = about_job(alert)
    job_reads = len(selectors) if job_alert else 0
    if job_alert:
        planned += [
            (
                _read(url, s + LAST_RUN_FILTER, last_runs, timeout, http, MAX_LAST_RUN_LINES),
                MAX_LAST_RUN_LINES,
                False,
            )
            for s in selectors
        ]
    if disks := disk_failure_selector(alert):
        planned.append(
            (
                _read(url, disks, last_runs, timeout, http, MAX_DISK_FAILURE_LINES),
                MAX_DISK_FAILURE_LINES,
                False,
            )
        )
        job_reads += 1
    if domain := certificate_domain(alert):
        renewals = '{job=~".+"} |= ' + _quote(domain) + RENEWAL_FILTER
        planned.append(
            (
                _read(url, renewals, last_runs, timeout, http, MAX_LAST_RUN_LINES),
                MAX_LAST_RUN_LINES,
                False,
            )
        )
        job_reads += 1
    volume_window = Window(recent.end - LOG_VOLUME_SPAN, recent.end)
    gathered, items, volume, mount, recovery = await asyncio.gather(
        asyncio.gather(*(read for read, _, _ in planned)),
        _expression(logql, url, recent, timeout, http),
        _log_volume(log_volume_query(alert), url, volume_window, timeout, http),
        _mount_writes(mount_path_selector(alert), url, last_runs, timeout, http),
        _recovery_acts(alert, selectors, url, timeout, http),
    )
    items += volume + mount + recovery
    results = list(gathered)
    # (line limit, whether the read reaches into the baseline) of each result.
    shapes = [(limit, spans) for _, limit, spans in planned]
    # A further selector's read spans both windows; a chatty stream's recent lines alone may
    # fill it. Its baseline is then read on its own, or none of its templates could be new.
    own_reads = len(_lead_up(recent)) + 1
    refills = [
        index
        for index in range(own_reads, own_reads + len(selectors) - 1)
        if _filled_by_recent(results[index], shapes[index][0], recent)
    ]
    # The other neighbours' failures (a proxy's stack, a unit's machine), read once the
    # subject's own streams said which stack or machine they belong to.
    broker = bool(queue_mention_selector(alert))
    known = own_streams or (other_streams if broker else [])
    neighbours = "" if mentioning else neighbour_selector(alert, known)
    # The other side of the subject's failing calls, and the machine its unit was found on.
    follow_ups = dependency_selectors(alert, results) + unit_machine_selectors(alert, other_streams)
    # The reads of the subject's own selectors: what it logged itself.
    subject_reads = results[: own_reads + len(selectors) - 1]
    follow_ups += schema_change_selectors(subject_reads)
    if not (neighbours or mentioning or follow_ups) and calls_fail_by_address(subject_reads):
        # Calls to an address (Docker's or Kubernetes' network): the dependency is most
        # likely a sibling in the subject's own stack, whose failure lines say why.
        neighbours = stack_neighbours(own_streams)
    # A broker's neighbours are its consumers and publishers: also read whole (each window on
    # its own, like the subject's streams), since consumers that slowed down log what they
    # wait on in lines no failure filter catches.
    stack = neighbours.removesuffix(NEIGHBOUR_FILTER) if broker and neighbours else ""
    second = [_read(url, selectors[i - own_reads + 1], baseline, timeout, http) for i in refills]
    if neighbours:
        second.append(_read(url, neighbours, span, timeout, http, MAX_NEIGHBOUR_LINES, named=True))
    second += [
        _read(url, f, span, timeout, http, MAX_NEIGHBOUR_LINES, named=True) for f in follow_ups
    ]
    peers = peer_drop_selector(results)
    if peers:
        second.append(_read(url, peers, span, timeout, http, MAX_PEER_DROP_LINES, named=True))
    full = full_disk_selector(alert, results, own_streams)
    if full.split(" |")[0] in selectors:  # the machine's streams were read whole already
        full = ""
    if full:
        second.append(_read(url, full, span, timeout, http, MAX_NO_SPACE_LINES, named=True))
    # What removed a path the subject could not find: read like a job's last runs (its lines
    # count as recent), since a prune may have run hours before the failure it causes.
    removals = missing_path_selector(results, own_streams)
    if removals:
        day = Window(recent.start - LAST_RUN_LOOKBACK, recent.end)
        second.append(_read(url, removals, day, timeout, http, MAX_REMOVAL_LINES, named=True))
    if stack:
        second += [_read(url, stack, w, timeout, http, named=True) for w in (recent, baseline)]
    found = list(await asyncio.gather(*second)) if second else []
    stack_reads = [found.pop(), found.pop()][::-1] if stack else []
    removed = found.pop() if removals else None
    no_space = found.pop() if full else None
    peer_drops = found.pop() if peers else None
    follow_up_reads = [found.pop() for _ in follow_ups][::-1]
    at = len(results) - job_reads  # before the job reads, which come last
    for index, its_baseline in zip(refills, found, strict=False):
        shapes[index] = (shapes[index][0], False)  # its lines are recent ones only
        results.insert(at, its_baseline)
        shapes.insert(at, (MAX_FETCH_LINES, True))
        streams.insert(at, streams[index])
        at += 1
    if mentioning:
        selectors = [*selectors, mentioning]
    # The second round's line-filtered reads, each spanning both windows, before the job reads.
    filtered_reads = [
        (found[-1] if neighbours else None, MAX_NEIGHBOUR_LINES, neighbour_key, neighbours),
        (peer_drops, MAX_PEER_DROP_LINES, peer_key, peers),
        (no_space, MAX_NO_SPACE_LINES, full_key, full),
        *(
            (read, MAX_NEIGHBOUR_LINES, follow_up_key, selector)
            for read, selector in zip(follow_up_reads, follow_ups, strict=True)
        ),
    ]
    for second_read, limit, key, selector in filtered_reads:
        if second_read is None:
            continue
        results.insert(at, second_read)
        shapes.insert(at, (limit, True))
        streams.insert(at, key)
        selectors = [*selectors, selector]
        at += 1
    # The stack's whole reads after the filtered ones (a line both found keeps the filtered
    # read's coverage); only the baseline's read tells where its streams' baseline is complete.
    for whole_read, spans in zip(stack_reads, (False, True), strict=False):
        results.insert(at, whole_read)
        shapes.insert(at, (MAX_FETCH_LINES, spans))
        streams.insert(at, stack_key)
        at += 1
    if stack:
        selectors = [*selectors, stack]
    if removed is not None:  # last, among the job reads: recent wherever it falls
        results.append(removed)
        shapes.append((MAX_REMOVAL_LINES, False))
        selectors = [*selectors, removals]
        job_reads += 1
    failures = [r for r in results if isinstance(r, str)]
    if len(failures) == len(results):
        return [unavailable("loki-1", "loki", selectors[0], failures[0]), *items]
    spanning = [
        (r, limit, stream)
        for r, (limit, spans), stream in zip(results, shapes, streams, strict=False)
        if spans  # the job reads come last and span nothing
    ]
    covered_from = _baseline_covered_from(baseline, [(r, limit) for r, limit, _ in spanning])
    filtered = {lock_key, mention_key, neighbour_key, peer_key, full_key, follow_up_key}
    floor, since_by_stream = _stream_coverage(baseline, spanning, filtered)
    seen: set[tuple[int, str]] = set()
    lines: list[LogLine] = []
    first_job_read = len(results) - job_reads
    # The last runs' failure lines first: they count as recent even inside the baseline.
    order = [*range(first_job_read, len(results)), *range(first_job_read)]
    deploy_from = (recent.start - DEPLOY_LEAD_IN).timestamp()
    # What the streams logged before that lead-in, by shape: a cause's line in the lead-in is
    # new only if nothing like it came earlier (a firewall's hourly drops are background).
    earlier = {
        _shape(text)
        for result in results
        if not isinstance(result, str)
        for ts_ns, text in result
        if ts_ns / 1e9 < deploy_from
    }
    # Only a read that reaches back before the lead-in can tell a first line from a routine one.
    reaching = {
        index
        for index, result in enumerate(results)
        if not isinstance(result, str) and any(ts_ns / 1e9 < deploy_from for ts_ns, _ in result)
    }
    for index in order:
        result = results[index]
        if isinstance(result, str):
            continue
        for ts_ns, text in result:
            if (ts_ns, text) in seen:
                continue
            seen.add((ts_ns, text))
            ts = ts_ns / 1e9
            last_run = index >= first_job_read
            recent_line = (
                last_run
                or recent.start.timestamp() <= ts
                or (
                    deploy_from <= ts
                    and bool(_DEPLOY_LINE.search(text) or _CHANGE_LINE.search(text))
                )
                or (
                    deploy_from <= ts
                    and index in reaching
                    and any(cause.search(text) for cause in (*_LEAD_IN_CAUSES, *_LEAD_IN_STARTS))
                    and not _STACK_FRAME.search(text)
                    and _shape(text) not in earlier
                )
            )
            since = since_by_stream.get(streams[index], floor) if index < len(streams) else floor
            if not recent_line and ts < since:
                continue  # older than what its stream's read covers: rates would be skewed
            # Where a last run's line was read: the ranking tells a job's failure (once or
            # twice a day) from a periodic line the filter also caught (an hourly denial).
            lookback = ""
            if last_run and ts < recent.start.timestamp():
                lookback = "old" if ts < covered_from else "base"
            lines.append(LogLine(ts, text, recent_line, lookback, since))
    query = " + ".join(selectors)
    if not any(line.recent for line in lines):
        return [
            EvidenceItem(
                id="loki-1",
                source="loki",
                query=query,
                status="empty",
                kind="log_templates",
                text=f"no log lines for {query} around the alert's start",
            ),
            *items,
        ]
    baseline_end = baseline.end.timestamp()
    ranked, telling = rank_with_lines(
        lines, recent.seconds, max(0.0, baseline_end - floor), baseline_end
    )
    # Past the cap, a new or surging line a cause tag names (a NIC renamed, a lookup failing)
    # is kept too: in a chatty window (a boot's kernel lines) it may rank below the cap.
    templates = (
        ranked[:MAX_TEMPLATES_KEPT]
        + [
            t
            for t in ranked[MAX_TEMPLATES_KEPT:]
            if t.novelty != "steady" and set(t.tags) - {"error", "crash"}
        ][:MAX_TAGGED_KEPT_PAST_CAP]
    )
    newest = _newest(lines, telling, settings.loki_max_lines)
    items[:0] = [
        EvidenceItem(
            id="loki-1",
            source="loki",
            query=query,
            kind="log_templates",
            title="log templates new or surging before the alert",
            window_start=recent.start.timestamp(),
            window_end=recent.end.timestamp(),
            templates=templates,
            text=render_templates(templates, lines, recent, baseline),
        ),
        EvidenceItem(
            id="loki-2",
            source="loki",
            query=query,
            kind="log_lines",
            title="newest log lines",
            text=f"{len(newest)} newest log lines around the alert (newest first):\n"
            + "\n".join(_render_line(ln.ts, ln.line) for ln in newest),
        ),
    ]
    return items


# A kernel stack trace's frame (nfs4_proc_getattr+0x7b/0x100 [nfsv4]): where a task hung,
# not what went wrong.
_STACK_FRAME = re.compile(r"\+0x[0-9a-f]+/0x[0-9a-f]+")


def _shape(line: str) -> str:
    """A line with its numbers (times, pids, addresses, counters) blanked."""
    return re.sub(r"\d+", "0", line)


def _filled_by_recent(result: list[tuple[int, str]] | str, limit: int, recent: Window) -> bool:
    """A read that returned its whole limit without reaching back before the recent window."""
    if isinstance(result, str) or len(result) < limit:
        return False
    return min(ts for ts, _ in result) / 1e9 >= recent.start.timestamp()


def _baseline_covered_from(
    baseline: Window, reads: list[tuple[list[tuple[int, str]] | str, int]]
) -> float:
    """Where the baseline's lines are complete, as a Unix time.

    Reads go newest first, so one that returned its whole limit reaches back only to its
    oldest line; before that, other streams' lines alone would make every template of the
    capped stream look new or surging. And nothing before the oldest line of any read (a
    stream that began, a retention limit) counts as baseline time: a rate over hours the logs
    do not cover would make every steady line look surging.
    """
    covered = baseline.start.timestamp()
    oldest: list[float] = []
    for result, limit in reads:
        if not isinstance(result, list) or not result:
            continue
        first = min(ts for ts, _ in result) / 1e9
        oldest.append(first)
        if len(result) >= limit:
            covered = max(covered, first)
    if oldest:
        covered = max(covered, min(oldest))
    return min(covered, baseline.end.timestamp())


def _stream_coverage(
    baseline: Window,
    reads: list[tuple[list[tuple[int, str]] | str, int, int]],
    filtered: set[int],
) -> tuple[float, dict[int, float]]:
    """Where each stream set's baseline is complete: (the floor for all, {stream: since}).

    Like ``_baseline_covered_from``, but a read that hit its limit shortens only its own
    streams' baseline. A chatty access log capped at its last hour must not make a kernel
    line logged every ten minutes for three hours look new.
    """
    floor = _baseline_covered_from(
        baseline, [(result, sys.maxsize) for result, _, stream in reads if stream not in filtered]
    )
    since: dict[int, float] = {}
    for result, limit, stream in reads:
        if isinstance(result, list) and result and len(result) >= limit:
            oldest = min(ts for ts, _ in result) / 1e9
            since[stream] = min(max(since.get(stream, floor), oldest), baseline.end.timestamp())
    return floor, since


def _newest(lines: list[LogLine], telling: list[list[LogLine]], limit: int) -> list[LogLine]:
    """The newest recent lines that are news, a few per template so that one repeated line
    cannot hide the others (a template shows one example, so its first line goes too);
    background (logged as often before the alert) only fills what is left."""
    picked: list[LogLine] = []
    for group in telling:
        ordered = sorted(group, key=lambda ln: ln.ts)
        picked += [ordered[0], *ordered[-PER_TEMPLATE_LINES:]] if len(ordered) > 1 else ordered
    picked = sorted(set(picked), key=lambda ln: ln.ts, reverse=True)[:limit]
    told = {id(ln) for group in telling for ln in group}
    chatter = [ln for ln in lines if ln.recent and id(ln) not in told]
    picked += sorted(chatter, key=lambda ln: ln.ts, reverse=True)[: limit - len(picked)]
    return sorted(picked, key=lambda ln: ln.ts, reverse=True)


async def _read(
    url: str,
    selector: str,
    window: Window,
    seconds: float,
    http: httpx.AsyncClient,
    limit: int = MAX_FETCH_LINES,
    *,
    named: bool = False,
    streams: list[dict[str, str]] | None = None,
) -> list[tuple[int, str]] | str:
    """(timestamp ns, line) of every stream, or why the read failed. ``named``: each line
    starts with its stream's name (a read across other services' streams). ``streams``
    receives the label sets of the streams read."""
    params = {
        "query": selector,
        "start": str(int(window.start.timestamp() * 1e9)),
        "end": str(int(window.end.timestamp() * 1e9)),
        "limit": str(limit),
        "direction": "backward",
    }
    try:
        async with asyncio.timeout(seconds):
            response = await http.get(url, params=params, timeout=seconds)
            body = response.json() if "json" in response.headers.get("content-type", "") else None
    except Exception as exc:
        return f"loki {describe_error(exc)}"
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        return f"loki query failed: {error or f'HTTP {response.status_code}'}"
    result = (body.get("data") or {}).get("result") or []
    if streams is not None:
        streams += [
            {str(k): str(v) for k, v in s["stream"].items()}
            for s in result
            if isinstance(s, dict) and isinstance(s.get("stream"), dict)
        ]
    return _lines(result, named=named)


async def _matrix(
    logql: str, url: str, window: Window, step: int, seconds: float, http: httpx.AsyncClient
) -> list[Any] | str | None:
    """A LogQL metric query's series over ``window``: the matrix's result, None when Loki
    returned no series, or why the request failed."""
    params = {
        "query": logql,
        "start": str(int(window.start.timestamp() * 1e9)),
        "end": str(int(window.end.timestamp() * 1e9)),
        "step": str(step),
    }
    try:
        async with asyncio.timeout(seconds):
            response = await http.get(url, params=params, timeout=seconds)
            body = response.json() if "json" in response.headers.get("content-type", "") else None
    except Exception as exc:
        return f"loki {describe_error(exc)}"
    data = body.get("data") if isinstance(body, dict) else None
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not result:
        return None
    return list(result)


async def _expression(
    logql: str, url: str, window: Window, seconds: float, http: httpx.AsyncClient
) -> list[EvidenceItem]:
    """A Loki ruler alert's own LogQL, as a metric query over the recent window."""
    if not logql:
        return []
    result = await _matrix(logql, url, window, max(1, int(window.seconds // 60)), seconds, http)
    if isinstance(result, str):
        return [unavailable("loki-expr", "loki", logql, result)]
    if result is None:
        return [
            EvidenceItem(
                id="loki-expr",
                source="loki",
                query=logql,
                status="empty",
                kind="alert_expression",
                detail="the alert's LogQL returned no series from Loki",
            )
        ]
    series = typed_series(result, window, {})
    return [
        EvidenceItem(
            id="loki-expr",
            source="loki",
            query=logql,
            kind="alert_expression",
            title="alert expression (LogQL)",
            series=series[:5],
            text=render_item("alert expression (LogQL, run by Loki)", series, window),
            window_start=window.start.timestamp(),
            window_end=window.end.timestamp(),
        )
    ]


async def _mined_read(
    selector: str, url: str, window: Window, seconds: float, http: httpx.AsyncClient, limit: int
) -> list[LogTemplate] | str:
    """The templates of one line-filtered read across streams (each line named by its
    stream), every line counted as recent, or why the read failed."""
    result = await _read(url, selector, window, seconds, http, limit, named=True)
    if isinstance(result, str):
        return result
    lines = [LogLine(ts / 1e9, text, True) for ts, text in result]
    return rank_with_lines(lines, window.seconds, 0.0)[0] if lines else []


def _mined_item(
    item_id: str,
    kind: str,
    title: str,
    selector: str,
    window: Window,
    text: str,
    kept: list[LogTemplate],
) -> EvidenceItem:
    return EvidenceItem(
        id=item_id,
        source="loki",
        query=selector,
        kind=kind,
        title=title,
        templates=kept,
        text=text,
        window_start=window.start.timestamp(),
        window_end=window.end.timestamp(),
    )


async def _mount_writes(
    selector: str, url: str, window: Window, seconds: float, http: httpx.AsyncClient
) -> list[EvidenceItem]:
    """The templates of the lines naming paths under a filling mount (``mount_path_selector``)
    over ``window``, most frequent first: what writes there."""
    if not selector:
        return []
    mined = await _mined_read(selector, url, window, seconds, http, MAX_MOUNT_LINES)
    if isinstance(mined, str):
        return [unavailable("loki-mount", "loki", selector, mined)]
    if not mined:
        return []
    kept = sorted(mined, key=lambda t: -t.count)[:MAX_MINED_TEMPLATES]
    text = "\n".join(
        [f"Lines naming paths under the mount ({selector}), last {window.seconds / 3600:.0f} h:"]
        + [f"- x{t.count} {_clock(t.first_seen)}-{_clock(t.last_seen)}: {t.example}" for t in kept]
    )
    title = "lines naming paths under the filling mount"
    return [_mined_item("loki-mount", "mount_writes", title, selector, window, text, kept)]


# What someone or something did that can end an incident: an operator's command (sudo's
# COMMAND=), a unit or process stopped, killed or restarted, a rollback, a job that finished.
RECOVERY_FILTER = (
    ' |~ "(?i)COMMAND=|systemctl (restart|stop|start|reload|kill)|\\bkill(ed)?\\b'
    "|Stopped |Started |restart|roll(ed)? ?back|scaled? (up|down|to)"
    # A job that ended by itself: systemd's "Finished x.service", "Deactivated successfully",
    # "Consumed ... CPU time", a tool's own "done" or "completed".
    '|Finished |Deactivated successfully|Consumed .* CPU time|\\b(done|completed)\\b"'
)
RECOVERY_LEAD = timedelta(minutes=10)
MAX_RECOVERY_LINES = 200


async def _recovery_acts(
    alert: Alert, selectors: list[str], url: str, seconds: float, http: httpx.AsyncClient
) -> list[EvidenceItem]:
    """For a resolved alert, what was done in the ten minutes before it recovered, on the
    subject's machine (its whole journal when read) or its own streams."""
    if alert.status != "resolved" or alert.ends_at is None or not selectors:
        return []
    ends = alert.ends_at if alert.ends_at.tzinfo else alert.ends_at.replace(tzinfo=UTC)
    starts = alert.starts_at if alert.starts_at.tzinfo else alert.starts_at.replace(tzinfo=UTC)
    if ends <= starts:
        return []
    machine = [s for s in selectors if re.fullmatch(r'\{host="[^"]*"\}', s)]
    selector = (machine or selectors[:1])[0] + RECOVERY_FILTER
    window = Window(ends - RECOVERY_LEAD, ends + timedelta(minutes=1))
    mined = await _mined_read(selector, url, window, seconds, http, MAX_RECOVERY_LINES)
    if isinstance(mined, str) or not mined:
        return []
    kept = mined[:MAX_MINED_TEMPLATES]
    text = "\n".join(
        [f"What was done as it recovered ({selector}):"]
        + [f"- {_clock(t.last_seen)} x{t.count}: {t.example}" for t in kept]
    )
    title = "what was done as the alert recovered"
    return [_mined_item("loki-recovery", "recovery_acts", title, selector, window, text, kept)]


async def _log_volume(
    logql: str, url: str, window: Window, seconds: float, http: httpx.AsyncClient
) -> list[EvidenceItem]:
    """Each container's log bytes per 15 minutes over ``window`` (``log_volume_query``): which
    container's output grew. Nothing when not asked for or when Loki has no such series."""
    if not logql:
        return []
    result = await _matrix(logql, url, window, 900, seconds, http)
    if isinstance(result, str):
        return [unavailable("loki-volume", "loki", logql, result)]
    if result is None:
        return []
    series = typed_series(result, window, {})
    return [
        EvidenceItem(
            id="loki-volume",
            source="loki",
            query=logql,
            kind="log_volume",
            title="log bytes per container, per 15 minutes",
            series=series[:MAX_VOLUME_SERIES],
            text=render_item("log bytes per container (15 min)", series, window),
            window_start=window.start.timestamp(),
            window_end=window.end.timestamp(),
        )
    ]


def _lines(result: list[Any], *, named: bool = False) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for stream in result:
        if not isinstance(stream, dict):
            continue
        origin = (_stream_name if named else _origin)(stream.get("stream"))
        for pair in stream.get("values") or []:
            if isinstance(pair, list | tuple) and len(pair) >= 2:
                try:
                    ts = int(pair[0])
                except (TypeError, ValueError):
                    continue
                line = str(pair[1])
                said = not origin or f"{origin}:" in line or f"{origin}[" in line
                out.append((ts, line if said else f"{origin}: {line}"))
    return out


def _origin(labels: Any) -> str:
    """``kernel`` for a kernel line of a journal stream, as syslog would show it.

    A journal collector ships the message alone and files the transport as a stream label
    (``unit="kernel"``, ``transport="kernel"``); without it ``Killed process 4242 (java)`` is
    no longer recognisable as the kernel's. Other units are left alone: their messages name
    what they do, and a shared prefix would merge a unit's different messages into one
    template.
    """
    if not isinstance(labels, dict):
        return ""
    kernel = "kernel" in (labels.get("unit"), labels.get("transport"))
    return "kernel" if kernel else ""


def _stream_name(labels: Any) -> str:
    """What a stream is called: its service, container, app, systemd unit or job."""
    if not isinstance(labels, dict):
        return ""
    for key in ("service", "container", "app", "unit", "job"):
        if labels.get(key):
            return str(labels[key])
    return ""


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S")


def _render_line(ts: float, line: str) -> str:
    line = line.replace("\n", " ").strip()
    if len(line) > MAX_LINE_CHARS:
        line = line[: MAX_LINE_CHARS - 3] + "..."
    return f"{_clock(ts)} {line}"


def render_templates(
    templates: list[LogTemplate], lines: list[LogLine], recent: Window, baseline: Window
) -> str:
    recent_count = sum(1 for ln in lines if ln.recent)
    head = (
        f"{len(templates)} log templates ranked from {recent_count} lines "
        f"{_clock(recent.start.timestamp())}-{_clock(recent.end.timestamp())} against "
        f"{len(lines) - recent_count} baseline lines "
        f"{_clock(baseline.start.timestamp())}-{_clock(baseline.end.timestamp())}:"
    )
    rows = [head]
    for t in templates[:MAX_TEMPLATES_SHOWN]:
        tags = f" [{', '.join(t.tags)}]" if t.tags else ""
        rows.append(
            f"- {t.novelty} x{t.count} (baseline {t.baseline_count}) "
            f"{_clock(t.first_seen)}-{_clock(t.last_seen)}{tags}: {t.example}"
        )
    return "\n".join(rows)
