"""`aiops-analyzer eval` options, exit codes and error messages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aiops_eval.cli import main
from aiops_eval.scenario import Scenario

from tests.eval.fake_model import FakeModel

# A scenario the rules engine passes, and a copy of it whose expectation no engine can meet
# (a category that does not exist), so the mix is 1 of 2 whatever the engine learns next.
PASSING = "crash-loop-missing-setting"
IMPOSSIBLE = "impossible-expectation"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No key or URL from the developer's shell or .env reaches these runs."""
    for name in ("AIOPS_OPENAI_API_KEY", "OPENAI_API_KEY", "AIOPS_LLM_BASE_URL", "AIOPS_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")


def mixed(scenarios: list[Scenario], tmp_path: Path) -> Path:
    folder = tmp_path / "scenarios"
    source = next(scenario for scenario in scenarios if scenario.name == PASSING)
    shutil.copytree(source.path, folder / PASSING)
    shutil.copytree(source.path, folder / IMPOSSIBLE)
    expected = folder / IMPOSSIBLE / "expected.yml"
    text = expected.read_text()
    accepted = "category: [misconfiguration, container_crash]"
    assert accepted in text
    expected.write_text(text.replace(accepted, "category: no_such_category"))
    return folder


def test_a_rules_run_writes_the_report_next_to_the_scenarios_and_prints_the_summary(
    scenarios: list[Scenario], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = mixed(scenarios, tmp_path)
    assert main(["--scenarios", str(folder)]) == 0
    assert list((tmp_path / "cwd").iterdir()) == []  # nothing lands where the caller stands
    report = (tmp_path / "reports" / "scenarios.md").read_text()
    assert "| rules | **50.0%** | 1/2 |" in report
    assert f"| {IMPOSSIBLE} | no_such_category | misconfiguration | 0/1 |" in report
    assert f"| {PASSING} | misconfiguration/container_crash | misconfiguration | 1/1 |" in report
    assert "| rules | **50.0%** |" in capsys.readouterr().out


def test_fail_under_sets_the_exit_code(
    scenarios: list[Scenario], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = mixed(scenarios, tmp_path)
    report = tmp_path / "r.md"
    assert main(["--scenarios", str(folder), "--report", str(report), "--fail-under", "0.5"]) == 0
    assert main(["--scenarios", str(folder), "--report", str(report), "--fail-under", "0.6"]) == 1
    assert "rules: pass rate 50.0% is below --fail-under 60.0%" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--engine", "llm"], "--engine llm needs AIOPS_OPENAI_API_KEY"),
        (["--judge"], "--judge needs AIOPS_OPENAI_API_KEY"),
        (["--scenarios", "/nonexistent/dir"], "--scenarios /nonexistent/dir: not a directory"),
        (["--repeat", "0"], "argument --repeat: must be at least 1"),
        (["--fail-under", "80"], "argument --fail-under: 80 is outside 0..1"),
        (["--engine", "gpt"], "argument --engine: invalid choice: 'gpt'"),
    ],
)
def test_bad_usage_exits_2_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--fail-under" in capsys.readouterr().out


def test_llm_and_rules_in_one_report_without_leaking_secrets(
    scenarios: list[Scenario], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "scenarios"
    names = (*tuple(s.name for s in scenarios if s.expected.secrets)[:1], PASSING)
    for scenario in scenarios:
        if scenario.name in names:
            shutil.copytree(scenario.path, folder / scenario.name)
    report = tmp_path / "both.md"
    with FakeModel(scenarios) as model:
        monkeypatch.setenv("AIOPS_OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("AIOPS_LLM_BASE_URL", model.url)
        code = main(
            [
                "--scenarios",
                str(folder),
                "--engine",
                "rules",
                "--engine",
                "llm",
                "--judge",
                "--report",
                str(report),
            ]
        )
    assert code == 0
    text = report.read_text()
    assert "| rules | **" in text and "| llm (gpt-4o-mini) | **100.0%** | 2/2 |" in text
    assert "### Judge" in text
    for scenario in scenarios:
        for secret in scenario.expected.secrets:
            assert secret not in text


def test_the_installed_command_runs_one_scenario_folder(
    scenarios: list[Scenario], tmp_path: Path
) -> None:
    """`aiops-analyzer eval` (the package's entry point) hands over to this CLI."""
    command = Path(sys.executable).parent / "aiops-analyzer"
    if not command.exists():
        pytest.skip("the aiops-analyzer entry point is not installed in this environment")
    report = tmp_path / "one.md"
    done = subprocess.run(
        [str(command), "eval", "--scenarios", str(scenarios[0].path), "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"| {scenarios[0].name} |" in report.read_text()


def test_several_sets_are_scored_as_one(
    scenarios: list[Scenario], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = mixed(scenarios, tmp_path)
    second = tmp_path / "more"
    source = next(s for s in scenarios if s.name == PASSING)
    shutil.copytree(source.path, second / "another-copy")
    assert main(["--scenarios", str(first), "--scenarios", str(second)]) == 0
    report = (tmp_path / "reports" / "scenarios+more.md").read_text()
    assert "| rules | **66.7%** | 2/3 | 2/3 |" in report
    assert main(["--scenarios", str(first), "--scenarios", str(first)]) == 2
    assert "two scenarios share a name" in capsys.readouterr().err
