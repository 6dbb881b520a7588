"""All reads and writes of the store. Synchronous: callers run it in a worker thread.

Idempotency lives here: an alert state is inserted with ON CONFLICT DO NOTHING on
(fingerprint, status, starts_at), so a resend, a retry or the other member of an HA pair finds
the existing row and only bumps its delivery counter.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from aiops_analyzer.schemas import Alert, AnalysisResult, EvidenceItem, NotificationOutcome
from aiops_analyzer.store import migrate
from aiops_analyzer.store.db import create_store_engine, is_sqlite
from aiops_analyzer.store.tables import analyses, deliveries

JOB_STATES = ("pending", "running", "done", "failed")


def utcnow() -> datetime:
    """Naive UTC, the form every timestamp is stored in."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class AlertRecord:
    """One alert of a delivery, normalised and ready to store."""

    fingerprint: str
    status: str
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.fingerprint, self.status, to_naive_utc(self.starts_at))


@dataclass
class IngestResult:
    delivery_id: int
    analysis_ids: list[int] = field(default_factory=list)
    new_ids: list[int] = field(default_factory=list)
    duplicates: int = 0


@dataclass(frozen=True)
class Job:
    """A claimed analysis job."""

    id: int
    alert: Alert
    attempts: int
    result: AnalysisResult | None
    evidence: list[EvidenceItem] | None
    received_at: datetime


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        # Writes take SQLite's lock at BEGIN; reads never block on it (WAL).
        self._writer = create_store_engine(url, immediate=True)
        self._reader = create_store_engine(url, immediate=False) if is_sqlite(url) else self._writer
        # SQLite has one writer at a time. Queueing this process's writers on a lock hands the
        # turn over at once, where SQLite's busy handler would sleep in growing steps.
        self._write_lock = threading.Lock() if is_sqlite(url) else None
        self._prepare_statements()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self._write_lock is None:
            with self._writer.begin() as conn:
                yield conn
            return
        with self._write_lock, self._writer.begin() as conn:
            yield conn

    # --- lifecycle -------------------------------------------------------------------------
    def migrate(self) -> str:
        return migrate.upgrade(self._writer)

    def schema_revision(self) -> str | None:
        return migrate.current_revision(self._reader)

    def dispose(self) -> None:
        self._writer.dispose()
        self._reader.dispose()

    def ping(self) -> bool:
        with self._reader.connect() as connection:
            return connection.execute(text("SELECT 1")).scalar() == 1

    # --- ingest ----------------------------------------------------------------------------
    def _prepare_statements(self) -> None:
        """Build the hot statements once: constructing SQLAlchemy statements per call costs
        more than SQLite takes to run them."""
        postgres = self._writer.dialect.name == "postgresql"
        insert = postgresql.insert if postgres else sqlite.insert
        greatest = func.greatest if postgres else func.max
        c = analyses.c
        self._insert_alert = (
            insert(analyses)
            .on_conflict_do_nothing(index_elements=["fingerprint", "status", "starts_at"])
            .returning(c.id)
        )
        self._find_alert = select(c.id).where(
            c.fingerprint == bindparam("b_fingerprint"),
            c.status == bindparam("b_status"),
            c.starts_at == bindparam("b_starts_at"),
        )
        self._bump_alert = (
            update(analyses)
            .where(c.id == bindparam("b_id"))
            .values(
                deliveries=c.deliveries + 1,
                last_received_at=bindparam("b_now"),
                truncated_alerts=greatest(c.truncated_alerts, bindparam("b_truncated")),
            )
        )
        self._count_delivery = (
            update(deliveries)
            .where(deliveries.c.id == bindparam("b_id"))
            .values(new_alerts=bindparam("b_new"), duplicate_alerts=bindparam("b_duplicates"))
        )
        self._next_pending = (
            select(c.id)
            .where(c.state == "pending", c.available_at <= bindparam("b_now"))
            .order_by(c.available_at, c.id)
            .limit(1)
        )
        self._next_stale = (
            select(c.id)
            .where(c.state == "running", c.claimed_at < bindparam("b_stale"))
            .order_by(c.id)
            .limit(1)
        )
        self._claim = (
            update(analyses)
            .where(c.id == bindparam("b_id"))
            .values(state="running", claimed_at=bindparam("b_now"), attempts=c.attempts + 1)
            .returning(*c)
        )

    def ingest(
        self,
        *,
        receiver: str,
        status: str,
        group_key: str,
        truncated_alerts: int,
        alerts: Sequence[AlertRecord],
    ) -> IngestResult:
        """Store one delivery and its alerts in one transaction; return the analysis ids."""
        now = utcnow()
        with self._write() as conn:
            inserted = conn.execute(
                deliveries.insert(),
                {
                    "received_at": now,
                    "receiver": receiver,
                    "status": status,
                    "group_key": group_key,
                    "alerts": len(alerts),
                    "new_alerts": 0,
                    "duplicate_alerts": 0,
                    "truncated_alerts": truncated_alerts,
                },
            ).inserted_primary_key
            assert inserted is not None
            delivery_id = int(inserted[0])
            result = IngestResult(delivery_id=delivery_id)
            seen: dict[tuple[str, str, datetime], int] = {}
            for alert in alerts:
                key = alert.key
                if key in seen:  # The same alert twice in one payload.
                    result.analysis_ids.append(seen[key])
                    result.duplicates += 1
                    continue
                row = {
                    "fingerprint": alert.fingerprint,
                    "status": alert.status,
                    "starts_at": key[2],
                    "ends_at": to_naive_utc(alert.ends_at) if alert.ends_at else None,
                    "alertname": alert.labels.get("alertname", "")[:255],
                    "labels": alert.labels,
                    "annotations": alert.annotations,
                    "generator_url": alert.generator_url,
                    "received_at": now,
                    "delivery_id": delivery_id,
                    "deliveries": 1,
                    "last_received_at": now,
                    "truncated_alerts": truncated_alerts,
                    "state": "pending",
                    "attempts": 0,
                    "available_at": now,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                }
                new_id = conn.execute(self._insert_alert, row).scalar()
                if new_id is not None:
                    analysis_id = int(new_id)
                    result.new_ids.append(analysis_id)
                else:
                    found = {"b_fingerprint": key[0], "b_status": key[1], "b_starts_at": key[2]}
                    analysis_id = int(conn.execute(self._find_alert, found).scalar_one())
                    conn.execute(
                        self._bump_alert,
                        {"b_id": analysis_id, "b_now": now, "b_truncated": truncated_alerts},
                    )
                    result.duplicates += 1
                seen[key] = analysis_id
                result.analysis_ids.append(analysis_id)
            conn.execute(
                self._count_delivery,
                {
                    "b_id": delivery_id,
                    "b_new": len(result.new_ids),
                    "b_duplicates": result.duplicates,
                },
            )
        return result

    # --- the job queue ---------------------------------------------------------------------
    def requeue_interrupted(self, max_attempts: int) -> tuple[int, int]:
        """At start: jobs left running by a dead process go back to pending (or fail when they
        have used every attempt, so a job that kills the process cannot loop forever).
        Returns (requeued, failed)."""
        now = utcnow()
        with self._write() as conn:
            failed = conn.execute(
                update(analyses)
                .where(analyses.c.state == "running", analyses.c.attempts >= max_attempts)
                .values(
                    state="failed",
                    finished_at=now,
                    outcome="failed",
                    last_error="interrupted on every attempt (process stopped while running)",
                )
            ).rowcount
            requeued = conn.execute(
                update(analyses)
                .where(analyses.c.state == "running")
                .values(state="pending", claimed_at=None, available_at=now)
            ).rowcount
        return requeued, failed

    def claim_next(self, *, lease_seconds: float) -> Job | None:
        """Atomically move the oldest due pending job (or one whose lease expired) to running."""
        now = utcnow()
        stale = now - timedelta(seconds=lease_seconds)
        # Idle workers ask often: answer "nothing to do" from a read, without the write lock.
        with self._reader.connect() as reader:
            due = reader.execute(self._next_pending, {"b_now": now}).scalar()
            if due is None:
                due = reader.execute(self._next_stale, {"b_stale": stale}).scalar()
        if due is None:
            return None
        with self._write() as conn:
            # Two indexed lookups rather than one OR, which SQLite would answer with a scan.
            job_id = conn.execute(self._next_pending, {"b_now": now}).scalar()
            if job_id is None:
                job_id = conn.execute(self._next_stale, {"b_stale": stale}).scalar()
            if job_id is None:
                return None
            claimed = conn.execute(self._claim, {"b_id": job_id, "b_now": now}).one()
        return _job_from_row(claimed._mapping)

    @staticmethod
    def _result_values(
        result: AnalysisResult | None, evidence: list[EvidenceItem]
    ) -> dict[str, Any]:
        values: dict[str, Any] = {"evidence": [item.model_dump(mode="json") for item in evidence]}
        if result is not None:
            values.update(
                result=result.model_dump(mode="json"),
                engine=result.engine,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                analyzed_at=utcnow(),
            )
        return values

    def save_result(
        self, job_id: int, result: AnalysisResult | None, evidence: list[EvidenceItem]
    ) -> None:
        """Store the engine's answer before notifying, so a retry never asks the engine twice."""
        values = self._result_values(result, evidence)
        with self._write() as conn:
            conn.execute(update(analyses).where(analyses.c.id == job_id).values(**values))

    def save_resolution(
        self, job_id: int, firing_analysis_id: int | None, duration_seconds: float | None
    ) -> None:
        with self._write() as conn:
            conn.execute(
                update(analyses)
                .where(analyses.c.id == job_id)
                .values(firing_analysis_id=firing_analysis_id, duration_seconds=duration_seconds)
            )

    def finish(
        self,
        job_id: int,
        *,
        outcome: str,
        notifications: list[NotificationOutcome],
        result: AnalysisResult | None = None,
        evidence: list[EvidenceItem] | None = None,
    ) -> None:
        """Mark the job done; with ``result``, store it in the same transaction.

        ``notified_at`` is set when at least one channel accepted the notification: the
        notifier has returned by now, so this is when the last channel finished.
        """
        now = utcnow()
        values: dict[str, Any] = {
            "state": "done",
            "outcome": outcome,
            "finished_at": now,
            "last_error": None,
            "notifications": [n.model_dump(mode="json") for n in notifications],
            "notified_at": now if any(n.ok for n in notifications) else None,
        }
        if result is not None:
            values.update(self._result_values(result, evidence or []))
        with self._write() as conn:
            conn.execute(update(analyses).where(analyses.c.id == job_id).values(**values))

    def defer(self, job_id: int, *, seconds: float) -> None:
        """Put a claimed job back for later without counting the attempt."""
        with self._write() as conn:
            conn.execute(
                update(analyses)
                .where(analyses.c.id == job_id)
                .values(
                    state="pending",
                    claimed_at=None,
                    attempts=analyses.c.attempts - 1,
                    available_at=utcnow() + timedelta(seconds=seconds),
                )
            )

    def fail_attempt(self, job_id: int, *, error: str, retry_in: float | None) -> None:
        """Record a failed attempt: back to pending after ``retry_in`` seconds, or failed."""
        now = utcnow()
        values: dict[str, Any] = {"last_error": error[:2000], "claimed_at": None}
        if retry_in is None:
            values.update(state="failed", outcome="failed", finished_at=now)
        else:
            values.update(state="pending", available_at=now + timedelta(seconds=retry_in))
        with self._write() as conn:
            conn.execute(update(analyses).where(analyses.c.id == job_id).values(**values))

    def next_due_in(self) -> float | None:
        """Seconds until the next pending job is due (None when there is none)."""
        with self._reader.connect() as conn:
            due = conn.execute(
                select(func.min(analyses.c.available_at)).where(analyses.c.state == "pending")
            ).scalar()
        if due is None:
            return None
        return max(0.0, (due - utcnow()).total_seconds())

    # --- reads -----------------------------------------------------------------------------
    def count_active(self) -> int:
        with self._reader.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(analyses)
                    .where(analyses.c.state.in_(("pending", "running")))
                ).scalar_one()
            )

    def count_by_state(self) -> dict[str, int]:
        with self._reader.connect() as conn:
            rows = conn.execute(
                select(analyses.c.state, func.count()).group_by(analyses.c.state)
            ).all()
        counts = dict.fromkeys(JOB_STATES, 0)
        counts.update({state: int(n) for state, n in rows})
        return counts

    def tokens_used_today(self) -> int:
        """Prompt plus completion tokens of analyses finished since 00:00 UTC."""
        midnight = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        with self._reader.connect() as conn:
            total = conn.execute(
                select(
                    func.coalesce(
                        func.sum(analyses.c.prompt_tokens + analyses.c.completion_tokens), 0
                    )
                ).where(
                    analyses.c.finished_at >= midnight,
                    analyses.c.prompt_tokens + analyses.c.completion_tokens > 0,
                )
            ).scalar_one()
        return int(total)

    def find_firing(self, fingerprint: str, starts_at: datetime) -> dict[str, Any] | None:
        with self._reader.connect() as conn:
            row = conn.execute(
                select(analyses).where(
                    analyses.c.fingerprint == fingerprint,
                    analyses.c.status == "firing",
                    analyses.c.starts_at == to_naive_utc(starts_at),
                )
            ).first()
        return dict(row._mapping) if row else None

    def get(self, analysis_id: int) -> dict[str, Any] | None:
        with self._reader.connect() as conn:
            row = conn.execute(select(analyses).where(analyses.c.id == analysis_id)).first()
            if row is None:
                return None
            record = dict(row._mapping)
            record["resolved_by"] = conn.execute(
                select(analyses.c.id).where(analyses.c.firing_analysis_id == analysis_id).limit(1)
            ).scalar()
        return record

    def list(
        self,
        *,
        status: str | None = None,
        state: str | None = None,
        alertname: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Newest first; returns (page, total matching)."""
        conditions = []
        if status:
            conditions.append(analyses.c.status == status)
        if state:
            conditions.append(analyses.c.state == state)
        if alertname:
            conditions.append(analyses.c.alertname == alertname)
        if since:
            conditions.append(analyses.c.received_at >= to_naive_utc(since))
        with self._reader.connect() as conn:
            total = conn.execute(
                select(func.count()).select_from(analyses).where(*conditions)
            ).scalar_one()
            rows = conn.execute(
                select(analyses)
                .where(*conditions)
                .order_by(analyses.c.id.desc())
                .limit(limit)
                .offset(offset)
            ).all()
        return [dict(row._mapping) for row in rows], int(total)

    def delivery(self, delivery_id: int) -> dict[str, Any] | None:
        with self._reader.connect() as conn:
            row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
        return dict(row._mapping) if row else None


def _job_from_row(row: Any) -> Job:
    alert = Alert(
        fingerprint=row["fingerprint"],
        status=row["status"],
        labels=row["labels"] or {},
        annotations=row["annotations"] or {},
        starts_at=row["starts_at"].replace(tzinfo=UTC),
        ends_at=row["ends_at"].replace(tzinfo=UTC) if row["ends_at"] else None,
        generator_url=row["generator_url"] or "",
    )
    result = AnalysisResult.model_validate(row["result"]) if row["result"] else None
    evidence = (
        [EvidenceItem.model_validate(item) for item in row["evidence"]]
        if row["evidence"] is not None
        else None
    )
    return Job(
        id=row["id"],
        alert=alert,
        attempts=row["attempts"],
        result=result,
        evidence=evidence,
        received_at=row["received_at"],
    )
