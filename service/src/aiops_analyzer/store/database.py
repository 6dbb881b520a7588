"""The connection side of the store: engines, and write transactions in which the webhook goes
before the analysis workers (and, on SQLite, may write on the event loop when nobody holds the
lock: see ``write_now``)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, cast

import psycopg
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from aiops_analyzer.store import migrate
from aiops_analyzer.store.db import BUSY_TIMEOUT_MS, create_store_engine, is_sqlite


class PriorityLock:
    """A lock whose urgent waiters go before the others (SQLite has one writer at a time:
    ingest must not queue behind a burst of job updates)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._held = False
        self._urgent_waiting = 0

    @contextmanager
    def hold(self, *, urgent: bool) -> Iterator[None]:
        with self._condition:
            if urgent:
                self._urgent_waiting += 1
            try:
                while self._held or (not urgent and self._urgent_waiting):
                    self._condition.wait()
            finally:
                if urgent:
                    self._urgent_waiting -= 1
            self._held = True
        try:
            yield
        finally:
            self.release()

    def try_hold(self) -> bool:
        """Take the lock if it is free and nobody urgent waits for it; never waits."""
        with self._condition:
            if self._held or self._urgent_waiting:
                return False
            self._held = True
            return True

    def release(self) -> None:
        with self._condition:
            self._held = False
            self._condition.notify_all()


class WriteWouldWait(Exception):
    """``Database.write_now`` could not begin without waiting for another writer."""


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = is_sqlite(url)
        # Writes take SQLite's lock at BEGIN; reads never block on it (WAL).
        self.writer: Engine = create_store_engine(url, immediate=True)
        self.reader: Engine = (
            create_store_engine(url, immediate=False) if self.sqlite else self.writer
        )
        self.postgres = self.writer.dialect.name == "postgresql"
        # PostgreSQL's ingest runs one statement per batch in autocommit (``autocommit``), on
        # connections of its own that keep the statement's plan. No pre-ping: it was a round
        # trip per batch, nearly half of a batch's time. A connection the server dropped
        # (restart, failover, idle timeout) fails its batch instead; SQLAlchemy then discards
        # the pool's connections, and the webhook's writer retries each delivery on a new one.
        self.ingest_writer: Engine = (
            create_store_engine(url, immediate=True, pool_size=2, cached_plans=True, pre_ping=False)
            if self.postgres
            else self.writer
        )
        # Queueing this process's SQLite writers on a lock hands the turn over at once, where
        # SQLite's busy handler would sleep in growing steps. PostgreSQL locks rows instead.
        self._write_lock = PriorityLock() if self.sqlite else None
        self._async_ingest: psycopg.AsyncConnection[Any] | None = None
        self._async_ingest_loop: asyncio.AbstractEventLoop | None = None
        # SQLite's write-ahead log, fsynced by ``sync_log`` after ``write_now(sync_later=True)``
        # commits; None for an in-memory database (nothing to make durable).
        database = self.writer.url.database if self.sqlite else None
        self._wal_path = f"{database}-wal" if database and database != ":memory:" else None
        self._wal_inode: int | None = None
        self._log_is_wal: bool | None = None
        self._wal_sync: ThreadPoolExecutor | None = None

    @contextmanager
    def write(self, *, urgent: bool = False) -> Iterator[Connection]:
        """One write transaction; ``urgent`` (ingest) goes before queued job updates."""
        if self._write_lock is None:
            with self.writer.begin() as conn:
                yield conn
            return
        with self._write_lock.hold(urgent=urgent), self.writer.begin() as conn:
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A connection on which each statement commits on its own (PostgreSQL's
        one-statement ingest: no BEGIN or COMMIT round trip)."""
        with self.ingest_writer.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    async def async_ingest_connection(self) -> psycopg.AsyncConnection[Any]:
        """PostgreSQL: the webhook's own asyncio connection (autocommit), opened on first use
        and kept, so the ingest statement waits on the event loop instead of in a thread.
        One writer uses it at a time (``GroupCommitter``)."""
        loop = asyncio.get_running_loop()
        conn = self._async_ingest
        if conn is not None and (conn.closed or self._async_ingest_loop is not loop):
            self.discard_async_ingest_connection()
            conn = None
        if conn is None:
            engine = self.ingest_writer
            args, options = engine.dialect.create_connect_args(engine.url)
            options.setdefault("connect_timeout", 10)
            conn = await psycopg.AsyncConnection.connect(
                *args, **options, options="-c plan_cache_mode=auto", autocommit=True
            )
            self._async_ingest, self._async_ingest_loop = conn, loop
        return conn

    def discard_async_ingest_connection(self) -> None:
        """Drop the asyncio connection (after a failure its state is unknown): closed at
        once, without a round trip, so it also works from a loop that has ended."""
        conn, self._async_ingest, self._async_ingest_loop = self._async_ingest, None, None
        if conn is not None and not conn.closed:
            conn.pgconn.finish()

    @contextmanager
    def write_now(self, *, sync_later: bool = False) -> Iterator[Connection]:
        """A write transaction that begins without waiting, or ``WriteWouldWait``.

        SQLite only (a PostgreSQL server that is down or slow makes any call wait). The
        webhook stores small batches this way on the event loop: a free local SQLite commits
        in well under a millisecond, less than the hop to a thread and back. With
        ``sync_later`` the commit writes the log without fsyncing it (``synchronous=NORMAL``
        for this transaction): it is durable only once ``sync_log`` has returned, which the
        caller awaits before it acknowledges anything, while the event loop works on.
        """
        if self._write_lock is None:
            raise WriteWouldWait("only SQLite writes without waiting")
        if not self._write_lock.try_hold():
            raise WriteWouldWait("another writer of this process holds the lock")
        try:
            with self.writer.connect() as conn:
                sqlite = cast(sqlite3.Connection, conn.connection.driver_connection)
                # Only a write-ahead log can be fsynced after the commit (a file system
                # without WAL support leaves SQLite in rollback-journal mode).
                sync_later = sync_later and self._deferred_sync(sqlite)
                # SQLite's busy handler off for the BEGIN: a lock another process holds
                # fails it at once instead of sleeping on the caller's thread. The safety
                # level can only change outside a transaction.
                sqlite.execute("PRAGMA busy_timeout=0")
                if sync_later:
                    sqlite.execute("PRAGMA synchronous=NORMAL")
                try:
                    try:
                        transaction = conn.begin()
                    except OperationalError as exc:
                        raise WriteWouldWait(str(exc)) from exc
                    finally:
                        sqlite.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                    with transaction:
                        yield conn
                finally:
                    if sync_later:
                        sqlite.execute("PRAGMA synchronous=FULL")
        finally:
            self._write_lock.release()

    def _deferred_sync(self, sqlite: sqlite3.Connection) -> bool:
        """Whether commits can be made durable by ``sync_log``: a file database in WAL mode
        (asked once; every connection sets the same mode)."""
        if self._wal_path is None:
            return False
        if self._log_is_wal is None:
            mode = sqlite.execute("PRAGMA journal_mode").fetchone()
            self._log_is_wal = bool(mode) and str(mode[0]).lower() == "wal"
        return self._log_is_wal

    async def sync_log(self) -> None:
        """SQLite: fsync the write-ahead log in a thread, so every commit made before the call
        survives an OS crash, as ``synchronous=FULL`` would have made it. The loop serves
        other requests during the fsync (the GIL is free), instead of stalling in the commit.
        A failure (EIO, a full disk) is raised: what it covers was never acknowledged."""
        if not self._log_is_wal:
            return  # nothing was committed without its fsync
        if self._wal_sync is None:
            self._wal_sync = ThreadPoolExecutor(1, thread_name_prefix="aiops-wal-sync")
        await asyncio.get_running_loop().run_in_executor(self._wal_sync, self._fsync_log)

    def _fsync_log(self) -> None:
        assert self._wal_path is not None
        fd = os.open(self._wal_path, os.O_RDONLY)
        try:
            os.fsync(fd)
            inode = os.fstat(fd).st_ino
        finally:
            os.close(fd)
        if inode != self._wal_inode:
            # A log file SQLite has just created: its directory entry must be durable too
            # (SQLite syncs the directory at the first sync it makes of a new log).
            directory = os.open(os.path.dirname(self._wal_path) or ".", os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            self._wal_inode = inode

    def read(self) -> Connection:
        return self.reader.connect()

    def migrate(self) -> str:
        return migrate.upgrade(self.writer)

    def ping(self) -> bool:
        with self.reader.connect() as connection:
            return connection.execute(text("SELECT 1")).scalar() == 1

    def dispose(self) -> None:
        self.discard_async_ingest_connection()
        if self._wal_sync is not None:
            self._wal_sync.shutdown(wait=True)
            self._wal_sync = None
        self.writer.dispose()
        self.reader.dispose()
        self.ingest_writer.dispose()
