"""Grafana annotations (``POST /api/annotations``): the analysis as a point on every
dashboard's timeline at startsAt, and on resolution a region from startsAt to endsAt."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from aiops_analyzer.notify.format import (
    cause_persists,
    clip,
    firing_cause,
    recovery_text,
    resolution_lead,
)
from aiops_analyzer.schemas import Alert, AnalysisResult


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _tags(alert: Alert, severity: str) -> list[str]:
    tags = ["aiops", alert.alertname or "alert", severity]
    return [clip(t, 50) for t in tags if t]


def _text(text: str, page_url: str | None) -> str:
    """Grafana renders annotation text as HTML: every user-derived part is escaped, only our
    own page link is markup."""
    anchor = _page_anchor(page_url)
    return html.escape(clip(text, 4000 - len(anchor)), quote=False) + anchor


def _page_anchor(url: str | None) -> str:
    """Grafana renders annotation text as (sanitised) HTML: the page as a real link."""
    if not url:
        return ""
    return f'\n<a href="{html.escape(url, quote=True)}">Open the analysis</a>'


def analysis_message(
    alert: Alert, result: AnalysisResult, analysis_id: int, page_url: str | None = None
) -> dict[str, Any]:
    text = f"{alert.alertname}: {result.summary}"
    if result.probable_causes:
        text += f"\nMost likely: {result.probable_causes[0].cause}"
    text += f"\n(analysis #{analysis_id}, engine {result.engine})"
    return {
        "time": _ms(alert.starts_at),
        "tags": _tags(alert, result.severity),
        "text": _text(text, page_url),
    }


def resolution_message(
    alert: Alert,
    firing: AnalysisResult | None,
    duration_seconds: float | None,
    analysis_id: int,
    page_url: str | None = None,
    resolved: AnalysisResult | None = None,
) -> dict[str, Any]:
    known = resolved or firing  # the resolution's own severity first
    severity = known.severity if known else alert.labels.get("severity", "none")
    text = f"{resolution_lead(alert, duration_seconds, resolved)}\n{recovery_text(resolved)}"
    if firing is not None:
        text += f"\nWhile firing: {firing_cause(firing)}"
    text += f"\n(analysis #{analysis_id})"
    tags = [*_tags(alert, severity), "resolved"]
    if cause_persists(resolved):
        tags.append("cause-persists")
    body: dict[str, Any] = {
        "time": _ms(alert.starts_at),
        "tags": tags,
        "text": _text(text, page_url),
    }
    if alert.ends_at is not None and alert.ends_at > alert.starts_at:
        body["timeEnd"] = _ms(alert.ends_at)
    return body
