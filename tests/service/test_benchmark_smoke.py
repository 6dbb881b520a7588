"""The webhook benchmark still runs (tiny counts; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

from tests.service.apptools import REPO


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
