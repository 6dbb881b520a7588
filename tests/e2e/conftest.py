"""Fixtures of the end-to-end run: one pipeline per module, its logs attached to any failure."""

from __future__ import annotations

import json
import statistics
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness.pipeline import ANALYZER_BIN, Pipeline, Tools
from tests.support import summary
from tests.support.tools import require_tool


class LatencyLog:
    """Measured latencies (seconds) by name; written to JSON and shown in the terminal summary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples: dict[str, list[float]] = {}

    def record(self, name: str, seconds: float) -> None:
        self.samples.setdefault(name, []).append(round(seconds, 3))
        print(f"latency {name}: {seconds:.3f}s")
        self.path.write_text(json.dumps(self.samples, indent=2) + "\n")
        summary.section("end-to-end latencies")[:] = [*self.lines(), f"(written to {self.path})"]

    def lines(self) -> list[str]:
        lines = []
        for name, values in self.samples.items():
            shown = ", ".join(f"{v:.2f}" for v in values)
            lines.append(f"{name}: median {statistics.median(values):.2f}s ({shown})")
        return lines


@pytest.fixture(scope="session")
def latencies(tmp_path_factory: pytest.TempPathFactory) -> LatencyLog:
    return LatencyLog(tmp_path_factory.mktemp("e2e-latencies") / "latencies.json")


@pytest.fixture(scope="module")
def e2e_tools() -> Tools:
    hint = "scripts/install-system-deps.sh installs it"
    if not ANALYZER_BIN.exists():
        pytest.fail(f"{ANALYZER_BIN} not found: run `make install`")
    return Tools(
        nginx=require_tool("nginx", hint),
        nginx_exporter=require_tool("prometheus-nginx-exporter", hint),
        node_exporter=require_tool("prometheus-node-exporter", hint),
        prometheus=require_tool("prometheus", hint),
        alertmanager=require_tool("prometheus-alertmanager", hint),
    )


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Pipeline]]:
    """Pipelines a module starts; whatever happens, each one's processes are stopped by PID."""
    started: list[Pipeline] = []
    try:
        yield started
    finally:
        for pipeline in started:
            pipeline.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report: pytest.TestReport = yield
    # A failed scenario shows every daemon's log and every stand-in's traffic.
    if report.failed:
        for pipeline in getattr(item, "funcargs", {}).get("pipelines", []):
            report.sections.append(("end-to-end pipeline", pipeline.report()))
    return report
