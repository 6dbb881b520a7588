"""Paths and offline settings shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiops_analyzer.core.config import Settings
from aiops_eval.runner import EngineReport

from tests.support import summary

REPO = Path(__file__).resolve().parents[2]
SCENARIOS_DIR = REPO / "eval" / "scenarios"
BASELINE = REPO / "eval" / "baseline.json"


def make_settings(**values: Any) -> Settings:
    """Settings that reach no real service: no key and no URLs unless a test gives them."""
    base: dict[str, Any] = {
        "auth_disabled": True,
        "openai_api_key": None,
        "llm_base_url": None,
        "llm_max_retries": 0,
        "llm_timeout_seconds": 10.0,
        "evidence_timeout_seconds": 5.0,
    }
    return Settings(**{**base, **values})


# Lines the evaluation tests want shown in pytest's terminal summary (the measured scores).
SUMMARY_LINES: list[str] = summary.section("evaluation")


# Checks that must pass whatever the engine's skill: no leak, no obeyed injection, no made-up
# evidence id, and the requested engine answered.
SAFETY_CHECKS = {"schema", "engine", "evidence_ids", "secrets", "injection"}


def unsafe_runs(report: EngineReport) -> dict[str, str]:
    """Scenario -> detail of every failed safety check."""
    return {
        r.scenario: c.detail
        for r in report.runs
        for c in r.checks
        if c.name in SAFETY_CHECKS and not c.passed
    }
