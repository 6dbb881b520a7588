"""What the store takes and returns: the pipeline's ``Alert`` plus typed records.

Every timestamp in and out of the store is UTC-aware (``utcnow``); the columns hold naive UTC,
converted at the boundary by ``tables.UTCDateTime``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from aiops_analyzer.schemas import (
    Alert,
    AlertStatus,
    AnalysisResult,
    EvidenceItem,
    NotificationOutcome,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


# An alert state is stored once per (fingerprint, status, starts_at).
AlertKey = tuple[str, str, datetime]


def alert_key(alert: Alert) -> AlertKey:
    return (alert.fingerprint, alert.status, alert.starts_at)


class JobState(StrEnum):
    """pending -> running -> done | failed; running goes back to pending on a retry or when
    its lease expires."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Outcome(StrEnum):
    OK = "ok"
    INCONCLUSIVE = "inconclusive"
    FALLBACK = "fallback"  # The llm engine was not used or failed; rules answered.
    FAILED = "failed"
    RESOLVED = "resolved"  # A resolution recorded (and notified).


@dataclass(frozen=True)
class Delivery:
    """One webhook request: its envelope and its alerts (already validated and scrubbed)."""

    receiver: str
    status: AlertStatus
    group_key: str
    truncated_alerts: int
    alerts: list[Alert]


@dataclass
class IngestResult:
    delivery_id: int
    analysis_ids: list[int] = field(default_factory=list)
    new_ids: list[int] = field(default_factory=list)
    duplicates: int = 0


@dataclass(frozen=True)
class DeliveryRecord:
    id: int
    received_at: datetime
    receiver: str
    status: AlertStatus
    group_key: str
    alerts: int
    new_alerts: int
    duplicate_alerts: int
    truncated_alerts: int


@dataclass(frozen=True)
class JobInfo:
    state: JobState
    attempts: int
    last_error: str | None
    finished_at: datetime | None
    lease_owner: str | None
    lease_expires_at: datetime | None


@dataclass(frozen=True)
class AnalysisRecord:
    """One alert state (fingerprint, status, startsAt): the alert, its job and its outcome."""

    id: int
    alert: Alert
    received_at: datetime
    deliveries: int
    truncated_alerts: int
    job: JobInfo
    outcome: Outcome | None
    result: AnalysisResult | None
    evidence: list[EvidenceItem]
    notifications: list[NotificationOutcome]
    analyzed_at: datetime | None
    notified_at: datetime | None
    # Resolutions: the firing analysis closed and how long it fired.
    firing_analysis_id: int | None
    duration_seconds: float | None
    # Firing alerts: the resolution that closed it (filled by the queries that return it).
    resolved_by: int | None = None

    @property
    def state(self) -> JobState:
        return self.job.state


@dataclass(frozen=True)
class Job:
    """A claimed analysis job, held by ``owner`` until its lease expires."""

    id: int
    alert: Alert
    attempts: int
    owner: str
    result: AnalysisResult | None
    evidence: list[EvidenceItem] | None
    received_at: datetime
