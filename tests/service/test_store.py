"""The store on SQLite and PostgreSQL: migrations, idempotent ingest, leased claims, reads."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiops_analyzer.schemas import Alert, AnalysisResult, NotificationOutcome
from aiops_analyzer.store import Delivery, IngestResult, JobState, Outcome, Store, migrate
from aiops_analyzer.store.database import Database
from aiops_analyzer.store.db import normalise_url
from aiops_analyzer.store.ingest import GroupCommitter
from aiops_analyzer.store.ingest_postgres import PostgresBatchWriter
from aiops_analyzer.store.ingest_sqlite import SqliteBatchWriter
from aiops_analyzer.store.migrate import head_revision
from aiops_analyzer.store.tables import metadata
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from tests.support.postgres import PostgresServer

LEASE = 600.0


def alert(fingerprint: str = "abc", status: str = "firing", hour: int = 10) -> Alert:
    return Alert(
        fingerprint=fingerprint,
        status=status,  # type: ignore[arg-type]
        starts_at=datetime(2026, 11, 28, hour, tzinfo=UTC),
        labels={"alertname": "NginxDown"},
    )


def ingest(store: Store, *alerts: Alert, truncated: int = 0) -> list[int]:
    delivery = Delivery(
        receiver="r", status="firing", group_key="g", truncated_alerts=truncated, alerts=[*alerts]
    )
    return store.ingest(delivery).analysis_ids


def count(store: Store, state: JobState) -> int:
    return store.analyses.list(state=state)[1]


@pytest.fixture
def store(database_url: str) -> Store:
    store = Store(database_url)
    store.migrate()
    yield store  # type: ignore[misc]
    store.dispose()


def test_postgres_urls_as_users_write_them_use_psycopg_3() -> None:
    for url in ("postgresql://u:p@db:5432/aiops", "postgres://u:p@db:5432/aiops"):
        assert normalise_url(url).drivername == "postgresql+psycopg"
    # A driver the user names is kept.
    assert normalise_url("postgresql+psycopg2://u@db/x").drivername == "postgresql+psycopg2"
    assert normalise_url("sqlite:////tmp/a.db").drivername == "sqlite"


def test_migrations_create_the_schema_and_match_the_table_definitions(database_url: str) -> None:
    store = Store(database_url)
    assert migrate.current_revision(store.db.writer) is None
    assert store.migrate() == head_revision()
    assert store.migrate() == head_revision()  # Running again at the next start changes nothing.
    with store.db.writer.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
        tables = {"deliveries", "analyses", "alembic_version"}
        for table in tables:
            connection.execute(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
    store.dispose()


def test_sqlite_commits_are_fsynced(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'analyzer.db'}")
    store.migrate()
    with store.db.writer.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        # 2 = FULL: a commit returns once the WAL is fsynced, so a 202 survives an OS crash.
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    store.dispose()


def test_upgrading_a_first_revision_database_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "analyzer.db"
    old = Store(f"sqlite:///{path}")
    assert migrate.upgrade(old.db.writer, "0001") == "0001"
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT INTO deliveries VALUES (1, '2026-11-28 10:00:00.000000', 'r', 'firing', 'g',"
            " 2, 2, 0, 0)"
        )
        for n, state in ((1, "done"), (2, "running")):
            db.execute(
                "INSERT INTO analyses (id, fingerprint, status, starts_at, alertname, labels,"
                " annotations, generator_url, received_at, delivery_id, deliveries,"
                " last_received_at, truncated_alerts, state, attempts, claimed_at, available_at,"
                " prompt_tokens, completion_tokens, result, outcome) VALUES (?, ?, 'firing',"
                " '2026-11-28 10:00:00.000000', 'NginxDown', '{}', '{}', '',"
                " '2026-11-28 10:00:00.000000', 1, 1, '2026-11-28 10:00:00.000000', 0, ?, 1,"
                " '2026-11-28 10:00:01.000000', '2026-11-28 10:00:00.000000', 0, 0, ?, ?)",
                (
                    n,
                    f"fp-{n}",
                    state,
                    json.dumps({"summary": "s", "severity": "warning", "engine": "rules"})
                    if state == "done"
                    else None,
                    "ok" if state == "done" else None,
                ),
            )
    before = db.execute("SELECT * FROM analyses ORDER BY id").fetchall()
    db.close()
    old.dispose()

    store = Store(f"sqlite:///{path}")
    assert store.migrate() == head_revision()
    db = sqlite3.connect(path)
    after = db.execute("SELECT * FROM analyses ORDER BY id").fetchall()
    db.close()
    assert [row[: len(before[0])] for row in after] == before  # Every value is still there.
    done = store.analyses.get(1)
    assert done is not None and done.result is not None and done.result.summary == "s"
    assert done.analyzed_at is None and done.outcome == Outcome.OK
    assert done.received_at == datetime(2026, 11, 28, 10, tzinfo=UTC)  # Read back UTC-aware.
    # The job an earlier version left running has an expired lease: it comes back.
    assert store.jobs.release_expired(max_attempts=3) == (1, 0)
    job = store.jobs.claim(owner="new", lease_seconds=LEASE)
    assert job is not None and job.id == 2 and job.attempts == 2
    store.dispose()


def test_ingest_is_idempotent_on_fingerprint_status_and_starts_at(store: Store) -> None:
    [first] = ingest(store, alert())
    assert ingest(store, alert()) == [first]
    assert ingest(store, alert(status="resolved")) != [first]
    assert ingest(store, alert(hour=11)) != [first]
    record = store.analyses.get(first)
    assert record is not None and record.deliveries == 2
    assert record.alert == alert()  # The pipeline's own Alert, timestamps UTC-aware.
    assert count(store, JobState.PENDING) == 3


def test_truncation_is_kept_as_the_largest_seen(store: Store) -> None:
    [analysis_id] = ingest(store, alert(), truncated=3)
    ingest(store, alert(), truncated=1)
    record = store.analyses.get(analysis_id)
    assert record is not None and record.truncated_alerts == 3


def delivery(*alerts: Alert, truncated: int = 0) -> Delivery:
    return Delivery(
        receiver="r", status="firing", group_key="g", truncated_alerts=truncated, alerts=[*alerts]
    )


def test_a_batch_counts_exactly_as_the_same_deliveries_one_by_one(store: Store) -> None:
    [stored_before] = ingest(store, alert("a"))
    batch = [
        delivery(alert("a"), alert("b"), alert("a")),  # a stored before; a again in one payload
        delivery(alert("b"), alert("c"), truncated=4),  # b first came in this very batch
        delivery(alert("a"), alert("c", status="resolved")),
    ]
    first, second, third = store.ingestor.ingest_many(batch)
    b, c, c_resolved = first.analysis_ids[1], second.analysis_ids[1], third.analysis_ids[1]
    assert first.analysis_ids == [stored_before, b, stored_before]
    assert (first.new_ids, first.duplicates) == ([b], 2)
    assert (second.analysis_ids, second.new_ids, second.duplicates) == ([b, c], [c], 1)
    assert (third.analysis_ids, third.new_ids, third.duplicates) == (
        [stored_before, c_resolved],
        [c_resolved],
        1,
    )
    assert len({stored_before, b, c, c_resolved}) == 4
    counters = {i: store.analyses.get(i) for i in (stored_before, b, c)}
    # a: its first delivery plus one bump per later delivery (not per echo in one payload).
    assert counters[stored_before] is not None and counters[stored_before].deliveries == 3
    assert counters[b] is not None and counters[b].deliveries == 2
    assert counters[b].truncated_alerts == 4  # Kept as the largest seen.
    assert counters[c] is not None and counters[c].deliveries == 1
    with store.db.read() as conn:
        rows = conn.execute(
            text("SELECT id, new_alerts, duplicate_alerts FROM deliveries ORDER BY id")
        ).all()
    assert [tuple(row[1:]) for row in rows] == [(1, 0), (1, 2), (1, 1), (1, 1)]
    assert [row[0] for row in rows[1:]] == [r.delivery_id for r in (first, second, third)]


def test_each_delivery_of_a_batch_gets_its_own_row(store: Store) -> None:
    """Ids come back in the batch's order: each result names the row of its own delivery."""
    batch = [
        Delivery(
            receiver=f"r{i}",
            status="firing",
            group_key=f"g{i}",
            truncated_alerts=i,
            alerts=[alert(f"x{i}")],
        )
        for i in range(7)
    ]
    results = store.ingestor.ingest_many(batch)
    with store.db.read() as conn:
        rows = {
            row.id: row.group_key
            for row in conn.execute(text("SELECT id, group_key FROM deliveries"))
        }
    assert [rows[r.delivery_id] for r in results] == [f"g{i}" for i in range(7)]


def test_an_alert_another_replica_is_storing_becomes_a_duplicate_once_it_commits(
    database_url: str,
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("one SQLite writer at a time: no other replica can write mid-batch")
    mine, other = Store(database_url), Store(database_url)
    mine.migrate()
    outcome: list[IngestResult] = []
    try:
        # The other replica's batch holds "a", inserted but not committed, while ours runs.
        with other.db.writer.begin() as theirs:
            [raced] = PostgresBatchWriter(theirs.dialect).store(
                theirs, [delivery(alert("a"))], datetime.now(UTC)
            )
            ours = threading.Thread(
                target=lambda: outcome.extend(
                    mine.ingestor.ingest_many([delivery(alert("a"), alert("b"))])
                )
            )
            ours.start()
            deadline = time.monotonic() + 10
            while not _waits_on_a_lock(theirs) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert _waits_on_a_lock(theirs), "our batch never waited for the other replica"
            assert not outcome
        ours.join(timeout=10)
    finally:
        mine.dispose()
        other.dispose()
    [result] = outcome
    store = Store(database_url)
    try:
        assert result.analysis_ids[0] == raced.analysis_ids[0]
        assert result.new_ids == [result.analysis_ids[1]] and result.duplicates == 1
        record = store.analyses.get(raced.analysis_ids[0])
        assert record is not None and record.deliveries == 2
        with store.db.read() as conn:
            counts = conn.execute(
                text("SELECT new_alerts, duplicate_alerts FROM deliveries WHERE id = :i"),
                {"i": result.delivery_id},
            ).one()
        assert tuple(counts) == (1, 1)
    finally:
        store.dispose()


def _waits_on_a_lock(conn: Connection) -> bool:
    """Another session waits for a lock this one holds (the race above is on)."""
    # A transaction sees the activity view as of its first read unless told to look again.
    conn.execute(text("SELECT pg_stat_clear_snapshot()"))
    return bool(
        conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
        ).scalar()
    )


def test_concurrent_claims_never_hand_out_a_job_twice(store: Store) -> None:
    ingest(store, *(alert(fingerprint=f"fp-{n}") for n in range(40)))
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all(owner: str) -> None:
        while (job := store.jobs.claim(owner=owner, lease_seconds=LEASE)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim_all, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40


def test_a_live_lease_is_never_taken_back_an_expired_one_is(store: Store) -> None:
    live_id, dying_id = ingest(store, alert(fingerprint="live"), alert(fingerprint="dying"))
    live = store.jobs.claim(owner="alive", lease_seconds=LEASE)
    dying = store.jobs.claim(owner="dead", lease_seconds=0.2)
    assert live is not None and dying is not None and live.id == live_id
    assert store.jobs.claim(owner="other", lease_seconds=LEASE) is None  # Both are held.
    time.sleep(0.3)
    assert store.jobs.release_expired(max_attempts=3) == (1, 0)
    retaken = store.jobs.claim(owner="other", lease_seconds=LEASE)
    assert retaken is not None and retaken.id == dying_id and retaken.attempts == 2
    # The dead owner's late writes change nothing; the live owner's lease is intact.
    assert not store.jobs.renew(dying, lease_seconds=LEASE)
    assert not store.jobs.finish(dying, outcome=Outcome.OK, notifications=[])
    assert store.jobs.renew(live, lease_seconds=LEASE)
    assert store.jobs.finish(live, outcome=Outcome.OK, notifications=[])
    record = store.analyses.get(dying_id)
    assert record is not None and record.state == JobState.RUNNING
    assert record.job.lease_owner == "other"


def test_a_job_interrupted_on_every_attempt_fails(store: Store) -> None:
    [analysis_id] = ingest(store, alert())
    for _ in range(3):
        assert store.jobs.claim(owner="crashing", lease_seconds=0.05) is not None
        time.sleep(0.1)
        store.jobs.release_expired(max_attempts=3)
    record = store.analyses.get(analysis_id)
    assert record is not None and record.state == JobState.FAILED
    assert record.outcome == Outcome.FAILED and "interrupted" in (record.job.last_error or "")


def test_tokens_used_today_sums_stored_results(store: Store) -> None:
    first, _ = ingest(store, alert(fingerprint="a"), alert(fingerprint="b"))
    for tokens in (100, 50):
        job = store.jobs.claim(owner="w", lease_seconds=LEASE)
        assert job is not None
        result = AnalysisResult(
            summary="s",
            severity="warning",
            engine="llm",
            prompt_tokens=tokens,
            completion_tokens=tokens // 2,
        )
        assert store.jobs.save_result(job, result, [])
        notified = [NotificationOutcome(channel="webhook", ok=True, attempts=1)]
        assert store.jobs.finish(job, outcome=Outcome.OK, notifications=notified)
    assert store.analyses.tokens_used_today() == 150 + 75
    record = store.analyses.get(first)
    assert record is not None and record.state == JobState.DONE
    assert record.analyzed_at is not None and record.notified_at == record.job.finished_at
    assert record.analyzed_at <= record.notified_at


def test_failed_attempt_is_retried_later_then_failed(store: Store) -> None:
    [analysis_id] = ingest(store, alert())
    job = store.jobs.claim(owner="w", lease_seconds=LEASE)
    assert job is not None
    assert store.jobs.fail_attempt(job, error="boom", retry_in=3600)
    assert store.jobs.claim(owner="w", lease_seconds=LEASE) is None  # Not due yet.
    record = store.analyses.get(analysis_id)
    assert record is not None and record.state == JobState.PENDING
    assert record.job.last_error == "boom" and record.job.lease_owner is None


def test_list_filters_pages_and_links_resolutions(store: Store) -> None:
    ids = ingest(store, *(alert(fingerprint=f"fp-{n}") for n in range(5)))
    [resolution_id] = ingest(store, alert(fingerprint="fp-0", status="resolved"))
    page, total = store.analyses.list(status="firing", limit=2, offset=0)
    assert total == 5 and [r.id for r in page] == sorted(ids, reverse=True)[:2]
    page, total = store.analyses.list(status="resolved")
    assert total == 1 and page[0].alert.status == "resolved"
    assert store.analyses.list(alertname="Other")[1] == 0
    assert store.analyses.list(since=datetime(2100, 1, 1, tzinfo=UTC))[1] == 0
    # The resolution links its firing analysis; the firing one names its resolution.
    while (job := store.jobs.claim(owner="w", lease_seconds=LEASE)) is not None:
        if job.id == resolution_id:
            assert store.jobs.save_resolution(job, ids[0], 300.0)
    firing = store.analyses.find_firing("fp-0", datetime(2026, 11, 28, 10, tzinfo=UTC))
    assert firing is not None and firing.id == ids[0] and firing.resolved_by == resolution_id
    [listed] = [r for r in store.analyses.list(status="firing")[0] if r.id == ids[0]]
    assert listed.resolved_by == resolution_id


def built(fingerprint: str, threads: list[int] | None = None) -> Callable[[], Delivery]:
    """A delivery builder for the group committer; records the thread that built it."""

    def build() -> Delivery:
        if threads is not None:
            threads.append(threading.get_ident())
        return Delivery(
            receiver="r",
            status="firing",
            group_key="g",
            truncated_alerts=0,
            alerts=[alert(fingerprint=fingerprint)],
        )

    return build


# Small batches on SQLite are stored on the event loop; the rest in a thread. Both must fail
# only the delivery that fails.
@pytest.mark.parametrize("size", [None, 500], ids=["thread", "event-loop-when-sqlite"])
async def test_group_commit_fails_only_the_delivery_that_fails(
    store: Store, size: int | None
) -> None:
    committer = GroupCommitter(store.ingestor, inline_max_bytes=64_000 if store.db.sqlite else 0)

    def bad() -> Delivery:
        raise ValueError("cannot build this one")

    results = await asyncio.gather(
        committer.ingest(built("a"), size=size),
        committer.ingest(bad, size=size),
        committer.ingest(built("b"), size=size),
        committer.ingest(built("a"), size=size),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    first, _, second, again = results
    assert isinstance(first, IngestResult) and isinstance(second, IngestResult)
    assert isinstance(again, IngestResult) and again.analysis_ids == first.analysis_ids
    assert count(store, JobState.PENDING) == 2


async def test_a_batch_failing_on_the_event_loop_is_retried_one_by_one_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'analyzer.db'}")
    store.migrate()
    failed_on: list[int] = []
    store_batch = SqliteBatchWriter.store

    def fail_once(self: SqliteBatchWriter, *args: Any) -> list[IngestResult]:
        if not failed_on:
            failed_on.append(threading.get_ident())
            raise sqlite3.OperationalError("disk I/O error")
        return store_batch(self, *args)

    monkeypatch.setattr(SqliteBatchWriter, "store", fail_once)
    results = await asyncio.gather(
        *(store.ingest_grouped(built(f"f{n}"), size=200) for n in (1, 2))
    )
    assert failed_on == [threading.get_ident()]  # the batch failed on the event loop
    assert sorted(len(result.new_ids) for result in results) == [1, 1]
    assert count(store, JobState.PENDING) == 2
    store.dispose()


async def test_an_event_loop_batch_is_answered_only_after_its_log_is_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop commits a small batch without fsync, then waits for the log's fsync in a
    thread: committed rows are not acknowledged before it, and the loop runs meanwhile."""
    store = Store(f"sqlite:///{tmp_path / 'analyzer.db'}")
    store.migrate()
    fsync_started, release = threading.Event(), threading.Event()
    synced: list[str] = []
    fsync_log = Database._fsync_log

    def held_fsync(self: Database) -> None:
        fsync_started.set()
        release.wait(10)
        fsync_log(self)
        synced.append(threading.current_thread().name)

    monkeypatch.setattr(Database, "_fsync_log", held_fsync)
    request = asyncio.ensure_future(store.ingest_grouped(built("slow-disk"), size=200))
    # The event loop is free while the fsync runs: it serves this wait meanwhile.
    assert await asyncio.to_thread(fsync_started.wait, 10)
    assert count(store, JobState.PENDING) == 1  # committed...
    await asyncio.sleep(0.05)
    assert not request.done()  # ...but not acknowledged before the fsync
    release.set()
    result = await request
    assert len(result.new_ids) == 1
    assert synced and synced[0].startswith("aiops-wal-sync")
    # The pooled connection the loop used is back to fsync-on-commit for the other writers.
    with store.db.writer.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    store.dispose()


async def test_a_failed_log_fsync_fails_the_batch_and_the_next_one_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'analyzer.db'}")
    store.migrate()
    fsync_log = Database._fsync_log
    failures = [OSError(5, "Input/output error")]

    def failing_once(self: Database) -> None:
        if failures:
            raise failures.pop()
        fsync_log(self)

    monkeypatch.setattr(Database, "_fsync_log", failing_once)
    with pytest.raises(OSError, match="Input/output error"):
        await store.ingest_grouped(built("eio"), size=200)
    # Alertmanager sends it again: the row the failed batch committed counts a duplicate.
    again = await store.ingest_grouped(built("eio"), size=200)
    assert again.new_ids == [] and again.duplicates == 1
    later = await store.ingest_grouped(built("next"), size=200)
    assert len(later.new_ids) == 1
    store.dispose()


async def test_without_a_write_ahead_log_the_loop_commits_with_its_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file system that refuses WAL leaves SQLite in rollback-journal mode, whose commits
    cannot be fsynced afterwards: the loop's batch then commits fully synchronous, and no log
    fsync is attempted (there is no -wal file to open). On a WAL database the first check
    finds WAL."""
    store = Store(f"sqlite:///{tmp_path / 'analyzer.db'}")
    store.migrate()
    calls: list[str] = []
    monkeypatch.setattr(Database, "_fsync_log", lambda self: calls.append("fsync"))
    store.db._log_is_wal = False  # what the first check finds on such a file system
    result = await store.ingest_grouped(built("no-wal"), size=200)
    assert len(result.new_ids) == 1 and calls == []
    store.db._log_is_wal = None
    await store.ingest_grouped(built("wal"), size=200)
    assert store.db._log_is_wal is True and calls == ["fsync"]
    store.dispose()


async def test_small_sqlite_batches_are_stored_on_the_event_loop_large_ones_in_a_thread(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'analyzer.db'}")
    store.migrate()
    loop_thread = threading.get_ident()
    small: list[int] = []
    await store.ingest_grouped(built("small", small), size=2_000)
    large: list[int] = []
    await store.ingest_grouped(built("large", large), size=1_000_000)
    unknown: list[int] = []
    await store.ingest_grouped(built("unknown", unknown))
    assert small == [loop_thread]
    assert large and large[0] != loop_thread
    assert unknown and unknown[0] != loop_thread
    assert count(store, JobState.PENDING) == 3
    store.dispose()


async def test_a_postgresql_batch_waits_without_blocking_the_event_loop(
    postgres_server: PostgresServer,
) -> None:
    """The webhook's PostgreSQL statement is awaited on the event loop: a server that is slow
    to answer (here: a table lock another session holds) delays only those requests, never
    the loop that serves the others and the health checks."""
    store = Store(postgres_server.create_database())
    store.migrate()
    await store.ingest_grouped(built("warm"), size=200)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    with store.db.writer.connect() as locker:
        locker.exec_driver_sql("LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE")
        ingest = asyncio.create_task(store.ingest_grouped(built("locked"), size=200))
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.5)
        assert not ingest.done()  # the statement really waits for the lock
        assert ticks >= 20  # and the loop ran meanwhile
        locker.rollback()
    result = await asyncio.wait_for(ingest, 10)
    ticking.cancel()
    assert result.new_ids and result.duplicates == 0
    assert store.analyses.get(result.new_ids[0]) is not None
    store.dispose()


async def test_a_postgresql_connection_the_server_dropped_costs_no_delivery(
    postgres_server: PostgresServer,
) -> None:
    """The ingest's connections skip the pre-ping: a connection the server closed (restart,
    failover, idle timeout) fails its batch, and the deliveries are stored on new ones."""
    url = postgres_server.create_database()
    store = Store(url)
    store.migrate()
    await store.ingest_grouped(built("before"), size=200)  # a pooled ingest connection now
    database = url.rsplit("/", 1)[1]
    with store.db.writer.connect() as conn:
        dropped = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = :database AND pid <> pg_backend_pid()"
            ),
            {"database": database},
        ).scalar_one()
    assert dropped >= 1
    results = await asyncio.gather(
        *(store.ingest_grouped(built(f"after{n}"), size=200) for n in range(3))
    )
    assert [len(result.new_ids) for result in results] == [1, 1, 1]
    assert count(store, JobState.PENDING) == 4
    store.dispose()


@contextmanager
def write_lock_held(store: Store, *, by: str = "a-worker-thread") -> Iterator[threading.Event]:
    """Hold the store's SQLite write lock until the yielded event is set: from a worker
    thread of this process, or from a second connection standing in for another process.
    (A holder never released in time lets go after 10 s.)"""
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        if by == "another-process":
            other = sqlite3.connect(store.db.writer.url.database or "", isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            held.set()
            release.wait(10)
            other.execute("COMMIT")
            other.close()
        else:
            with store.db.write():
                held.set()
                release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    try:
        yield release
    finally:
        release.set()
        holder.join()


async def test_a_request_cancelled_while_waiting_still_has_its_delivery_stored(
    tmp_path: Path,
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'analyzer.db'}")
    store.migrate()
    with write_lock_held(store) as release:
        request = asyncio.create_task(store.ingest_grouped(built("gone"), size=200))
        await asyncio.sleep(0.05)
        request.cancel()  # the client went away
        release.set()
    # The request's own task finishes on its next turn of the loop, which may come after
    # the store has already written the delivery: wait for both.
    await asyncio.wait({request}, timeout=5)
    for _ in range(200):
        if count(store, JobState.PENDING) == 1:
            break
        await asyncio.sleep(0.01)
    assert request.cancelled()
    assert count(store, JobState.PENDING) == 1
    store.dispose()


@pytest.mark.parametrize("holder", ["another-process", "a-worker-thread"])
async def test_a_held_sqlite_lock_never_blocks_the_event_loop(tmp_path: Path, holder: str) -> None:
    """The webhook waits for the lock in a thread: the loop keeps serving meanwhile. (Were
    the loop blocked, the sleeps would only end once the holder gives up, after 10 s, with
    the delivery stored by then.)"""
    store = Store(f"sqlite:///{tmp_path / 'analyzer.db'}")
    store.migrate()
    with write_lock_held(store, by=holder) as release:
        stored = asyncio.create_task(store.ingest_grouped(built("waits"), size=200))
        for _ in range(10):
            await asyncio.sleep(0.01)
        assert not stored.done()
        release.set()
        result = await asyncio.wait_for(stored, 10)
    assert len(result.new_ids) == 1
    store.dispose()


def test_a_unix_socket_url_as_cloud_run_mounts_it_reaches_postgresql(
    postgres_server: PostgresServer,
) -> None:
    """Cloud Run's built-in Cloud SQL connection gives the instance as a unix socket under
    /cloudsql/PROJECT:REGION:INSTANCE; the gcp stack writes AIOPS_DATABASE_URL in libpq's
    socket form, `postgresql://user:password@/db?host=<socket dir>`, which must work as is."""
    name = postgres_server.create_database().rsplit("/", 1)[1]
    socket_dir = postgres_server.socket_dir
    # The test server listens on a free port, so its socket is .s.PGSQL.<port>; Cloud SQL's is
    # the default 5432, which needs no `port` in the URL.
    url = f"postgresql://postgres:unused-by-trust-auth@/{name}?host={socket_dir}"
    url += f"&port={postgres_server.port}"
    database = Database(url)
    try:
        assert database.postgres
        database.migrate()
        assert database.ping()
        with database.read() as connection:
            # An empty server address: the connection really is over the unix socket.
            assert connection.execute(text("SELECT inet_server_addr()")).scalar() is None
    finally:
        database.dispose()

    # The colons of a Cloud SQL connection name stay in the socket directory, unquoted.
    cloud_run = "postgresql://aiops:pw@/aiops?host=/cloudsql/acme-1:europe-west1:aiops-gcp-db"
    engine_url = normalise_url(cloud_run)
    assert engine_url.drivername == "postgresql+psycopg"
    assert engine_url.host is None
    assert engine_url.query["host"] == "/cloudsql/acme-1:europe-west1:aiops-gcp-db"


def test_ingest_stores_exactly_what_sqlalchemys_insert_stores(store: Store) -> None:
    """The ingest binds its INSERT's parameters itself: the stored text of every column must
    be what SQLAlchemy's own insert(analyses) writes for the same alert."""
    from aiops_analyzer.store.ingest_sqlite import ALERT_COLUMNS
    from aiops_analyzer.store.tables import analyses

    starts = datetime(2026, 11, 28, 11, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    labels = {"alertname": "NginxDown", "note": 'é \u2603 "quoted"', "n": "1"}
    annotations = {"summary": "ünïcode", "runbook": "https://example.invalid/x"}
    mine = Alert(
        fingerprint="mine",
        status="firing",
        starts_at=starts,
        ends_at=starts + timedelta(minutes=5),
        labels=labels,
        annotations=annotations,
        generator_url="http://g",
    )
    ingest(store, mine)
    columns = [c.name for c in analyses.columns if c.name not in ("id", "fingerprint")]
    with store.db.writer.connect() as connection:
        row = dict(
            connection.execute(analyses.select().where(analyses.c.fingerprint == "mine"))
            .mappings()
            .one()
        )
    with store.db.write() as connection:
        connection.execute(
            analyses.insert()
            .values({**{k: row[k] for k in ALERT_COLUMNS}, "starts_at": starts, "labels": labels})
            .values(fingerprint="theirs", annotations=annotations)
        )
    texts = ", ".join(f"CAST({name} AS TEXT)" for name in columns)
    with store.db.writer.connect() as connection:
        stored = {
            fingerprint: tuple(rest)
            for fingerprint, *rest in connection.exec_driver_sql(
                f"SELECT fingerprint, {texts} FROM analyses"  # noqa: S608
            )
        }
    assert stored["mine"] == stored["theirs"]
    assert '"\\u00e9' in stored["mine"][columns.index("labels")]
