"""Ingest: deliveries and their alerts, stored before the webhook answers.

Idempotency lives here: an alert state is stored once per (fingerprint, status, starts_at),
so a resend, a retry or the other member of an HA pair finds the existing row and only bumps
its delivery counter. ``ingest_many`` stores the deliveries of concurrent requests in one
transaction (one fsync): see ``GroupCommitter``. PostgreSQL does it in one statement
(``ingest_postgres``); SQLite, which has one writer at a time, looks the keys up first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.engine import Dialect

from aiops_analyzer.store.database import Database
from aiops_analyzer.store.ingest_postgres import PostgresBatchWriter
from aiops_analyzer.store.records import Alert, Delivery, IngestResult, JobState, utcnow
from aiops_analyzer.store.tables import analyses, bind_processor, deliveries

AlertKey = tuple[str, str, datetime]

# SQLite's statements (PostgreSQL's batch is one statement of two JSON documents).
# Fingerprints per `IN (...)` list: far below SQLite's parameter limit.
LOOKUP_CHUNK = 500
# Alert rows per multi-row INSERT: 18 parameters each, under SQLite's 32,766 per statement.
INSERT_CHUNK = 500

# The columns a new alert state is stored with, in the order of ``_AlertRows.row``'s tuple.
_ALERT_COLUMNS = (
    "fingerprint",
    "status",
    "starts_at",
    "ends_at",
    "alertname",
    "labels",
    "annotations",
    "generator_url",
    "received_at",
    "delivery_id",
    "deliveries",
    "last_received_at",
    "truncated_alerts",
    "state",
    "attempts",
    "available_at",
    "prompt_tokens",
    "completion_tokens",
)


@dataclass
class _Planned:
    """One delivery of a batch: its alerts' keys in payload order, and what each one is."""

    keys: list[AlertKey]
    # Keys this delivery brings to the store first (in this batch, nobody had them before).
    firsts: list[AlertKey]
    # Keys seen before (stored earlier or by an earlier delivery of the batch): one bump each.
    repeats: list[AlertKey]
    # The same key again inside this one payload: counted as a duplicate, no bump.
    echoes: int


class Ingestor:
    """Stores a batch of deliveries with a handful of set-based statements, whatever its size.

    SQLite: one lookup of the keys already stored, one multi-row insert per table, one
    executemany for the duplicates' counters, in a BEGIN IMMEDIATE transaction (no other
    writer can store a key between the lookup and the insert). Per-alert statements held the
    GIL the webhook needs and delayed the durable commit (benchmarks/README.md has the
    profile). PostgreSQL: one statement (``PostgresBatchWriter``)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # The statements are built once: constructing them per call costs more than SQLite
        # takes to run them.
        c = analyses.c
        self._insert_deliveries = deliveries.insert().returning(
            deliveries.c.id, sort_by_parameter_order=True
        )
        self._alert_rows = _AlertRows(db.writer.dialect)
        self._postgres = PostgresBatchWriter(db.writer.dialect) if db.postgres else None
        self._bump_alert = (
            update(analyses)
            .where(c.id == bindparam("b_id"))
            .values(
                deliveries=c.deliveries + bindparam("b_count"),
                last_received_at=bindparam("b_now"),
                truncated_alerts=func.max(c.truncated_alerts, bindparam("b_truncated")),
            )
        )

    def ingest(self, delivery: Delivery) -> IngestResult:
        """Store one delivery and its alerts in one transaction."""
        return self.ingest_many([delivery])[0]

    def ingest_many(self, batch: Sequence[Delivery], *, wait: bool = True) -> list[IngestResult]:
        """Store several deliveries in one transaction; one result per delivery, in order.

        Within a batch, the first delivery holding an alert state stores it (new); any later
        one, like any resend, counts a duplicate and bumps the stored row's counter. With
        ``wait=False`` it raises ``WriteWouldWait`` rather than wait for another writer.
        """
        if not batch:
            return []
        now = utcnow()
        if self._postgres is not None:
            with self.db.autocommit() as conn:
                return self._postgres.store(conn, batch, now)
        with self.db.write(urgent=True) if wait else self.db.write_now() as conn:
            return self._store(conn, batch, now)

    def _store(
        self, conn: Connection, batch: Sequence[Delivery], now: datetime
    ) -> list[IngestResult]:
        alerts_by_key: dict[AlertKey, Alert] = {}
        for delivery in batch:
            for alert in delivery.alerts:
                alerts_by_key.setdefault(_key(alert), alert)
        stored = self._lookup(conn, list(alerts_by_key))
        plans = _plan(batch, set(stored))

        delivery_ids = self._insert_delivery_rows(
            conn,
            [
                {
                    "received_at": now,
                    "receiver": delivery.receiver,
                    "status": delivery.status,
                    "group_key": delivery.group_key,
                    "alerts": len(delivery.alerts),
                    "new_alerts": len(plan.firsts),
                    "duplicate_alerts": len(plan.repeats) + plan.echoes,
                    "truncated_alerts": delivery.truncated_alerts,
                }
                for delivery, plan in zip(batch, plans, strict=True)
            ],
        )

        stored.update(
            self._alert_rows.insert(
                conn,
                [
                    (alerts_by_key[key], delivery_id, delivery.truncated_alerts)
                    for delivery, plan, delivery_id in zip(batch, plans, delivery_ids, strict=True)
                    for key in plan.firsts
                ],
                now,
            )
        )

        bumps: dict[int, tuple[int, int]] = {}
        for delivery, plan in zip(batch, plans, strict=True):
            for key in plan.repeats:
                count, truncated = bumps.get(stored[key], (0, 0))
                bumps[stored[key]] = (count + 1, max(truncated, delivery.truncated_alerts))
        if bumps:
            conn.execute(
                self._bump_alert,
                [
                    {"b_id": analysis_id, "b_count": count, "b_now": now, "b_truncated": truncated}
                    for analysis_id, (count, truncated) in bumps.items()
                ],
            )

        return [
            IngestResult(
                delivery_id=delivery_id,
                analysis_ids=[stored[key] for key in plan.keys],
                new_ids=[stored[key] for key in plan.firsts],
                duplicates=len(plan.repeats) + plan.echoes,
            )
            for plan, delivery_id in zip(plans, delivery_ids, strict=True)
        ]

    def _insert_delivery_rows(self, conn: Connection, rows: list[dict[str, Any]]) -> list[int]:
        """Insert the deliveries; their ids in the order of ``rows``."""
        return [int(row[0]) for row in conn.execute(self._insert_deliveries, rows)]

    def _lookup(self, conn: Connection, keys: list[AlertKey]) -> dict[AlertKey, int]:
        """The ids of the alert states among ``keys`` that are already stored."""
        wanted = set(keys)
        found: dict[AlertKey, int] = {}
        for analysis_id, fingerprint, status, starts_at in self._stored_states(conn, keys):
            key = (fingerprint, status, starts_at)
            if key in wanted:
                found[key] = int(analysis_id)
        return found

    def _stored_states(
        self, conn: Connection, keys: list[AlertKey]
    ) -> Iterator[tuple[int, str, str, datetime]]:
        """(id, fingerprint, status, starts_at) of every stored state of the keys' alerts."""
        fingerprints = sorted({key[0] for key in keys})
        c = analyses.c
        for start in range(0, len(fingerprints), LOOKUP_CHUNK):
            chunk = fingerprints[start : start + LOOKUP_CHUNK]
            query = select(c.id, c.fingerprint, c.status, c.starts_at).where(
                c.fingerprint.in_(chunk)
            )
            for row in conn.execute(query):
                yield row.id, row.fingerprint, row.status, row.starts_at


def _key(alert: Alert) -> AlertKey:
    return (alert.fingerprint, alert.status, alert.starts_at)


def _plan(batch: Sequence[Delivery], stored: set[AlertKey]) -> list[_Planned]:
    claimed = set(stored)
    plans = []
    for delivery in batch:
        plan = _Planned(keys=[], firsts=[], repeats=[], echoes=0)
        mine: set[AlertKey] = set()
        for alert in delivery.alerts:
            key = _key(alert)
            plan.keys.append(key)
            if key in mine:
                plan.echoes += 1
                continue
            mine.add(key)
            if key in claimed:
                plan.repeats.append(key)
            else:
                claimed.add(key)
                plan.firsts.append(key)
        plans.append(plan)
    return plans


class _AlertRows:
    """The multi-row INSERT of new alert states, with parameters bound by hand.

    SQLAlchemy's per-parameter processing of 18 columns per alert was a quarter of the
    writer's time under load. Here each row is a plain tuple made with the columns' own bind
    processors, taken from the dialect once, so what is stored is byte for byte what
    ``insert(analyses)`` stores (JSON text, naive-UTC datetimes); ``now`` is bound once per batch.

    No ON CONFLICT clause: the lookup ran in the same BEGIN IMMEDIATE transaction, so no other
    writer can have stored these states since.
    """

    def __init__(self, dialect: Dialect) -> None:
        self._datetime = bind_processor(analyses.c.starts_at, dialect)
        self._json = bind_processor(analyses.c.labels, dialect)
        placeholder = "?" if dialect.paramstyle == "qmark" else "%s"
        self._values = "(" + ", ".join([placeholder] * len(_ALERT_COLUMNS)) + ")"
        # Constant column names; every value is a bound parameter.
        self._statement_head = f"INSERT INTO analyses ({', '.join(_ALERT_COLUMNS)}) VALUES "  # noqa: S608
        self._statement_tail = " RETURNING id, fingerprint, status, starts_at"

    def insert(
        self, conn: Connection, new: list[tuple[Alert, int, int]], now: datetime
    ) -> dict[AlertKey, int]:
        """Store ``new`` (alert, delivery id, truncated count); the ids of the rows inserted."""
        now_bound = self._datetime(now)
        to_datetime, to_json = self._datetime, self._json
        keys: dict[tuple[str, str, Any], AlertKey] = {}
        rows: list[tuple[Any, ...]] = []
        for alert, delivery_id, truncated in new:
            starts_at = to_datetime(alert.starts_at)
            keys[(alert.fingerprint, alert.status, starts_at)] = _key(alert)
            rows.append(
                (
                    alert.fingerprint,
                    alert.status,
                    starts_at,
                    to_datetime(alert.ends_at),
                    alert.alertname[:255],
                    to_json(alert.labels),
                    to_json(alert.annotations),
                    alert.generator_url,
                    now_bound,
                    delivery_id,
                    1,
                    now_bound,
                    truncated,
                    JobState.PENDING,
                    0,
                    now_bound,
                    0,
                    0,
                )
            )
        inserted: dict[AlertKey, int] = {}
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            statement = (
                self._statement_head + ", ".join([self._values] * len(chunk)) + self._statement_tail
            )
            parameters = tuple(value for row in chunk for value in row)
            # The driver returns starts_at as it was bound (SQLite's text): matched against
            # the bound values, not parsed back.
            for analysis_id, fingerprint, status, starts_at in conn.exec_driver_sql(
                statement, parameters
            ):
                inserted[keys[(fingerprint, status, starts_at)]] = int(analysis_id)
        return inserted


class GroupCommitter:
    """One writer for the webhook: the deliveries of concurrent requests go into one
    transaction, so they share one commit (one fsync) instead of queueing for one each.

    No request waits for a batch to fill: the first goes alone, and those that arrive while
    a commit runs form the next batch. ``build`` runs in the writer too (the webhook scrubs
    there). A small batch on SQLite is built and committed on the event loop when the write
    lock is free (``Database.write_now``): the hop to a thread and back cost more than the
    commit. Anything else (PostgreSQL, a large batch, a busy lock, a failure) goes to a
    thread, where a failed batch is retried one delivery at a time, so one bad delivery fails
    only its own request.
    """

    # Deliveries queueing behind a commit mean the webhook is under load: for this long after,
    # ``busy`` asks the analysis workers to hold off (a storm delays analyses, never 202s).
    BUSY_HOLD_SECONDS = 0.25
    # A delivery within this long makes the webhook "active": analyses then run one at a time.
    ACTIVE_SECONDS = 1.0

    def __init__(
        self, ingestor: Ingestor, *, max_batch: int = 256, inline_max_bytes: int = 0
    ) -> None:
        self.ingestor = ingestor
        self.max_batch = max_batch
        # Body bytes a batch may hold to be built and stored on the event loop (scrubbing
        # costs about 0.3 ms per kilobyte of text); 0 never does.
        self.inline_max_bytes = inline_max_bytes
        self._waiting: list[_Waiting] = []
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

    async def ingest(
        self, build: Callable[[], Delivery], *, size: int | None = None
    ) -> IngestResult:
        """Store what ``build`` makes; ``size`` is its body's bytes (None: unknown, large)."""
        self._last_delivery = time.monotonic()
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(build, future, size))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="aiops-ingest-writer")
        # A request cancelled while waiting (client gone) cancels only this future: the
        # writer still stores the delivery, and skips answering it.
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            if len(batch) > 1:
                self._busy_until = time.monotonic() + self.BUSY_HOLD_SECONDS
            builders = [waiting.build for waiting in batch]
            try:
                built: list[Delivery | Exception] | None = None
                outcomes: list[IngestResult | Exception] | None = None
                if self._small(batch):
                    built = _build(builders)
                    outcomes = self._store_now(built)
                if outcomes is None:
                    outcomes = await anyio.to_thread.run_sync(self._commit, builders, built)
            except BaseException as exc:  # Never leave a request waiting forever.
                for waiting in batch:
                    if not waiting.future.done():
                        waiting.future.set_exception(exc)
                raise
            for waiting, outcome in zip(batch, outcomes, strict=True):
                if waiting.future.done():
                    continue
                if isinstance(outcome, Exception):
                    waiting.future.set_exception(outcome)
                else:
                    waiting.future.set_result(outcome)

    def _small(self, batch: list[_Waiting]) -> bool:
        sizes = [waiting.size for waiting in batch]
        return (
            self.inline_max_bytes > 0
            and None not in sizes
            and sum(size or 0 for size in sizes) <= self.inline_max_bytes
        )

    def _store_now(
        self, built: list[Delivery | Exception]
    ) -> list[IngestResult | Exception] | None:
        """Store a built batch without waiting for a lock; None when it must go to a thread
        (another writer holds the lock, or the batch failed and is to be retried there)."""
        valid = [d for d in built if isinstance(d, Delivery)]
        try:
            stored = self.ingestor.ingest_many(valid, wait=False)
        except Exception:  # rolled back: the thread retries it, waiting, then one by one
            return None
        return _in_order(built, stored)

    def _commit(
        self, builders: list[Callable[[], Delivery]], built: list[Delivery | Exception] | None
    ) -> list[IngestResult | Exception]:
        """Build (unless built) and store a batch in one transaction; on failure, each
        delivery alone."""
        deliveries = built if built is not None else _build(builders)
        valid = [d for d in deliveries if isinstance(d, Delivery)]
        try:
            stored = self.ingestor.ingest_many(valid)
        except Exception:
            return [d if isinstance(d, Exception) else self._alone(d) for d in deliveries]
        return _in_order(deliveries, stored)

    def _alone(self, delivery: Delivery) -> IngestResult | Exception:
        try:
            return self.ingestor.ingest(delivery)
        except Exception as exc:
            return exc


@dataclass
class _Waiting:
    """A request waiting for the writer: what to store, where the answer goes, its size."""

    build: Callable[[], Delivery]
    future: asyncio.Future[IngestResult]
    size: int | None


def _build(builders: list[Callable[[], Delivery]]) -> list[Delivery | Exception]:
    deliveries: list[Delivery | Exception] = []
    for build in builders:
        try:
            deliveries.append(build())
        except Exception as exc:
            deliveries.append(exc)
    return deliveries


def _in_order(
    built: list[Delivery | Exception], stored: list[IngestResult]
) -> list[IngestResult | Exception]:
    """One outcome per request: its build's exception, else the next stored result."""
    results = iter(stored)
    return [d if isinstance(d, Exception) else next(results) for d in built]
