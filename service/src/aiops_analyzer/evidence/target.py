"""Who an alert is about: the labels that name its subject, and what kind of thing that is.

An exporter that reports on *other* objects (kube-state-metrics) is scraped like any target,
so its own pod and container land on the alert as ``pod``/``container`` and the subject's
labels are renamed ``exported_pod``/``exported_container``. Querying by the plain labels would
investigate the exporter itself; ``subject_labels`` prefers the exported ones and drops labels
that only name the exporter.
"""

from __future__ import annotations

import re
from typing import Literal

from aiops_analyzer.evidence.expression import alert_expression, is_logql, metric_names
from aiops_analyzer.schemas import Alert

Scope = Literal["kubernetes", "container", "nginx", "host", "service"]

# Exporters whose series describe other objects; their own identity labels are not the subject.
_REPORTING_EXPORTERS = re.compile(r"kube-state-metrics|kube_state_metrics|ksm\b")
_IDENTITY_LABELS = ("container", "pod", "namespace", "service", "job", "instance", "name")


def _is_reporting_exporter(labels: dict[str, str]) -> bool:
    return any(
        _REPORTING_EXPORTERS.search(labels.get(key, "")) for key in ("job", "container", "service")
    )


def subject_labels(alert: Alert) -> dict[str, str]:
    """The alert's labels with the subject's identity, never the reporting exporter's."""
    labels = dict(alert.labels)
    if not _is_reporting_exporter(labels):
        return labels
    for key in _IDENTITY_LABELS:
        exported = labels.pop(f"exported_{key}", "")
        value = labels.get(key, "")
        if exported:
            labels[key] = exported
        elif value and (_REPORTING_EXPORTERS.search(value) or key in ("instance", "job")):
            labels.pop(key)  # the exporter's own pod, container, address or job
    return labels


def scope(alert: Alert) -> Scope:
    """What kind of thing the alert is about: container, host, nginx, kubernetes, service."""
    expr = alert_expression(alert)
    metrics = metric_names(expr) if expr and not is_logql(expr) else []
    labels = subject_labels(alert)
    if any(m.startswith("kube_") for m in metrics) or "pod" in labels or "namespace" in labels:
        return "kubernetes"
    on_host = bool(metrics) and all(m.startswith("node_") for m in metrics)
    if any(m.startswith("container_") for m in metrics) or (
        not on_host and ("container" in labels or "name" in labels)
    ):
        return "container"
    if any(m.startswith("nginx_") for m in metrics) or "nginx" in labels.get("job", ""):
        return "nginx"
    if any(m.startswith("node_") for m in metrics):
        return "host"
    return "service"


def host_name(instance: str) -> str:
    """``10.0.3.21:9100`` -> ``10.0.3.21``; ``[::1]:9100`` -> ``::1``."""
    if instance.startswith("["):
        return instance[1:].split("]", 1)[0]
    return instance.rsplit(":", 1)[0] if instance.count(":") == 1 else instance
