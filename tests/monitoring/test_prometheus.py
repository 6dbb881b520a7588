"""Prometheus configuration and alert rules, checked by promtool and by their own unit tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.monitoring.files import (
    CONTRACT_METRICS,
    PROMETHEUS_DIR,
    PROMETHEUS_RULE_TESTS,
    PROMETHEUS_RULES,
    RUNBOOK_BASE_URL,
    SEVERITIES,
    aiops_metric_names,
    alert_rules,
    load_yaml,
)
from tests.support.tools import require_tool

CONTAINER_RULES_DIR = "/etc/prometheus/rules"

# Scrape jobs of the local stack and the container address each one must use (contracts).
EXPECTED_TARGETS = {
    "prometheus": "prometheus:9090",
    "alertmanager": "alertmanager:9093",
    "node-exporter": "node-exporter:9100",
    "cadvisor": "cadvisor:8080",
    "nginx-exporter": "nginx-exporter:9113",
    "analyzer": "analyzer:8080",
    "loki": "loki:3100",
    "alloy": "alloy:12345",
    "grafana": "grafana:3000",
}


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def mirror_config(tmp_path: Path, config: dict) -> Path:
    """Write `config` with its rule files as Prometheus would see them inside the container.

    The rule_files glob points at /etc/prometheus/rules; here it points at a copy of the rules
    in the temporary directory, so promtool also loads and checks every rule file.
    """
    rules_dir = tmp_path / "rules"
    shutil.copytree(PROMETHEUS_DIR / "rules", rules_dir)
    config["rule_files"] = [
        entry.replace(CONTAINER_RULES_DIR, str(rules_dir)) for entry in config["rule_files"]
    ]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def prometheus_config() -> dict:
    return load_yaml(PROMETHEUS_DIR / "prometheus.yml")


def test_config_is_valid_with_every_rule_file(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "Debian package prometheus")
    result = run([promtool, "check", "config", str(mirror_config(tmp_path, prometheus_config()))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(PROMETHEUS_RULES)} rule files found" in result.stdout


def test_config_stays_valid_without_the_cadvisor_job(tmp_path: Path) -> None:
    # The Pulumi program removes the job named "cadvisor" when cAdvisor is switched off.
    promtool = require_tool("promtool", "Debian package prometheus")
    config = prometheus_config()
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["job_name"] != "cadvisor"]
    path = mirror_config(tmp_path, config)
    assert "cadvisor" not in path.read_text(encoding="utf-8")
    result = run([promtool, "check", "config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_of_the_stack_is_scraped_by_its_container_name() -> None:
    config = prometheus_config()
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {job: [target] for job, target in EXPECTED_TARGETS.items()}
    assert config["rule_files"] == [f"{CONTAINER_RULES_DIR}/*.yml"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]


@pytest.mark.parametrize("rule_file", PROMETHEUS_RULES, ids=lambda p: p.name)
def test_rule_file_passes_promtool_check(rule_file: Path) -> None:
    promtool = require_tool("promtool", "Debian package prometheus")
    result = run([promtool, "check", "rules", str(rule_file)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    promtool = require_tool("promtool", "Debian package prometheus")
    assert PROMETHEUS_RULE_TESTS, "no promtool unit tests found"
    result = run([promtool, "test", "rules", *map(str, PROMETHEUS_RULE_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr


def exercised_alerts() -> tuple[set[tuple[str, str]], set[str]]:
    """(alertname, severity) pairs some unit test expects firing; alertnames expected silent."""
    firing: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for path in PROMETHEUS_RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test") or []:
                expected = case.get("exp_alerts") or []
                if not expected:
                    silent.add(case["alertname"])
                for alert in expected:
                    firing.add((case["alertname"], alert["exp_labels"].get("severity", "")))
    return firing, silent


def test_every_alert_has_a_unit_test_that_fires_it_and_one_that_keeps_it_silent() -> None:
    firing, silent = exercised_alerts()
    rules = alert_rules(PROMETHEUS_RULES)
    not_fired = sorted({(r.name, r.severity) for r in rules} - firing)
    assert not not_fired, f"alerts (name, severity) no promtool test expects to fire: {not_fired}"
    # Alerts with a `for:` need a case before it has passed / below the threshold.
    waiting = {r.name for r in rules if r.for_}
    never_silent = sorted(waiting - silent)
    assert not never_silent, f"alerts no promtool test expects to stay silent: {never_silent}"


def test_every_alert_has_severity_and_the_three_annotations() -> None:
    rules = alert_rules(PROMETHEUS_RULES)
    assert rules
    for rule in rules:
        assert rule.severity in SEVERITIES, f"{rule.name}: severity {rule.severity!r}"
        assert set(rule.annotations) >= {"summary", "description", "runbook_url"}, rule.name
        assert rule.annotations["runbook_url"] == f"{RUNBOOK_BASE_URL}{rule.name}.md"


def test_for_durations_sit_on_their_own_line() -> None:
    # The end-to-end harness shortens `for:` by rewriting lines; every one must be rewritable.
    for rule_file in PROMETHEUS_RULES:
        text = rule_file.read_text(encoding="utf-8")
        with_for = [r for r in alert_rules([rule_file]) if r.for_]
        lines = re.findall(r"^\s+for: \d+[smh]$", text, flags=re.MULTILINE)
        assert len(lines) == len(with_for), rule_file.name


def test_rules_avoid_functions_prometheus_3_removed() -> None:
    # promtool 2.42 checks the syntax; these parse there but fail on the Prometheus 3 image.
    removed = ("holt_winters(",)
    for rule in alert_rules(PROMETHEUS_RULES):
        assert not any(fn in rule.expr for fn in removed), rule.name


def test_analyzer_alerts_use_only_contract_metric_names() -> None:
    used = set()
    for rule in alert_rules(PROMETHEUS_RULES):
        used |= aiops_metric_names(rule.expr)
    assert used, "no analyzer metric is alerted on"
    assert used <= CONTRACT_METRICS, sorted(used - CONTRACT_METRICS)
