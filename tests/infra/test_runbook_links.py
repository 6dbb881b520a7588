"""The alerts' runbook links follow the deployment: `aiops:runbookBaseUrl`, by default the
runbooks the analyzer receiving the alerts serves, replaces the rule files' placeholder base
when the program uploads them, and nothing else of the files changes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from stacks.config import ConfigError
from stacks.monitoring_files import (
    MONITORING_DIR,
    ConfigFile,
    MonitoringFileError,
    with_runbook_base,
)
from tests.infra.harness import StackRun, run_stack, unwrap
from tests.infra.local_expectations import (
    DEFAULT_RUNBOOK_BASE,
    RUNBOOK_PLACEHOLDER,
    env_map,
    expected_content,
    expected_uploads,
    uploads_of,
)
from tests.support.tools import require_tool

FORK_BASE = "https://github.com/someone/aiops-fork/blob/main/monitoring/runbooks"
CLOUD_RUN_URL = "https://aiops-gcp-analyzer-abc123-ew.a.run.app"
RULE_TARGETS = ("/etc/prometheus/rules/", "/etc/loki/rules/fake/")


def uploaded_rules(run: StackRun) -> dict[Path, str]:
    """Source file in monitoring/ -> uploaded content, for every alert rule file."""
    found = {}
    for container in ("prometheus", "loki"):
        uploads = uploads_of(run.named(container))
        for target, source in expected_uploads()[container].items():
            if target.startswith(RULE_TARGETS):
                found[source] = str(unwrap(uploads[target]))
    return found


def runbook_urls(content: str) -> dict[str, str]:
    return {
        rule["alert"]: rule["annotations"]["runbook_url"]
        for group in yaml.safe_load(content)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def assert_rules_link_to(run: StackRun, base: str) -> None:
    rules = uploaded_rules(run)
    assert {path.parent.name for path in rules} == {"rules", "fake"}
    for source, content in rules.items():
        # Exactly the file, with exactly the placeholder base replaced.
        assert content == expected_content(source, base), source
        assert RUNBOOK_PLACEHOLDER not in content
        for alert, url in runbook_urls(content).items():
            assert url == f"{base}{alert}.md", source


@pytest.fixture(scope="module")
def default_run() -> StackRun:
    return run_stack("local")


@pytest.fixture(scope="module")
def fork_run() -> StackRun:
    return run_stack("local", overrides={"aiops:runbookBaseUrl": f"{FORK_BASE}/"})


def test_by_default_alerts_link_to_the_runbooks_the_analyzer_serves(
    default_run: StackRun,
) -> None:
    assert default_run.outputs["analyzerUrl"].value + "/runbooks/" == DEFAULT_RUNBOOK_BASE
    assert_rules_link_to(default_run, DEFAULT_RUNBOOK_BASE)
    # The analyzer links its analyses there too: its own /runbooks under its public URL.
    env = env_map(default_run.named("analyzer"))
    assert env["AIOPS_PUBLIC_URL"] + "/runbooks/" == DEFAULT_RUNBOOK_BASE
    assert "AIOPS_RUNBOOK_BASE_URL" not in env


def test_the_default_follows_the_analyzers_published_address() -> None:
    run = run_stack(
        "local", overrides={"aiops:bindAddress": "192.168.1.20", "aiops:analyzerPort": 18080}
    )
    assert_rules_link_to(run, "http://192.168.1.20:18080/runbooks/")


def test_the_default_follows_an_external_analyzer() -> None:
    run = run_stack(
        "local",
        overrides={"aiops:externalAnalyzerUrl": f"{CLOUD_RUN_URL}/"},
        secrets={"aiops:externalWebhookToken": "t0k3n"},
    )
    assert_rules_link_to(run, f"{CLOUD_RUN_URL}/runbooks/")


def test_a_configured_base_wins(fork_run: StackRun) -> None:
    assert_rules_link_to(fork_run, f"{FORK_BASE}/")
    # And analyses and notifications link the same runbooks as the alerts.
    assert env_map(fork_run.named("analyzer"))["AIOPS_RUNBOOK_BASE_URL"] == FORK_BASE


@pytest.mark.tool("promtool")
def test_uploaded_rules_still_pass_promtool(fork_run: StackRun, tmp_path: Path) -> None:
    promtool = require_tool("promtool", "apt-get install prometheus")
    # Loki's rules are LogQL, which promtool cannot parse: the Prometheus ones only.
    written = []
    for source, content in uploaded_rules(fork_run).items():
        if source.parent.name == "rules":
            written.append(tmp_path / source.name)
            written[-1].write_text(content)
    assert written
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, written)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "value",
    [
        "github.com/someone/aiops/runbooks",
        "ftp://runbooks.example.com/",
        "https://runbooks.example.com/?page=1",
        "https://runbooks.example.com/#top",
        'https://runbooks.example.com/"x',
        "https://runbooks.example.com/{{ $labels.job }}",
        "https://runbooks.example.com/a b",
    ],
)
def test_a_bad_base_is_refused_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError) as error:
        run_stack("local", overrides={"aiops:runbookBaseUrl": value})
    assert "aiops:runbookBaseUrl" in str(error.value)


def test_a_rule_file_without_the_placeholder_is_refused_naming_it() -> None:
    source = MONITORING_DIR / "prometheus/rules/team.yml"  # never read: content given below
    upload = ConfigFile(source, "/etc/prometheus/rules/team.yml", "groups: []\n")
    with pytest.raises(MonitoringFileError) as error:
        with_runbook_base([upload], FORK_BASE)
    assert "team.yml" in str(error.value) and "aiops:runbookBaseUrl" in str(error.value)
