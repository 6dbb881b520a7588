"""Loki, its LogQL alert rules and Alloy: no validator runs here, so check their structure.

Loki's and Alloy's binaries are not installable on this machine. The configs are parsed and
checked for the keys each tool requires, and the LogQL rules as far as promtool can read
them: their stream selectors are PromQL selectors, and with the log pipelines removed their
metric expressions are PromQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from aiops_analyzer.evidence.loki import stream_selectors
from aiops_analyzer.evidence.target import scope
from aiops_analyzer.schemas import Alert

from tests.monitoring import logql
from tests.monitoring.files import (
    LOKI_RULES,
    MONITORING,
    PROMETHEUS_DIR,
    RUNBOOK_BASE_URL,
    AlertRule,
    alert_rules,
    load_yaml,
    promtool_check_expressions,
)
from tests.support.tools import require_tool

LOKI_CONFIG = MONITORING / "loki" / "config.yml"
ALLOY_CONFIG = MONITORING / "alloy" / "config.alloy"

# Top-level blocks of Loki 3's configuration file that this config may use.
LOKI_TOP_LEVEL = {
    "auth_enabled",
    "server",
    "common",
    "schema_config",
    "storage_config",
    "limits_config",
    "compactor",
    "ruler",
    "query_range",
    "frontend",
    "ingester",
    "pattern_ingester",
    "analytics",
}


def test_loki_is_a_single_binary_with_tsdb_v13_on_the_filesystem() -> None:
    config = load_yaml(LOKI_CONFIG)
    assert set(config) <= LOKI_TOP_LEVEL, sorted(set(config) - LOKI_TOP_LEVEL)
    assert config["auth_enabled"] is False
    assert config["server"]["http_listen_port"] == 3100
    assert config["common"]["replication_factor"] == 1
    assert config["common"]["ring"]["kvstore"]["store"] == "inmemory"
    (schema,) = config["schema_config"]["configs"]
    assert (schema["store"], schema["schema"], schema["object_store"]) == (
        "tsdb",
        "v13",
        "filesystem",
    )
    assert schema["index"]["period"] == "24h"  # TSDB requires 24h index periods


def test_loki_retention_runs_in_the_compactor() -> None:
    config = load_yaml(LOKI_CONFIG)
    compactor = config["compactor"]
    assert compactor["retention_enabled"] is True
    # Loki 3 refuses to start with retention but without a delete request store.
    assert compactor["delete_request_store"] == "filesystem"
    assert re.fullmatch(r"\d+h", config["limits_config"]["retention_period"])
    # Removed in Loki 3.0; their presence stops the process at start.
    text = LOKI_CONFIG.read_text(encoding="utf-8")
    for removed in ("shared_store", "boltdb_shipper", "enforce_metric_name"):
        assert removed not in text


def test_loki_ruler_reads_the_rules_and_alerts_through_alertmanager() -> None:
    ruler = load_yaml(LOKI_CONFIG)["ruler"]
    assert ruler["storage"] == {"type": "local", "local": {"directory": "/etc/loki/rules"}}
    assert ruler["alertmanager_url"] == "http://alertmanager:9093"
    assert ruler["enable_api"] is True
    # Without auth Loki's tenant is "fake": the rule files must sit in that directory.
    assert LOKI_RULES and all(path.parent.name == "fake" for path in LOKI_RULES)


def test_log_alert_rules_have_the_prometheus_rule_structure() -> None:
    rules = alert_rules(LOKI_RULES)
    assert len(rules) >= 2
    for rule in rules:
        assert rule.severity in {"critical", "warning", "info"}, rule.name
        assert set(rule.annotations) >= {"summary", "description", "runbook_url"}, rule.name
        assert rule.annotations["runbook_url"] == f"{RUNBOOK_BASE_URL}{rule.name}.md"
        assert rule.for_, f"{rule.name}: a log burst needs a for: to not flap"


@pytest.mark.parametrize("rule", alert_rules(LOKI_RULES), ids=lambda r: r.name)
def test_logql_pipelines_use_known_stages_and_alloy_labels(rule: AlertRule) -> None:
    query = logql.parse(rule.expr)
    assert logql.problems(query) == [], rule.name


def test_logql_selectors_and_metric_structure_parse_with_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "Debian package prometheus")
    shapes = [logql.parse(rule.expr).promql_shape for rule in alert_rules(LOKI_RULES)]
    result = promtool_check_expressions(promtool, tmp_path, shapes)
    assert result.returncode == 0, result.stdout + result.stderr + "\n".join(shapes)


# --- Alloy -------------------------------------------------------------------------------


def alloy_source() -> str:
    """The config without comments, strings kept (a "//" in a URL is not a comment)."""
    text = ALLOY_CONFIG.read_text(encoding="utf-8")
    return re.sub(r'("(?:[^"\\]|\\.)*")|//[^\n]*', lambda m: m.group(1) or "", text)


def alloy_components(source: str) -> dict[str, str]:
    """Top-level components as {"kind.label": body}; raises on unbalanced braces."""
    components: dict[str, str] = {}
    position = 0
    header = re.compile(r'\s*([a-z_]+(?:\.[a-z_]+)+)\s+"([a-z0-9_]+)"\s*\{')
    while position < len(source.rstrip()):
        match = header.match(source, position)
        assert match, f"unexpected Alloy syntax at: {source[position : position + 60]!r}"
        depth, index, in_string = 1, match.end(), False
        while depth:
            assert index < len(source), f"unbalanced braces in {match.group(1)}"
            char = source[index]
            if char == '"' and source[index - 1] != "\\":
                in_string = not in_string
            elif not in_string:
                depth += {"{": 1, "}": -1}.get(char, 0)
            index += 1
        components[f"{match.group(1)}.{match.group(2)}"] = source[match.end() : index - 1]
        position = index
    return components


def test_alloy_pipeline_discovers_labels_processes_and_writes_to_loki() -> None:
    source = alloy_source()
    components = alloy_components(source)
    kinds = {name.rsplit(".", 1)[0] for name in components}
    assert kinds == {
        "discovery.docker",
        "discovery.relabel",
        "loki.source.docker",
        "loki.process",
        "loki.relabel",
        "loki.source.journal",
        "loki.write",
    }
    # Every source ends in the one Loki writer (directly or through loki.process).
    for name in ("loki.source.journal.host", "loki.process.levels"):
        assert re.search(r"forward_to\s*=\s*\[loki\.write\.loki\.receiver\]", components[name])
    # Every reference to another component's export names a declared component.
    references = re.findall(r"\b((?:discovery|loki)\.[a-z_]+\.[a-z0-9_]+)\.[a-z_]+\b", source)
    assert references
    for reference in references:
        assert reference in components, f"{reference} is not declared"


def test_alloy_labels_container_service_stack_and_level() -> None:
    components = alloy_components(alloy_source())
    (relabel,) = [body for name, body in components.items() if name.startswith("discovery.relabel")]
    rules = dict(
        re.findall(r'source_labels\s*=\s*\["([^"]+)"\][^}]*?target_label\s*=\s*"([^"]+)"', relabel)
    )
    assert rules == {
        "__meta_docker_container_name": "container",
        "__meta_docker_container_label_com_docker_compose_service": "service",
        "__meta_docker_container_label_com_aiops_service": "service",
        "__meta_docker_container_label_com_aiops_stack": "stack",
    }
    assert re.search(r'regex\s*=\s*"/\(\.\*\)"', relabel)  # Docker's leading slash goes
    (process,) = [body for name, body in components.items() if name.startswith("loki.process")]
    assert "stage.json" in process
    assert re.search(r"stage\.labels\s*\{\s*values\s*=\s*\{\s*level\s*=", process)
    journal = components["loki.source.journal.host"]
    stream_labels = (
        set(re.findall(r"target_label\s*=\s*\"([a-z_]+)\"", relabel))
        | {"level"}
        | {target for _, target in journal_rules(components)}
        | set(journal_constant_labels(journal))
    )
    assert stream_labels == logql.ALLOY_STREAM_LABELS


def test_alloy_writes_to_the_loki_push_endpoint() -> None:
    components = alloy_components(alloy_source())
    (write,) = [body for name, body in components.items() if name.startswith("loki.write")]
    assert re.findall(r'url\s*=\s*"([^"]+)"', write) == ["http://loki:3100/loki/api/v1/push"]
    (source,) = [b for n, b in components.items() if n.startswith("loki.source.docker")]
    assert re.search(r'host\s*=\s*"unix:///var/run/docker.sock"', source)


# --- Alloy: the host's systemd journal ----------------------------------------------------
# Prometheus relabelling as Alloy applies it to each journal entry: the `replace` action with
# a fully anchored regex; an empty result removes the target label.
RelabelRule = tuple[str, str, str, str]  # (source label, regex, target label, replacement)

# Journal fields of two entries as loki.source.journal exposes them (`__journal_` + the
# lower-cased field name, plus the priority's keyword): a kernel line and a unit's line.
KERNEL_ENTRY = {
    "__journal__transport": "kernel",
    "__journal__hostname": "web-1",
    "__journal_priority": "4",
    "__journal_priority_keyword": "warning",
    "__journal_syslog_identifier": "kernel",
}
UNIT_ENTRY = {
    "__journal__transport": "journal",
    "__journal__hostname": "web-1",
    "__journal__systemd_unit": "earlyoom.service",
    "__journal_priority": "3",
    "__journal_priority_keyword": "error",
}


def journal_rules(components: dict[str, str]) -> list[tuple[str, str]]:
    """(source label, target label) of every rule the journal source applies, in order."""
    return [(rule[0], rule[2]) for rule in journal_relabel_rules(components)]


def journal_relabel_rules(components: dict[str, str]) -> list[RelabelRule]:
    journal = components["loki.source.journal.host"]
    reference = re.search(r"relabel_rules\s*=\s*loki\.relabel\.([a-z_]+)\.rules", journal)
    assert reference, "loki.source.journal must take its rules from a loki.relabel"
    body = components[f"loki.relabel.{reference.group(1)}"]
    rules: list[RelabelRule] = []
    for block in re.findall(r"rule\s*\{([^{}]*)\}", body):
        attributes = dict(re.findall(r'([a-z_]+)\s*=\s*\[?"([^"]*)"\]?', block))
        assert set(attributes) <= {"source_labels", "regex", "target_label", "replacement"}
        rules.append(
            (
                attributes["source_labels"],
                attributes.get("regex", "(.*)"),
                attributes["target_label"],
                attributes.get("replacement", "$1"),
            )
        )
    return rules


def journal_constant_labels(journal: str) -> dict[str, str]:
    block = re.search(r"\blabels\s*=\s*\{([^{}]*)\}", journal)
    assert block, "loki.source.journal sets no labels"
    return dict(re.findall(r'([a-z_]+)\s*=\s*"([^"]*)"', block.group(1)))


def journal_stream(entry: dict[str, str]) -> dict[str, str]:
    """The stream labels Alloy gives `entry`: constant labels, rules, `__` labels dropped."""
    components = alloy_components(alloy_source())
    labels = {**entry, **journal_constant_labels(components["loki.source.journal.host"])}
    for source, regex, target, replacement in journal_relabel_rules(components):
        match = re.fullmatch(regex, labels.get(source, ""))
        if not match:
            continue
        value = match.expand(replacement.replace("$1", r"\1"))
        if value:
            labels[target] = value
        else:
            labels.pop(target, None)
    return {key: value for key, value in labels.items() if not key.startswith("__")}


def selects(selector: str, stream: dict[str, str]) -> bool:
    """Whether a LogQL stream selector of equality matchers selects `stream`."""
    body = selector.strip()
    assert body.startswith("{") and body.endswith("}"), selector
    matchers = re.findall(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?', body[1:-1])
    assert matchers, selector
    return all(stream.get(label) == value for label, value in matchers)


def node_exporter_instance() -> tuple[str, str]:
    """(job, instance) of the node-exporter scrape target of the local stack's Prometheus."""
    (job,) = [
        job
        for job in load_yaml(PROMETHEUS_DIR / "prometheus.yml")["scrape_configs"]
        if job["job_name"] == "node-exporter"
    ]
    (target,) = job["static_configs"][0]["targets"]
    return job["job_name"], target


def test_journal_entries_get_unit_host_level_and_transport() -> None:
    kernel, unit = journal_stream(KERNEL_ENTRY), journal_stream(UNIT_ENTRY)
    _, instance = node_exporter_instance()
    assert kernel == {
        "job": "systemd-journal",
        "instance": instance,
        "host": "web-1",
        "unit": "kernel",
        "level": "warning",
        "transport": "kernel",
    }
    assert unit == {**kernel, "unit": "earlyoom.service", "level": "error", "transport": "journal"}


def test_journal_read_back_is_bounded() -> None:
    journal = alloy_components(alloy_source())["loki.source.journal.host"]
    max_age = re.search(r'max_age\s*=\s*"(\d+)h"', journal)
    assert max_age and 1 <= int(max_age.group(1)) <= 24


@pytest.mark.parametrize(
    "rule", alert_rules([PROMETHEUS_DIR / "rules" / "host.yml"]), ids=lambda r: r.name
)
def test_analyzer_host_selectors_find_the_journal(rule: AlertRule) -> None:
    """A host alert from node-exporter, as the analyzer would get it: one of the selectors it
    sends to Loki selects the journal's kernel lines and units' lines."""
    job, instance = node_exporter_instance()
    alert = Alert(
        fingerprint="0123456789abcdef",
        status="firing",
        labels={"alertname": rule.name, "job": job, "instance": instance, **rule.labels},
        starts_at=datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
        generator_url=f"http://prometheus:9090/graph?g0.expr={quote(rule.expr)}&g0.tab=1",
    )
    assert scope(alert) == "host"
    selectors = stream_selectors(alert)
    for entry in (KERNEL_ENTRY, UNIT_ENTRY):
        stream = journal_stream(entry)
        assert any(selects(selector, stream) for selector in selectors), (selectors, stream)


def local_scrape_targets() -> list[tuple[str, str]]:
    """(job, target) of every scrape target of the local stack's Prometheus."""
    return [
        (job["job_name"], target)
        for job in load_yaml(PROMETHEUS_DIR / "prometheus.yml")["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]


@pytest.mark.parametrize(("job", "target"), local_scrape_targets(), ids=lambda v: str(v))
def test_analyzer_selectors_find_a_scrape_targets_container_logs(job: str, target: str) -> None:
    """`up{job=...} == 0` as the analyzer gets it: Alloy files the target's container logs under
    its service (the network alias the scrape target names), with no `job` label, and one of
    the selectors the analyzer sends selects that stream."""
    service = target.rsplit(":", 1)[0]
    # What Alloy's relabel rules (test_alloy_labels_container_service_stack_and_level) make of
    # a local-stack container: Docker name, the com.aiops.service label, the stack label.
    stream = {"container": f"aiops-local-{service}", "service": service, "stack": "local"}
    alert = Alert(
        fingerprint="0123456789abcdef",
        status="firing",
        labels={"alertname": "TargetDown", "job": job, "instance": target, "severity": "critical"},
        starts_at=datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
        generator_url="http://prometheus:9090/graph?g0.expr=" + quote(f'up{{job="{job}"}} == 0'),
    )
    selectors = stream_selectors(alert)
    assert any(selects(selector, stream) for selector in selectors), (selectors, stream)


def test_an_ip_address_target_is_no_service_name() -> None:
    alert = Alert(
        fingerprint="0123456789abcdef",
        status="firing",
        labels={"alertname": "TargetDown", "job": "payments", "instance": "10.0.4.12:8000"},
        starts_at=datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
        generator_url="http://prometheus:9090/graph?g0.expr=" + quote("up == 0"),
    )
    selectors = stream_selectors(alert)
    assert selectors[:2] == ['{job="payments"}', '{service="payments"}']
    assert '{service="10.0.4.12"}' not in selectors
    # A scrape target down: its host's journal by address (why it stopped answering).
    assert selectors[2:4] == ['{instance="10.0.4.12:8000"}', '{host="10.0.4.12"}']
    # Known only by address: its job's systemd unit, on whichever machine runs it.
    assert selectors[4:] == ['{unit="payments.service"}']
