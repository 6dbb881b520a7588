"""Ingest on SQLite: a batch of deliveries in a handful of set-based statements.

SQLite has one writer at a time, and the batch runs in a BEGIN IMMEDIATE transaction, so no
other writer can store a key between the lookup and the insert: one lookup of the keys
already stored, one multi-row insert per table, one executemany for the duplicates'
counters. No ON CONFLICT clause is needed.

The statements go straight to the sqlite3 connection of the caller's SQLAlchemy transaction,
with parameters bound by hand. Small batches are stored on the webhook's event loop, where
SQLAlchemy's statement compilation, cache keys and per-parameter processing cost more than
SQLite takes to run the statements (benchmarks/README.md has the profiles). Each value is
made with the column's own bind processor, so what is stored is byte for byte what
``insert(analyses)`` stores (JSON text, naive-UTC datetimes).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from aiops_analyzer.store.records import (
    Alert,
    AlertKey,
    Delivery,
    IngestResult,
    JobState,
    alert_key,
)
from aiops_analyzer.store.tables import analyses, bind_processor

# Fingerprints per `IN (...)` list: far below SQLite's parameter limit (32,766).
LOOKUP_CHUNK = 500
# Rows per multi-row INSERT: 18 parameters per alert state, 8 per delivery.
INSERT_CHUNK = 500

# The columns a new alert state is stored with, in the order of ``_state_row``'s tuple.
ALERT_COLUMNS = (
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
_DELIVERY_COLUMNS = (
    "received_at",
    "receiver",
    "status",
    "group_key",
    "alerts",
    "new_alerts",
    "duplicate_alerts",
    "truncated_alerts",
)

# Column names are the constants above; every value is a bound parameter.
_LOOKUP = "SELECT id, fingerprint, status, starts_at FROM analyses WHERE fingerprint IN "
_INSERT_DELIVERIES = f"INSERT INTO deliveries ({', '.join(_DELIVERY_COLUMNS)}) VALUES "  # noqa: S608
_INSERT_STATES = f"INSERT INTO analyses ({', '.join(ALERT_COLUMNS)}) VALUES "  # noqa: S608
_BUMP = (
    "UPDATE analyses SET deliveries = deliveries + ?, last_received_at = ?, "
    "truncated_alerts = max(truncated_alerts, ?) WHERE id = ?"
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


class SqliteBatchWriter:
    """Stores a batch of deliveries in the caller's write transaction; one result each."""

    def __init__(self, dialect: Dialect) -> None:
        self._datetime = bind_processor(analyses.c.starts_at, dialect)
        self._json = bind_processor(analyses.c.labels, dialect)

    def store(
        self, conn: Connection, batch: Sequence[Delivery], now: datetime
    ) -> list[IngestResult]:
        cursor = cast(sqlite3.Connection, conn.connection.driver_connection).cursor()
        try:
            return self._store(cursor, batch, self._datetime(now))
        finally:
            cursor.close()

    def _store(
        self, cursor: sqlite3.Cursor, batch: Sequence[Delivery], now: Any
    ) -> list[IngestResult]:
        alerts_by_key: dict[AlertKey, Alert] = {}
        for delivery in batch:
            for alert in delivery.alerts:
                alerts_by_key.setdefault(alert_key(alert), alert)
        stored = self._lookup(cursor, list(alerts_by_key))
        plans = _plan(batch, set(stored))

        delivery_ids = _insert_returning_ids(
            cursor,
            _INSERT_DELIVERIES,
            [
                (
                    now,
                    delivery.receiver,
                    delivery.status,
                    delivery.group_key,
                    len(delivery.alerts),
                    len(plan.firsts),
                    len(plan.repeats) + plan.echoes,
                    delivery.truncated_alerts,
                )
                for delivery, plan in zip(batch, plans, strict=True)
            ],
        )

        new = [
            (alerts_by_key[key], delivery_id, delivery.truncated_alerts)
            for delivery, plan, delivery_id in zip(batch, plans, delivery_ids, strict=True)
            for key in plan.firsts
        ]
        new_ids = _insert_returning_ids(
            cursor, _INSERT_STATES, [self._state_row(*row, now) for row in new]
        )
        stored.update(
            (alert_key(alert), analysis_id)
            for (alert, _, _), analysis_id in zip(new, new_ids, strict=True)
        )

        bumps: dict[int, tuple[int, int]] = {}
        for delivery, plan in zip(batch, plans, strict=True):
            for key in plan.repeats:
                count, truncated = bumps.get(stored[key], (0, 0))
                bumps[stored[key]] = (count + 1, max(truncated, delivery.truncated_alerts))
        if bumps:
            cursor.executemany(
                _BUMP,
                [
                    (count, now, truncated, analysis_id)
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

    def _lookup(self, cursor: sqlite3.Cursor, keys: list[AlertKey]) -> dict[AlertKey, int]:
        """The ids of the alert states among ``keys`` that are already stored."""
        # Rows come back with starts_at as stored (text): matched on the bound value.
        wanted = {(key[0], key[1], self._datetime(key[2])): key for key in keys}
        fingerprints = sorted({key[0] for key in keys})
        found: dict[AlertKey, int] = {}
        for start in range(0, len(fingerprints), LOOKUP_CHUNK):
            chunk = fingerprints[start : start + LOOKUP_CHUNK]
            statement = _LOOKUP + "(" + ", ".join(["?"] * len(chunk)) + ")"
            for analysis_id, fingerprint, status, starts_at in cursor.execute(statement, chunk):
                key = wanted.get((fingerprint, status, starts_at))
                if key is not None:
                    found[key] = int(analysis_id)
        return found

    def _state_row(
        self, alert: Alert, delivery_id: int, truncated: int, now: Any
    ) -> tuple[Any, ...]:
        """A new alert state's values, in ``ALERT_COLUMNS`` order."""
        return (
            alert.fingerprint,
            alert.status,
            self._datetime(alert.starts_at),
            self._datetime(alert.ends_at),
            alert.alertname[:255],
            self._json(alert.labels),
            self._json(alert.annotations),
            alert.generator_url,
            now,
            delivery_id,
            1,
            now,
            truncated,
            JobState.PENDING.value,
            0,
            now,
            0,
            0,
        )


def _insert_returning_ids(
    cursor: sqlite3.Cursor, head: str, rows: list[tuple[Any, ...]]
) -> list[int]:
    """Insert ``rows`` with multi-row INSERTs; their new ids, in the order of ``rows``.

    One INSERT stores its VALUES in order and gives each row the next rowid (the tables'
    integer primary keys), while RETURNING promises no order: the ids, sorted, are the rows'.
    """
    ids: list[int] = []
    if not rows:
        return ids
    values = "(" + ", ".join(["?"] * len(rows[0])) + ")"
    for start in range(0, len(rows), INSERT_CHUNK):
        chunk = rows[start : start + INSERT_CHUNK]
        statement = head + ", ".join([values] * len(chunk)) + " RETURNING id"
        parameters = [value for row in chunk for value in row]
        ids.extend(sorted(int(row[0]) for row in cursor.execute(statement, parameters)))
    return ids


def _plan(batch: Sequence[Delivery], stored: set[AlertKey]) -> list[_Planned]:
    claimed = set(stored)
    plans = []
    for delivery in batch:
        plan = _Planned(keys=[], firsts=[], repeats=[], echoes=0)
        mine: set[AlertKey] = set()
        for alert in delivery.alerts:
            key = alert_key(alert)
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
