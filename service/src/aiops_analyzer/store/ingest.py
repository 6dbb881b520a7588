"""Ingest: deliveries and their alerts, stored before the webhook answers.

Idempotency lives here: an alert state is stored once per (fingerprint, status, starts_at),
so a resend, a retry or the other member of an HA pair finds the existing row and only bumps
its delivery counter. ``ingest_many`` stores the deliveries of concurrent requests in one
transaction (one fsync): see ``GroupCommitter``. PostgreSQL does it in one statement
(``ingest_postgres``); SQLite, which has one writer at a time, looks the keys up first
(``ingest_sqlite``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from aiops_analyzer.store.database import Database
from aiops_analyzer.store.ingest_postgres import PostgresBatchWriter
from aiops_analyzer.store.ingest_sqlite import SqliteBatchWriter
from aiops_analyzer.store.records import Delivery, IngestResult, utcnow


class Ingestor:
    """Stores a batch of deliveries with a few statements, whatever its size: PostgreSQL in
    one (``PostgresBatchWriter``), SQLite in a BEGIN IMMEDIATE transaction
    (``SqliteBatchWriter``). Per-alert statements held the GIL the webhook needs and delayed
    the durable commit (benchmarks/README.md has the profiles)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        dialect = db.writer.dialect
        self._writer = PostgresBatchWriter(dialect) if db.postgres else SqliteBatchWriter(dialect)

    def ingest(self, delivery: Delivery) -> IngestResult:
        """Store one delivery and its alerts in one transaction."""
        return self.ingest_many([delivery])[0]

    def ingest_many(
        self, batch: Sequence[Delivery], *, wait: bool = True, sync_later: bool = False
    ) -> list[IngestResult]:
        """Store several deliveries in one transaction; one result per delivery, in order.

        Within a batch, the first delivery holding an alert state stores it (new); any later
        one, like any resend, counts a duplicate and bumps the stored row's counter. With
        ``wait=False`` it raises ``WriteWouldWait`` rather than wait for another writer (SQLite);
        with ``sync_later`` too, the commit is durable only after ``Database.sync_log``.
        """
        if not batch:
            return []
        now = utcnow()
        if isinstance(self._writer, PostgresBatchWriter):
            with self.db.autocommit() as conn:
                return self._writer.store(conn, batch, now)
        with (
            self.db.write(urgent=True) if wait else self.db.write_now(sync_later=sync_later)
        ) as conn:
            return self._writer.store(conn, batch, now)

    @property
    def asynchronous(self) -> bool:
        """Batches are stored on the event loop with ``ingest_many_async`` (PostgreSQL)."""
        return isinstance(self._writer, PostgresBatchWriter)

    async def ingest_many_async(self, batch: Sequence[Delivery]) -> list[IngestResult]:
        """``ingest_many`` on PostgreSQL's asyncio connection. A failure discards the
        connection (its state is unknown) and raises: the caller retries in a thread."""
        assert isinstance(self._writer, PostgresBatchWriter)
        if not batch:
            return []
        try:
            conn = await self.db.async_ingest_connection()
            return await self._writer.store_async(conn, batch, utcnow())
        except BaseException:
            self.db.discard_async_ingest_connection()
            raise


class GroupCommitter:
    """One writer for the webhook: the deliveries of concurrent requests go into one
    transaction, so they share one commit (one fsync) instead of queueing for one each.

    No request waits for a batch to fill: the first goes alone, and those that arrive while
    a commit runs form the next batch. ``build`` runs in the writer too (the webhook scrubs
    there). A small batch is built on the event loop and stored without blocking it: on
    PostgreSQL its one statement is awaited on an asyncio connection, and the loop serves
    other requests meanwhile; on SQLite it is committed on the loop when the write lock is
    free (``Database.write_now``; the hop to a thread and back cost more than the
    statements), and its log's fsync is awaited from a thread (``Database.sync_log``).
    Anything else (a large batch, a busy lock, a failure) goes to a thread, where a failed
    batch is retried one delivery at a time, so one bad delivery fails only its own request.
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
                    if self.ingestor.asynchronous:
                        outcomes = await self._store_async(built)
                    else:
                        outcomes = self._store_now(built)
                        if outcomes is not None:
                            outcomes = await self._made_durable(outcomes)
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
            stored = self.ingestor.ingest_many(valid, wait=False, sync_later=True)
        except Exception:  # rolled back: the thread retries it, waiting, then one by one
            return None
        return _in_order(built, stored)

    async def _made_durable(
        self, outcomes: list[IngestResult | Exception]
    ) -> list[IngestResult | Exception]:
        """A batch committed without fsync is answered only once its log is fsynced; if that
        fails, every request of the batch gets the error (503: Alertmanager sends it again,
        and the resend finds the rows, if they survived, as duplicates)."""
        try:
            await self.ingestor.db.sync_log()
        except Exception as exc:
            return [exc for _ in outcomes]
        return outcomes

    async def _store_async(
        self, built: list[Delivery | Exception]
    ) -> list[IngestResult | Exception] | None:
        """Store a built batch on PostgreSQL's asyncio connection; None when it failed and is
        to be retried in a thread (a new connection, then one delivery at a time)."""
        valid = [d for d in built if isinstance(d, Delivery)]
        try:
            stored = await self.ingestor.ingest_many_async(valid)
        except Exception:
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
