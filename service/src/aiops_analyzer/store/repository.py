"""The store: one database, three concerns (ingest, the job queue, reads). Synchronous:
callers run it in a worker thread."""

from __future__ import annotations

from collections.abc import Callable

from aiops_analyzer.store.database import Database
from aiops_analyzer.store.ingest import GroupCommitter, Ingestor
from aiops_analyzer.store.queries import AnalysisQueries
from aiops_analyzer.store.queue import JobQueue
from aiops_analyzer.store.records import Delivery, IngestResult

# Body bytes of the deliveries one batch may build (scrub) on the event loop before it is
# stored there (SQLite) or awaited there (PostgreSQL): typical deliveries are 1-3 KB each.
INLINE_BATCH_MAX_BYTES = 64 * 1024


class Store:
    """``ingest`` for the webhook, ``jobs`` for the workers, ``analyses`` for readers."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.ingestor = Ingestor(self.db)
        self.committer = GroupCommitter(self.ingestor, inline_max_bytes=INLINE_BATCH_MAX_BYTES)
        self.jobs = JobQueue(self.db)
        self.analyses = AnalysisQueries(self.db)

    @property
    def url(self) -> str:
        return self.db.url

    def ingest(self, delivery: Delivery) -> IngestResult:
        """Store one delivery (its own transaction)."""
        return self.ingestor.ingest(delivery)

    async def ingest_grouped(
        self, build: Callable[[], Delivery], *, size: int | None = None
    ) -> IngestResult:
        """Store the delivery ``build`` makes (from ``size`` bytes of body), sharing a
        transaction with concurrent ones."""
        return await self.committer.ingest(build, size=size)

    def migrate(self) -> str:
        """Bring the schema to the newest revision (safe on every start); returns it."""
        return self.db.migrate()

    def ping(self) -> bool:
        return self.db.ping()

    def dispose(self) -> None:
        self.db.dispose()
