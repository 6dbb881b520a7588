"""The held-out scenarios (eval/holdout): written blind to the rules engine's heuristics.

eval/scenarios existed while the rules engine was tuned, so its score there is a regression
floor. These scenarios were written afterwards without reading the engine, so the rules pass
rate here estimates how it generalises; it must not drop below eval/holdout/baseline.json.
The llm path is scored against the same loopback model as eval/scenarios.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiops_eval.runner import EngineReport, run_engine
from aiops_eval.scenario import Scenario, load_scenarios

from tests.eval.eval_helpers import REPO, SUMMARY_LINES, make_settings, unsafe_runs
from tests.eval.fake_model import FakeModel
from tests.eval.test_eval_llm import llm_settings

HOLDOUT_DIR = REPO / "eval" / "holdout"
HOLDOUT_BASELINE = HOLDOUT_DIR / "baseline.json"


@pytest.fixture(scope="module")
def holdout() -> list[Scenario]:
    return load_scenarios(HOLDOUT_DIR)


@pytest.fixture(scope="module")
def holdout_rules_report(holdout: list[Scenario]) -> EngineReport:
    return asyncio.run(run_engine(holdout, engine="rules", base=make_settings()))


def test_the_holdout_set_is_separate_from_the_tuning_set(holdout: list[Scenario]) -> None:
    tuning = {s.name for s in load_scenarios(REPO / "eval" / "scenarios")}
    assert len(holdout) >= 8
    assert {s.name for s in holdout}.isdisjoint(tuning)


def test_rules_holdout_pass_rate_does_not_drop_below_its_baseline(
    holdout_rules_report: EngineReport, holdout: list[Scenario]
) -> None:
    report = holdout_rules_report
    baseline = json.loads(HOLDOUT_BASELINE.read_text())
    assert baseline["runs"] == len(holdout), "eval/holdout/baseline.json counts other scenarios"
    floor = baseline["passed"] / baseline["runs"]
    passed = sum(r.passed for r in report.runs)
    SUMMARY_LINES.append(
        f"rules engine on held-out scenarios: {report.pass_rate:.1%} "
        f"({passed}/{len(report.runs)}), baseline {floor:.1%}"
    )
    assert [r.error for r in report.runs if r.error] == []
    assert len(report.runs) == len(holdout)
    failures = {r.scenario: [c.name for c in r.failed_checks] for r in report.runs if not r.passed}
    assert report.pass_rate >= floor, f"held-out pass rate fell below the baseline: {failures}"
    assert unsafe_runs(report) == {}


def test_every_holdout_recording_is_still_asked_for(holdout_rules_report: EngineReport) -> None:
    stale = {r.scenario: r.unused for r in holdout_rules_report.runs if r.unused}
    assert stale == {}


async def test_the_llm_path_passes_the_holdout_set_end_to_end(holdout: list[Scenario]) -> None:
    """A model that answers what the scenario expects passes: the expectations are reachable,
    and every prompt carried its evidence markers and none of the planted secrets."""
    with FakeModel(holdout) as model:
        report = await run_engine(holdout, engine="llm", base=llm_settings(model))
    assert model.violations == []
    assert sorted(model.answered) == sorted(s.name for s in holdout)
    failures = {r.scenario: r.failed_checks or r.error for r in report.runs if not r.passed}
    assert failures == {}


async def test_a_model_that_obeys_the_holdout_injection_fails(holdout: list[Scenario]) -> None:
    injected = [s for s in holdout if s.expected.injection]
    assert injected, "the held-out set must plant an injection"
    with FakeModel(injected, misbehave=True) as model:
        report = await run_engine(injected, engine="llm", base=llm_settings(model))
    failed = {r.scenario: {c.name for c in r.failed_checks} for r in report.runs}
    assert all("injection" in failed[s.name] for s in injected), failed


async def test_secrets_a_model_echoes_are_redacted_before_the_answer_is_stored(
    holdout: list[Scenario],
) -> None:
    """The held-out secrets have well-known shapes (GitHub token, AWS key pair, JWT): when a
    model repeats them, the analyzer's scrubbing of the answer must remove every one."""
    planted = [s for s in holdout if s.expected.secrets]
    assert planted, "the held-out set must plant secrets"
    with FakeModel(planted, misbehave=True) as model:
        report = await run_engine(planted, engine="llm", base=llm_settings(model))
    for run in report.runs:
        assert run.result is not None and run.result.engine == "llm", run.scenario
        stored = run.result.model_dump_json()
        scenario = next(s for s in planted if s.name == run.scenario)
        assert [x[:4] for x in scenario.expected.secrets if x in stored] == [], run.scenario
        assert "[REDACTED" in stored, f"{run.scenario}: the model's echo should be redacted"
        assert "secrets" not in {c.name for c in run.failed_checks}
