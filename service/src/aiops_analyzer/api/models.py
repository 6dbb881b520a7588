"""Response models of the read side."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from aiops_analyzer.schemas import AnalysisResult, EvidenceItem, NotificationOutcome
from aiops_analyzer.store import AnalysisRecord, JobState, Outcome


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
    outcome: Outcome | None = None
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


def analysis_out(record: AnalysisRecord, page_url: str | None = None) -> AnalysisOut:
    alert = record.alert
    resolution = None
    if alert.status == "resolved":
        resolution = Resolution(
            firing_analysis_id=record.firing_analysis_id,
            duration_seconds=record.duration_seconds,
        )
    return AnalysisOut(
        id=record.id,
        fingerprint=alert.fingerprint,
        status=alert.status,
        alertname=alert.alertname,
        labels=alert.labels,
        annotations=alert.annotations,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        generator_url=alert.generator_url,
        received_at=record.received_at,
        deliveries=record.deliveries,
        truncated_alerts=record.truncated_alerts,
        job=JobInfo(
            state=record.job.state,
            attempts=record.job.attempts,
            last_error=record.job.last_error,
            finished_at=record.job.finished_at,
        ),
        outcome=record.outcome,
        result=record.result,
        evidence=record.evidence,
        notifications=record.notifications,
        analyzed_at=record.analyzed_at,
        notified_at=record.notified_at,
        resolution=resolution,
        resolved_by=record.resolved_by,
        page_url=page_url,
    )
