"""Ingest on PostgreSQL: a batch of deliveries in one statement, one round trip.

The batch's alert states go in with INSERT ... ON CONFLICT DO UPDATE: a new state is stored,
one already stored (a resend, the other member of an HA pair, another replica) only has its
delivery counter bumped. The deliveries get their ids from the sequence inside the same
statement, and their new/duplicate counts from what the upsert did. One statement is one
implicit transaction: it runs in autocommit, so its commit (fsynced, PostgreSQL's default)
needs no BEGIN or COMMIT round trip of its own.

Before this, a batch took six round trips (pre-ping, BEGIN, lookup, two INSERTs, COMMIT) and
at 16 concurrent webhook clients those, not the fsync, set the pace (benchmarks/README.md).

Concurrent writers (replicas) cannot lose or double-count a state: the upsert waits for a
competing insert of the same key to commit and then bumps its row. States are stored in the
order they arrived, so their ids (and the queue's order) follow it. Two batches holding the
same states in opposite orders could deadlock: PostgreSQL then aborts one, and the webhook's
writer retries its deliveries one at a time (``GroupCommitter``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
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

# The batch goes in as two JSON documents, read by json_to_recordset() with these columns
# and types. Sixteen typed arrays cost psycopg more (finding each array's dumper in Python)
# than one json.dumps, and a json column is stored exactly as its text in the document.
_DELIVERY_RECORD = {
    "position": "integer",  # 1-based, in the batch's order
    "receiver": "varchar",
    "status": "varchar",
    "group_key": "text",
    "alerts": "integer",
    "truncated_alerts": "integer",
}
_ALERT_RECORD = {
    "position": "integer",  # order of arrival
    "fingerprint": "varchar",
    "status": "varchar",
    "starts_at": "timestamp",
    "ends_at": "timestamp",
    "alertname": "varchar",
    "labels": "json",
    "annotations": "json",
    "generator_url": "text",
    # The position of the first delivery holding the state.
    "first_position": "integer",
    # How many of the batch's deliveries hold it, and the most alerts any of them truncated.
    "deliveries": "integer",
    "truncated_alerts": "integer",
}


def _records(parameter: str, record: dict[str, str], name: str) -> str:
    columns = ", ".join(f"{column} {kind}" for column, kind in record.items())
    return f"json_to_recordset(%({parameter})s::json) AS {name}({columns})"


# Every value is a bound parameter; names and types are the constants above. Data-modifying
# CTEs all run, referenced or not, against one snapshot. The foreign key from analyses to
# deliveries is checked at the end of the statement, when both inserts are done.
UPSERT_BATCH = f"""
WITH batch AS (
    SELECT nextval(pg_get_serial_sequence('deliveries', 'id')) AS id, given.*
    FROM (SELECT * FROM {_records("deliveries", _DELIVERY_RECORD, "d")} ORDER BY position)
        AS given
),
upserted AS (
    INSERT INTO analyses (
        fingerprint, status, starts_at, ends_at, alertname, labels, annotations,
        generator_url, received_at, delivery_id, deliveries, last_received_at,
        truncated_alerts, state, attempts, available_at, prompt_tokens, completion_tokens
    )
    SELECT a.fingerprint, a.status, a.starts_at, a.ends_at, a.alertname, a.labels,
           a.annotations, a.generator_url, %(now)s, batch.id, a.deliveries, %(now)s,
           a.truncated_alerts, '{JobState.PENDING.value}', 0, %(now)s, 0, 0
    FROM {_records("alerts", _ALERT_RECORD, "a")}
    JOIN batch ON batch.position = a.first_position
    ORDER BY a.position
    ON CONFLICT (fingerprint, status, starts_at) DO UPDATE SET
        deliveries = analyses.deliveries + excluded.deliveries,
        last_received_at = excluded.last_received_at,
        truncated_alerts = greatest(analyses.truncated_alerts, excluded.truncated_alerts)
    RETURNING id, fingerprint, status, starts_at, delivery_id
),
stored_deliveries AS (
    -- A state this batch inserted carries one of the batch's fresh delivery ids; a bumped
    -- one keeps the id of the delivery that stored it first.
    INSERT INTO deliveries (
        id, received_at, receiver, status, group_key, alerts, new_alerts, duplicate_alerts,
        truncated_alerts
    )
    SELECT batch.id, %(now)s, batch.receiver, batch.status, batch.group_key, batch.alerts,
           count(upserted.id), batch.alerts - count(upserted.id), batch.truncated_alerts
    FROM batch LEFT JOIN upserted ON upserted.delivery_id = batch.id
    GROUP BY batch.id, batch.receiver, batch.status, batch.group_key, batch.alerts,
             batch.truncated_alerts
)
-- Deliveries (position set) and alert states (position null) in one result.
SELECT position, id, NULL, NULL, NULL, NULL FROM batch
UNION ALL
SELECT NULL, id, fingerprint, status, starts_at, delivery_id FROM upserted
"""  # noqa: S608


@dataclass
class _State:
    """One distinct alert state of a batch."""

    alert: Alert
    first_position: int
    deliveries: int
    truncated_alerts: int


class PostgresBatchWriter:
    """Stores a batch of deliveries with ``UPSERT_BATCH``; one result per delivery. The
    statement runs on a SQLAlchemy connection (``store``) or on the event loop through
    psycopg's asyncio connection (``store_async``, the webhook's path)."""

    def __init__(self, dialect: Dialect) -> None:
        self._datetime = bind_processor(analyses.c.starts_at, dialect)

    def store(
        self, conn: Connection, batch: Sequence[Delivery], now: datetime
    ) -> list[IngestResult]:
        """Run the batch's statement on ``conn`` (in autocommit: the statement commits)."""
        plan = self._plan(batch, now)
        return plan.results(conn.exec_driver_sql(UPSERT_BATCH, plan.parameters))

    async def store_async(
        self, conn: psycopg.AsyncConnection[Any], batch: Sequence[Delivery], now: datetime
    ) -> list[IngestResult]:
        """The same statement on an autocommit asyncio connection: the event loop serves
        other requests while PostgreSQL runs and fsyncs it."""
        plan = self._plan(batch, now)
        async with conn.cursor() as cursor:
            await cursor.execute(UPSERT_BATCH, plan.parameters)
            return plan.results(await cursor.fetchall())

    def _plan(self, batch: Sequence[Delivery], now: datetime) -> _Plan:
        states: dict[AlertKey, _State] = {}
        for position, delivery in enumerate(batch, start=1):
            seen: set[AlertKey] = set()  # the same state twice in one payload counts once
            for alert in delivery.alerts:
                key = alert_key(alert)
                if key in seen:
                    continue
                seen.add(key)
                state = states.get(key)
                if state is None:
                    states[key] = _State(alert, position, 1, delivery.truncated_alerts)
                else:
                    state.deliveries += 1
                    state.truncated_alerts = max(state.truncated_alerts, delivery.truncated_alerts)
        to_datetime = self._datetime
        parameters = {
            "now": to_datetime(now),
            "deliveries": json.dumps(
                [
                    {
                        "position": position,
                        "receiver": d.receiver,
                        "status": d.status,
                        "group_key": d.group_key,
                        "alerts": len(d.alerts),
                        "truncated_alerts": d.truncated_alerts,
                    }
                    for position, d in enumerate(batch, start=1)
                ]
            ),
            "alerts": json.dumps(
                [
                    {
                        "position": position,
                        "fingerprint": s.alert.fingerprint,
                        "status": s.alert.status,
                        "starts_at": _timestamp(to_datetime(s.alert.starts_at)),
                        "ends_at": _timestamp(to_datetime(s.alert.ends_at)),
                        "alertname": s.alert.alertname[:255],
                        "labels": s.alert.labels,
                        "annotations": s.alert.annotations,
                        "generator_url": s.alert.generator_url,
                        "first_position": s.first_position,
                        "deliveries": s.deliveries,
                        "truncated_alerts": s.truncated_alerts,
                    }
                    for position, s in enumerate(states.values(), start=1)
                ]
            ),
        }
        # The driver returns starts_at as it was bound (naive UTC): matched on the bound value.
        bound_keys = {
            (s.alert.fingerprint, s.alert.status, to_datetime(s.alert.starts_at)): key
            for key, s in states.items()
        }
        return _Plan(batch, states, parameters, bound_keys)


@dataclass
class _Plan:
    """A batch's statement parameters, and how to read its result back."""

    batch: Sequence[Delivery]
    states: dict[AlertKey, _State]
    parameters: dict[str, Any]
    bound_keys: dict[tuple[str, Any, Any], AlertKey]

    def results(self, result_rows: Iterable[Sequence[Any]]) -> list[IngestResult]:
        delivery_ids: dict[int, int] = {}
        rows: dict[AlertKey, tuple[int, int]] = {}
        for position, row_id, fingerprint, status, starts_at, delivery_id in result_rows:
            if position is not None:
                delivery_ids[position] = int(row_id)
            else:
                rows[self.bound_keys[(fingerprint, status, starts_at)]] = (
                    int(row_id),
                    delivery_id,
                )

        results = []
        for position, delivery in enumerate(self.batch, start=1):
            delivery_id = delivery_ids[position]
            keys = [alert_key(alert) for alert in delivery.alerts]
            new_ids = [
                rows[key][0]
                for key in dict.fromkeys(keys)
                if self.states[key].first_position == position and rows[key][1] == delivery_id
            ]
            results.append(
                IngestResult(
                    delivery_id=delivery_id,
                    analysis_ids=[rows[key][0] for key in keys],
                    new_ids=new_ids,
                    duplicates=len(keys) - len(new_ids),
                )
            )
        return results


def _timestamp(value: datetime | None) -> str | None:
    """A naive UTC datetime as PostgreSQL's timestamp input reads it."""
    return None if value is None else value.isoformat()
