"""Grafana annotations (``POST /api/annotations``): the analysis as a point on every
dashboard's timeline at startsAt, and on resolution a region from startsAt to endsAt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiops_analyzer.notify.format import clip, human_duration
from aiops_analyzer.schemas import Alert, AnalysisResult


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _tags(alert: Alert, severity: str) -> list[str]:
    tags = ["aiops", alert.alertname or "alert", severity]
    return [clip(t, 50) for t in tags if t]


def analysis_message(alert: Alert, result: AnalysisResult, analysis_id: int) -> dict[str, Any]:
    text = f"{alert.alertname}: {result.summary}"
    if result.probable_causes:
        text += f"\nMost likely: {result.probable_causes[0].cause}"
    text += f"\n(analysis #{analysis_id}, engine {result.engine})"
    return {
        "time": _ms(alert.starts_at),
        "tags": _tags(alert, result.severity),
        "text": clip(text, 4000),
    }


def resolution_message(
    alert: Alert, firing: AnalysisResult | None, duration_seconds: float | None, analysis_id: int
) -> dict[str, Any]:
    severity = firing.severity if firing else alert.labels.get("severity", "none")
    body: dict[str, Any] = {
        "time": _ms(alert.starts_at),
        "tags": [*_tags(alert, severity), "resolved"],
        "text": f"{alert.alertname} resolved after {human_duration(duration_seconds)} "
        f"(analysis #{analysis_id})",
    }
    if alert.ends_at is not None and alert.ends_at > alert.starts_at:
        body["timeEnd"] = _ms(alert.ends_at)
    return body
