"""The end-to-end run's rewritten configs: valid for the real tools, and the project's otherwise.

The end-to-end test proves something about the project's rules and routing only if the rewrite
changes nothing but addresses, intervals and file paths. These checks run without daemons.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import configs
from tests.support.tools import require_tool

TIMINGS = configs.DEFAULT_TIMINGS


def _without(document: Any, keys: set[str]) -> Any:
    """A copy of a YAML document with the given keys removed at every depth."""
    if isinstance(document, dict):
        return {k: _without(v, keys) for k, v in document.items() if k not in keys}
    if isinstance(document, list):
        return [_without(v, keys) for v in document]
    return document


def _render_alertmanager(tmp_path: Path) -> dict[str, Any]:
    return configs.render_alertmanager_config(
        analyzer_url="http://127.0.0.1:18080",
        credentials_file=tmp_path / "webhook-token",
        sink_url="http://127.0.0.1:18081",
        timings=TIMINGS,
    )


def test_alertmanager_rewrite_changes_only_urls_credentials_and_timings(tmp_path: Path) -> None:
    if not configs.PROJECT_ALERTMANAGER_CONFIG.exists():
        pytest.fail(f"{configs.PROJECT_ALERTMANAGER_CONFIG} is missing")
    project = yaml.safe_load(configs.PROJECT_ALERTMANAGER_CONFIG.read_text())
    rendered = _render_alertmanager(tmp_path)

    rewritable = {"url", "credentials_file", "group_wait", "group_interval", "repeat_interval"}
    assert _without(rendered, rewritable) == _without(project, rewritable)
    analyzer = next(r for r in rendered["receivers"] if r["name"] == configs.ANALYZER_RECEIVER)
    webhook = analyzer["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:18080/webhook/alertmanager"
    assert webhook["http_config"]["authorization"]["credentials_file"] == str(
        tmp_path / "webhook-token"
    )
    assert rendered["route"]["group_wait"] == TIMINGS.group_wait
    assert rendered["route"]["repeat_interval"] == TIMINGS.repeat_interval


def test_alertmanager_rewrite_sends_other_integrations_to_the_sink(tmp_path: Path) -> None:
    project = tmp_path / "alertmanager.yml"
    project.write_text(
        yaml.safe_dump(
            {
                "route": {"receiver": "analyzer"},
                "receivers": [
                    {
                        "name": "analyzer",
                        "webhook_configs": [{"url": "http://analyzer:8080/webhook/alertmanager"}],
                    },
                    {
                        "name": "oncall",
                        "slack_configs": [
                            {"api_url": "https://hooks.slack.com/x", "channel": "#a"}
                        ],
                    },
                ],
            }
        )
    )
    rendered = configs.render_alertmanager_config(
        analyzer_url="http://127.0.0.1:1",
        credentials_file=tmp_path / "t",
        sink_url="http://127.0.0.1:2",
        timings=TIMINGS,
        project_config=project,
    )
    oncall = next(r for r in rendered["receivers"] if r["name"] == "oncall")
    assert "slack_configs" not in oncall
    assert oncall["webhook_configs"] == [{"url": "http://127.0.0.1:2/oncall"}]
    assert "https://" not in yaml.safe_dump(rendered)


def test_rendered_alertmanager_config_passes_amtool(tmp_path: Path) -> None:
    amtool = require_tool("amtool", "scripts/install-system-deps.sh installs it")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(_render_alertmanager(tmp_path)))
    (tmp_path / "webhook-token").write_text("token")
    check = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_rule_rewrite_keeps_expressions_labels_and_annotations(tmp_path: Path) -> None:
    written = configs.write_project_rules(tmp_path, TIMINGS, fast_alerts={"NginxDown"})
    sources = sorted(configs.PROJECT_RULES_DIR.glob("*.y*ml"))
    assert len(written) == len(sources) > 0
    seen_fast = False
    for source, target in zip(sources, written, strict=True):
        before = yaml.safe_load(source.read_text())
        after = yaml.safe_load(target.read_text())
        assert _without(after, {"for", "interval"}) == _without(before, {"for", "interval"})
        for group_before, group_after in zip(before["groups"], after["groups"], strict=True):
            for old, new in zip(group_before["rules"], group_after["rules"], strict=True):
                if new.get("alert") == "NginxDown":
                    seen_fast = True
                    assert new["for"] == TIMINGS.rule_for
                else:  # alerts not under test keep their `for:` and stay quiet
                    assert new.get("for") == old.get("for")
    assert seen_fast, "the project's rules have no NginxDown alert"


def test_rule_rewrite_shortens_only_nonzero_durations() -> None:
    document = {
        "groups": [
            {
                "name": "g",
                "interval": "30s",
                "rules": [
                    {"alert": "Slow", "expr": "up == 0", "for": "15m"},
                    {"alert": "Instant", "expr": "up == 0"},
                    {"record": "job:up:sum", "expr": "sum by (job) (up)"},
                ],
            }
        ]
    }
    original = copy.deepcopy(document)
    rules = configs.rewrite_rule_group_file(document, TIMINGS)["groups"][0]
    assert document == original  # the input is not modified
    assert rules["interval"] == TIMINGS.evaluation_interval
    assert rules["rules"][0]["for"] == TIMINGS.rule_for
    assert "for" not in rules["rules"][1] and "for" not in rules["rules"][2]
    only_instant = configs.rewrite_rule_group_file(document, TIMINGS, fast_alerts={"Instant"})
    assert only_instant["groups"][0]["rules"][0]["for"] == "15m"


def test_rendered_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "scripts/install-system-deps.sh installs it")
    rule_files = configs.write_project_rules(tmp_path / "rules", TIMINGS)
    rendered = configs.render_prometheus_config(
        addresses={
            "nginx_exporter": "127.0.0.1:19113",
            "node_exporter": "127.0.0.1:19100",
            "prometheus": "127.0.0.1:19090",
            "alertmanager": "127.0.0.1:19093",
            "analyzer": "127.0.0.1:18080",
        },
        rule_files=rule_files,
        alertmanager="127.0.0.1:19093",
        timings=TIMINGS,
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(rendered))
    check = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    # The rules select on the project's job names, so the scrape jobs must keep them.
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in rendered["scrape_configs"]
    }
    if configs.PROJECT_PROMETHEUS_CONFIG.exists():
        project = yaml.safe_load(configs.PROJECT_PROMETHEUS_CONFIG.read_text())
        project_jobs = {
            job["job_name"]: job["static_configs"][0]["targets"][0]
            for job in project["scrape_configs"]
        }
        for job_name, target in project_jobs.items():
            if target == "nginx-exporter:9113":
                assert jobs[job_name] == ["127.0.0.1:19113"]
            if target == "analyzer:8080":
                assert jobs[job_name] == ["127.0.0.1:18080"]
            if target in ("cadvisor:8080", "grafana:3000", "loki:3100", "alloy:12345"):
                assert job_name not in jobs  # not running here: would only add TargetDown noise
    assert all(t.startswith("127.0.0.1:") for targets in jobs.values() for t in targets)


@pytest.mark.parametrize("use_project_conf", [True, False], ids=["project-conf", "minimal-conf"])
def test_rendered_nginx_conf_passes_nginx_t(tmp_path: Path, use_project_conf: bool) -> None:
    nginx = require_tool("nginx", "scripts/install-system-deps.sh installs it")
    project_conf = configs.PROJECT_NGINX_CONFIG if use_project_conf else tmp_path / "absent.conf"
    if use_project_conf and not project_conf.exists():
        pytest.skip(f"{project_conf} not written yet")
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        configs.render_nginx_conf(
            tmp_path, web_port=18088, status_port=18089, project_config=project_conf
        )
    )
    check = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    text = conf.read_text()
    assert "listen 127.0.0.1:18088;" in text and "listen 127.0.0.1:18089;" in text
    assert "stub_status" in text
