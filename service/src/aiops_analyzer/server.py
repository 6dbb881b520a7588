"""How ``serve`` runs uvicorn: with deadlines and limits no client can outwait.

uvicorn closes idle keep-alive connections but has no deadline for a request's headers or
body: a client that connects and sends nothing, or one byte a second, holds a socket (and a
file descriptor) for ever, and ~1,000 of them exhaust the process. ``GuardedH11Protocol``
adds the missing deadlines and bounds:

- headers must be complete within ``header_timeout_seconds`` of their first byte (or of the
  connection, for a client that sends nothing): else ``408`` and the connection is closed;
- the body must be complete within ``body_timeout_seconds`` of the headers: else ``408``;
- at most ``max_connections`` connections are open: one more is closed at once (the file
  descriptor comes back immediately) and requests on the last ones get uvicorn's ``503``;
- a keep-alive connection serves at most ``max_requests_per_connection`` requests.

``RepeatLimiter`` keeps a flood of one log message (asyncio's "socket.accept() out of system
resource", tens of thousands a second when descriptors run out) to one line per window.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from aiops_analyzer.core.config import Settings

logger = logging.getLogger(__name__)

_TIMEOUT_BODY = b"request not received in time\n"
_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY
)
# Descriptors kept free for the store, outgoing HTTP (evidence, LLM, chat) and logs.
_RESERVED_FDS = 64


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with header and body deadlines and a connection cap."""

    header_timeout = 10.0
    body_timeout = 30.0
    max_connections = 1000
    max_requests_per_connection = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._phase = "idle"  # idle -> headers -> body -> app
        self._served = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            logger.warning(
                "connection refused: too many open connections",
                extra={"event": "connection_refused", "limit": self.max_connections},
            )
            transport.abort()
            return
        # A client that connects and sends nothing gets the header deadline too.
        self._arm("headers", self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "idle":
            # First byte of a new request on a kept-alive connection: the clock starts now.
            self._arm("headers", self.header_timeout)
        super().data_received(data)
        self._last_request_closes()
        self._follow_state()

    def on_response_complete(self) -> None:
        self._served += 1
        super().on_response_complete()
        self._last_request_closes()  # a pipelined request may have started just now
        self._follow_state()

    def _last_request_closes(self) -> None:
        """The connection's last allowed request is answered with "connection: close"."""
        if self.cycle is not None and self._served + 1 >= self.max_requests_per_connection:
            self.cycle.keep_alive = False

    def _follow_state(self) -> None:
        """Move the deadline along with h11's view of the client's request."""
        state = self.conn.their_state
        if state is h11.SEND_BODY and self._phase == "headers":
            self._arm("body", self.body_timeout)
        elif state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR) and self._phase in (
            "headers",
            "body",
        ):
            self._disarm()
            self._phase = "app"
        elif state is h11.IDLE and self._phase == "app":
            self._phase = "idle"  # response sent; uvicorn's keep-alive timer rules the gap

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_REQUEST_TIMEOUT)
        logger.info(
            "request timed out",
            extra={"event": "request_timeout", "phase": self._phase, "client": self.client},
        )
        self.transport.close()


# Loggers whose messages can repeat without bound under attack or exhaustion: asyncio's
# accept() errors, uvicorn's per-connection warnings, the connection cap's refusals. The
# analyzer's own per-event lines (one per delivery, per job) are never held back.
FLOOD_PRONE_LOGGERS = ("asyncio", "uvicorn", "aiops_analyzer.server")


class RepeatLimiter(logging.Filter):
    """For the flood-prone loggers: lets the first of a repeated message through, then at
    most one per ``window`` seconds with the number held back. A message is "the same" by
    logger, level and the start of its first line: asyncio's messages embed object reprs
    that change from one to the next."""

    def __init__(self, window: float = 10.0) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(FLOOD_PRONE_LOGGERS):
            return True  # the analyzer's own events are one line each, all kept
        key = (record.name, record.levelname, str(record.msg).split("\n", 1)[0][:60])
        now = time.monotonic()
        with self._lock:
            last, held = self._seen.get(key, (-self.window, 0))
            if now - last < self.window:
                self._seen[key] = (last, held + 1)
                return False
            self._seen[key] = (now, 0)
            if len(self._seen) > 10_000:  # distinct messages are bounded too
                self._seen.clear()
        if held:
            record.msg = f"{record.msg} ({held} similar messages suppressed)"
        return True


def limit_log_repeats(window: float = 10.0) -> None:
    for handler in logging.getLogger().handlers:
        handler.addFilter(RepeatLimiter(window))


def usable_connections(wanted: int) -> int:
    """Raise the soft open-files limit to the hard one and keep the cap below it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    ceiling = max(16, soft - _RESERVED_FDS)
    if wanted > ceiling:
        logger.warning(
            "AIOPS_MAX_CONNECTIONS lowered to fit the open-files limit",
            extra={"event": "max_connections_lowered", "wanted": wanted, "used": ceiling},
        )
    return min(wanted, ceiling)


def run(app: Any, settings: Settings, *, access_log: bool, behind_proxy: bool) -> None:
    """Serve ``app`` with uvicorn and the guarded protocol (blocks until shutdown)."""
    import uvicorn

    limit_log_repeats()
    max_connections = usable_connections(settings.max_connections)
    protocol = type(
        "AnalyzerProtocol",
        (GuardedH11Protocol,),
        {
            "header_timeout": settings.header_timeout_seconds,
            "body_timeout": settings.body_timeout_seconds,
            "max_connections": max_connections,
            "max_requests_per_connection": settings.max_requests_per_connection,
        },
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol,
        log_config=None,
        access_log=access_log,
        proxy_headers=True,
        forwarded_allow_ips="*" if behind_proxy else None,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.keepalive_timeout_seconds,
        limit_concurrency=max_connections,
        backlog=min(2048, max_connections),
    )
