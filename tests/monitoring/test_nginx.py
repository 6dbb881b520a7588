"""The sample workload's nginx.conf: `nginx -t`, then a real nginx serving it on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.monitoring.loopback import free_port, nginx_args, nginx_config, running, wait_until
from tests.support.tools import require_tool


def test_nginx_accepts_the_config(tmp_path: Path) -> None:
    binary = require_tool("nginx", "Debian package nginx")
    config = nginx_config(tmp_path, free_port(), free_port())
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
    config = nginx_config(tmp_path, site_port, status_port)
    access_log, log = tmp_path / "stdout.log", tmp_path / "stderr.log"
    args = [*nginx_args(binary, tmp_path, config), "-g", "daemon off;"]
    with running(args, log, stdout=access_log) as process:
        site = f"http://127.0.0.1:{site_port}"
        wait_until(
            lambda: httpx.get(f"{site}/healthz", timeout=1).is_success, process, log, "nginx"
        )
        yield RunningNginx(site, f"http://127.0.0.1:{status_port}", access_log)


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
