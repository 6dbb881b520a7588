"""The generic JSON webhook: the alert and the whole analysis, for any receiver."""

from __future__ import annotations

from typing import Any

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
) -> dict[str, Any]:
    return {
        "event": "resolution",
        "analysis_id": analysis_id,
        "page_url": page_url,
        "alert": alert.model_dump(mode="json"),
        "duration_seconds": duration_seconds,
        "firing_analysis": firing.model_dump(mode="json") if firing else None,
    }
