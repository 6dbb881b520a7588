"""Alembic environment: run by ``aiops_analyzer.store.migrate`` with an open connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from aiops_analyzer.store.tables import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters tables by copying them.
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if _connection is None:
    raise RuntimeError("run migrations through aiops_analyzer.store.migrate.upgrade()")
run_migrations(_connection)
