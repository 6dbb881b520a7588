"""The sample workload's nginx.conf: `nginx -t`, then a real nginx serving it on 127.0.0.1."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.monitoring.files import MONITORING
from tests.support.tools import require_tool

CONFIG = MONITORING / "nginx" / "nginx.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_copy(tmp_path: Path, site_port: int, status_port: int) -> Path:
    """The config with only what a test run needs changed: ports, pid and temp paths.

    The container runs it as root with the image's paths; here nothing may touch system
    directories, and only loopback ports are used.
    """
    text = CONFIG.read_text(encoding="utf-8")
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{site_port};",
        "listen 8081;": f"listen 127.0.0.1:{status_port};",
        "pid /var/run/nginx.pid;": f"pid {tmp_path / 'nginx.pid'};",
    }
    for old, new in replacements.items():
        assert text.count(old) == 1, f"expected one {old!r} in nginx.conf"
        text = text.replace(old, new)
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp_path / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = text.replace("http {\n", "http {\n" + temp_paths, 1)
    copy = tmp_path / "nginx.conf"
    copy.write_text(text, encoding="utf-8")
    return copy


def nginx_args(binary: str, tmp_path: Path, config: Path) -> list[str]:
    return [binary, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(config)]


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    binary = require_tool("nginx", "Debian package nginx")
    config = local_copy(tmp_path, free_port(), free_port())
    result = subprocess.run(
        [*nginx_args(binary, tmp_path, config), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@dataclass
class RunningNginx:
    site: str
    status: str
    access_log: Path


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[RunningNginx]:
    binary = require_tool("nginx", "Debian package nginx")
    site_port, status_port = free_port(), free_port()
    config = local_copy(tmp_path, site_port, status_port)
    access_log = tmp_path / "stdout.log"
    with access_log.open("w") as stdout, (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(
            [*nginx_args(binary, tmp_path, config), "-g", "daemon off;"],
            stdout=stdout,
            stderr=stderr,
        )
        try:
            site = f"http://127.0.0.1:{site_port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(f"{site}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("nginx did not start: " + (tmp_path / "stderr.log").read_text())
                    time.sleep(0.1)
            yield RunningNginx(site, f"http://127.0.0.1:{status_port}", access_log)
        finally:
            # SIGTERM stops master and workers; SIGKILL would leave the worker serving.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_serves_the_page_stub_status_and_json_access_lines(nginx: RunningNginx) -> None:
    assert httpx.get(f"{nginx.site}/").status_code == 200
    assert httpx.get(f"{nginx.site}/error").status_code == 500
    assert httpx.get(f"{nginx.site}/missing").status_code == 404
    status = httpx.get(f"{nginx.status}/stub_status")
    assert status.status_code == 200
    assert status.text.startswith("Active connections:")

    # Each request is one JSON line whose status is a number (the Loki rule compares it).
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(line) for line in nginx.access_log.read_text().splitlines() if line]
        if len(lines) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    by_uri = {line["uri"]: line for line in lines}
    assert by_uri["/"]["status"] == 200
    assert by_uri["/error"]["status"] == 500
    assert by_uri["/missing"]["status"] == 404
    assert by_uri["/"]["method"] == "GET"
    # stub_status requests are not logged (the exporter polls it every scrape).
    assert "/stub_status" not in by_uri
