"""The forwarding proxy records requests and passes the upstream's answer through unchanged."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from aiops_eval.prompt_recorder import PromptRecorder


class _Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str, bytes]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((self.path, self.headers.get("Authorization", ""), body))
        data = b'{"error": {"message": "slow down"}}'
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "7")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    handler = type("Upstream", (_Upstream,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_requests_are_recorded_and_forwarded_with_the_answer_unchanged(
    upstream: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    url, seen = upstream
    request = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "rules"},
            {"role": "user", "content": [{"type": "text", "text": "data"}]},
        ],
    }
    with PromptRecorder(url) as recorder:
        reply = httpx.post(
            recorder.url + "/chat/completions",
            json=request,
            headers={"Authorization": "Bearer k-1", "X-Unrelated": "dropped"},
        )
        assert recorder.prompt_texts() == ["rules\ndata"]
        assert json.loads(recorder.bodies()[0]) == request
        recorder.clear()
        assert recorder.bodies() == []
    assert (reply.status_code, reply.headers["retry-after"]) == (429, "7")
    assert reply.json() == {"error": {"message": "slow down"}}
    assert [(path, auth) for path, auth, _ in seen] == [("/v1/chat/completions", "Bearer k-1")]


def test_an_unreachable_upstream_is_a_502_the_engine_can_handle() -> None:
    with PromptRecorder("http://127.0.0.1:9/v1", timeout=2) as recorder:
        reply = httpx.post(recorder.url + "/chat/completions", json={"messages": []})
    assert reply.status_code == 502
    assert reply.json()["error"]["type"] == "proxy_error"
