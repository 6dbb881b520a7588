"""Helpers for the analyzer's HTTP tests: settings, the app with its lifespan, payloads,
and the analyzer as a real process."""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from aiops_analyzer.core.config import Settings
from aiops_analyzer.main import create_app
from aiops_analyzer.store import Store
from aiops_analyzer.store.tables import deliveries
from fastapi import FastAPI
from sqlalchemy import Row, select

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "service" / "samples"
TOKEN = "test-webhook-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WEBHOOK = "/webhook/alertmanager"


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings isolated from the machine: no .env, no key, no external source."""
    values: dict[str, Any] = {
        "webhook_token": TOKEN,
        "data_dir": data_dir,
        "engine": "rules",
        "openai_api_key": None,
        "prometheus_url": None,
        "loki_url": None,
        "slack_webhook_url": None,
        "discord_webhook_url": None,
        "notify_webhook_url": None,
        "grafana_url": None,
        "workers": 2,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running_app(
    settings: Settings, *, start_workers: bool = True
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan run (migrations, workers), and a client speaking ASGI to it."""
    app = create_app(settings, start_workers=start_workers)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://analyzer") as client:
            yield app, client


def delivery_row(store: Store, delivery_id: int) -> Row[Any]:
    """A delivery as stored (nothing in the service reads deliveries back)."""
    with store.db.read() as conn:
        return conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one()


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text())
    return data


def payload(
    *,
    fingerprint: str = "f00dfeed12345678",
    status: str = "firing",
    alertname: str = "NginxDown",
    starts_at: str = "2026-11-28T10:00:00Z",
    count: int = 1,
    truncated: int = 0,
    **alert_fields: Any,
) -> dict[str, Any]:
    """An Alertmanager v4 payload of ``count`` alerts (fingerprints suffixed when count > 1)."""
    base = sample("01-nginx-down-firing.json")
    template = base["alerts"][0]
    alerts = []
    for n in range(count):
        alert = copy.deepcopy(template)
        alert["status"] = status
        alert["fingerprint"] = fingerprint if count == 1 else f"{fingerprint}-{n}"
        alert["labels"]["alertname"] = alertname
        alert["startsAt"] = starts_at
        if status == "resolved":
            alert["endsAt"] = "2026-11-28T10:05:00Z"
        alert.update(alert_fields)
        alerts.append(alert)
    base["alerts"] = alerts
    base["status"] = status
    base["truncatedAlerts"] = truncated
    return base


async def wait_until(
    check: Callable[[], Any], *, within: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll an async or sync check until it returns something truthy."""
    import asyncio
    import inspect

    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def analyzer_env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """A clean environment for `aiops-analyzer serve`: no inherited AIOPS_ or OpenAI settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AIOPS_") and k not in {"OPENAI_API_KEY", "PORT"}
    }
    env.update(
        {
            "AIOPS_WEBHOOK_TOKEN": TOKEN,
            "AIOPS_DATA_DIR": str(data_dir),
            "AIOPS_HOST": "127.0.0.1",
            "AIOPS_PORT": str(port),
            "AIOPS_ENGINE": "rules",
            "AIOPS_WORKERS": "2",
        }
    )
    env.update(extra)
    return env


class AnalyzerProcess:
    """`aiops-analyzer serve` as a real process on 127.0.0.1, stopped by its PID."""

    def __init__(self, data_dir: Path, *, port: int | None = None, **env: str) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / f"analyzer-{self.port}-{time.monotonic_ns()}.log"
        self.env = analyzer_env(data_dir, self.port, **env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 120.0) -> AnalyzerProcess:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiops_analyzer.cli", "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.log_path.parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"analyzer exited at start:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"analyzer not ready within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@contextmanager
def analyzer_process(data_dir: Path, **env: str) -> Iterator[AnalyzerProcess]:
    process = AnalyzerProcess(data_dir, **env)
    try:
        yield process.start()
    finally:
        process.stop()
