"""Webhook benchmark: the analyzer against a bare FastAPI endpoint, then a 1,000-alert burst.

    .venv/bin/python benchmarks/webhook_bench.py            # full run (a few minutes)
    .venv/bin/python benchmarks/webhook_bench.py --quick    # tiny counts (the smoke test)

Both servers are separate uvicorn processes on 127.0.0.1 started the same way; the load comes
from a third process (an httpx async client). Every request carries distinct alerts, so the
analyzer really stores new rows (its worst case: a resend is cheaper). Prints a Markdown table.
Everything runs on loopback; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# scripts/analyzer_process.py starts and stops the servers, as it does for `make demo`.
sys.path.insert(0, str(REPO / "scripts"))
from analyzer_process import (  # noqa: E402 -- importable once scripts/ is on the path
    ANALYZER_COMMAND,
    analyzer_env,
    clean_env,
    free_port,
    running,
)


# --- payloads ------------------------------------------------------------------------------
def make_payload(tag: str, number: int, alerts: int) -> dict[str, Any]:
    items = []
    for n in range(alerts):
        name = f"bench-{tag}-{number}-{n}"
        items.append(
            {
                "status": "firing",
                "labels": {
                    "alertname": "ContainerHighMemoryUsage",
                    "name": name,
                    "instance": "cadvisor:8080",
                    "job": "cadvisor",
                    "severity": "warning",
                },
                "annotations": {
                    "summary": f"Container {name} uses 95% of its memory limit",
                    "description": "Working set above 90% of the limit for 5 minutes.",
                },
                "startsAt": "2026-11-28T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=container_memory_working_set_bytes",
                "fingerprint": f"{tag}{number:06d}{n:03d}",
            }
        )
    return {
        "receiver": "analyzer",
        "status": "firing",
        "alerts": items,
        "groupLabels": {"alertname": "ContainerHighMemoryUsage"},
        "commonLabels": {"alertname": "ContainerHighMemoryUsage", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="ContainerHighMemoryUsage"}',
        "truncatedAlerts": 0,
    }


# --- the load generator (runs in its own process) ----------------------------------------
async def _load(args: argparse.Namespace) -> dict[str, Any]:
    bodies = [
        json.dumps(make_payload(args.tag, n, args.alerts)).encode() for n in range(args.requests)
    ]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {args.token}"}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    new_alerts = 0
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(base_url=args.url, limits=limits, timeout=30) as client:

        async def one(body: bytes) -> None:
            nonlocal new_alerts
            started = time.perf_counter()
            try:
                response = await client.post("/webhook/alertmanager", content=body, headers=headers)
                code = str(response.status_code)
                if response.status_code == 202 and "new" in response.text:
                    new_alerts += int(response.json().get("new", 0))
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[code] = statuses.get(code, 0) + 1

        # Warm up connections and code paths (not measured).
        await asyncio.gather(*(client.get("/healthz") for _ in range(min(args.concurrency, 8))))
        started = time.perf_counter()
        if args.rate:
            # Open loop: send at a fixed pace whatever the answers' latency.
            interval = 1.0 / args.rate
            tasks = []
            for n, body in enumerate(bodies):
                delay = started + n * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(body)))
            await asyncio.gather(*tasks)
        else:
            # Closed loop: `concurrency` clients sending back to back.
            queue = list(reversed(bodies))

            async def client_loop() -> None:
                while queue:
                    await one(queue.pop())

            await asyncio.gather(*(client_loop() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "elapsed_s": elapsed,
        "latencies_ms": latencies,
        "statuses": statuses,
        "new_alerts": new_alerts,
    }


def load_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="webhook_bench.py load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--alerts", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0)
    return parser


def load_main(argv: list[str]) -> int:
    args = load_parser().parse_args(argv)
    json.dump(asyncio.run(_load(args)), sys.stdout)
    return 0


def load_arguments(url: str, token: str, tag: str, **options: Any) -> list[str]:
    # "--name=value" keeps a value that starts with "-" (token_urlsafe can) from
    # being read as an option.
    arguments = [f"--url={url}", f"--token={token}", f"--tag={tag}"]
    arguments += [f"--{key}={value}" for key, value in options.items()]
    return arguments


def run_load(url: str, token: str, tag: str, **options: Any) -> dict[str, Any]:
    command = [sys.executable, __file__, "load", *load_arguments(url, token, tag, **options)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


# --- servers -------------------------------------------------------------------------------
def analyzer_server(data_dir: Path, token: str, workers: int) -> Any:
    port = free_port()
    env = analyzer_env(
        data_dir,
        port,
        token,
        AIOPS_WORKERS=str(workers),
        AIOPS_LOG_LEVEL="WARNING",  # Like the bare app: no per-request log lines.
    )
    return running("analyzer", ANALYZER_COMMAND, env, port, data_dir / "analyzer.log")


def bare_server(data_dir: Path) -> Any:
    port = free_port()
    command = [sys.executable, str(HERE / "bare_app.py"), "--port", str(port)]
    return running("bare", command, clean_env(), port, data_dir / "bare.log")


# --- measurements --------------------------------------------------------------------------
def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summarise(data: dict[str, Any]) -> dict[str, float]:
    latencies = data["latencies_ms"]
    ok = sum(n for code, n in data["statuses"].items() if code == "202")
    return {
        "rps": len(latencies) / data["elapsed_s"],
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "ok": ok,
        "total": len(latencies),
    }


def wait_drained(url: str, token: str, expected: int, within: float) -> float:
    """Seconds until `expected` analyses are done (polls the read API)."""
    headers = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    while time.monotonic() - started < within:
        page = httpx.get(
            f"{url}/analyses", params={"state": "done", "limit": 1}, headers=headers, timeout=10
        ).json()
        if page["total"] >= expected:
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"fewer than {expected} analyses done within {within:.0f} s")


class PeakRss:
    """Samples a process's resident memory every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self._process.memory_info().rss)
            except Exception:
                return
            self._stop.wait(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "load":
        return load_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="Per throughput run.")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=100.0, help="Paced run, requests/s.")
    parser.add_argument("--burst", type=int, default=1000, help="Distinct alerts in the burst.")
    parser.add_argument("--workers", type=int, default=4, help="Analyzer workers.")
    parser.add_argument("--quick", action="store_true", help="Tiny counts (smoke test).")
    parser.add_argument("--json", type=Path, help="Also write the raw results here.")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.paced_seconds, args.burst, args.concurrency = 40, 1.0, 30, 4

    token = secrets.token_urlsafe(24)
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "throughput": {},
        "paced": {},
    }
    run = secrets.token_hex(3)
    with tempfile.TemporaryDirectory(prefix="aiops-bench-") as tmp:
        data_dir = Path(tmp)
        with (
            analyzer_server(data_dir, token, args.workers) as analyzer,
            bare_server(data_dir) as bare,
        ):
            for alerts in (1, 10):
                for target in (bare, analyzer):  # Same conditions, back to back.
                    data = run_load(
                        target.url,
                        token,
                        f"t{run}{target.name[0]}{alerts}",
                        alerts=alerts,
                        requests=args.requests,
                        concurrency=args.concurrency,
                    )
                    results["throughput"][f"{target.name}/{alerts}"] = summarise(data)
            paced_requests = max(1, int(args.rate * args.paced_seconds))
            for target in (bare, analyzer):
                data = run_load(
                    target.url,
                    token,
                    f"p{run}{target.name[0]}",
                    alerts=1,
                    requests=paced_requests,
                    concurrency=64,
                    rate=args.rate,
                )
                results["paced"][target.name] = summarise(data)

        # The burst on a fresh store, so it measures 1,000 alerts and nothing else.
        burst_dir = data_dir / "burst"
        burst_dir.mkdir()
        with analyzer_server(burst_dir, token, args.workers) as analyzer:
            per_request = 10
            requests = max(1, args.burst // per_request)
            # The same tag both times: the second burst resends the first one's alerts.
            send_burst = functools.partial(
                run_load,
                analyzer.url,
                token,
                f"b{run}",
                alerts=per_request,
                requests=requests,
                concurrency=16,
            )
            with PeakRss(analyzer.proc.pid) as rss:
                started = time.monotonic()
                first = send_burst()
                accepted_s = time.monotonic() - started
                wait_drained(analyzer.url, token, requests * per_request, within=600)
                drained_s = time.monotonic() - started
            again = send_burst()
            total = httpx.get(
                f"{analyzer.url}/analyses",
                params={"limit": 1},
                headers={"Authorization": f"Bearer {token}"},
            ).json()["total"]
            results["burst"] = {
                "alerts": requests * per_request,
                "new_first": first["new_alerts"],
                "accepted_s": accepted_s,
                "drained_s": drained_s,
                "peak_rss_mib": rss.peak / 2**20,
                "new_again": again["new_alerts"],
                "stored_after_again": total,
            }
    print(report(results, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    burst = results["burst"]
    ok = burst["new_again"] == 0 and burst["stored_after_again"] == burst["alerts"]
    return 0 if ok else 1


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"Run {results['date']} on {results['machine']}; {args.requests} requests per "
        f"throughput run, {args.concurrency} concurrent clients; analyzer with "
        f"{args.workers} workers, rules engine, SQLite.",
        "",
        "| Payload | Bare FastAPI req/s | Analyzer req/s | Ratio | Bare p50 / p99 ms "
        "| Analyzer p50 / p99 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for alerts in (1, 10):
        bare = results["throughput"][f"bare/{alerts}"]
        mine = results["throughput"][f"analyzer/{alerts}"]
        lines.append(
            f"| {alerts} alert{'s' if alerts > 1 else ''} | {bare['rps']:.0f} | {mine['rps']:.0f} "
            f"| {mine['rps'] / bare['rps']:.0%} | {bare['p50']:.1f} / {bare['p99']:.1f} "
            f"| {mine['p50']:.1f} / {mine['p99']:.1f} |"
        )
    bare, mine = results["paced"]["bare"], results["paced"]["analyzer"]
    lines += [
        "",
        f"Paced at {args.rate:.0f} req/s for {args.paced_seconds:.0f} s (1 alert each): "
        f"analyzer p50 {mine['p50']:.1f} ms, p99 {mine['p99']:.1f} ms "
        f"({mine['ok']}/{mine['total']} accepted); bare p50 {bare['p50']:.1f} ms, "
        f"p99 {bare['p99']:.1f} ms.",
    ]
    burst = results["burst"]
    lines += [
        "",
        "| Burst | Alerts | New | Accepted in | All analysed in | Peak RSS | Resent: new "
        "| Stored |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| rules engine | {burst['alerts']} | {burst['new_first']} | {burst['accepted_s']:.1f} s "
        f"| {burst['drained_s']:.1f} s | {burst['peak_rss_mib']:.0f} MiB | {burst['new_again']} "
        f"| {burst['stored_after_again']} |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
