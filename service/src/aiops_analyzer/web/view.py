"""What an analysis page shows, computed from the API's model: timeline, charts, logs, links.

Templates stay dumb: every decision (which evidence becomes a chart, which lines are logs,
where Explore links point) is made here, where it is unit-testable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from markupsafe import Markup

from aiops_analyzer.api.models import AnalysisOut
from aiops_analyzer.core.config import Settings
from aiops_analyzer.evidence import alert_expression
from aiops_analyzer.evidence.series import fmt, label_text
from aiops_analyzer.schemas import Alert, EvidenceItem, LogTemplate
from aiops_analyzer.web.charts import MAX_SERIES, Chart, Series, render_svg

# The local stack provisions its Prometheus datasource with this uid (monitoring/grafana).
GRAFANA_PROMETHEUS_UID = "prometheus"
EXPLORE_MARGIN = timedelta(minutes=30)


@dataclass(frozen=True)
class TimelineEntry:
    label: str
    at: datetime


@dataclass(frozen=True)
class ChartView:
    item_id: str
    title: str
    query: str
    svg: Markup
    legend: list[str]
    threshold: str | None  # the dashed line's label


@dataclass(frozen=True)
class LogGroup:
    item_id: str
    title: str
    query: str
    lines: list[str]
    templates: list[LogTemplate] = field(default_factory=list)


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass
class PageView:
    severity: str
    timeline: list[TimelineEntry]
    charts: list[ChartView] = field(default_factory=list)
    logs: list[LogGroup] = field(default_factory=list)
    other_evidence: list[EvidenceItem] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)


def _title(item: EvidenceItem) -> str:
    if item.title:
        return item.title
    first = item.text.split("\n", 1)[0]
    return first.split(": ", 1)[0] if ": " in first else (first or item.id)


def time_span(items: list[EvidenceItem]) -> tuple[float, float] | None:
    """One x axis for all the charts of a page: the Prometheus evidence window (else the
    points' own span), so a series that only exists late is seen to start late."""
    times = [t for item in items for s in item.series for t, _ in s.points]
    for item in items:
        if item.source == "prometheus" and item.series:
            times += [t for t in (item.window_start, item.window_end) if t is not None]
    return (min(times), max(times)) if times else None


def _limit_line(item: EvidenceItem) -> tuple[float | None, str]:
    """The alert's threshold, else a ceiling the series share (a container's memory limit)."""
    if item.threshold is not None:
        return item.threshold.value, f"threshold {item.threshold.op} {fmt(item.threshold.value)}"
    limits = {s.limit for s in item.series if s.limit is not None}
    if len(limits) == 1:
        limit = limits.pop()
        return limit, f"limit {fmt(limit)}"
    return None, ""


def chart_of(
    item: EvidenceItem, alert_start: datetime, span: tuple[float, float] | None = None
) -> ChartView | None:
    if item.source != "prometheus" or not item.series:
        return None
    line, line_label = _limit_line(item)
    chart = Chart(
        title=f"{item.id}: {_title(item)}",
        series=[Series(label_text(s.labels), s.points) for s in item.series],
        threshold=line,
        threshold_label=line_label,
        alert_start=alert_start.timestamp(),
        time_span=span,
    )
    svg = render_svg(chart)
    if not svg:
        return None
    return ChartView(
        item_id=item.id,
        title=_title(item),
        query=item.query,
        svg=svg,
        legend=[label_text(s.labels) for s in item.series[:MAX_SERIES]],
        threshold=line_label or None,
    )


def log_group(item: EvidenceItem) -> LogGroup | None:
    """Ranked log templates (new or surging before the alert first), or plain lines."""
    if item.source != "loki" or item.status != "ok" or not (item.text or item.templates):
        return None
    if item.templates:
        return LogGroup(item.id, _title(item), item.query, [], list(item.templates))
    head, _, rest = item.text.partition("\n")
    title = item.title or head.rstrip(":")
    return LogGroup(item.id, title, item.query, [ln for ln in rest.splitlines() if ln])


def explore_url(grafana: str, expr: str, start: datetime, end: datetime) -> str:
    """Grafana Explore with the query over the alert's time (Grafana 10+ `panes` format)."""
    pane = {
        "datasource": GRAFANA_PROMETHEUS_UID,
        "queries": [
            {
                "refId": "A",
                "expr": expr,
                "datasource": {"type": "prometheus", "uid": GRAFANA_PROMETHEUS_UID},
            }
        ],
        "range": {
            "from": str(int((start - EXPLORE_MARGIN).timestamp() * 1000)),
            "to": str(int((end + EXPLORE_MARGIN).timestamp() * 1000)),
        },
    }
    panes = json.dumps({"aiops": pane}, separators=(",", ":"))
    return f"{grafana}/explore?" + urlencode(
        {"schemaVersion": "1", "orgId": "1", "panes": panes}, quote_via=quote
    )


def build_page(analysis: AnalysisOut, settings: Settings, resolved_at: datetime | None) -> PageView:
    result = analysis.result
    severity = result.severity if result else analysis.labels.get("severity", "none")
    steps = [
        ("fired", analysis.starts_at),
        ("received", analysis.received_at),
        ("analysed", analysis.analyzed_at),
        ("notified", analysis.notified_at),
        ("resolved", resolved_at),
    ]
    view = PageView(
        severity=severity,
        timeline=[TimelineEntry(label, at) for label, at in steps if at is not None],
    )
    span = time_span(analysis.evidence)
    for item in analysis.evidence:
        chart = chart_of(item, analysis.starts_at, span)
        logs = log_group(item) if chart is None else None
        if chart:
            view.charts.append(chart)
        elif logs:
            view.logs.append(logs)
        elif item.source != "runbook":
            view.other_evidence.append(item)
    if analysis.generator_url.startswith(("http://", "https://")):
        view.links.append(Link("Alert query in Prometheus", analysis.generator_url))
    grafana = settings.grafana_public_url or settings.grafana_url
    expr = alert_expression_of(analysis)
    if grafana and expr:
        end = resolved_at or analysis.ends_at or analysis.starts_at
        end = max(end, analysis.starts_at)
        view.links.append(
            Link(
                "Alert query in Grafana Explore",
                explore_url(grafana, expr, analysis.starts_at, end),
            )
        )
    return view


def alert_expression_of(analysis: AnalysisOut) -> str:
    alert = Alert(
        fingerprint=analysis.fingerprint,
        status=analysis.status,
        labels=analysis.labels,
        annotations=analysis.annotations,
        starts_at=analysis.starts_at,
        generator_url=analysis.generator_url,
    )
    return alert_expression(alert)
