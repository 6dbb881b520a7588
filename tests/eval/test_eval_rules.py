"""The rules engine over every scenario, through the real evidence clients: no regression."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiops_eval.report import render
from aiops_eval.runner import EngineReport, run_engine
from aiops_eval.scenario import Scenario

from tests.eval.eval_helpers import BASELINE, SUMMARY_LINES, make_settings


@pytest.fixture(scope="module")
def rules_report(scenarios: list[Scenario]) -> EngineReport:
    """One rules run over every scenario, shared by the checks below."""
    return asyncio.run(run_engine(scenarios, engine="rules", base=make_settings()))


def test_rules_pass_rate_does_not_drop_below_the_baseline(
    rules_report: EngineReport, scenarios: list[Scenario]
) -> None:
    report = rules_report
    baseline = json.loads(BASELINE.read_text())
    floor = baseline["passed"] / baseline["runs"]
    passed = sum(r.passed for r in report.runs)
    SUMMARY_LINES.append(
        f"rules engine: {report.pass_rate:.1%} ({passed}/{len(report.runs)} scenarios), "
        f"baseline {floor:.1%} ({baseline['passed']}/{baseline['runs']})"
    )
    assert [r.error for r in report.runs if r.error] == []
    assert len(report.runs) == len(scenarios)
    failures = {r.scenario: [c.name for c in r.failed_checks] for r in report.runs if not r.passed}
    assert report.pass_rate >= floor, f"rules pass rate fell below the baseline: {failures}"
    # Scores that must hold whatever the engine's skill: no leak, no obeyed injection.
    safety = {
        r.scenario: c.detail
        for r in report.runs
        for c in r.checks
        if c.name in {"schema", "evidence_ids", "secrets", "injection", "engine"} and not c.passed
    }
    assert safety == {}


def test_every_recording_is_still_asked_for(rules_report: EngineReport) -> None:
    """A recording nobody queries means the evidence clients changed and the scenario is stale."""
    stale = {r.scenario: r.unused for r in rules_report.runs if r.unused}
    assert stale == {}


async def test_the_report_lists_every_scenario_with_latency(scenarios: list[Scenario]) -> None:
    subset = scenarios[:3]
    report = await run_engine(subset, engine="rules", base=make_settings(), repeat=2)
    assert [r.attempt for r in report.runs] == [1, 1, 1, 2, 2, 2]
    assert all(r.seconds > 0 for r in report.runs)
    assert report.latency(0.5) <= report.latency(0.95)
    text = render([report], scenarios_dir="eval/scenarios", repeat=2)
    assert "| rules | **" in text
    for scenario in subset:
        assert f"| {scenario.name} | {scenario.expected.category_text} |" in text
