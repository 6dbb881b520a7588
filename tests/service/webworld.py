"""A small world for the web page tests: Prometheus, Loki and Slack on one loopback server.

Prometheus answers range queries with a host whose memory use climbs past 90 % (the alert's
own expression only returns the points above the threshold, as the real one would), Loki
answers with a few log lines (one of them hostile), and Slack records what it is sent, so a
test can follow the link of a real notification.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.service.loopback import Recorded, Reply

HOSTILE = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'
EXPR = "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) > 90"


def memory_percent(progress: float) -> float:
    """65 % climbing to 98 % over the window (past 90 % about when the alert starts)."""
    return 65 + 33 * progress + 1.2 * math.sin(progress * 20)


def _range(request: Recorded) -> list[float]:
    start, end, step = (float(request.param(k)) for k in ("start", "end", "step"))
    count = int((end - start) / step) + 1
    return [start + n * step for n in range(count)]


def handle(request: Recorded) -> Reply:
    if request.path.endswith("/api/v1/query_range") and request.path.startswith("/prom"):
        query = request.param("query")
        times = _range(request)
        span = max(times[-1] - times[0], 1.0)
        points = [(t, memory_percent((t - times[0]) / span)) for t in times]
        if query == EXPR:
            values = [[t, f"{v:.3f}"] for t, v in points if v > 90]
        elif "MemAvailable" in query:
            values = [[t, f"{1 - v / 100:.4f}"] for t, v in points]
        elif "node_load1" in query:
            values = [[t, f"{0.5 + 0.1 * math.cos(n / 5):.3f}"] for n, (t, _) in enumerate(points)]
        else:  # every other query of the host family: no data, as on a small host
            values = []
        metric = {"instance": "node-exporter:9100", "job": "node-exporter", "evil": HOSTILE}
        result = [{"metric": metric, "values": values}] if values else []
        body: dict[str, Any] = {
            "status": "success",
            "data": {"resultType": "matrix", "result": result},
        }
        return Reply(200, body)
    if request.path.startswith("/loki"):
        now = datetime.now(UTC)
        lines = [
            (now - timedelta(minutes=3), "kernel: Out of memory: Killed process 4242 (java)"),
            (now - timedelta(minutes=5), f"app error: request failed {HOSTILE}"),
            (now - timedelta(minutes=8), "GET /healthz 200"),
        ]
        values = [[str(int(t.timestamp() * 1e9)), line] for t, line in lines]
        stream = {"stream": {"job": "node-exporter"}, "values": values}
        return Reply(
            200, {"status": "success", "data": {"resultType": "streams", "result": [stream]}}
        )
    return Reply(200, {"ok": True})


def alert_payload(starts_at: datetime, **labels: str) -> dict[str, Any]:
    """A HighMemoryUsage alert that started at ``starts_at``, with extra (hostile) labels."""
    from urllib.parse import quote_plus

    when = starts_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "HighMemoryUsage",
            "instance": "node-exporter:9100",
            "job": "node-exporter",
            "severity": "warning",
            **labels,
        },
        "annotations": {
            "summary": "Host memory usage above 90% on node-exporter:9100",
            "description": f"Memory is nearly full. {HOSTILE}",
        },
        "startsAt": when,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus.example:9090/graph?g0.expr={quote_plus(EXPR)}&g0.tab=1",
        "fingerprint": "1d6946a536417753",
    }
    return {
        "receiver": "analyzer",
        "status": "firing",
        "alerts": [alert],
        "groupLabels": {"alertname": "HighMemoryUsage"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": '{}:{alertname="HighMemoryUsage"}',
        "truncatedAlerts": 0,
    }
