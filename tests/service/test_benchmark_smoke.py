"""The webhook benchmark still runs (tiny counts; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.service.apptools import REPO
from tests.support.tools import require_tool


def test_benchmark_script_runs_with_tiny_counts() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "webhook_bench.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "| 1 alert |" in out and "| 10 alerts |" in out
    assert "Paced at 100 req/s" in out
    # The resend of the burst created nothing new.
    burst_row = next(line for line in out.splitlines() if line.startswith("| rules engine |"))
    cells = [cell.strip() for cell in burst_row.strip("|").split("|")]
    assert cells[1] == cells[2] == cells[7]  # alerts == new == stored
    assert cells[6] == "0"  # resent: new


def test_postgresql_ingest_micro_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "pg_ingest_micro.py"), "--batches", "5"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("batch of 4: ") and "deliveries/s" in result.stdout


def test_load_arguments_keep_a_token_that_starts_with_a_dash() -> None:
    # secrets.token_urlsafe() can start with "-"; passed as a separate argv item
    # argparse took it for an option and the load process exited with 2.
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import webhook_bench
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    token = "-bB1B0yQNq0eH2iSxLtVqI24Xefr9dRx"
    argv = webhook_bench.load_arguments("http://127.0.0.1:1", token, "-tag", requests=40)
    args = webhook_bench.load_parser().parse_args(argv)
    assert (args.token, args.tag, args.requests) == (token, "-tag", 40)


@pytest.mark.tool("wrk")
def test_wrk_benchmark_runs_on_both_stores_with_tiny_counts() -> None:
    require_tool("wrk", "apt-get install wrk")
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "wrk_bench.py"),
            "--seconds=1",
            "--rounds=1",
            "--paced-seconds=1",
            "--connections=4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| SQLite |")]
    rows += [line for line in result.stdout.splitlines() if line.startswith("| PostgreSQL |")]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert float(cells[2]) > 0 and float(cells[3]) > 0  # Both servers answered.
        assert cells[7] == "0 / 0"  # Every request got its 202.
    assert "| Analyzer, SQLite |" in result.stdout and "| Analyzer, PostgreSQL |" in result.stdout
