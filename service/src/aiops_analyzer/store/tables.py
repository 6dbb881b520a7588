"""Table definitions (SQLAlchemy Core). Migrations in ``migrations/`` create exactly these."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (both databases compare and sort it alike); read back UTC-aware.
    A naive value handed in is taken as UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None or value.tzinfo is None:
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


# One row per webhook request Alertmanager made.
deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("receiver", String(255), nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("group_key", Text, nullable=False, default=""),
    Column("alerts", Integer, nullable=False),
    Column("new_alerts", Integer, nullable=False),
    Column("duplicate_alerts", Integer, nullable=False),
    Column("truncated_alerts", Integer, nullable=False, default=0),
)

# One row per alert state (fingerprint, status, startsAt): the alert, its job and its outcome.
analyses = Table(
    "analyses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("fingerprint", String(128), nullable=False),
    Column("status", String(16), nullable=False),
    Column("starts_at", UTCDateTime, nullable=False),
    Column("ends_at", UTCDateTime, nullable=True),
    Column("alertname", String(255), nullable=False, default=""),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("generator_url", Text, nullable=False, default=""),
    Column("received_at", UTCDateTime, nullable=False),
    Column("delivery_id", Integer, ForeignKey("deliveries.id"), nullable=False),
    Column("deliveries", Integer, nullable=False, default=1),
    Column("last_received_at", UTCDateTime, nullable=False),
    Column("truncated_alerts", Integer, nullable=False, default=0),
    # Job state: pending -> running -> done | failed (running again after a retry or restart).
    Column("state", String(16), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_at", UTCDateTime, nullable=True),
    # The worker holding a running job, and until when (revision 0003): renewed while it
    # works; once expired, any process may put the job back to pending.
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
    Column("available_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    # Outcome.
    Column("engine", String(16), nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("result", JSON, nullable=True),
    Column("evidence", JSON, nullable=True),
    Column("notifications", JSON, nullable=True),
    # When the engine's result was stored, and when a notification about it was accepted by
    # at least one channel (revision 0002; None on rows stored before it).
    Column("analyzed_at", UTCDateTime, nullable=True),
    Column("notified_at", UTCDateTime, nullable=True),
    # Resolution record (status resolved): the firing analysis it closes and how long it lasted.
    Column("firing_analysis_id", Integer, ForeignKey("analyses.id"), nullable=True),
    Column("duration_seconds", Float, nullable=True),
    UniqueConstraint("fingerprint", "status", "starts_at", name="uq_analyses_alert_state"),
    Index("ix_analyses_state_available", "state", "available_at"),
    Index("ix_analyses_alertname", "alertname"),
    Index("ix_analyses_received_at", "received_at"),
    Index("ix_analyses_finished_at", "finished_at"),
    Index("ix_analyses_state_lease", "state", "lease_expires_at"),
)


def bind_processor(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """What ``column``'s type does to a value before the driver gets it (JSON to text,
    aware datetimes to naive UTC), for statements whose parameters are bound by hand."""
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else _unchanged


def _unchanged(value: Any) -> Any:
    return value
