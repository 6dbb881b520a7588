"""Webhook throughput with wrk: the bare FastAPI endpoint against the analyzer on SQLite and
on PostgreSQL, side by side, then the analyzer's latency at a paced 100 requests/s.

    .venv/bin/python benchmarks/wrk_bench.py                 # a few minutes
    .venv/bin/python benchmarks/wrk_bench.py --seconds 3 --rounds 1 --paced-seconds 3  # quick

wrk (Debian package `wrk`) saturates the bare endpoint, where one Python client caps it near
600 requests/s. Every request carries one new alert (`wrk_webhook.lua`), so the analyzer stores
a new row and its workers analyse it while the load runs, on the same machine. Rounds
alternate bare / analyzer; each starts once the analyzer has analysed its backlog. Both stores
are durable: SQLite `synchronous=FULL`, PostgreSQL with fsync and synchronous_commit on (a
throwaway cluster started here from Debian's server binaries). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
import analyzer_process  # noqa: E402 -- scripts/ is on the path now
from webhook_bench import (  # noqa: E402 -- benchmarks/ is on the path now
    ANALYZER_COMMAND,
    analyzer_env,
    bare_server,
    free_port,
    run_load,
    running,
    summarise,
)

from tests.support.postgres import PostgresServer, require_server  # noqa: E402

# On a machine shared with other work, start-up alone can take longer than the default 30 s.
analyzer_process.START_SECONDS = 120.0

LUA = HERE / "wrk_webhook.lua"
_BENCH_LINE = re.compile(r"BENCH (.*)")


def wrk(url: str, token: str, *, seconds: float, connections: int, threads: int) -> dict[str, Any]:
    command = [
        shutil.which("wrk") or "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"{url}/webhook/alertmanager",
    ]
    env = {**os.environ, "AIOPS_BENCH_TOKEN": token}
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    found = _BENCH_LINE.search(out)
    if not found:
        raise RuntimeError(f"no summary from wrk:\n{out}")
    fields = {k: int(v) for k, v in (pair.split("=") for pair in found.group(1).split())}
    errors = sum(fields[k] for k in ("non2xx", "connect", "read", "write", "timeout"))
    return {
        "rps": fields["requests"] / (fields["duration_us"] / 1e6),
        "p50": fields["p50_us"] / 1000,
        "p99": fields["p99_us"] / 1000,
        "requests": fields["requests"],
        "errors": errors,
    }


def queue_depth(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("aiops_queue_depth "):
            return float(line.split()[1])
    return float("nan")


def wait_analysed(url: str, within: float) -> float:
    """Seconds until the analyzer's queue is empty (its backlog analysed)."""
    started = time.monotonic()
    while queue_depth(url) > 0:
        if time.monotonic() - started > within:
            raise RuntimeError(f"backlog not analysed within {within:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


@contextlib.contextmanager
def analyzer(data_dir: Path, token: str, database_url: str | None, workers: int) -> Iterator[Any]:
    port = free_port()
    extra = {"AIOPS_WORKERS": str(workers), "AIOPS_LOG_LEVEL": "WARNING"}
    if database_url:
        extra["AIOPS_DATABASE_URL"] = database_url
    env = analyzer_env(data_dir, port, token, **extra)
    with running("analyzer", ANALYZER_COMMAND, env, port, data_dir / "analyzer.log") as server:
        yield server


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    token = secrets.token_hex(16)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aiops-wrk-") as tmp, contextlib.ExitStack() as stack:
        base = Path(tmp)
        stores: dict[str, str | None] = {}
        for store in args.stores.split(","):
            if store == "sqlite":
                stores["SQLite"] = None
            elif store == "postgresql":
                server = PostgresServer(require_server(), durable=True).start()
                stack.callback(server.stop)
                stores["PostgreSQL"] = server.create_database("bench")
        with bare_server(base) as bare:
            for label, url in stores.items():
                data_dir = base / label
                data_dir.mkdir()
                with analyzer(data_dir, token, url, args.workers) as server:
                    load = {"seconds": args.seconds, "connections": args.connections}
                    load["threads"] = args.threads
                    for number in range(1, args.rounds + 1):
                        base_run = wrk(bare.url, token, **load)
                        analyzer_run = wrk(server.url, token, **load)
                        drained = wait_analysed(server.url, args.drain_seconds)
                        rows.append(
                            {
                                "store": label,
                                "round": number,
                                "bare": base_run,
                                "analyzer": analyzer_run,
                                "drained_s": drained,
                            }
                        )
                    paced = summarise(
                        run_load(
                            server.url,
                            token,
                            f"paced{label}",
                            alerts=1,
                            requests=int(args.rate * args.paced_seconds),
                            concurrency=16,
                            rate=args.rate,
                        )
                    )
                    rows.append({"store": label, "paced": paced})
    return rows


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"wrk -t{args.threads} -c{args.connections} -d{args.seconds:g}s, one new alert per "
        f"request, analyzer workers {args.workers}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}",
        "",
        "| Store | Round | Bare req/s | Analyzer req/s | Ratio | Bare p50 / p99 ms "
        "| Analyzer p50 / p99 ms | Errors | Backlog analysed in |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if "paced" in row:
            continue
        bare, ana = row["bare"], row["analyzer"]
        lines.append(
            f"| {row['store']} | {row['round']} | {bare['rps']:.0f} | {ana['rps']:.0f} "
            f"| {ana['rps'] / bare['rps']:.0%} | {bare['p50']:.1f} / {bare['p99']:.1f} "
            f"| {ana['p50']:.1f} / {ana['p99']:.1f} | {bare['errors']} / {ana['errors']} "
            f"| {row['drained_s']:.0f} s |"
        )
    lines += [
        "",
        f"| Paced {args.rate:g} req/s, {args.paced_seconds:g} s | p50 | p99 | Accepted |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        if "paced" in row:
            p = row["paced"]
            lines.append(
                f"| Analyzer, {row['store']} | {p['p50']:.1f} ms | {p['p99']:.1f} ms "
                f"| {p['ok']}/{p['total']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="Per wrk round.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4, help="Analyzer workers.")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--paced-seconds", type=float, default=20.0)
    parser.add_argument("--drain-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    print(report(measure(args), args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
