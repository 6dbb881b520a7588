"""Response models of the read side."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from aiops_analyzer.schemas import AnalysisResult, EvidenceItem, NotificationOutcome

JobState = Literal["pending", "running", "done", "failed"]


class JobInfo(BaseModel):
    state: JobState
    attempts: int
    last_error: str | None = None
    finished_at: datetime | None = None


class Resolution(BaseModel):
    firing_analysis_id: int | None = Field(
        None, description="The firing alert's analysis this resolution closes (None if unseen)."
    )
    duration_seconds: float | None = Field(None, description="endsAt - startsAt.")


class AnalysisOut(BaseModel):
    id: int
    fingerprint: str
    status: Literal["firing", "resolved"]
    alertname: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str
    received_at: datetime
    deliveries: int = Field(description="Deliveries that carried this alert state (1 + resends).")
    truncated_alerts: int = Field(
        description="Largest truncatedAlerts of the deliveries that carried it (0: none)."
    )
    job: JobInfo
    outcome: str | None = Field(None, description="ok|inconclusive|fallback|failed|resolved")
    result: AnalysisResult | None = None
    evidence: list[EvidenceItem] = Field(default_factory=list)
    notifications: list[NotificationOutcome] = Field(default_factory=list)
    analyzed_at: datetime | None = Field(
        None,
        description="When the engine's result was stored (before any notification); None "
        "without a result (pending, failed, a resolution not analysed) or when stored by a "
        "version before this field.",
    )
    notified_at: datetime | None = Field(
        None,
        description="When the notifications finished with at least one channel accepting "
        "(retries included); None when no channel is configured or every channel failed.",
    )
    resolution: Resolution | None = Field(None, description="Only on resolved alerts.")
    resolved_by: int | None = Field(None, description="Id of the resolution, on firing alerts.")
    page_url: str | None = Field(
        None,
        description="Signed, expiring link to this analysis's web page (opens without the "
        "token); None when AIOPS_PUBLIC_URL is not set.",
    )


class AnalysisPage(BaseModel):
    items: list[AnalysisOut]
    total: int
    limit: int
    offset: int
    next_offset: int | None = Field(None, description="Offset of the next page, if any.")


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def analysis_from_row(row: dict[str, Any], page_url: str | None = None) -> AnalysisOut:
    resolution = None
    if row["status"] == "resolved":
        resolution = Resolution(
            firing_analysis_id=row["firing_analysis_id"], duration_seconds=row["duration_seconds"]
        )
    return AnalysisOut(
        id=row["id"],
        fingerprint=row["fingerprint"],
        status=row["status"],
        alertname=row["alertname"],
        labels=row["labels"] or {},
        annotations=row["annotations"] or {},
        starts_at=_utc(row["starts_at"]),  # type: ignore[arg-type]
        ends_at=_utc(row["ends_at"]),
        generator_url=row["generator_url"],
        received_at=_utc(row["received_at"]),  # type: ignore[arg-type]
        deliveries=row["deliveries"],
        truncated_alerts=row["truncated_alerts"],
        job=JobInfo(
            state=row["state"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            finished_at=_utc(row["finished_at"]),
        ),
        outcome=row["outcome"],
        result=AnalysisResult.model_validate(row["result"]) if row["result"] else None,
        evidence=[EvidenceItem.model_validate(item) for item in row["evidence"] or []],
        notifications=[NotificationOutcome.model_validate(n) for n in row["notifications"] or []],
        analyzed_at=_utc(row["analyzed_at"]),
        notified_at=_utc(row["notified_at"]),
        resolution=resolution,
        resolved_by=row.get("resolved_by"),
        page_url=page_url,
    )
