"""Reads: analyses for the API and the web pages, and the counts metrics and budgets need."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import RowMapping, func, select
from sqlalchemy.orm import aliased

from aiops_analyzer.schemas import Alert, AnalysisResult, EvidenceItem, NotificationOutcome
from aiops_analyzer.store.database import Database
from aiops_analyzer.store.records import AnalysisRecord, JobInfo, JobState, Outcome, utcnow
from aiops_analyzer.store.tables import analyses

_resolution = aliased(analyses, name="resolution")
# The resolution closing a firing analysis, looked up with it (uses the FK's rows).
_RESOLVED_BY = (
    select(_resolution.c.id)
    .where(_resolution.c.firing_analysis_id == analyses.c.id)
    .order_by(_resolution.c.id)
    .limit(1)
    .scalar_subquery()
    .label("resolved_by")
)


def alert_from_row(row: RowMapping) -> Alert:
    return Alert(
        fingerprint=row["fingerprint"],
        status=row["status"],
        labels=row["labels"] or {},
        annotations=row["annotations"] or {},
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        generator_url=row["generator_url"] or "",
    )


def result_from_row(row: RowMapping) -> AnalysisResult | None:
    return AnalysisResult.model_validate(row["result"]) if row["result"] else None


def analysis_from_row(row: RowMapping) -> AnalysisRecord:
    return AnalysisRecord(
        id=row["id"],
        alert=alert_from_row(row),
        received_at=row["received_at"],
        deliveries=row["deliveries"],
        truncated_alerts=row["truncated_alerts"],
        job=JobInfo(
            state=JobState(row["state"]),
            attempts=row["attempts"],
            last_error=row["last_error"],
            finished_at=row["finished_at"],
            lease_owner=row["lease_owner"],
            lease_expires_at=row["lease_expires_at"],
        ),
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        result=result_from_row(row),
        evidence=[EvidenceItem.model_validate(item) for item in row["evidence"] or []],
        notifications=[NotificationOutcome.model_validate(n) for n in row["notifications"] or []],
        analyzed_at=row["analyzed_at"],
        notified_at=row["notified_at"],
        firing_analysis_id=row["firing_analysis_id"],
        duration_seconds=row["duration_seconds"],
        resolved_by=row.get("resolved_by"),
    )


class AnalysisQueries:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, analysis_id: int) -> AnalysisRecord | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(analyses, _RESOLVED_BY).where(analyses.c.id == analysis_id)
            ).first()
        return analysis_from_row(row._mapping) if row else None

    def list(
        self,
        *,
        status: str | None = None,
        state: JobState | None = None,
        alertname: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[AnalysisRecord], int]:
        """Newest first; returns (page, total matching)."""
        conditions = []
        if status:
            conditions.append(analyses.c.status == status)
        if state:
            conditions.append(analyses.c.state == state)
        if alertname:
            conditions.append(analyses.c.alertname == alertname)
        if since:
            conditions.append(analyses.c.received_at >= since)
        with self.db.read() as conn:
            total = conn.execute(
                select(func.count()).select_from(analyses).where(*conditions)
            ).scalar_one()
            rows = conn.execute(
                select(analyses, _RESOLVED_BY)
                .where(*conditions)
                .order_by(analyses.c.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        return [analysis_from_row(row._mapping) for row in rows], int(total)

    def find_firing(self, fingerprint: str, starts_at: datetime) -> AnalysisRecord | None:
        """The firing state a resolution closes."""
        with self.db.read() as conn:
            row = conn.execute(
                select(analyses, _RESOLVED_BY).where(
                    analyses.c.fingerprint == fingerprint,
                    analyses.c.status == "firing",
                    analyses.c.starts_at == starts_at,
                )
            ).first()
        return analysis_from_row(row._mapping) if row else None

    def count_active(self) -> int:
        """Jobs pending or running (the queue depth)."""
        with self.db.read() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(analyses)
                    .where(analyses.c.state.in_((JobState.PENDING, JobState.RUNNING)))
                ).scalar_one()
            )

    def tokens_used_today(self) -> int:
        """Prompt plus completion tokens of analyses finished since 00:00 UTC."""
        midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        spent = analyses.c.prompt_tokens + analyses.c.completion_tokens
        with self.db.read() as conn:
            total = conn.execute(
                select(func.coalesce(func.sum(spent), 0)).where(
                    analyses.c.finished_at >= midnight, spent > 0
                )
            ).scalar_one()
        return int(total)
