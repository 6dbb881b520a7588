"""The analysis workers: asyncio tasks that claim jobs from the store and run the pipeline.

A job is claimed atomically (pending -> running, attempts + 1) under a short lease, so two
workers, in this process or in other replicas, never hold the same one. While a job runs its
lease is renewed; if renewal finds the lease lost, the work stops. The engine's answer is
stored before notifying: a job interrupted after that point is resumed without asking the
engine (and so the LLM) again. Jobs whose lease expired (their process died) are put back to
pending by any process's reaper; a clean shutdown gives its jobs back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time

import anyio
import httpx

from aiops_analyzer import engines, evidence, notify
from aiops_analyzer.core.config import Settings
from aiops_analyzer.core.dependencies import DependencyHealth
from aiops_analyzer.core.metrics import Metrics
from aiops_analyzer.core.storage_health import StorageHealth, is_storage_error
from aiops_analyzer.runbook_links import with_runbook_links
from aiops_analyzer.schemas import Alert, AnalysisResult, EvidenceItem
from aiops_analyzer.store import Job, JobState, Outcome, Store, utcnow

logger = logging.getLogger(__name__)

# How often an idle worker looks at the store even without a wake-up (other processes, retries).
IDLE_POLL_SECONDS = 1.0
# A failed attempt is retried after RETRY_BASE_SECONDS * 2**(attempt - 1), at most 60 s.
RETRY_BASE_SECONDS = 2.0
MAX_RETRY_DELAY_SECONDS = 60.0
# A resolution waits (re-queued every second, this long at most) for its firing analysis to
# finish, so its notification can quote the analysis.
RESOLUTION_WAIT_SECONDS = 120.0
RESOLUTION_RECHECK_SECONDS = 1.0
# Webhook priority: how often a worker looks whether ingest is still busy, and how long it
# waits at most before taking a job anyway.
INGEST_PRIORITY_POLL_SECONDS = 0.05
INGEST_PRIORITY_MAX_WAIT_SECONDS = 5.0
# Longest wait for the worker tasks at shutdown.
STOP_TIMEOUT_SECONDS = 10.0


def outcome_of(result: AnalysisResult) -> Outcome:
    if result.fallback_reason:
        return Outcome.FALLBACK
    return Outcome.INCONCLUSIVE if result.inconclusive else Outcome.OK


def new_owner_id() -> str:
    """Names this process in job leases: host and pid for people, a random part for
    uniqueness (a restarted container may reuse both)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class WorkerPool:
    def __init__(self, settings: Settings, store: Store, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        # One token per new job wakes one idle worker (an Event would wake them all, and each
        # would then race for the same job through the store).
        self._wakeups = asyncio.Semaphore(0)
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None
        self._llm: engines.LLMEngine | None = None
        self._running_jobs = 0
        self._stopping = False
        # Resolutions claimed again while their firing analysis runs: their start is logged once.
        self._waiting: set[int] = set()
        self._reaper: asyncio.Task[None] | None = None
        self.owner = new_owner_id()
        # Last state of the LLM, evidence sources and channels (/readyz; one WARNING per outage).
        self.health = DependencyHealth(settings)
        # Whether the store takes writes (/readyz, the webhook's 503, one log line per cause).
        self.storage = StorageHealth()

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._http = httpx.AsyncClient(follow_redirects=False)
        # One LLM client for every job, so connections to the server are reused.
        self._llm = None
        if self.settings.llm_enabled:
            try:
                self._llm = engines.LLMEngine(self.settings)
            except Exception:
                # analyze() builds its own per call and falls back to rules with the reason.
                logger.exception("llm client not created", extra={"event": "llm_client_error"})
        self._tasks = [
            asyncio.create_task(self._run(n), name=f"aiops-worker-{n}")
            for n in range(self.settings.workers)
        ]
        self._reaper = asyncio.create_task(self._reap_expired_leases(), name="aiops-lease-reaper")
        self.metrics.workers_alive.set_function(lambda: float(self.alive))

    async def stop(self) -> None:
        self._stopping = True
        tasks = [*self._tasks, *([self._reaper] if self._reaper else [])]
        for task in tasks:
            task.cancel()
        pending: set[asyncio.Task[None]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_SECONDS)
        if pending:
            # A job stuck in a thread (a hung store call): its lease expires and any process
            # puts it back. Do not hang the shutdown on it.
            logger.warning("workers did not stop in time", extra={"event": "workers_stop_timeout"})
        self._tasks = []
        self._reaper = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._llm is not None:
            await self._llm.aclose()
            self._llm = None

    @property
    def alive(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    @property
    def busy(self) -> int:
        return self._running_jobs

    def wake(self, jobs: int = 1) -> None:
        """New jobs were stored: let idle workers look now rather than at their next poll."""
        for _ in range(min(jobs, self.settings.workers)):
            if self._wakeups._value >= self.settings.workers:  # Enough tokens already.
                break
            self._wakeups.release()

    # --- the loop --------------------------------------------------------------------------
    async def _run(self, number: int) -> None:
        while not self._stopping:
            try:
                await self._yield_to_ingest()
                job = await self._claim()
                if job is None:
                    await self._idle()
                    continue
                self.storage.succeeded()  # the lease was a write
                self._running_jobs += 1
                try:
                    await self._process(job)
                finally:
                    self._running_jobs -= 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A store error (disk full, database gone): one line per distinct cause, the
                # worker stays alive and retries; anything else is a bug worth a traceback.
                if is_storage_error(exc):
                    self.storage.failed(exc)
                else:
                    logger.exception("worker loop error", extra={"event": "worker_error"})
                await asyncio.sleep(IDLE_POLL_SECONDS)

    async def _yield_to_ingest(self) -> None:
        """Webhook first: while deliveries queue for the store, take no new job; while they
        merely keep arriving, run one job at a time. The CPU of this process then goes to
        acknowledging alerts (bounded, so a steady storm slows analyses, never stops them)."""
        committer = self.store.committer
        deadline = time.monotonic() + INGEST_PRIORITY_MAX_WAIT_SECONDS
        while time.monotonic() < deadline and (  # noqa: ASYNC110 -- a bounded poll
            committer.busy or (committer.active and self._running_jobs > 0)
        ):
            await asyncio.sleep(INGEST_PRIORITY_POLL_SECONDS)

    async def _claim(self) -> Job | None:
        """Claim a job; a stop arriving meanwhile waits for the claim and gives the job back
        (otherwise its row would stay running until the lease expires)."""
        claim = asyncio.ensure_future(
            anyio.to_thread.run_sync(
                lambda: self.store.jobs.claim(
                    owner=self.owner, lease_seconds=self.settings.job_lease_seconds
                )
            )
        )
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                job = await claim
                if job is not None:
                    await self._give_back(job)
            raise

    async def _give_back(self, job: Job) -> None:
        """Stopping: return the job to pending at once, for another worker or replica."""
        with contextlib.suppress(Exception):
            await anyio.to_thread.run_sync(self.store.jobs.release, job)

    async def _reap_expired_leases(self) -> None:
        """Put back the jobs of dead workers (any replica's), every half lease."""
        interval = max(0.5, self.settings.job_lease_seconds / 2)
        while not self._stopping:
            try:
                requeued, failed = await anyio.to_thread.run_sync(
                    lambda: self.store.jobs.release_expired(
                        max_attempts=self.settings.job_max_attempts
                    )
                )
                if requeued or failed:
                    logger.warning(
                        "expired job leases released",
                        extra={"event": "leases_expired", "requeued": requeued, "failed": failed},
                    )
                    self.wake(requeued)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("lease reaper error", extra={"event": "reaper_error"})
            await asyncio.sleep(interval)

    async def _idle(self) -> None:
        # The poll also picks up retries that became due and jobs stored by another process.
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # races with the semaphore's wake-up, and the worker would then never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE_POLL_SECONDS):
                await self._wakeups.acquire()

    async def _process(self, job: Job) -> None:
        """Run the job while renewing its lease; stop the work if the lease is lost."""
        work = asyncio.create_task(self._work(job), name=f"aiops-job-{job.id}")
        try:
            await self._hold_lease(job, work)
        except asyncio.CancelledError:
            # Shutting down: stop the work and give the job back for another worker now.
            work.cancel()
            await asyncio.wait({work})
            await self._give_back(job)
            raise

    async def _hold_lease(self, job: Job, work: asyncio.Task[None]) -> None:
        interval = self.settings.job_lease_seconds / 3
        while True:
            done, _ = await asyncio.wait({work}, timeout=interval)
            if done:
                work.result()
                return
            try:
                held = await anyio.to_thread.run_sync(
                    lambda: self.store.jobs.renew(
                        job, lease_seconds=self.settings.job_lease_seconds
                    )
                )
            except Exception:
                # The store is briefly unreachable: try again next interval, while the lease
                # may still be live.
                logger.exception("lease renewal error", extra={"event": "lease_renew_error"})
                continue
            if not held:
                work.cancel()
                await asyncio.wait({work})
                logger.warning(
                    "job lease lost; work stopped",
                    extra={"event": "lease_lost", "analysis_id": job.id},
                )
                return

    async def _work(self, job: Job) -> None:
        log = {"analysis_id": job.id, "alertname": job.alert.alertname, "attempt": job.attempts}
        level = logging.DEBUG if job.id in self._waiting else logging.INFO
        logger.log(level, "job started", extra={"event": "job_started", **log})
        outcome: Outcome | None
        try:
            async with asyncio.timeout(self.settings.job_timeout_seconds):
                if job.alert.status == "firing":
                    outcome = await self._analyze_firing(job)
                else:
                    outcome = await self._record_resolution(job)
        except Exception as exc:
            self._waiting.discard(job.id)
            final = job.attempts >= self.settings.job_max_attempts
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            retry_in = (
                None
                if final
                else min(RETRY_BASE_SECONDS * 2 ** (job.attempts - 1), MAX_RETRY_DELAY_SECONDS)
            )
            await anyio.to_thread.run_sync(
                lambda: self.store.jobs.fail_attempt(job, error=error, retry_in=retry_in)
            )
            if final:
                self.metrics.analyses.labels(self._engine_label(), "failed").inc()
            logger.warning(
                "job failed" if final else "job attempt failed; will retry",
                exc_info=True,
                extra={"event": "job_failed", "final": final, "error": error, **log},
            )
            return
        if outcome is None:
            self._waiting.add(job.id)
            logger.debug("resolution waits for its firing analysis", extra=log)
            return
        self._waiting.discard(job.id)
        logger.info("job done", extra={"event": "job_done", "outcome": outcome, **log})

    def _engine_label(self) -> str:
        return "llm" if self.settings.llm_enabled else "rules"

    async def _run_engine(
        self, job: Job, *, store_now: bool
    ) -> tuple[AnalysisResult, list[EvidenceItem]]:
        started = time.perf_counter()
        items = await evidence.gather_evidence(job.alert, self.settings, http=self._http)
        tokens_today = 0
        if self.settings.llm_enabled and self.settings.llm_daily_token_budget:
            tokens_today = await anyio.to_thread.run_sync(self.store.analyses.tokens_used_today)
        result = await engines.analyze(
            job.alert, items, self.settings, tokens_used_today=tokens_today, llm=self._llm
        )
        self.health.observe_evidence(items)
        self.health.observe_result(result, self.settings)
        result = with_runbook_links(result, job.alert, items, self.settings)
        if store_now:
            await anyio.to_thread.run_sync(lambda: self.store.jobs.save_result(job, result, items))
        self.metrics.record_analysis(result, time.perf_counter() - started)
        return result, items

    async def _analyze_firing(self, job: Job) -> Outcome:
        # With notifications to send, the result is stored first: a job interrupted while
        # notifying resumes without asking the engine again. Without, one write does both.
        has_channels = bool(notify.configured_channels(self.settings))
        result = job.result
        fresh: tuple[AnalysisResult, list[EvidenceItem]] | None = None
        if result is None:
            fresh = await self._run_engine(job, store_now=has_channels)
            result = fresh[0]
        outcomes = await notify.notify_analysis(
            job.alert, result, self.settings, analysis_id=job.id, http=self._http
        )
        self.metrics.record_notifications(outcomes)
        self.health.observe_notifications(outcomes)
        outcome = outcome_of(result)
        unsaved = fresh if fresh is not None and not has_channels else None
        await anyio.to_thread.run_sync(
            lambda: self.store.jobs.finish(
                job,
                outcome=outcome,
                notifications=outcomes,
                result=unsaved[0] if unsaved else None,
                evidence=unsaved[1] if unsaved else None,
            )
        )
        return outcome

    async def _record_resolution(self, job: Job) -> Outcome | None:
        """Record (and notify) a resolution; None when it waits for its firing analysis."""
        alert = job.alert
        firing = await anyio.to_thread.run_sync(
            self.store.analyses.find_firing, alert.fingerprint, alert.starts_at
        )
        if (
            firing
            and firing.state in {JobState.PENDING, JobState.RUNNING}
            and _waited(job) < (RESOLUTION_WAIT_SECONDS)
        ):
            await anyio.to_thread.run_sync(
                lambda: self.store.jobs.defer(job, seconds=RESOLUTION_RECHECK_SECONDS)
            )
            return None
        duration = _duration_seconds(alert)
        firing_id = firing.id if firing else None
        await anyio.to_thread.run_sync(
            lambda: self.store.jobs.save_resolution(job, firing_id, duration)
        )
        # The resolution's own analysis (when it recovered, whether the cause is still there,
        # its severity) is what its notification reports; a resumed job reuses the stored one.
        resolved = job.result
        if self.settings.analyze_resolved and resolved is None:
            resolved, _ = await self._run_engine(job, store_now=True)
        firing_result = firing.result if firing else None
        outcomes = await notify.notify_resolution(
            alert,
            firing_result,
            duration,
            self.settings,
            analysis_id=job.id,
            resolved=resolved,
            http=self._http,
        )
        self.metrics.record_notifications(outcomes)
        self.health.observe_notifications(outcomes)
        await anyio.to_thread.run_sync(
            lambda: self.store.jobs.finish(job, outcome=Outcome.RESOLVED, notifications=outcomes)
        )
        return Outcome.RESOLVED


def _waited(job: Job) -> float:
    """Seconds since the job's alert was first received."""
    return (utcnow() - job.received_at).total_seconds()


def _duration_seconds(alert: Alert) -> float:
    """How long the alert fired: endsAt (or now, when Alertmanager sent none) minus startsAt."""
    end = alert.ends_at or utcnow()
    return max(0.0, (end - alert.starts_at).total_seconds())
