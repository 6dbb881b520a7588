"""Real daemons on 127.0.0.1: start, watch, stop by PID, keep their output for failure reports."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# A daemon gets this long to exit after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 5.0
# How much of each daemon's log a failure report shows.
LOG_TAIL_BYTES = 6000


_PR_SET_PDEATHSIG = 1
# Looked up once here: the forked child (other threads exist) should only make the call.
_prctl: Callable[..., int] | None
try:
    _prctl = ctypes.CDLL(None).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:
    """In the child: get SIGTERM if pytest itself is killed, so no daemon outlives the run.

    A safety net only; teardown stops every daemon by PID.
    """
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on right now.

    The OS picks them while all are held open, so they differ from each other and from every
    port already bound (the stand-ins bind theirs first); the daemon binds it moments later.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    on_timeout: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``.

    Exceptions from the probe count as "not yet" (a daemon still starting refuses connections).
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except Exception as exc:  # a probe failing is the normal "not ready yet"
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            extra = f"\n{on_timeout()}" if on_timeout else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}{extra}")
        time.sleep(interval)


class ManagedProcess:
    """One daemon started by the test, tracked by its PID, its output captured to a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> ManagedProcess:
        if self.running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self.starts += 1
        # Append so a restarted daemon's earlier output stays in the failure report.
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                preexec_fn=_die_with_parent,
            )
        return self

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM to the PID, SIGKILL if it has not exited after ``grace`` seconds."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=grace)

    def log_tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return "(no output)"
        text = data[-limit:].decode(errors="replace")
        return text if len(data) <= limit else "...\n" + text

    def describe(self) -> str:
        state = "running" if self.running() else f"exited with {self.exit_code()}"
        return f"{self.name} (pid {self.pid}, {state})"
