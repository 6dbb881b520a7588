"""`aiops-analyzer analyze` and `eval` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from tests.service.apptools import SAMPLES, analyzer_env, free_port


def run_cli(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = analyzer_env(cwd, free_port())
    del env["AIOPS_WEBHOOK_TOKEN"]  # analyze needs no token: it runs no server.
    return subprocess.run(
        [sys.executable, "-m", "aiops_analyzer.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        input=stdin,
    )


def test_analyze_prints_each_alerts_analysis_as_json(tmp_path: Path) -> None:
    payload = str(SAMPLES / "02-container-crashloop-firing.json")
    result = run_cli("analyze", "--json", payload, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [item] = json.loads(result.stdout)
    assert item["alert"]["labels"]["name"] == "checkout-api"
    assert item["analysis"]["engine"] == "rules" and item["analysis"]["summary"]
    assert {e["source"] for e in item["evidence"]} >= {"prometheus", "loki"}
    assert "s3cr3t-pass" not in result.stdout  # The password in the annotation is masked.
    assert not (tmp_path / "analyzer.db").exists()  # No store involved.


def test_analyze_reports_a_missing_file(tmp_path: Path) -> None:
    result = run_cli("analyze", str(tmp_path / "nope.json"), cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_analyze_names_the_invalid_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"status": "firing", "alerts": [{"status": "firing"}]}))
    result = run_cli("analyze", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "alerts.0.startsAt" in result.stderr and "Traceback" not in result.stderr


def test_eval_is_delegated_to_the_evaluation_cli(tmp_path: Path) -> None:
    result = run_cli("eval", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout.lower()


def test_analyze_prints_readable_text_by_default_and_reads_stdin(tmp_path: Path) -> None:
    payload = (SAMPLES / "02-container-crashloop-firing.json").read_text()
    result = run_cli("analyze", "-", cwd=tmp_path, stdin=payload)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "ContainerRestarting [firing]  checkout-api" in out
    for heading in (
        "Severity: warning",
        "Summary:",
        "Probable causes:",
        "Evidence:",
        "Remediation:",
    ):
        assert heading in out
    assert "evidence: runbook-1" in out and "[runbook-1] runbook (ok)" in out
    assert not out.lstrip().startswith(("[", "{")) and '"analysis"' not in out
    assert "s3cr3t-pass" not in out
    assert len(out.splitlines()) < 60  # a screenful, not 80+ lines of JSON


def test_analyze_names_standard_input_when_it_is_not_json(tmp_path: Path) -> None:
    result = run_cli("analyze", "-", cwd=tmp_path, stdin="not json")
    assert result.returncode == 2
    assert result.stderr.startswith("aiops-analyzer: standard input is not valid JSON")


def test_version_is_the_installed_packages(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"aiops-analyzer {version('aiops-analyzer')}"


def test_eval_without_the_harness_says_how_to_install_it(tmp_path: Path) -> None:
    """The service alone (its image) has no evaluation harness: the command says so, no crash."""
    code = (
        "import sys; sys.modules['aiops_eval'] = None; sys.modules['aiops_eval.cli'] = None; "
        "from aiops_analyzer.cli import main; raise SystemExit(main(['eval', '--help']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 2
    assert "make install" in result.stderr and "eval/harness" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_port_option_out_of_range_naming_the_option(tmp_path: Path) -> None:
    for port in ("0", "99999", "http"):
        result = run_cli("serve", "--port", port, cwd=tmp_path)
        assert result.returncode == 2
        [*_, last] = result.stderr.strip().splitlines()
        assert last.startswith("aiops-analyzer serve: error: argument --port: "), last
        assert "Traceback" not in result.stderr
