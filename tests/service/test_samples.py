"""The demo payloads (service/samples) are what the local stack would really send.

Their alerts must come from the project's own rules and scrape config: the rule's expression in
generatorURL (as Prometheus prints it), the scrape job and target as labels, Prometheus'
external labels, and Alertmanager's fingerprint and grouping. A sample that drifts from the
stack teaches users label values their own alerts never carry.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from tests.service.apptools import REPO, SAMPLES
from tests.support.tools import require_tool

MONITORING = REPO / "monitoring"
SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))
# `sum by (a, b) (...)` keeps exactly a and b; any other expression here keeps the target's.
_AGGREGATION = re.compile(r"^\s*(?:sum|max|min|avg|count)\s+by\s*\(([^)]*)\)")
_LABEL_TEMPLATE = re.compile(r"\{\{\s*\$labels\.(\w+)\s*\}\}")
# The rule files' runbook base, and what the local stack uploads in its place by default (the
# analyzer's published /runbooks; docs/monitoring.md, "Runbook links").
RUNBOOK_PLACEHOLDER = "https://aiops.invalid/runbooks/"
LOCAL_STACK_RUNBOOKS = "http://localhost:8080/runbooks/"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules_by_name() -> dict[str, dict[str, Any]]:
    rules: dict[str, dict[str, Any]] = {}
    for path in sorted((MONITORING / "prometheus" / "rules").glob("*.yml")):
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules[rule["alert"]] = rule
    return rules


def scrape_targets() -> dict[str, set[str]]:
    config = load_yaml(MONITORING / "prometheus" / "prometheus.yml")
    return {
        job["job_name"]: {t for static in job["static_configs"] for t in static["targets"]}
        for job in config["scrape_configs"]
    }


def external_labels() -> dict[str, str]:
    config = load_yaml(MONITORING / "prometheus" / "prometheus.yml")
    return dict(config["global"].get("external_labels") or {})


def alertmanager_fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's id of a label set: FNV-1a 64 over the sorted names and their values,
    each followed by a 0xff byte, as 16 hex digits."""
    value = 0xCBF29CE484222325
    for name in sorted(labels):
        for byte in name.encode() + b"\xff" + labels[name].encode() + b"\xff":
            value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def alerts() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    found = []
    for path in SAMPLE_FILES:
        body = json.loads(path.read_text(encoding="utf-8"))
        found += [(path.name, body, alert) for alert in body["alerts"]]
    return found


def test_there_are_samples_to_check() -> None:
    assert len(SAMPLE_FILES) >= 4 and all(body["alerts"] for _, body, _ in alerts())


@pytest.mark.parametrize(("name", "body", "alert"), alerts(), ids=[name for name, _, _ in alerts()])
def test_sample_alert_is_what_the_projects_rules_produce(
    name: str, body: dict[str, Any], alert: dict[str, Any]
) -> None:
    labels: dict[str, str] = alert["labels"]
    rule = rules_by_name().get(labels["alertname"])
    assert rule is not None, f"{name}: no rule named {labels['alertname']}"
    expr = rule["expr"].strip()

    url = urlsplit(alert["generatorURL"])
    query = parse_qs(url.query)
    assert url.path == "/graph" and query["g0.tab"] == ["1"]
    assert query["g0.expr"] == [expr], f"{name}: generatorURL is not the rule's expression"

    targets = scrape_targets()
    assert labels["job"] in targets, f"{name}: job {labels['job']!r} is not a scrape job"
    assert labels["instance"] in targets[labels["job"]]
    for key, value in {**rule.get("labels", {}), **external_labels()}.items():
        assert labels.get(key) == value, f"{name}: label {key} should be {value!r}"
    by = _AGGREGATION.match(expr)
    kept = {n.strip() for n in by.group(1).split(",")} if by else {"instance", "job"}
    expected = {"alertname"} | kept | set(rule.get("labels", {})) | set(external_labels())
    assert set(labels) == expected, f"{name}: labels the expression cannot produce"

    summary = rule["annotations"]["summary"]
    if "$value" not in summary:
        rendered = _LABEL_TEMPLATE.sub(lambda m: labels[m.group(1)], summary)
        assert alert["annotations"]["summary"] == rendered

    runbook_url = rule["annotations"]["runbook_url"]
    assert alert["annotations"]["runbook_url"] == runbook_url.replace(
        RUNBOOK_PLACEHOLDER, LOCAL_STACK_RUNBOOKS
    )

    assert alert["fingerprint"] == alertmanager_fingerprint(labels)
    route = load_yaml(MONITORING / "alertmanager" / "alertmanager.yml")["route"]
    group = {key: labels[key] for key in route["group_by"] if key in labels}
    assert body["groupLabels"] == group
    assert (
        body["groupKey"] == "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group.items())) + "}"
    )
    assert body["commonLabels"] == labels


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_fingerprints_are_the_ones_alertmanager_computes(tmp_path: Path) -> None:
    binary = require_tool("prometheus-alertmanager", "Debian package prometheus-alertmanager")
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: none\nreceivers:\n  - name: none\n")
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
            assert time.monotonic() < deadline, "alertmanager did not become ready"
            time.sleep(0.1)
        labels = [alert["labels"] for _, _, alert in alerts()]
        posted = httpx.post(f"{base}/api/v2/alerts", json=[{"labels": ls} for ls in labels])
        assert posted.status_code == 200, posted.text
        stored = httpx.get(f"{base}/api/v2/alerts").json()
        computed = {a["fingerprint"] for a in stored}
        assert computed == {alertmanager_fingerprint(ls) for ls in labels}
        assert computed == {alert["fingerprint"] for _, _, alert in alerts()}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
