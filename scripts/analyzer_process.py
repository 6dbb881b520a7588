"""Start `aiops-analyzer serve` (or another local HTTP server) for a script, and stop it.

`make demo` (scripts/demo.py) and the webhook benchmark (benchmarks/webhook_bench.py) both run
the analyzer as a real process on a free 127.0.0.1 port, wait until it answers and stop it by
its PID, also when the script fails. The benchmark imports this file from scripts/.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ANALYZER_COMMAND = [sys.executable, "-m", "aiops_analyzer.cli", "serve"]
START_SECONDS = 30.0


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without the analyzer's settings, so a developer's exported key or
    Prometheus URL cannot make an offline run call out; then `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIOPS_") and k not in {"OPENAI_API_KEY", "PORT"}
    }
    env.update(extra)
    return env


def analyzer_env(data_dir: Path, port: int, token: str, **extra: str) -> dict[str, str]:
    """An offline analyzer (rules engine, no API key) on 127.0.0.1:`port` storing in `data_dir`."""
    return clean_env(
        AIOPS_WEBHOOK_TOKEN=token,
        AIOPS_HOST="127.0.0.1",
        AIOPS_PORT=str(port),
        AIOPS_DATA_DIR=str(data_dir),
        AIOPS_ENGINE="rules",
        **extra,
    )


@contextmanager
def running(
    name: str,
    command: list[str],
    env: dict[str, str],
    port: int,
    log: Path,
    *,
    ready_path: str = "/healthz",
    cwd: Path | None = None,
) -> Iterator[Server]:
    """The server, once GET `ready_path` answers 200; stopped (SIGTERM, then SIGKILL) on exit.

    Its output goes to `log`; a server that exits or is not ready in time raises RuntimeError.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited at start; see {log}")
            try:
                if httpx.get(f"{url}{ready_path}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready within {START_SECONDS:.0f} s; see {log}")
            time.sleep(0.1)
        yield Server(name, proc, url)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
