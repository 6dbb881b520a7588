"""Loopback stand-ins of Prometheus and Loki that replay the demo's recorded incidents.

`make demo` points the analyzer's AIOPS_PROMETHEUS_URL and AIOPS_LOKI_URL at this server, so
the analyses cite real series and log lines instead of "not configured". It answers the
query APIs the evidence clients call (`/api/v1/query_range`, `/api/v1/query`,
`/loki/api/v1/query_range`) from service/samples/recordings/evidence.json:

- every recorded time moves by one offset, so the recording's `recorded_at` is now;
- a PromQL query gets the first recording whose `match` strings all occur in it; a series
  holds its last recorded value at each step (`null`: no sample), and a trailing comparison
  (`... >= 3`) keeps only the points where it holds, as Prometheus does;
- a LogQL query gets the lines of the first stream whose `match` occurs in its selector,
  within [start, end], newest first for `direction=backward`, at most `limit`.

It is a small replay for the demo, not a PromQL engine.
"""

from __future__ import annotations

import json
import math
import operator
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

RECORDINGS = Path(__file__).resolve().parents[1] / "service" / "samples" / "recordings"
COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
MAX_POINTS = 11_000  # Prometheus' own limit per series


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Recordings:
    def __init__(self, document: dict[str, Any], now: float) -> None:
        self.shift = now - parse_time(document["recorded_at"])
        self.prometheus = document["prometheus"]
        self.loki = document["loki"]

    def shifted(self, text: str) -> float:
        return parse_time(text) + self.shift

    def value_at(self, points: list[list[Any]], at: float) -> float | None:
        value = None
        for when, recorded in points:
            if self.shifted(when) > at:
                break
            value = recorded
        return None if value is None else float(value)

    def matrix(self, query: str, times: list[float]) -> list[dict[str, Any]]:
        recording = next((r for r in self.prometheus if all(m in query for m in r["match"])), None)
        if recording is None:
            return []
        keep: Callable[[float], bool] = lambda _v: True  # noqa: E731
        comparison = COMPARISON.search(query)
        if comparison:
            compare, threshold = OPERATORS[comparison.group(1)], float(comparison.group(2))
            keep = lambda v: compare(v, threshold)  # noqa: E731
        result = []
        for series in recording["series"]:
            values = []
            for at in times:
                value = self.value_at(series["points"], at)
                if value is not None and not math.isnan(value) and keep(value):
                    values.append([round(at, 3), repr(value)])
            if values:
                result.append({"metric": series["labels"], "values": values})
        return result

    def streams(self, selector: str, start_ns: int, end_ns: int, limit: int, backward: bool):
        stream = next((s for s in self.loki if s["match"] in selector), None)
        if stream is None:
            return []
        lines = [(int(self.shifted(when) * 1e9), line) for when, line in stream["lines"]]
        lines = [(ns, line) for ns, line in lines if start_ns <= ns <= end_ns]
        lines.sort(reverse=backward)
        values = [[str(ns), line] for ns, line in lines[:limit]]
        return [{"stream": stream["stream"], "values": values}] if values else []


class Handler(BaseHTTPRequestHandler):
    recordings: Recordings
    queries: list[str]

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self.answer(url.path, params)
        except (KeyError, ValueError) as exc:
            self.reply(400, {"status": "error", "errorType": "bad_data", "error": str(exc)})
            return
        if body is None:
            self.reply(404, {"status": "error", "error": f"no stand-in for {url.path}"})
        else:
            self.reply(200, {"status": "success", "data": body})

    def answer(self, path: str, params: dict[str, str]) -> dict[str, Any] | None:
        recordings = self.recordings
        if path == "/api/v1/query_range":
            self.queries.append(params["query"])
            start, end, step = (float(params[k]) for k in ("start", "end", "step"))
            if step <= 0 or (end - start) / step > MAX_POINTS:
                raise ValueError("exceeded maximum resolution of 11,000 points per timeseries")
            times = [start + i * step for i in range(int((end - start) // step) + 1)]
            return {"resultType": "matrix", "result": recordings.matrix(params["query"], times)}
        if path == "/api/v1/query":
            self.queries.append(params["query"])
            at = float(params.get("time") or datetime.now(UTC).timestamp())
            result = [
                {"metric": s["metric"], "value": s["values"][-1]}
                for s in recordings.matrix(params["query"], [at])
            ]
            return {"resultType": "vector", "result": result}
        if path == "/loki/api/v1/query_range":
            self.queries.append(params["query"])
            result = recordings.streams(
                params["query"],
                int(params["start"]),
                int(params["end"]),
                int(params.get("limit", 100)),
                params.get("direction", "backward") == "backward",
            )
            return {"resultType": "streams", "result": result}
        return None

    def reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the demo prints what matters."""


@contextmanager
def replaying(
    now: float, path: Path = RECORDINGS / "evidence.json"
) -> Iterator[tuple[str, list[str]]]:
    """Serve the recordings on a free 127.0.0.1 port; yields (base URL, queries received)."""
    queries: list[str] = []
    handler = type(
        "RecordedHandler",
        (Handler,),
        {"recordings": Recordings(json.loads(path.read_text()), now), "queries": queries},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="demo-sources", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", queries
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
