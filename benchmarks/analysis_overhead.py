"""Analysis overhead: webhook -> analysis stored, with evidence, against loopback sources.

    .venv/bin/python benchmarks/analysis_overhead.py              # 40 alerts per mode
    .venv/bin/python benchmarks/analysis_overhead.py --alerts 5   # quick

Everything runs on 127.0.0.1 with free ports:

- a real Prometheus (Debian's `prometheus`) scraping a real node exporter every second, so the
  evidence's range queries run against a real TSDB;
- a Loki stand-in answering `query_range` with a log line every 2 s over the asked window
  (health checks, then firewall blocks shortly before the alert), at most `limit` lines: the
  template mining and ranking see the volume a real stream would give them;
- the analyzer (`aiops-analyzer serve`, rules engine, SQLite, 1 worker) as a real process.

Alerts are sent one at a time (a host CPU alert: the heaviest evidence plan, 10 Prometheus
and 10 Loki queries). The overhead of one alert is `analyzed_at - received_at` from the
analysis API (the store's own clock: webhook stored -> analysis with evidence stored); the
client's view (POST sent -> GET shows the analysis) is printed beside it. The same alerts go
to an analyzer without sources, side by side, so the share of the evidence is visible.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from analyzer_process import (  # noqa: E402 -- importable once scripts/ is on the path
    ANALYZER_COMMAND,
    analyzer_env,
    free_port,
    running,
)

EXPR = '100 * (1 - avg by (instance, job) (rate(node_cpu_seconds_total{mode="idle"}[1m]))) > 0'


class _Loki(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        params = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        start, end = int(params["start"]), int(params["end"])
        limit = int(params.get("limit", "100"))
        alert_start = self.server.alert_start  # type: ignore[attr-defined]
        values = []
        ts = end
        while ts >= start and len(values) < limit:  # backward: newest first
            seconds = ts / 1e9
            if 0 < alert_start - seconds < 300 and int(seconds) % 10 < 2:
                line = (
                    "kernel: [UFW BLOCK] IN=eth0 OUT= SRC=10.0.0.5 DST=10.0.0.7 PROTO=TCP "
                    f"SPT={40000 + int(seconds) % 999} DPT=9100"
                )
            else:
                line = f'level=info msg="GET /health 200" duration_ms={int(seconds) % 7}'
            values.append([str(ts), line])
            ts -= 2_000_000_000
        body = json.dumps(
            {
                "status": "success",
                "data": {"resultType": "streams", "result": [{"stream": {}, "values": values}]},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _payload(instance: str, n: int, starts: datetime) -> dict[str, Any]:
    url = f"http://prometheus:9090/graph?g0.expr={quote(EXPR)}&g0.tab=1"
    alert = {
        "status": "firing",
        "labels": {"alertname": "HighCpuUsage", "instance": instance, "job": "node", "n": str(n)},
        "annotations": {"summary": "CPU busy"},
        "startsAt": starts.isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": url,
        "fingerprint": f"{secrets.token_hex(8)}",
    }
    return {"version": "4", "status": "firing", "receiver": "bench", "alerts": [alert]}


def _measure(url: str, token: str, instance: str, count: int) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {token}"}
    stored: list[float] = []
    seen: list[float] = []
    with httpx.Client(headers=headers, timeout=10) as client:
        for n in range(count):
            starts = datetime.now(UTC) - timedelta(minutes=2)
            sent = time.perf_counter()
            response = client.post(
                f"{url}/webhook/alertmanager", json=_payload(instance, n, starts)
            )
            response.raise_for_status()
            [analysis_id] = response.json()["analysis_ids"]
            deadline = time.monotonic() + 30
            while True:
                row = client.get(f"{url}/analyses/{analysis_id}").json()
                if row.get("analyzed_at") and (row.get("job") or {}).get("state") == "done":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"analysis {analysis_id} not done in 30 s: {row}")
                time.sleep(0.005)
            seen.append(time.perf_counter() - sent)
            received = datetime.fromisoformat(row["received_at"])
            analyzed = datetime.fromisoformat(row["analyzed_at"])
            stored.append((analyzed - received).total_seconds())
            if n == 0:
                items = row["evidence"]
                ok = [i["id"] for i in items if i["status"] == "ok"]
                print(f"  first analysis: {len(items)} evidence items, ok: {', '.join(ok)}")
                print(f"  category {row['result']['category']}: {row['result']['summary'][:140]}")
    return {"stored": stored, "client": seen}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _wait_for_data(prom: str, instance: str) -> None:
    query = f'count(node_cpu_seconds_total{{instance="{instance}"}})'
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            result = httpx.get(f"{prom}/api/v1/query", params={"query": query}).json()
            if result["data"]["result"]:
                time.sleep(15)  # enough samples for rate()[1m] and the family queries
                return
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError("prometheus has no node exporter data after 60 s")


@contextmanager
def _explained(log: Path) -> Iterator[None]:
    """Print the end of a server's log when it fails (the temporary directory goes away)."""
    try:
        yield
    except RuntimeError:
        print(log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)")
        raise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=40)
    args = parser.parse_args()
    token = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="aiops-overhead-") as tmp:
        work = Path(tmp)
        node_port, prom_port = free_port(), free_port()
        instance = f"127.0.0.1:{node_port}"
        config = work / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: node\n    static_configs: [{{targets: ['{instance}']}}]\n"
        )
        node = subprocess.Popen(
            [
                "prometheus-node-exporter",
                f"--web.listen-address=127.0.0.1:{node_port}",
                "--no-collector.systemd",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        loki = ThreadingHTTPServer(("127.0.0.1", 0), _Loki)
        loki.alert_start = 0.0  # type: ignore[attr-defined]
        threading.Thread(target=loki.serve_forever, daemon=True).start()
        loki_url = f"http://127.0.0.1:{loki.server_address[1]}"
        try:
            prom_cmd = [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ]
            with running(
                "prometheus", prom_cmd, {}, prom_port, work / "prom.log", ready_path="/-/ready"
            ) as prom:
                _wait_for_data(prom.url, instance)
                loki.alert_start = (datetime.now(UTC) - timedelta(minutes=2)).timestamp()  # type: ignore[attr-defined]
                results = {}
                for mode, extra in (
                    (
                        "with evidence",
                        {"AIOPS_PROMETHEUS_URL": prom.url, "AIOPS_LOKI_URL": loki_url},
                    ),
                    ("no sources", {}),
                ):
                    port = free_port()
                    env = analyzer_env(
                        work / mode.replace(" ", "-"),
                        port,
                        token,
                        AIOPS_WORKERS="1",
                        AIOPS_LOG_LEVEL="WARNING",
                        **extra,
                    )
                    print(f"{mode}:")
                    log = work / f"{port}.log"
                    with _explained(log), running(mode, ANALYZER_COMMAND, env, port, log):
                        url = f"http://127.0.0.1:{port}"
                        _measure(url, token, instance, 2)  # warm up imports and connections
                        results[mode] = _measure(url, token, instance, args.alerts)
        finally:
            loki.shutdown()
            node.terminate()
            node.wait(timeout=10)
    print()
    print(f"{args.alerts} alerts per mode, one at a time; seconds")
    print("| Mode | stored p50 | stored p95 | stored max | client p50 | client p95 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mode, r in results.items():
        s, c = r["stored"], r["client"]
        print(
            f"| {mode} | {statistics.median(s):.3f} | {_pct(s, 0.95):.3f} | {max(s):.3f} "
            f"| {statistics.median(c):.3f} | {_pct(c, 0.95):.3f} |"
        )


if __name__ == "__main__":
    main()
