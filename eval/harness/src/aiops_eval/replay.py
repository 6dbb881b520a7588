"""A loopback HTTP server speaking the Prometheus and Loki query APIs from a scenario.

The analyzer's own evidence clients are pointed at it, so the evaluation exercises the same code
that talks to Prometheus and Loki in production. It binds 127.0.0.1 on a free port and serves the
scenario currently loaded: recorded evidence with :meth:`ReplayServer.use`, or a world's logs
with :meth:`ReplayServer.use_world` (the world's series are served by a real Prometheus, see
:mod:`world_replay`; a source the world declares unavailable answers 503 here).
"""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiops_eval.background_server import BackgroundHTTPServer
from aiops_eval.recorded import EvidenceBook
from aiops_eval.sampling import (
    QueryParamError,
    evaluation_times,
    parse_step,
    parse_time,
    resample,
    value_at,
)
from aiops_eval.world_replay import WorldLogs


class _Handler(BaseHTTPRequestHandler):
    server: _ReplayHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line; the book records what was asked."""

    def _params(self) -> dict[str, str]:
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8") if length else ""
            params.update({k: v[-1] for k, v in parse_qs(body).items()})
        return params

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def _route(self) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        params = self._params()
        if path in {"/-/ready", "/-/healthy", "/ready"}:
            self._send(200, {"status": "success"})
            return
        routes = {
            "/api/v1/query_range": self._prometheus_range,
            "/api/v1/query": self._prometheus_instant,
            "/loki/api/v1/query_range": self._loki,
            "/loki/api/v1/query": self._loki,
        }
        handler = routes.get(path)
        if handler is None and not (path.startswith("/loki/") and self.server.world):
            self._send(404, {"status": "error", "error": f"unknown path {path}"})
            return
        source = "loki" if path.startswith("/loki/") else "prometheus"
        world = self.server.world
        if world is not None:
            if source in world.world.unavailable:
                world.asked.append(f"{source} (unavailable): {params.get('query', '')}")
                self._send(503, {"status": "error", "errorType": "unavailable", "error": "down"})
            elif source == "loki":
                self._send(*world.answer(path, params))
            else:  # the world's Prometheus is a real one; nothing to answer here
                self._send(404, {"status": "error", "error": "prometheus is served elsewhere"})
            return
        book = self._book()
        if book is not None and source in book.evidence.unavailable:
            book.note_unavailable(source, params.get("query", ""))
            self._send(503, {"status": "error", "errorType": "unavailable", "error": "down"})
            return
        query = params.get("query", "")
        if not query.strip():
            self._bad_data("empty query")
            return
        if handler is not None:
            handler(query, params)

    def _book(self) -> EvidenceBook | None:
        return self.server.book

    def _bad_data(self, error: str) -> None:
        self._send(400, {"status": "error", "errorType": "bad_data", "error": error})

    def _prometheus_range(self, query: str, params: dict[str, str]) -> None:
        # Answered at start, start + step, ... end with 5-minute lookback, as Prometheus does:
        # the recorded points alone would leave gaps wherever the step is finer than theirs.
        try:
            start = parse_time("start", params.get("start", ""))
            end = parse_time("end", params.get("end", ""))
            times = evaluation_times(start, end, parse_step(params.get("step", "")))
        except QueryParamError as exc:
            self._bad_data(str(exc))
            return
        book = self._book()
        series = book.prometheus(query) if book else []
        result = []
        for labels, samples in series:
            points = resample(samples, times)
            if points:  # Prometheus leaves out a series with no point in the range
                result.append({"metric": labels, "values": [[ts, v] for ts, v in points]})
        self._send(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

    def _prometheus_instant(self, query: str, params: dict[str, str]) -> None:
        try:
            at = parse_time("time", params["time"]) if "time" in params else time.time()
        except QueryParamError as exc:
            self._bad_data(str(exc))
            return
        book = self._book()
        series = book.prometheus(query) if book else []
        result = []
        for labels, samples in series:
            value = value_at(samples, at)
            if value is not None:
                result.append({"metric": labels, "value": [at, value]})
        self._send(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

    def _loki(self, query: str, params: dict[str, str]) -> None:
        book = self._book()
        streams = book.loki(query) if book else []
        try:
            limit = int(params.get("limit", "100"))
        except ValueError:
            self._send(400, {"status": "error", "error": "limit must be an integer"})
            return
        backward = params.get("direction", "backward").lower() == "backward"
        # Loki applies the limit across streams, newest first when going backward.
        entries = sorted(
            (
                (line.timestamp_ns, index, line.line)
                for index, s in enumerate(streams)
                for line in s.lines
            ),
            reverse=backward,
        )[:limit]
        result = []
        for index, stream in enumerate(streams):
            values = [[str(ts), text] for ts, owner, text in entries if owner == index]
            if values:
                result.append({"stream": stream.labels, "values": values})
        self._send(200, {"status": "success", "data": {"resultType": "streams", "result": result}})


class _ReplayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The evidence client opens several connections at once; the default backlog of 5
    # overflows and a dropped SYN costs a 1 s retransmit.
    request_queue_size = 128
    book: EvidenceBook | None = None
    world: WorldLogs | None = None


class ReplayServer(BackgroundHTTPServer):
    """Serve recorded evidence on 127.0.0.1; use as a context manager so it always stops."""

    _server: _ReplayHTTPServer

    def __init__(self) -> None:
        super().__init__(_ReplayHTTPServer(("127.0.0.1", 0), _Handler), name="eval-replay")

    def use(self, book: EvidenceBook | None) -> None:
        """Answer from ``book`` from now on (None: every query gets an empty result)."""
        self._server.world = None
        self._server.book = book

    def use_world(self, logs: WorldLogs) -> None:
        """Answer Loki queries from a world's streams from now on."""
        self._server.book = None
        self._server.world = logs
