"""Running the monitoring daemons on 127.0.0.1 for tests.

Configs are copied with only what a loopback run must change (ports, file paths), and every
process is stopped by its own PID, also when a test fails.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.monitoring.files import MONITORING

NGINX_CONFIG = MONITORING / "nginx" / "nginx.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(
    args: list[str],
    log: Path,
    *,
    stdout: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """Run `args` until the block ends (also on failure); stderr (and stdout) go to files.

    SIGTERM first: nginx's master stops its workers on SIGTERM, while SIGKILL of the master
    would leave a worker serving.
    """
    with log.open("w") as err, (stdout or log).open("a") as out:
        process = subprocess.Popen(args, stdout=out, stderr=err, env=env)
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen, log: Path, what: str, limit: float = 30
) -> None:
    """Poll `ready` until true; fail with the process's log if it exits or takes too long."""
    deadline = time.monotonic() + limit
    while True:
        try:
            if ready():
                return
        except httpx.TransportError:
            pass  # not listening yet
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not become ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def nginx_config(tmp_path: Path, site_port: int, status_port: int) -> Path:
    """A copy of nginx.conf with only what a loopback run needs changed: ports, pid, temp paths.

    The container runs it as root with the image's paths; here nothing may touch system
    directories, and only loopback ports are used.
    """
    text = NGINX_CONFIG.read_text(encoding="utf-8")
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
