"""The scenario set itself: complete, well-formed, honest (no giveaway names, real plants)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aiops_analyzer.engines.categories import CAUSE_BY_TOPIC
from aiops_analyzer.engines.rules import FAMILIES
from aiops_eval.scenario import Scenario, ScenarioError, load_scenario

# The situations issue 7 asks for; each must be some scenario's `topic`.
REQUIRED_TOPICS = [
    "container crash loop",
    "OOM kill",
    "host CPU saturation by one process",
    "memory leak",
    "disk filling",
    "nginx down",
    "5xx burst in the logs",
    "target down because its exporter is misconfigured",
    "noisy or flapping alert",
    "evidence missing",
    "an alert name the rules engine has never seen",
    "secrets in",
    "prompt injection",
]
# Words that would hand the answer to an engine if they were in a workload's name.
GIVEAWAYS = re.compile(
    r"oom|crash|leak|disk|cpu|memory|mem|flap|down|inject|secret|error|5xx|fail|full|slow",
    re.IGNORECASE,
)
NAME_LABELS = ("name", "container", "pod", "compose_service", "service_name")


def _data(scenario: Scenario) -> str:
    """Everything the analyzer could be given: payload, recorded evidence or the world."""
    world = scenario.path / "world.yml"
    held = world.read_text(encoding="utf-8") if world.is_file() else ""
    return json.dumps(scenario.payload) + scenario.evidence.model_dump_json() + held


def test_there_are_at_least_15_scenarios(scenarios: list[Scenario]) -> None:
    assert len(scenarios) >= 15


@pytest.mark.parametrize("topic", REQUIRED_TOPICS)
def test_every_required_situation_is_covered(scenarios: list[Scenario], topic: str) -> None:
    assert any(topic.lower() in s.expected.topic.lower() for s in scenarios), topic


def test_categories_are_ones_the_rules_engine_emits(scenarios: list[Scenario]) -> None:
    known = {family.category for family in FAMILIES} | {"unknown"} | set(CAUSE_BY_TOPIC.values())
    unknown = {
        s.name: s.expected.categories for s in scenarios if set(s.expected.categories) - known
    }
    assert not unknown


def test_workload_names_do_not_give_the_answer_away(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        for label in NAME_LABELS:
            value = scenario.alert.labels.get(label, "")
            assert not GIVEAWAYS.search(value), f"{scenario.name}: {label}={value}"


def test_payloads_are_realistic_alertmanager_v4(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        payload = scenario.payload
        # A delivery is "resolved" only when every alert in it is (one alert per scenario here).
        assert payload["version"] == "4" and payload["status"] == scenario.alert.status
        assert {"receiver", "groupLabels", "commonLabels", "externalURL", "groupKey"} <= set(
            payload
        )
        assert scenario.alert.labels.get("severity"), scenario.name
        if scenario.alert.generator_url:
            query = parse_qs(urlsplit(scenario.alert.generator_url).query)
            assert query["g0.expr"][0].strip(), scenario.name


def test_planted_secrets_and_injections_are_really_in_the_data(
    scenarios: list[Scenario],
) -> None:
    planted = [s for s in scenarios if s.expected.secrets]
    injected = [s for s in scenarios if s.expected.injection]
    assert planted and injected
    for scenario in planted:
        for secret in scenario.expected.secrets:
            assert secret in _data(scenario), scenario.name
    for scenario in injected:
        data = _data(scenario).lower()
        assert any(m.lower() in data for m in scenario.expected.injection_markers)


def test_evidence_markers_come_from_the_data(scenarios: list[Scenario]) -> None:
    for scenario in scenarios:
        for marker in scenario.expected.evidence_markers:
            assert marker in _data(scenario), f"{scenario.name}: {marker}"


def test_inconclusive_scenarios_exist(scenarios: list[Scenario]) -> None:
    assert sum(s.expected.expect_inconclusive for s in scenarios) >= 1


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("payload.json", "evidence.json", "expected.yml"):
        (dst / name).write_text((src / name).read_text())
    return dst


def test_a_broken_scenario_names_its_folder_and_field(
    scenarios: list[Scenario], tmp_path: Path
) -> None:
    folder = _copy(scenarios[0].path, tmp_path / "broken")
    text = (folder / "expected.yml").read_text()
    (folder / "expected.yml").write_text(text.replace("severity:", "severity_typo:"))
    with pytest.raises(ScenarioError, match=r"broken.*severity"):
        load_scenario(folder)


def test_a_bad_fact_regex_is_rejected(scenarios: list[Scenario], tmp_path: Path) -> None:
    folder = _copy(scenarios[0].path, tmp_path / "badregex")
    (folder / "expected.yml").write_text(
        "topic: t\ncategory: unknown\nseverity: warning\nrequired_facts: [['(unclosed']]\n"
    )
    with pytest.raises(ScenarioError, match=r"required_facts\[0\].*not a valid regex"):
        load_scenario(folder)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScenarioError, match=r"payload\.json: file missing"):
        load_scenario(tmp_path / "empty")
