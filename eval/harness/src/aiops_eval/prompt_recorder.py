"""A loopback forwarding proxy that records every request the llm engine sends.

The evaluation must check that no planted secret reached the model, which needs the prompt exactly
as it left the analyzer. Instead of reaching into the engine, the engine's base URL is pointed at
this proxy on 127.0.0.1, which keeps a copy of each request body and forwards it unchanged to the
real OpenAI-compatible server (the one configured, or api.openai.com).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from aiops_eval.background_server import BackgroundHTTPServer

DEFAULT_UPSTREAM = "https://api.openai.com/v1"
# Request headers worth forwarding; hop-by-hop and length headers are rebuilt by httpx.
_FORWARD_REQUEST = ("authorization", "content-type", "accept", "openai-", "x-stainless-")
_FORWARD_RESPONSE = ("content-type", "retry-after", "x-request-id", "openai-")


def _wanted(name: str, prefixes: tuple[str, ...]) -> bool:
    lowered = name.lower()
    return any(lowered == p or (p.endswith("-") and lowered.startswith(p)) for p in prefixes)


class _Handler(BaseHTTPRequestHandler):
    server: _RecorderHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep stderr quiet; requests are recorded instead."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.record(self.path, body)
        headers = {k: v for k, v in self.headers.items() if _wanted(k, _FORWARD_REQUEST)}
        target = self.server.upstream.rstrip("/") + self.path
        try:
            reply = self.server.client.post(target, content=body, headers=headers)
        except httpx.HTTPError as exc:
            # The engine sees a gateway error and handles it like any upstream failure.
            self._answer(502, {"content-type": "application/json"}, _error_body(exc))
            return
        kept = {k: v for k, v in reply.headers.items() if _wanted(k, _FORWARD_RESPONSE)}
        self._answer(reply.status_code, kept, reply.content)

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _error_body(exc: Exception) -> bytes:
    message = f"upstream unreachable: {type(exc).__name__}"
    return json.dumps({"error": {"message": message, "type": "proxy_error"}}).encode()


class _RecorderHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The evidence client opens several connections at once; the default backlog of 5
    # overflows and a dropped SYN costs a 1 s retransmit.
    request_queue_size = 128

    def __init__(self, upstream: str, timeout: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.client = httpx.Client(timeout=timeout)
        self.requests: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def record(self, path: str, body: bytes) -> None:
        with self.lock:
            self.requests.append((path, body))


class PromptRecorder(BackgroundHTTPServer):
    """Start with ``with PromptRecorder(upstream) as rec:``; point the engine at ``rec.url``."""

    _server: _RecorderHTTPServer

    def __init__(self, upstream: str | None = None, *, timeout: float = 60.0) -> None:
        super().__init__(
            _RecorderHTTPServer(upstream or DEFAULT_UPSTREAM, timeout), name="eval-prompt-recorder"
        )

    def clear(self) -> None:
        with self._server.lock:
            self._server.requests.clear()

    def bodies(self) -> list[str]:
        """Every request body received since the last :meth:`clear`, as text."""
        with self._server.lock:
            return [body.decode("utf-8", errors="replace") for _, body in self._server.requests]

    def prompt_texts(self) -> list[str]:
        """The message contents of each recorded chat request (the raw body when not JSON)."""
        texts: list[str] = []
        for body in self.bodies():
            try:
                messages = json.loads(body).get("messages", [])
                texts.append("\n".join(_content_text(m.get("content")) for m in messages))
            except (ValueError, AttributeError):
                texts.append(body)
        return texts

    def _release(self) -> None:
        self._server.client.close()


def _content_text(content: object) -> str:
    """A message's text whether it is a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""
