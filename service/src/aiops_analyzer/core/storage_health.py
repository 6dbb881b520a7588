"""Whether the store takes writes, said once per distinct failure and shown by /readyz.

A full disk, a read-only file system or an unreachable database is not a bug in a request:
the webhook answers 503 with Retry-After (Alertmanager retries 5xx on its own), the log gets
one line per distinct cause instead of a traceback per request or per second, and /readyz
stays red until a write succeeds again (the next delivery Alertmanager retries, or the next
job a worker leases).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy import exc as sa_exc

from aiops_analyzer.scrub import default_scrubber

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10

_STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,  # disk full, read-only, locked, connection refused or lost
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection in time
    sqlite3.OperationalError,
    OSError,
)


def is_storage_error(exc: BaseException) -> bool:
    return isinstance(exc, _STORAGE_ERRORS)


def describe(exc: BaseException) -> str:
    """The driver's own first line (``database or disk is full``), scrubbed: a PostgreSQL
    error may quote the connection URL."""
    original = getattr(exc, "orig", None) or exc
    first = (str(original).strip().splitlines() or [type(original).__name__])[0]
    return default_scrubber.scrub(first[:200])


class StorageHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing: str | None = None

    @property
    def failing(self) -> str | None:
        """The cause of the last failed write, or None once writes succeed."""
        return self._failing

    def failed(self, exc: BaseException) -> str:
        cause = describe(exc)
        with self._lock:
            new = cause != self._failing
            self._failing = cause
        if new:
            logger.error(
                f"store cannot take writes: {cause}",
                extra={"event": "store_unavailable", "cause": cause, "error": type(exc).__name__},
            )
        return cause

    def succeeded(self) -> None:
        with self._lock:
            was, self._failing = self._failing, None
        if was is not None:
            logger.warning(
                "store takes writes again", extra={"event": "store_recovered", "was": was}
            )
