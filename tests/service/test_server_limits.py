"""Slow, silent and too many clients against a real `aiops-analyzer serve` on 127.0.0.1.

Deadlines here are the server's own settings (one or two seconds); the tests only wait
generously for them to act, they do not time the machine.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from aiops_analyzer.server import RepeatLimiter

from tests.service.apptools import TOKEN, analyzer_process

FAST_DEADLINES = {
    "AIOPS_HEADER_TIMEOUT_SECONDS": "1",
    "AIOPS_BODY_TIMEOUT_SECONDS": "1.5",
    "AIOPS_KEEPALIVE_TIMEOUT_SECONDS": "2",
}


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_until_closed(sock: socket.socket, within: float = 15.0) -> bytes | None:
    """Everything the server sends until it closes; None if it is still open after `within`."""
    sock.settimeout(within)
    received = b""
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                return received
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        return received
    return None


@contextmanager
def _sockets(url: str, count: int) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            with suppress(OSError):
                opened.append(_connect(url))
        yield opened
    finally:
        for sock in opened:
            sock.close()


def test_silent_connections_are_closed_after_the_header_deadline(tmp_path: Path) -> None:
    with (
        analyzer_process(tmp_path, **FAST_DEADLINES) as analyzer,
        _sockets(analyzer.url, 50) as silent,
    ):
        for sock in silent:
            answer = _read_until_closed(sock)
            assert answer is not None, "a silent connection was left open"
            assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert httpx.get(f"{analyzer.url}/healthz", timeout=5).status_code == 200


def test_slowloris_headers_do_not_keep_the_connection(tmp_path: Path) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200
    with analyzer_process(tmp_path, **FAST_DEADLINES) as analyzer:
        sock = _connect(analyzer.url)
        sent = 0
        with suppress(OSError):
            for byte in request:
                sock.sendall(bytes([byte]))  # one byte every 50 ms: 12 s for the whole thing
                sent += 1
                time.sleep(0.05)
        answer = _read_until_closed(sock)
        sock.close()
        assert sent < len(request), "the server waited for the whole trickle"
        assert answer is not None and answer.startswith(b"HTTP/1.1 408")


def test_slow_body_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    body = b'{"status": "firing", "alerts": []}'.ljust(128)
    head = (
        b"POST /webhook/alertmanager HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 128\r\n\r\n"
    )
    with analyzer_process(tmp_path, **FAST_DEADLINES) as analyzer:
        sock = _connect(analyzer.url)
        sock.sendall(head)
        with suppress(OSError):
            for start in range(0, 128, 4):  # 4 bytes a second, 32 s for the body
                sock.sendall(body[start : start + 4])
                time.sleep(1)
                if start >= 16:
                    break
        answer = _read_until_closed(sock)
        sock.close()
        assert answer is not None and answer.startswith(b"HTTP/1.1 408"), answer
        listing = httpx.get(
            f"{analyzer.url}/analyses", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
        )
        assert listing.json()["total"] == 0
        assert "unhandled error" not in analyzer.log()


def test_keep_alive_connection_carries_a_bounded_number_of_requests(tmp_path: Path) -> None:
    env = {**FAST_DEADLINES, "AIOPS_MAX_REQUESTS_PER_CONNECTION": "3"}
    with analyzer_process(tmp_path, **env) as analyzer:
        sock = _connect(analyzer.url)
        with suppress(OSError):
            for _ in range(5):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                time.sleep(0.3)
        answers = _read_until_closed(sock) or b""
        sock.close()
        assert answers.count(b"HTTP/1.1 200") == 3  # then the server closed it


def _open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
def test_connections_beyond_the_cap_are_closed_at_once(tmp_path: Path) -> None:
    env = {**FAST_DEADLINES, "AIOPS_HEADER_TIMEOUT_SECONDS": "30", "AIOPS_MAX_CONNECTIONS": "20"}
    with analyzer_process(tmp_path, **env) as analyzer:
        assert analyzer.proc is not None
        baseline = _open_descriptors(analyzer.proc.pid)
        with _sockets(analyzer.url, 200) as held:
            time.sleep(1)
            assert _open_descriptors(analyzer.proc.pid) <= baseline + 25
            closed = sum(1 for sock in held if _read_until_closed(sock, within=0.2) is not None)
            assert closed >= 150  # the 180 over the cap were closed, not kept
        assert "too many open connections" in analyzer.log()


def test_repeat_limiter_lets_one_line_per_window_through() -> None:
    limiter = RepeatLimiter(window=60)
    records = [
        logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "out of resource", None, None)
        for _ in range(10_000)
    ]
    passed = [r for r in records if limiter.filter(r)]
    other = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "another", None, None)
    assert len(passed) == 1
    assert limiter.filter(other)  # a different message is not held back
    limiter.window = 0  # the window is over: the next one says how many were held back
    late = logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "out of resource", None, None)
    assert limiter.filter(late)
    assert "9999 similar messages suppressed" in str(late.msg)
    # The analyzer's own per-event lines (one per delivery or job) are never held back.
    own = [
        logging.LogRecord(
            "aiops_analyzer.worker", logging.INFO, __file__, 1, "job done", None, None
        )
        for _ in range(100)
    ]
    assert all(limiter.filter(r) for r in own)
