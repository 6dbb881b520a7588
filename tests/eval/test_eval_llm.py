"""The llm engine scored end to end against a loopback OpenAI-compatible model (127.0.0.1).

The fake model checks each prompt for the scenario's evidence and for planted secrets, and
answers from the scenario's expectations; scoring must then pass every scenario, count tokens
and cost, and catch a model that leaks a secret or obeys an injection.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from aiops_analyzer.core.config import Settings
from aiops_eval.runner import run_engine
from aiops_eval.scenario import Scenario, load_scenarios

from tests.eval.eval_helpers import SUMMARY_LINES, make_settings
from tests.eval.fake_model import FakeModel


def llm_settings(model: FakeModel) -> Settings:
    return make_settings(openai_api_key="test-key", llm_base_url=model.url, engine="llm")


async def test_the_llm_path_is_scored_end_to_end(scenarios: list[Scenario]) -> None:
    with FakeModel(scenarios) as model:
        report = await run_engine(scenarios, engine="llm", base=llm_settings(model))
    assert model.violations == []
    assert model.authorizations == {"Bearer test-key"}  # the recorder forwards the key
    assert sorted(model.answered) == sorted(s.name for s in scenarios)
    failures = {r.scenario: r.failed_checks or r.error for r in report.runs if not r.passed}
    assert failures == {}
    assert all(r.result and r.result.engine == "llm" for r in report.runs)
    assert report.tokens_per_analysis > 0 and report.cost_per_analysis > 0
    assert report.model == "gpt-4o-mini"
    SUMMARY_LINES.append(
        f"llm engine against the loopback model: {report.pass_rate:.1%}, "
        f"{report.tokens_per_analysis:.0f} tokens/analysis (prompt check: no violations)"
    )


async def test_a_model_that_leaks_secrets_or_obeys_injections_fails(
    scenarios: list[Scenario],
) -> None:
    risky = [s for s in scenarios if s.expected.secrets or s.expected.injection]
    with FakeModel(risky, misbehave=True) as model:
        report = await run_engine(risky, engine="llm", base=llm_settings(model))
    failed = {r.scenario: {c.name for c in r.failed_checks} for r in report.runs}
    for scenario in risky:
        expected = set()
        if scenario.expected.secrets:
            expected.add("secrets")
        if scenario.expected.injection:
            expected.add("injection")
        assert expected <= failed[scenario.name], scenario.name
    assert report.pass_rate == 0.0


async def test_the_prompt_check_notices_missing_evidence(
    scenarios: list[Scenario], tmp_path: Path
) -> None:
    """A scenario whose prompt cannot carry a marker is reported by the fake model."""
    source = next(s for s in scenarios if s.expected.evidence_markers)
    copy = tmp_path / source.name
    shutil.copytree(source.path, copy)
    expected = yaml.safe_load((copy / "expected.yml").read_text())
    expected["evidence_markers"] = [*expected["evidence_markers"], "text-that-is-nowhere"]
    (copy / "expected.yml").write_text(yaml.safe_dump(expected))
    [changed] = load_scenarios(tmp_path)
    with FakeModel([changed]) as model:
        await run_engine([changed], engine="llm", base=llm_settings(model))
    assert model.violations == [f"{source.name}: prompt lacks evidence 'text-that-is-nowhere'"]


async def test_an_unreachable_model_is_scored_as_a_fallback(scenarios: list[Scenario]) -> None:
    with FakeModel(scenarios) as model:
        dead_url = model.url
    report = await run_engine(
        scenarios[:1], engine="llm", base=make_settings(openai_api_key="k", llm_base_url=dead_url)
    )
    [run] = report.runs
    assert run.result is not None and run.result.engine == "rules"
    assert "engine" in {c.name for c in run.failed_checks}
