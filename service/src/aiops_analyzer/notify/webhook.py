"""The generic JSON webhook: the alert and the whole analysis, for any receiver."""

from __future__ import annotations

from typing import Any

from aiops_analyzer.notify.format import cause_persists
from aiops_analyzer.schemas import Alert, AnalysisResult


def analysis_message(
    alert: Alert, result: AnalysisResult, analysis_id: int, page_url: str | None = None
) -> dict[str, Any]:
    return {
        "event": "analysis",
        "analysis_id": analysis_id,
        "page_url": page_url,
        "alert": alert.model_dump(mode="json"),
        "analysis": result.model_dump(mode="json"),
    }


def resolution_message(
    alert: Alert,
    firing: AnalysisResult | None,
    duration_seconds: float | None,
    analysis_id: int,
    page_url: str | None = None,
    resolved: AnalysisResult | None = None,
) -> dict[str, Any]:
    """``resolved_analysis`` is the analysis of the resolution itself (its ``recovery`` says
    when it recovered and whether the cause persists); null when resolved alerts are not
    analysed."""
    return {
        "event": "resolution",
        "analysis_id": analysis_id,
        "page_url": page_url,
        "alert": alert.model_dump(mode="json"),
        "duration_seconds": duration_seconds,
        "severity": resolved.severity if resolved else None,
        "cause_persists": cause_persists(resolved),
        "resolved_analysis": resolved.model_dump(mode="json") if resolved else None,
        "firing_analysis": firing.model_dump(mode="json") if firing else None,
    }
