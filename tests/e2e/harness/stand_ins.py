"""Loopback HTTP servers that speak the external APIs the analyzer calls, and record the calls.

They stand in for Loki, Slack, OpenAI and the Watchdog's dead man's switch, so the real client
code of the analyzer runs against real sockets on 127.0.0.1 and nothing leaves the machine.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.openai_fake import chat_completion


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    received_at: float = field(
        default_factory=time.time
    )  # wall clock, comparable to the analyzer's

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


class RecordingServer:
    """A threaded HTTP server on 127.0.0.1: records every request, answers via ``respond``."""

    name = "stand-in"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                with server._lock:
                    server.requests.append(request)
                reply = server.respond(request)
                payload = reply.encoded()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _handle

            def log_message(self, format: str, *args: Any) -> None:
                # Quiet: the recorded requests are the log.
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"{self.name}-{self.port}", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def respond(self, request: RecordedRequest) -> Reply:
        return Reply(200, {"ok": True})

    def recorded(
        self, predicate: Callable[[RecordedRequest], bool] | None = None
    ) -> list[RecordedRequest]:
        with self._lock:
            snapshot = list(self.requests)
        return [r for r in snapshot if predicate is None or predicate(r)]

    def summary(self) -> str:
        lines = [f"{self.name} at {self.url}: {len(self.requests)} request(s)"]
        for r in self.recorded()[-10:]:
            lines.append(f"  {r.method} {r.path} {r.text()[:300]!r}")
        return "\n".join(lines)


class SlackStandIn(RecordingServer):
    """Slack incoming webhook: accepts a JSON POST, answers ``ok`` like Slack does."""

    name = "slack"

    def respond(self, request: RecordedRequest) -> Reply:
        return Reply(200, "ok", content_type="text/plain")

    def messages(self) -> list[RecordedRequest]:
        return self.recorded(lambda r: r.method == "POST")


class WebhookSink(RecordingServer):
    """Where Alertmanager receivers other than the analyzer's deliver (a dead man's switch...)."""

    name = "webhook-sink"


class SwitchboardExporter(RecordingServer):
    """A Prometheus target exposing ``e2e_switch{name=...}`` gauges the test flips on and off.

    The test's own alert rules watch these switches, so an alert can be made to fire on demand
    without touching the project's rules.
    """

    name = "switchboard"

    def __init__(self) -> None:
        self.switches: dict[str, int] = {}
        super().__init__()

    def summary(self) -> str:
        with self._lock:
            switches = dict(self.switches)
        return f"{self.name} at {self.url}: {len(self.requests)} scrape(s), switches {switches}"

    def set(self, name: str, on: bool) -> None:
        with self._lock:
            self.switches[name] = 1 if on else 0

    def respond(self, request: RecordedRequest) -> Reply:
        with self._lock:
            switches = dict(self.switches)
        lines = [
            "# HELP e2e_switch A switch the end-to-end test flips to make its own alerts fire.",
            "# TYPE e2e_switch gauge",
        ]
        lines += [
            f'e2e_switch{{name="{name}"}} {value}' for name, value in sorted(switches.items())
        ]
        return Reply(200, "\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")


class LokiStandIn(RecordingServer):
    """Loki's query API (``/loki/api/v1/query_range`` and ``query``) serving fixed log lines."""

    name = "loki"

    def __init__(self, lines: list[tuple[dict[str, str], str]]) -> None:
        self.lines = lines
        super().__init__()

    def respond(self, request: RecordedRequest) -> Reply:
        if request.path in ("/ready", "/loki/api/v1/status/buildinfo"):
            return Reply(200, {"version": "3.7.0"} if "buildinfo" in request.path else "ready")
        if request.path not in ("/loki/api/v1/query_range", "/loki/api/v1/query"):
            return Reply(404, {"status": "error", "error": f"unknown path {request.path}"})
        if not request.query.get("query"):
            return Reply(400, {"status": "error", "error": "parse error: query is required"})
        now_ns = time.time_ns()
        streams: dict[str, dict[str, Any]] = {}
        for offset, (labels, line) in enumerate(self.lines):
            key = json.dumps(labels, sort_keys=True)
            stream = streams.setdefault(key, {"stream": labels, "values": []})
            # Newest first, as Loki answers with direction=backward (its default).
            stream["values"].append([str(now_ns - offset * 1_000_000_000), line])
        return Reply(
            200,
            {
                "status": "success",
                "data": {"resultType": "streams", "result": list(streams.values())},
            },
        )

    def queries(self) -> list[str]:
        return [q for r in self.recorded() for q in r.query.get("query", [])]


# OpenAI's chat completion answer: builder(request_json) -> the assistant message content.
CompletionBuilder = Callable[[dict[str, Any]], str]


class OpenAIStandIn(RecordingServer):
    """An OpenAI-compatible ``POST /v1/chat/completions`` that records each prompt."""

    name = "openai"

    def __init__(self, build_content: CompletionBuilder, *, api_key: str) -> None:
        self.build_content = build_content
        self.api_key = api_key
        super().__init__()

    def respond(self, request: RecordedRequest) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                    }
                },
            )
        if request.method != "POST" or not request.path.endswith("/chat/completions"):
            return Reply(404, {"error": {"message": f"unknown path {request.path}"}})
        body = request.json() or {}
        content = self.build_content(body)
        prompt_tokens = sum(len(str(m.get("content", ""))) // 4 for m in body.get("messages", []))
        completion_tokens = max(1, len(content) // 4)
        reply = chat_completion(
            content,
            prompt_tokens,
            completion_tokens,
            model=body.get("model", "gpt-4o-mini"),
            completion_id=f"chatcmpl-e2e-{len(self.requests)}",
        )
        return Reply(200, reply)

    def prompts(self) -> list[str]:
        """Every completion request's messages joined into one text, in arrival order."""
        texts = []
        for r in self.recorded(lambda r: r.path.endswith("/chat/completions")):
            messages = (r.json() or {}).get("messages", [])
            texts.append("\n".join(str(m.get("content", "")) for m in messages))
        return texts
