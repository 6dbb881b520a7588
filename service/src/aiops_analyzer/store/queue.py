"""The job queue: every alert state is one job, leased to one worker at a time.

A claim moves the oldest due pending job to running in one statement (on PostgreSQL its row is
picked with FOR UPDATE SKIP LOCKED, so concurrent replicas never wait for or take the same
job). The claimant holds a short lease and renews it while it works; every later write of the
job is guarded by the lease, so a worker whose lease was taken over changes nothing. Leases
that expire (the owner died) are put back to pending by any process: ``release_expired``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from aiops_analyzer.schemas import AnalysisResult, EvidenceItem, NotificationOutcome
from aiops_analyzer.store.database import Database
from aiops_analyzer.store.queries import alert_from_row, result_from_row
from aiops_analyzer.store.records import Job, JobState, Outcome, utcnow
from aiops_analyzer.store.tables import analyses

c = analyses.c


class JobQueue:
    def __init__(self, db: Database) -> None:
        self.db = db
        due = (
            select(c.id)
            .where(c.state == JobState.PENDING, c.available_at <= bindparam("b_now"))
            .order_by(c.available_at, c.id)
            .limit(1)
        )
        self._next_due = due
        # SQLite ignores FOR UPDATE; its BEGIN IMMEDIATE already serialises the claim.
        locked = due.with_for_update(skip_locked=True).scalar_subquery()
        self._claim = (
            update(analyses)
            .where(c.id == locked)
            .values(
                state=JobState.RUNNING,
                claimed_at=bindparam("b_now"),
                lease_owner=bindparam("b_owner"),
                lease_expires_at=bindparam("b_expires"),
                attempts=c.attempts + 1,
            )
            .returning(*c)
        )

    def _held(self, job: Job) -> Any:
        """The condition every write of a claimed job carries: its lease is still ``job``'s."""
        return (c.id == job.id) & (c.state == JobState.RUNNING) & (c.lease_owner == job.owner)

    def claim(self, *, owner: str, lease_seconds: float) -> Job | None:
        """Take the oldest due pending job for ``owner``; None when nothing is due."""
        now = utcnow()
        # Idle workers ask often: answer "nothing to do" from a read, without a write.
        with self.db.read() as reader:
            if reader.execute(self._next_due, {"b_now": now}).scalar() is None:
                return None
        expires = now + timedelta(seconds=lease_seconds)
        with self.db.write() as conn:
            row = conn.execute(
                self._claim, {"b_now": now, "b_owner": owner, "b_expires": expires}
            ).first()
        if row is None:
            return None
        values = row._mapping
        evidence = values["evidence"]
        return Job(
            id=values["id"],
            alert=alert_from_row(values),
            attempts=values["attempts"],
            owner=owner,
            result=result_from_row(values),
            evidence=[EvidenceItem.model_validate(e) for e in evidence] if evidence else None,
            received_at=values["received_at"],
        )

    def renew(self, job: Job, *, lease_seconds: float) -> bool:
        """Extend the lease; False when it was lost (expired and released or taken over)."""
        expires = utcnow() + timedelta(seconds=lease_seconds)
        with self.db.write() as conn:
            changed = conn.execute(
                update(analyses).where(self._held(job)).values(lease_expires_at=expires)
            ).rowcount
        return changed == 1

    def release_expired(self, *, max_attempts: int) -> tuple[int, int]:
        """Jobs whose lease expired (their worker died or hung) go back to pending, or fail
        when they have used every attempt, so a job that kills its process cannot loop
        forever. Safe from any process at any time. Returns (requeued, failed)."""
        now = utcnow()
        expired = (c.state == JobState.RUNNING) & (c.lease_expires_at < now)
        with self.db.read() as reader:
            if reader.execute(select(c.id).where(expired).limit(1)).first() is None:
                return 0, 0
        with self.db.write() as conn:
            failed = conn.execute(
                update(analyses)
                .where(expired, c.attempts >= max_attempts)
                .values(
                    state=JobState.FAILED,
                    finished_at=now,
                    outcome=Outcome.FAILED,
                    lease_owner=None,
                    lease_expires_at=None,
                    last_error="interrupted on every attempt (worker stopped while running)",
                )
            ).rowcount
            requeued = conn.execute(
                update(analyses)
                .where(expired)
                .values(
                    state=JobState.PENDING,
                    available_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            ).rowcount
        return requeued, failed

    def release(self, job: Job) -> bool:
        """Give a job back at once without counting the attempt (a clean shutdown)."""
        return self._update(
            job,
            state=JobState.PENDING,
            attempts=c.attempts - 1,
            available_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
        )

    def _update(self, job: Job, **values: Any) -> bool:
        with self.db.write() as conn:
            changed = conn.execute(update(analyses).where(self._held(job)).values(**values))
        return changed.rowcount == 1

    @staticmethod
    def _result_values(result: AnalysisResult | None, evidence: list[EvidenceItem]) -> dict:
        values: dict[str, Any] = {"evidence": [item.model_dump(mode="json") for item in evidence]}
        if result is not None:
            values.update(
                result=result.model_dump(mode="json"),
                engine=result.engine,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                analyzed_at=utcnow(),
            )
        return values

    def save_result(
        self, job: Job, result: AnalysisResult | None, evidence: list[EvidenceItem]
    ) -> bool:
        """Store the engine's answer before notifying, so a retry never asks the engine twice."""
        return self._update(job, **self._result_values(result, evidence))

    def save_resolution(
        self, job: Job, firing_analysis_id: int | None, duration_seconds: float | None
    ) -> bool:
        return self._update(
            job, firing_analysis_id=firing_analysis_id, duration_seconds=duration_seconds
        )

    def finish(
        self,
        job: Job,
        *,
        outcome: Outcome,
        notifications: list[NotificationOutcome],
        result: AnalysisResult | None = None,
        evidence: list[EvidenceItem] | None = None,
    ) -> bool:
        """Mark the job done; with ``result``, store it in the same transaction.

        ``notified_at`` is set when at least one channel accepted the notification: the
        notifier has returned by now, so this is when the last channel finished.
        """
        now = utcnow()
        values: dict[str, Any] = {
            "state": JobState.DONE,
            "outcome": outcome,
            "finished_at": now,
            "last_error": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "notifications": [n.model_dump(mode="json") for n in notifications],
            "notified_at": now if any(n.ok for n in notifications) else None,
        }
        if result is not None:
            values.update(self._result_values(result, evidence or []))
        return self._update(job, **values)

    def defer(self, job: Job, *, seconds: float) -> bool:
        """Put a claimed job back for later without counting the attempt."""
        return self._update(
            job,
            state=JobState.PENDING,
            attempts=c.attempts - 1,
            available_at=utcnow() + timedelta(seconds=seconds),
            lease_owner=None,
            lease_expires_at=None,
        )

    def fail_attempt(self, job: Job, *, error: str, retry_in: float | None) -> bool:
        """Record a failed attempt: back to pending after ``retry_in`` seconds, or failed."""
        now = utcnow()
        values: dict[str, Any] = {
            "last_error": error[:2000],
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if retry_in is None:
            values.update(state=JobState.FAILED, outcome=Outcome.FAILED, finished_at=now)
        else:
            values.update(state=JobState.PENDING, available_at=now + timedelta(seconds=retry_in))
        return self._update(job, **values)
