"""Ingest: deliveries and their alerts, stored before the webhook answers.

Idempotency lives here: an alert state is inserted with ON CONFLICT DO NOTHING on
(fingerprint, status, starts_at), so a resend, a retry or the other member of an HA pair finds
the existing row and only bumps its delivery counter. ``ingest_many`` stores the deliveries of
concurrent requests in one transaction (one fsync): see ``GroupCommitter``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import anyio
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from aiops_analyzer.store.database import Database
from aiops_analyzer.store.records import Delivery, IngestResult, JobState, utcnow
from aiops_analyzer.store.tables import analyses, deliveries


class Ingestor:
    def __init__(self, db: Database) -> None:
        self.db = db
        # The hot statements are built once: constructing SQLAlchemy statements per call costs
        # more than SQLite takes to run them.
        insert = postgresql.insert if db.postgres else sqlite.insert
        greatest = func.greatest if db.postgres else func.max
        c = analyses.c
        self._insert_delivery = deliveries.insert().returning(deliveries.c.id)
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

    def ingest(self, delivery: Delivery) -> IngestResult:
        """Store one delivery and its alerts in one transaction."""
        return self.ingest_many([delivery])[0]

    def ingest_many(self, batch: Sequence[Delivery]) -> list[IngestResult]:
        """Store several deliveries in one transaction; one result per delivery, in order."""
        now = utcnow()
        with self.db.write(urgent=True) as conn:
            return [self._store(conn, delivery, now) for delivery in batch]

    def _store(self, conn: Connection, delivery: Delivery, now: datetime) -> IngestResult:
        delivery_id = int(
            conn.execute(
                self._insert_delivery,
                {
                    "received_at": now,
                    "receiver": delivery.receiver,
                    "status": delivery.status,
                    "group_key": delivery.group_key,
                    "alerts": len(delivery.alerts),
                    "new_alerts": 0,
                    "duplicate_alerts": 0,
                    "truncated_alerts": delivery.truncated_alerts,
                },
            ).scalar_one()
        )
        result = IngestResult(delivery_id=delivery_id)
        truncated = delivery.truncated_alerts
        seen: dict[tuple[str, str, datetime], int] = {}
        for alert in delivery.alerts:
            key = (alert.fingerprint, alert.status, alert.starts_at)
            if key in seen:  # The same alert twice in one payload.
                result.analysis_ids.append(seen[key])
                result.duplicates += 1
                continue
            row: dict[str, Any] = {
                "fingerprint": alert.fingerprint,
                "status": alert.status,
                "starts_at": alert.starts_at,
                "ends_at": alert.ends_at,
                "alertname": alert.alertname[:255],
                "labels": alert.labels,
                "annotations": alert.annotations,
                "generator_url": alert.generator_url,
                "received_at": now,
                "delivery_id": delivery_id,
                "deliveries": 1,
                "last_received_at": now,
                "truncated_alerts": truncated,
                "state": JobState.PENDING,
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
                    {"b_id": analysis_id, "b_now": now, "b_truncated": truncated},
                )
                result.duplicates += 1
            seen[key] = analysis_id
            result.analysis_ids.append(analysis_id)
        conn.execute(
            self._count_delivery,
            {"b_id": delivery_id, "b_new": len(result.new_ids), "b_duplicates": result.duplicates},
        )
        return result


class GroupCommitter:
    """One writer for the webhook: the deliveries of concurrent requests go into one
    transaction, so they share one commit (one fsync) instead of queueing for one each.

    No request waits for a batch to fill: the first goes alone, and those that arrive while
    a commit runs form the next batch. ``build`` runs in the writer's thread too (the webhook
    scrubs there), so a batch costs one thread hop. If a batch fails, its deliveries are
    retried one by one, so one bad delivery fails only its own request.
    """

    # Deliveries queueing behind a commit mean the webhook is under load: for this long after,
    # ``busy`` asks the analysis workers to hold off (a storm delays analyses, never 202s).
    BUSY_HOLD_SECONDS = 0.25
    # A delivery within this long makes the webhook "active": analyses then run one at a time.
    ACTIVE_SECONDS = 1.0

    def __init__(self, ingestor: Ingestor, *, max_batch: int = 256) -> None:
        self.ingestor = ingestor
        self.max_batch = max_batch
        self._waiting: list[tuple[Callable[[], Delivery], asyncio.Future[IngestResult]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._busy_until = 0.0
        self._last_delivery = float("-inf")

    @property
    def busy(self) -> bool:
        """Deliveries are queueing for the writer (or were a moment ago)."""
        return bool(self._waiting) or time.monotonic() < self._busy_until

    @property
    def active(self) -> bool:
        """A delivery arrived within the last ``ACTIVE_SECONDS``."""
        return time.monotonic() - self._last_delivery < self.ACTIVE_SECONDS

    async def ingest(self, build: Callable[[], Delivery]) -> IngestResult:
        self._last_delivery = time.monotonic()
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((build, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="aiops-ingest-writer")
        # A request cancelled while waiting (client gone) leaves the write to finish.
        return await asyncio.shield(future)

    async def _write_all(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            if len(batch) > 1:
                self._busy_until = time.monotonic() + self.BUSY_HOLD_SECONDS
            try:
                outcomes = await anyio.to_thread.run_sync(self._commit, [b for b, _ in batch])
            except BaseException as exc:  # Never leave a request waiting forever.
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _commit(self, builders: list[Callable[[], Delivery]]) -> list[IngestResult | Exception]:
        """Build and store a batch in one transaction; on failure, each delivery alone."""
        deliveries: list[Delivery | Exception] = []
        for build in builders:
            try:
                deliveries.append(build())
            except Exception as exc:
                deliveries.append(exc)
        valid = [d for d in deliveries if isinstance(d, Delivery)]
        try:
            stored = iter(self.ingestor.ingest_many(valid))
        except Exception:
            return [d if isinstance(d, Exception) else self._alone(d) for d in deliveries]
        return [d if isinstance(d, Exception) else next(stored) for d in deliveries]

    def _alone(self, delivery: Delivery) -> IngestResult | Exception:
        try:
            return self.ingestor.ingest(delivery)
        except Exception as exc:
            return exc
