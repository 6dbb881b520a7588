"""A real HTTP server on 127.0.0.1 for tests: records every request, answers as scripted.

Tests use it to stand in for Prometheus, Loki, an OpenAI-compatible server, Slack, Discord,
a webhook receiver or Grafana, so the real client code (httpx, the OpenAI SDK) runs end to
end over a socket. Use it as a context manager; leaving the block stops the server and
interrupts any reply that is still sleeping.

    with LoopbackServer(sequence(Reply(500), Reply(200, {"ok": True}))) as server:
        ... call server.url ...
    assert len(server.requests) == 2
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    status: int = 200
    body: Any = b""  # bytes, str, or anything JSON-serialisable
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering (a slow or hung server)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float  # time.monotonic() on arrival, to compare gaps between requests

    def json(self) -> Any:
        return json.loads(self.body)

    def param(self, name: str) -> str:
        return self.query[name][0]


Handler = Callable[[Recorded], Reply]


def sequence(*replies: Reply) -> Handler:
    """Answer with each reply in turn, then keep repeating the last one."""
    lock = threading.Lock()
    remaining = list(replies)

    def handle(_: Recorded) -> Reply:
        with lock:
            return remaining.pop(0) if len(remaining) > 1 else remaining[0]

    return handle


def always(reply: Reply) -> Handler:
    return lambda _: reply


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) leaves a broken pipe: expected, not news.
        return


class LoopbackServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _QuietServer(("127.0.0.1", 0), self._request_handler_class())
        # A short poll interval keeps stop() (and so every test) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():  # shutdown() would wait forever on a server never started
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def paths(self) -> list[str]:
        with self._lock:
            return [r.path for r in self.requests]

    def _record(self, request: Recorded) -> None:
        with self._lock:
            self.requests.append(request)

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                server._record(request)
                reply = server.handler(request)
                if reply.delay and server._stopping.wait(reply.delay):
                    self.close_connection = True
                    return
                payload, content_type = reply.encoded()
                self.send_response(reply.status)
                headers = {"Content-Type": content_type, **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _handle
            do_POST = _handle
            do_PUT = _handle

        return _Handler


def clear_analyzer_environment(monkeypatch: Any) -> None:
    """Drop AIOPS_* and OPENAI_API_KEY from the environment for one test.

    Settings read the environment; a developer's exported key or Prometheus URL must not
    turn an offline test into one that calls out (or change what it asserts).
    """
    for name in list(os.environ):
        if name.startswith("AIOPS_") or name == "OPENAI_API_KEY":
            monkeypatch.delenv(name)
