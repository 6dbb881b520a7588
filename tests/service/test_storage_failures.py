"""A store that cannot take writes: the data directory on a 4 MB tmpfs, filled up.

The webhook answers 503 with Retry-After (Alertmanager retries), the log says it once with
its cause, /readyz is red until a write succeeds again, and nothing acknowledged is lost.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiops_analyzer.store.ingest_sqlite import SqliteBatchWriter
from sqlalchemy import event

from tests.service.apptools import (
    AUTH,
    WEBHOOK,
    make_settings,
    payload,
    running_app,
    wait_until,
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (make test runs as root)")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def _big_alert(n: int) -> dict[str, object]:
    body = payload(fingerprint=f"full{n:012d}")
    body["alerts"][0]["annotations"]["description"] = f"{n} " + "x" * 60_000
    return body


async def test_full_disk_answers_503_once_logged_and_recovers(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(small_disk)
    async with running_app(settings) as (app, client):
        first = await client.post(WEBHOOK, json=payload(), headers=AUTH)
        assert first.status_code == 202
        filler = _fill(small_disk)

        caplog.set_level(logging.ERROR, logger="aiops_analyzer.core.storage_health")
        answers = [await client.post(WEBHOOK, json=_big_alert(n), headers=AUTH) for n in range(8)]
        refused = [r for r in answers if r.status_code == 503]
        assert refused, [r.status_code for r in answers]
        assert all(r.status_code in (202, 503) for r in answers)  # never a 500
        assert refused[0].headers["retry-after"].isdigit()
        assert "full" in refused[0].json()["detail"]  # the cause, not a traceback
        lines = [r for r in caplog.records if "store cannot take writes" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in caplog.records]

        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "writes failing" in ready.json()["store"]

        filler.unlink()
        again = await client.post(WEBHOOK, json=_big_alert(99), headers=AUTH)
        assert again.status_code == 202
        # Green again: a worker's write that failed while the disk was full may land after
        # this 202 and turn it red once more, until that worker's next write succeeds.

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await wait_until(ready, within=10)
        # What was acknowledged before the disk filled is still there.
        listed = await client.get("/analyses", headers=AUTH)
        ids = {item["id"] for item in listed.json()["items"]}
        assert first.json()["analysis_ids"][0] in ids
        del app


# The other faults the issue names, injected at the driver: what SQLite says when its volume
# was remounted read-only after an I/O error, and when the database file or mount went away.
# The workers' writes go through SQLAlchemy (its cursor event raises); the webhook's batch
# runs on the sqlite3 connection itself (its writer raises as the driver would).
DRIVER_FAULTS = [
    ("read-only", "attempt to write a readonly database", "readonly"),
    ("unreachable", "unable to open database file", "unable to open"),
]


@pytest.mark.parametrize(
    ("fault", "message", "said"), DRIVER_FAULTS, ids=[f[0] for f in DRIVER_FAULTS]
)
async def test_store_fault_answers_503_logs_once_and_recovers(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    message: str,
    said: str,
) -> None:
    settings = make_settings(tmp_path)
    async with running_app(settings) as (app, client):
        first = await client.post(WEBHOOK, json=payload(), headers=AUTH)
        assert first.status_code == 202
        broken = {"on": True}

        def refuse_writes(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if broken["on"] and statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
                raise sqlite3.OperationalError(message)

        writer = app.state.store.db.writer
        event.listen(writer, "before_cursor_execute", refuse_writes)
        store_batch = SqliteBatchWriter.store

        def refuse_batches(self: SqliteBatchWriter, *args: Any) -> Any:
            if broken["on"]:
                raise sqlite3.OperationalError(message)
            return store_batch(self, *args)

        monkeypatch.setattr(SqliteBatchWriter, "store", refuse_batches)
        caplog.set_level(logging.INFO)
        answers = [
            await client.post(
                WEBHOOK, json=payload(fingerprint=f"{fault[:2]}{n:014d}"), headers=AUTH
            )
            for n in range(4)
        ]
        assert [r.status_code for r in answers] == [503] * 4
        assert answers[0].headers["retry-after"].isdigit()
        assert said in answers[0].json()["detail"]  # the cause, not a traceback
        assert (await client.get("/readyz")).status_code == 503
        messages = [r.getMessage() for r in caplog.records]
        assert sum("store cannot take writes" in m for m in messages) == 1, messages
        assert not [r for r in caplog.records if r.exc_info], messages

        broken["on"] = False
        again = await client.post(
            WEBHOOK, json=payload(fingerprint="after0000000000"), headers=AUTH
        )
        assert again.status_code == 202

        # A worker's write that failed while the store was broken may report its failure
        # just after this success: /readyz is green again once a write succeeds after that
        # (the worker's next one), not necessarily on the very next request.
        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await wait_until(ready, within=15.0)
        listed = await client.get("/analyses", headers=AUTH)
        assert first.json()["analysis_ids"][0] in {item["id"] for item in listed.json()["items"]}
        event.remove(writer, "before_cursor_execute", refuse_writes)
        del app
