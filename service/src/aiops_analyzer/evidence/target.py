"""Who an alert is about: the labels that name its subject, and what kind of thing that is.

An exporter that reports on *other* objects (kube-state-metrics) is scraped like any target,
so its own pod and container land on the alert as ``pod``/``container`` and the subject's
labels are renamed ``exported_pod``/``exported_container``. Querying by the plain labels would
investigate the exporter itself; ``subject_labels`` prefers the exported ones and drops labels
that only name the exporter. A blackbox prober is the same: on a ``probe_*`` alert ``instance``
is the probed URL or address, and ``job`` names only the prober.

Rules written for other setups rename labels (``label_replace`` of ``instance`` into ``host``)
or aggregate them away (``by (nodename)``); ``subject_labels`` gets back what the expression
renamed exactly, and ``instance_matcher`` finds the host's node_exporter series from whatever
names the machine.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

from aiops_analyzer.evidence.expression import (
    alert_expression,
    is_logql,
    metric_names,
    renamed_labels,
)
from aiops_analyzer.schemas import Alert

Scope = Literal["kubernetes", "container", "nginx", "host", "service"]

# Exporters whose series describe other objects; their own identity labels are not the subject.
# A Pushgateway holds what batch jobs pushed; a federating Prometheus, what others scraped.
# kafka_exporter, KMinion and Burrow report consumer groups' lag: their own pod is not the
# consumer.
_REPORTING_EXPORTERS = re.compile(
    r"kube-state-metrics|kube_state_metrics|ksm\b|pushgateway|federat"
    r"|kafka[-_]?exporter|kminion|burrow",
    re.IGNORECASE,
)
_IDENTITY_LABELS = ("container", "pod", "namespace", "service", "job", "instance", "name")
# The labels naming the service a mesh's request metrics were measured against.
_MESH_DESTINATIONS = (
    "destination_canonical_service",
    "destination_workload",
    "destination_app",
    "dst_deployment",
)
# Scrape jobs of probers (blackbox_exporter and the like): on a probe alert the job is the
# prober, the instance the probed target.
_PROBER_JOBS = re.compile(r"blackbox|probe|prober|uptime", re.IGNORECASE)
# Labels that name a machine when a rule kept no `instance` (aggregated by node name, or
# renamed it); node_exporter's instance is that name, usually with a port.
HOST_LABELS = ("host", "hostname", "nodename", "node", "instance_name")


def _is_reporting_exporter(labels: dict[str, str]) -> bool:
    """Prometheus renames a series' own job or instance to ``exported_*`` when the scrape
    target's clash with it: whatever the exporter, the target only reported it."""
    return any(
        _REPORTING_EXPORTERS.search(labels.get(key, "")) for key in ("job", "container", "service")
    ) or any(f"exported_{key}" in labels for key in ("job", "instance"))


def _metrics(alert: Alert) -> list[str]:
    expr = alert_expression(alert)
    return metric_names(expr) if expr and not is_logql(expr) else []


def is_probe(alert: Alert) -> bool:
    """A blackbox-style probe alert: ``probe_*`` metrics, or a URL as its instance."""
    instance = alert.labels.get("instance", "")
    return "://" in instance or any(m.startswith("probe_") for m in _metrics(alert))


def subject_labels(alert: Alert) -> dict[str, str]:
    """The alert's labels with the subject's identity, never the reporting exporter's."""
    labels = dict(alert.labels)
    expr = alert_expression(alert)
    if expr and not is_logql(expr):
        # A label the rule renamed (label_replace) is asked by the name the series carry.
        for key, (op, value) in renamed_labels(expr, labels).items():
            if op == "=":
                labels[key] = value
    if _PROBER_JOBS.search(labels.get("job", "")) and is_probe(alert):
        labels.pop("job")
    if destination := next((labels[k] for k in _MESH_DESTINATIONS if labels.get(k)), ""):
        # A service mesh's request metrics (Istio, Linkerd): the service called is the
        # subject, in its own namespace; the alert's `namespace` is the caller's.
        labels["container"] = destination
        for key in ("destination_workload_namespace", "destination_service_namespace"):
            if labels.get(key):
                labels["namespace"] = labels[key]
                break
    if not _is_reporting_exporter(labels):
        return labels
    exporters_pod = False
    for key in _IDENTITY_LABELS:
        exported = labels.pop(f"exported_{key}", "")
        value = labels.get(key, "")
        if exported:
            labels[key] = exported
        elif value and (_REPORTING_EXPORTERS.search(value) or key in ("instance", "job")):
            labels.pop(key)  # the exporter's own pod, container, address or job
            exporters_pod = exporters_pod or key == "pod"
    if exporters_pod and "exported_namespace" not in alert.labels:
        labels.pop("namespace", None)  # where the exporter runs, not its subject
    return labels


def scope(alert: Alert) -> Scope:
    """What kind of thing the alert is about: container, host, nginx, kubernetes, service."""
    expr = alert_expression(alert)
    metrics = metric_names(expr) if expr and not is_logql(expr) else []
    labels = subject_labels(alert)
    if any(m.startswith("kube_") for m in metrics) or "pod" in labels or "namespace" in labels:
        return "kubernetes"
    on_host = bool(metrics) and all(m.startswith("node_") for m in metrics)
    # `name` is cAdvisor's container name, but other exporters' object name (cert-manager's
    # certificate, a queue): with their metrics it names no container.
    if any(m.startswith("container_") for m in metrics) or (
        not on_host and ("container" in labels or ("name" in labels and not metrics))
    ):
        return "container"
    if any(m.startswith("nginx_") for m in metrics) or "nginx" in labels.get("job", ""):
        return "nginx"
    if any(m.startswith("node_") for m in metrics):
        return "host"
    return "service"


def instance_matcher(alert: Alert) -> str | None:
    """A PromQL matcher for the node_exporter series of the machine the alert is about.

    The alert's own ``instance`` when it has one; else the instance a ``label_replace`` renamed
    (exactly, or as the pattern its regex allows); else a host, node or nodename label, which
    is node_exporter's instance with or without its port.
    """
    labels = subject_labels(alert)
    if labels.get("instance"):
        return f"instance={quote(labels['instance'])}"
    expr = alert_expression(alert)
    renamed = renamed_labels(expr, labels) if expr and not is_logql(expr) else {}
    if "instance" in renamed:
        op, value = renamed["instance"]
        return f"instance{op}{quote(value)}"
    name = host_label(labels)
    if name:
        return f"instance=~{quote(with_any_port(name))}"
    return None


def with_any_port(host: str) -> str:
    """A regex of node_exporter's instance on ``host``: the name alone or with any port, and
    a qualified name (``gw-3.dc2.internal``, a probed URL's) also by its short name, which
    node_exporter's targets often use."""
    short = host.split(".")[0]
    if short and short != host and is_name(host):
        return f"(?:{re.escape(host)}|{re.escape(short)})(?::[0-9]+)?"
    return re.escape(host) + "(?::[0-9]+)?"


def is_name(value: str) -> bool:
    """A service-like name, not an IP address or an empty label."""
    if not value:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return True
    return False


def short_or_qualified(name: str) -> str:
    """A regex of a node name given short (``web-3``) or fully qualified (``web-3.dc1``)."""
    return re.escape(name) + r"(?:\..*)?"


def host_label(labels: dict[str, str]) -> str:
    """The machine's name from a host, hostname, nodename or node label ("" if none)."""
    return next((labels[k] for k in HOST_LABELS if labels.get(k)), "")


def quote(value: str) -> str:
    """A PromQL or LogQL string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def host_name(instance: str) -> str:
    """``10.0.3.21:9100`` -> ``10.0.3.21``; ``[::1]:9100`` -> ``::1``; a probed URL
    ``https://api.example.com/health`` -> ``api.example.com``."""
    if "://" in instance:
        return urlsplit(instance).hostname or instance
    if instance.startswith("["):
        return instance[1:].split("]", 1)[0]
    return instance.rsplit(":", 1)[0] if instance.count(":") == 1 else instance


# A certificate's expiry alert (blackbox's probe_ssl_earliest_cert_expiry, x509 exporters'
# not_after) and the labels that may name its domain.
_CERT_EXPIRY_METRICS = re.compile(r"(?:ssl|tls|cert|x509).*(?:expir|not_?after)", re.I)
_DOMAIN_LABELS = ("cn", "common_name", "subject_cn", "subject_CN", "domain", "server_name")
_DOMAIN = re.compile(r"^(?:\*\.)?(?:[a-z0-9-]+\.)+[a-z]{2,}$", re.I)


def certificate_domain(alert: Alert) -> str:
    """The domain of the certificate an expiry alert is about, or "" (not such an alert,
    or no domain to name)."""
    expr = alert_expression(alert)
    if (
        not expr
        or is_logql(expr)
        or not any(_CERT_EXPIRY_METRICS.search(m) for m in metric_names(expr))
    ):
        return ""
    labels = alert.labels
    for value in (
        *(labels.get(k, "") for k in _DOMAIN_LABELS),
        host_name(labels.get("instance", "")) if "://" in labels.get("instance", "") else "",
    ):
        domain = value.strip().removeprefix("*.")
        if domain and _DOMAIN.match(domain):
            return domain
    return ""
