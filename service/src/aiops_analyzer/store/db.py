"""Engine creation for both stores.

SQLite: WAL, ``synchronous=FULL`` (a commit is fsynced, so a 202 survives an OS crash), a busy
timeout, writes in BEGIN IMMEDIATE. PostgreSQL: the URL as a user writes it
(``postgresql://user:pass@host/db``) is served by psycopg 3; commits are durable by default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

BUSY_TIMEOUT_MS = 15_000
# Drivers this package ships; a URL naming another one is taken as the user's choice.
_POSTGRES_DRIVER = "psycopg"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def normalise_url(url: str) -> URL:
    """``postgresql://`` and ``postgres://`` (Heroku, Cloud SQL docs) mean psycopg 3:
    SQLAlchemy's own default driver for them, psycopg2, is not installed."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername=f"postgresql+{_POSTGRES_DRIVER}")
    return parsed


def create_store_engine(
    url: str,
    *,
    immediate: bool,
    pool_size: int = 8,
    cached_plans: bool = False,
    pre_ping: bool = True,
) -> Engine:
    """An engine for ``url``. On SQLite, ``immediate`` takes the write lock at BEGIN.

    Taking the lock up front avoids SQLite's deadlock of two readers both upgrading to writers
    (which fails at once, ignoring busy_timeout). On PostgreSQL, ``cached_plans`` lets the
    server keep a prepared statement's generic plan (see below), and ``pre_ping`` tests a
    pooled connection (one round trip) before handing it out.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(
            parsed,
            pool_pre_ping=pre_ping,
            pool_size=pool_size,
            max_overflow=pool_size,
            # psycopg prepares a statement run five times; PostgreSQL then may keep a generic
            # plan made while the tables were nearly empty (a fresh store, or its first minute
            # before autovacuum analyses them): a sequential scan per lookup, which grew to
            # 6 ms a batch. Planning the queue's small statements each time costs microseconds.
            # The ingest statement's plan does not depend on the tables' sizes (its conflict
            # check always uses the unique index), and planning it costs more than running it.
            connect_args={
                "options": f"-c plan_cache_mode={'auto' if cached_plans else 'force_custom_plan'}"
            },
        )
    database = parsed.database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
        pool_size=pool_size,
        max_overflow=2 * pool_size,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit is fsynced before it returns, so an acknowledged delivery
        # survives an OS crash or power loss (NORMAL would only survive a process crash).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
