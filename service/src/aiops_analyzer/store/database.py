"""The connection side of the store: engines, and write transactions in which the webhook goes
before the analysis workers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, text

from aiops_analyzer.store import migrate
from aiops_analyzer.store.db import create_store_engine, is_sqlite


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
            with self._condition:
                self._held = False
                self._condition.notify_all()


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
        # Queueing this process's SQLite writers on a lock hands the turn over at once, where
        # SQLite's busy handler would sleep in growing steps. PostgreSQL locks rows instead.
        self._write_lock = PriorityLock() if self.sqlite else None

    @contextmanager
    def write(self, *, urgent: bool = False) -> Iterator[Connection]:
        """One write transaction; ``urgent`` (ingest) goes before queued job updates."""
        if self._write_lock is None:
            with self.writer.begin() as conn:
                yield conn
            return
        with self._write_lock.hold(urgent=urgent), self.writer.begin() as conn:
            yield conn

    def read(self) -> Connection:
        return self.reader.connect()

    def migrate(self) -> str:
        return migrate.upgrade(self.writer)

    def ping(self) -> bool:
        with self.reader.connect() as connection:
            return connection.execute(text("SELECT 1")).scalar() == 1

    def dispose(self) -> None:
        self.writer.dispose()
        self.reader.dispose()
