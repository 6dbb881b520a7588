"""The store: migrations, idempotent ingest, atomic claims, resuming interrupted jobs."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from aiops_analyzer.schemas import AnalysisResult, NotificationOutcome
from aiops_analyzer.store import AlertRecord, Store, migrate
from aiops_analyzer.store.migrate import head_revision
from aiops_analyzer.store.tables import metadata
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext


def record(fingerprint: str = "abc", status: str = "firing", hour: int = 10) -> AlertRecord:
    return AlertRecord(
        fingerprint=fingerprint,
        status=status,
        starts_at=datetime(2026, 11, 28, hour, tzinfo=UTC),
        ends_at=None,
        labels={"alertname": "NginxDown"},
        annotations={},
        generator_url="",
    )


def new_store(tmp_path: Path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'analyzer.db'}")
    store.migrate()
    return store


def ingest(store: Store, *alerts: AlertRecord, truncated: int = 0) -> list[int]:
    result = store.ingest(
        receiver="r", status="firing", group_key="g", truncated_alerts=truncated, alerts=alerts
    )
    return result.analysis_ids


def test_migrations_create_the_schema_from_scratch_and_record_the_version(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'fresh' / 'analyzer.db'}")
    assert store.schema_revision() is None
    assert store.migrate() == head_revision()
    db = sqlite3.connect(tmp_path / "fresh" / "analyzer.db")
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"deliveries", "analyses", "alembic_version"} <= tables
    assert db.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Running again at the next start changes nothing.
    assert store.migrate() == head_revision()


def test_migrated_schema_matches_the_table_definitions(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    with store._writer.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []


def test_upgrading_a_first_revision_database_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "analyzer.db"
    old = Store(f"sqlite:///{path}")
    assert migrate.upgrade(old._writer, "0001") == "0001"
    ids = ingest(old, record(fingerprint="a"), record(fingerprint="b"))
    old.dispose()
    # The first revision's worker finished one of them with a result.
    db = sqlite3.connect(path)
    result = json.dumps({"summary": "s", "severity": "warning", "engine": "rules"})
    with db:
        db.execute(
            "UPDATE analyses SET state='done', outcome='ok', result=?, finished_at=? WHERE id=?",
            (result, "2026-11-28 10:01:00.000000", ids[0]),
        )
    before = db.execute("SELECT * FROM analyses ORDER BY id").fetchall()
    db.close()

    store = Store(f"sqlite:///{path}")
    assert store.schema_revision() == "0001"
    assert store.migrate() == head_revision() != "0001"
    db = sqlite3.connect(path)
    names = [row[1] for row in db.execute("PRAGMA table_info(analyses)")]
    after = db.execute("SELECT * FROM analyses ORDER BY id").fetchall()
    db.close()
    # Every row and value is still there; the new times are unknown, not guessed.
    assert [row[: len(before[0])] for row in after] == before
    assert [dict(zip(names, row, strict=True))["analyzed_at"] for row in after] == [None, None]
    with store._writer.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    done = store.get(ids[0])
    assert done is not None and done["result"]["summary"] == "s"
    assert done["analyzed_at"] is None and done["notified_at"] is None
    # And the upgraded store records the new times.
    job = store.claim_next(lease_seconds=600)
    assert job is not None and job.id == ids[1]
    store.save_result(job.id, AnalysisResult(summary="t", severity="info", engine="rules"), [])
    store.finish(
        job.id,
        outcome="ok",
        notifications=[NotificationOutcome(channel="webhook", ok=True, attempts=1)],
    )
    row = store.get(job.id)
    assert row is not None and row["analyzed_at"] <= row["notified_at"] == row["finished_at"]


def test_ingest_is_idempotent_on_fingerprint_status_and_starts_at(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    [first] = ingest(store, record())
    assert ingest(store, record()) == [first]
    assert ingest(store, record(status="resolved")) != [first]
    assert ingest(store, record(hour=11)) != [first]
    assert store.get(first)["deliveries"] == 2
    assert store.count_by_state()["pending"] == 3


def test_truncation_is_kept_as_the_largest_seen(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    [analysis_id] = ingest(store, record(), truncated=3)
    ingest(store, record(), truncated=1)
    assert store.get(analysis_id)["truncated_alerts"] == 3


def test_concurrent_claims_never_hand_out_a_job_twice(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    ingest(store, *(record(fingerprint=f"fp-{n}") for n in range(40)))
    claimed: list[int] = []
    lock = threading.Lock()

    def claim_all() -> None:
        while (job := store.claim_next(lease_seconds=600)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=claim_all) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(set(claimed)) and len(claimed) == 40


def test_interrupted_jobs_are_requeued_or_failed_after_the_last_attempt(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    first, second = ingest(store, record(fingerprint="a"), record(fingerprint="b"))
    assert store.claim_next(lease_seconds=600) is not None
    assert store.claim_next(lease_seconds=600) is not None
    # Both are running; the process dies. The next start resumes them.
    assert store.requeue_interrupted(max_attempts=3) == (2, 0)
    assert store.count_by_state()["pending"] == 2
    for _ in range(2):  # Interrupted twice more: attempts 3 = max.
        while store.claim_next(lease_seconds=600):
            pass
        store.requeue_interrupted(max_attempts=3)
    states = {store.get(first)["state"], store.get(second)["state"]}
    assert states == {"failed"}
    assert "interrupted" in store.get(first)["last_error"]


def test_expired_lease_lets_another_worker_take_the_job(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    [analysis_id] = ingest(store, record())
    assert store.claim_next(lease_seconds=600) is not None
    assert store.claim_next(lease_seconds=600) is None  # Still leased.
    job = store.claim_next(lease_seconds=0)  # Lease expired at once.
    assert job is not None and job.id == analysis_id and job.attempts == 2


def test_tokens_used_today_sums_stored_results(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    first, _ = ingest(store, record(fingerprint="a"), record(fingerprint="b"))
    for tokens in (100, 50):
        job = store.claim_next(lease_seconds=600)
        assert job is not None
        result = AnalysisResult(
            summary="s",
            severity="warning",
            engine="llm",
            prompt_tokens=tokens,
            completion_tokens=tokens // 2,
        )
        store.save_result(job.id, result, [])
        store.finish(job.id, outcome="ok", notifications=[])
    assert store.tokens_used_today() == 150 + 75
    assert store.get(first)["state"] == "done"


def test_failed_attempt_is_retried_later_then_failed(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    [analysis_id] = ingest(store, record())
    job = store.claim_next(lease_seconds=600)
    assert job is not None
    store.fail_attempt(job.id, error="boom", retry_in=3600)
    assert store.claim_next(lease_seconds=600) is None  # Not due yet.
    assert 3500 < (store.next_due_in() or 0) <= 3600
    store.fail_attempt(job.id, error="boom again", retry_in=None)
    row = store.get(analysis_id)
    assert row["state"] == "failed" and row["last_error"] == "boom again"


def test_list_filters_and_pages_newest_first(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    ids = ingest(store, *(record(fingerprint=f"fp-{n}") for n in range(5)))
    ingest(store, record(fingerprint="fp-0", status="resolved"))
    page, total = store.list(status="firing", limit=2, offset=0)
    assert total == 5 and [row["id"] for row in page] == sorted(ids, reverse=True)[:2]
    page, total = store.list(status="resolved")
    assert total == 1 and page[0]["status"] == "resolved"
    assert store.list(alertname="Other")[1] == 0
    assert store.list(since=datetime(2100, 1, 1, tzinfo=UTC))[1] == 0
