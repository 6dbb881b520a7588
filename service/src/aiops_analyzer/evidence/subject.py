"""Who an aggregated alert is about.

A rule that sums its series away (``sum by (proxy) (rate(haproxy_..._total[1m])) > 100``)
leaves no instance, job, pod or host on the alert: nothing says which machine's metrics and
logs to read. The series under the expression still carry them, and the one contributing
most when the alert started names the subject. ``resolve`` asks Prometheus for it (one
instant query) and returns it as an evidence item; ``with_subject`` gives the alert those
labels back, for the evidence sources and for the engines, which read the same item.
"""

from __future__ import annotations

import re

import httpx

from aiops_analyzer.core.config import Settings
from aiops_analyzer.evidence.expression import alert_expression, is_logql, metric_names, threshold
from aiops_analyzer.evidence.prometheus import instant_query
from aiops_analyzer.evidence.target import HOST_LABELS, quote, subject_labels
from aiops_analyzer.schemas import Alert, EvidenceItem, SeriesStats

SUBJECT_KIND = "alert_subject"
# Labels that say what a series is about; an alert with none of them names no subject.
IDENTITY_LABELS = (
    "instance",
    "job",
    "pod",
    "namespace",
    "container",
    "name",
    "service",
    *HOST_LABELS,
)
_COUNTER = re.compile(r"_(?:total|count|sum|bucket)$")
# Aggregation operators: without one, the rule's result keeps its series' labels.
_AGGREGATION = re.compile(
    r"\b(?:sum|avg|min|max|count|group|stddev|stdvar|quantile|topk|bottomk|count_values)"
    r"\s*(?:(?:by|without)\s*\([^)]*\)\s*)?\(",
    re.I,
)
_GROUPING = re.compile(r"\b(?:by|on)\s*\(([^)]*)\)", re.I)
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def unidentified(alert: Alert) -> bool:
    """The alert names nothing to investigate: no identity label survived its rule."""
    labels = subject_labels(alert)
    return not any(labels.get(key) for key in IDENTITY_LABELS)


def subject_query(alert: Alert) -> str | None:
    """The PromQL of the series contributing most to an aggregated alert's expression."""
    expr = alert_expression(alert)
    if not expr or is_logql(expr) or not _AGGREGATION.search(expr) or not unidentified(alert):
        return None
    metrics = metric_names(expr)
    if not metrics:
        return None
    metric = metrics[0]
    # The expression's own matchers on that metric, and the alert's value of each label the
    # rule grouped by (the rest of the alert's labels are the rule's, not the series').
    own = re.search(re.escape(metric) + r"\s*\{([^{}]*)\}", expr)
    matchers = [own.group(1).strip()] if own and own.group(1).strip() else []
    grouped = {label for clause in _GROUPING.findall(expr) for label in _LABEL.findall(clause)}
    matchers += [
        f"{label}={quote(value)}"
        for label, value in sorted(alert.labels.items())
        if label in grouped and value
    ]
    selector = metric + "{" + ", ".join(matchers) + "}"
    series = f"rate({selector}[5m])" if _COUNTER.search(metric) else selector
    # An alert on too little (`< 10`) is about the series with the least.
    found = threshold(expr)
    pick = "bottomk" if found and found[0] in ("<", "<=") else "topk"
    return f"{pick}(1, {series})"


async def resolve(alert: Alert, settings: Settings, http: httpx.AsyncClient) -> EvidenceItem | None:
    """The subject of an aggregated alert, as an evidence item; None when the alert names one
    already, or Prometheus cannot tell."""
    promql = subject_query(alert)
    if not promql or not settings.prometheus_url:
        return None
    base = settings.prometheus_url.rstrip("/")
    seconds = settings.evidence_timeout_seconds
    result = await instant_query(base, promql, seconds, http, at=alert.starts_at.timestamp())
    if not result:
        return None
    metric = result[0]
    identity = {
        key: str(metric[key]) for key in IDENTITY_LABELS if isinstance(metric.get(key), str)
    }
    if not identity:
        return None
    named = ", ".join(f'{key}="{value}"' for key, value in identity.items())
    return EvidenceItem(
        id="prom-subject",
        source="prometheus",
        query=promql,
        kind=SUBJECT_KIND,
        title="the series behind the aggregated alert",
        series=[SeriesStats(labels=identity)],
        text=f"The rule aggregates its series away; the one that stands out most when the alert "
        f"started is {{{named}}}: its machine and logs are the ones read.",
    )


def with_subject(alert: Alert, evidence: list[EvidenceItem]) -> Alert:
    """The alert with the labels its subject item names (those it lacks), else unchanged."""
    item = next(
        (i for i in evidence if i.kind == SUBJECT_KIND and i.status == "ok" and i.series), None
    )
    if item is None:
        return alert
    added = {k: v for k, v in item.series[0].labels.items() if not alert.labels.get(k)}
    return alert.model_copy(update={"labels": {**alert.labels, **added}}) if added else alert
