"""Serving a world: its series from a real Prometheus, its logs from a Loki stand-in.

:class:`WorldPrometheus` writes the series as OpenMetrics with absolute timestamps (the delivery
placed at the replay's "now"), turns them into TSDB blocks with ``promtool tsdb
create-blocks-from openmetrics`` in a throwaway directory and starts ``prometheus`` on a free
loopback port over them, so every PromQL an engine sends is evaluated by Prometheus itself.
:class:`WorldLogs` answers Loki's query API from the world's streams with :mod:`logql`.
"""

from __future__ import annotations

import math
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiops_eval import logql
from aiops_eval.world import STALE, LogLine, World

# Loki's default limit and the number of points it aims at when no step is given.
LOKI_DEFAULT_LIMIT = 100
LOKI_TARGET_POINTS = 250
READY_TIMEOUT_SECONDS = 30.0


class ToolMissing(RuntimeError):
    """prometheus or promtool is not installed; the message says how to get them."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def openmetrics(world: World, delivered: float) -> str:
    """The world's series as OpenMetrics text, families together, samples in time order.

    A ``stale`` sample ends the series there: OpenMetrics cannot carry Prometheus' staleness
    marker, so the series simply stops (and stays visible for the 5-minute lookback).
    """
    families: dict[str, list[str]] = {}
    for series in sorted(world.series, key=lambda s: (s.name, sorted(s.labels.items()))):
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(series.labels.items()))
        selector = f"{series.name}{{{labels}}}" if labels else series.name
        lines = families.setdefault(series.name, [])
        for at, value in series.absolute(delivered):
            if value == STALE or isinstance(value, str):
                continue
            lines.append(f"{selector} {_format(value)} {at:.3f}")
    out: list[str] = []
    for name, lines in families.items():
        out.append(f"# TYPE {name} unknown")
        out += lines
    out.append("# EOF")
    return "\n".join(out) + "\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def require_tools() -> tuple[str, str]:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prometheus or not promtool:
        raise ToolMissing(
            "world scenarios are replayed by a real Prometheus: install prometheus and promtool "
            "(Debian: apt-get install prometheus, or scripts/install-system-deps.sh)"
        )
    return prometheus, promtool


class WorldPrometheus:
    """A throwaway Prometheus holding one world's series with the delivery at ``delivered``."""

    def __init__(self, world: World, delivered: float) -> None:
        self.world = world
        self.delivered = delivered
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> Self:
        prometheus, promtool = require_tools()
        self._dir = tempfile.TemporaryDirectory(prefix="aiops-eval-prom-")
        root = Path(self._dir.name)
        source = root / "series.om"
        source.write_text(openmetrics(self.world, self.delivered), encoding="utf-8")
        data = root / "data"
        if any(s.samples for s in self.world.series):
            built = subprocess.run(
                [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
                capture_output=True,
                text=True,
                check=False,
            )
            if built.returncode != 0:
                raise RuntimeError(f"promtool could not build the world's blocks: {built.stderr}")
        (root / "prometheus.yml").write_text("global: {}\n", encoding="utf-8")
        port = _free_port()
        self._process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={data}",
                "--storage.tsdb.retention.time=100y",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = f"http://127.0.0.1:{port}"
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                error = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"prometheus exited at start: {error[-500:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"prometheus did not become ready within {READY_TIMEOUT_SECONDS:.0f}s")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stderr:
                self._process.stderr.close()
            self._process = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def parse_loki_time(raw: str | None, default: float) -> float:
    """Loki's timestamp parameter: unix seconds with a fraction, up to 10 digits of seconds,
    nanoseconds, or RFC 3339."""
    if raw is None or raw == "":
        return default
    text = raw.strip()
    if "." in text:
        try:
            return float(text)
        except ValueError:
            pass
    try:
        number = int(text)
    except ValueError:
        from datetime import datetime

        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise logql.LogQLError(f'invalid timestamp "{raw}"') from None
    return float(number) if len(text) <= 10 else number / 1e9


def _loki_step(raw: str | None, start: float, end: float) -> float:
    if raw is None or raw == "":
        return max(1.0, math.floor((end - start) / LOKI_TARGET_POINTS))
    try:
        return float(raw)
    except ValueError:
        return logql.parse_duration(raw)


@dataclass
class WorldLogs:
    """The world's log streams at absolute times, answering Loki's API; notes what was asked."""

    world: World
    delivered: float
    asked: list[str] = field(default_factory=list)
    unsupported: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.streams = [
            logql.StreamData(dict(stream.labels), [self._entry(line) for line in stream.lines])
            for stream in self.world.streams
        ]

    def _entry(self, line: LogLine) -> logql.Entry:
        return logql.Entry(round((self.delivered + line.at) * 1e9), line.text_at(self.delivered))

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for a Loki API path."""
        try:
            if path.endswith("/query_range"):
                return 200, self._query(params, ranged=True)
            if path.endswith("/query"):
                return 200, self._query(params, ranged=False)
            if path.endswith("/labels") or path.endswith("/label"):
                names = sorted({k for s in self.streams for k in s.labels})
                return 200, {"status": "success", "data": names}
            if "/label/" in path and path.endswith("/values"):
                name = path.split("/label/", 1)[1].removesuffix("/values")
                values = sorted({s.labels[name] for s in self.streams if name in s.labels})
                return 200, {"status": "success", "data": values}
            if path.endswith("/series"):
                return 200, self._series(params)
        except logql.LogQLUnsupported as exc:
            self.unsupported.append((params.get("query", ""), str(exc)))
            return 400, {"status": "error", "errorType": "bad_data", "error": f"{exc}"}
        except logql.LogQLError as exc:
            return 400, {"status": "error", "errorType": "bad_data", "error": str(exc)}
        return 404, {"status": "error", "error": f"unknown path {path}"}

    def _series(self, params: dict[str, str]) -> dict[str, Any]:
        selector = params.get("match[]") or params.get("match") or "{}"
        tree = logql.parse(selector)
        if not isinstance(tree, logql.LogQuery):
            raise logql.LogQLError("match[] must be a stream selector")
        return {"status": "success", "data": [dict(s.labels) for s in tree.select(self.streams)]}

    def _query(self, params: dict[str, str], *, ranged: bool) -> dict[str, Any]:
        query = params.get("query", "")
        self.asked.append(query)
        tree = logql.parse(query)
        now = time.time()
        try:
            limit = int(params.get("limit") or LOKI_DEFAULT_LIMIT)
        except ValueError:
            raise logql.LogQLError("limit must be an integer") from None
        backward = (params.get("direction") or "backward").lower() == "backward"
        if ranged:
            end = parse_loki_time(params.get("end"), now)
            start = parse_loki_time(params.get("start"), end - 3600)
        else:
            end = start = parse_loki_time(params.get("time"), now)
        if isinstance(tree, logql.LogQuery):
            if not ranged:
                raise logql.LogQLError(
                    "log queries are not supported as an instant query type, please change your "
                    "query to a range query type"
                )
            return self._streams_result(tree, start, end, limit, backward)
        if not ranged:
            return _instant_result(logql.evaluate(tree, self.streams, end), end)
        step = _loki_step(params.get("step"), start, end)
        times = [start + i * step for i in range(int((end - start) // step) + 1)]
        return _matrix_result(tree, times, self.streams)

    def _streams_result(
        self, tree: logql.LogQuery, start: float, end: float, limit: int, backward: bool
    ) -> dict[str, Any]:
        grouped = tree.run(self.streams, int(start * 1e9), int(end * 1e9))
        every = [(e.ns, index) for index, items in enumerate(grouped.values()) for e in items]
        entries = sorted(every, reverse=backward)[:limit]
        keep = {(ns, index) for ns, index in entries}
        result = []
        for index, (labels, items) in enumerate(grouped.items()):
            values = [[str(e.ns), e.line] for e in items if (e.ns, index) in keep]
            if backward:
                values.reverse()
            if values:
                result.append({"stream": dict(labels), "values": values})
        return {
            "status": "success",
            "data": {"resultType": "streams", "result": result, "stats": {}},
        }


def _instant_result(value: logql.Vector | float, at: float) -> dict[str, Any]:
    if isinstance(value, float):
        return {
            "status": "success",
            "data": {"resultType": "scalar", "result": [at, _format(value)]},
        }
    result = [{"metric": dict(k), "value": [at, _format(v)]} for k, v in value.items()]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def _matrix_result(
    tree: Any, times: list[float], streams: list[logql.StreamData]
) -> dict[str, Any]:
    series: dict[logql.Labels, list[list[Any]]] = {}
    steps = logql.Steps(times[0], times[-1]) if times else None
    for at in times:
        value = logql.evaluate(tree, streams, at, steps)
        vector = {(): value} if isinstance(value, float) else value
        for labels, number in vector.items():
            series.setdefault(labels, []).append([at, _format(number)])
    result = [{"metric": dict(k), "values": v} for k, v in series.items()]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}
