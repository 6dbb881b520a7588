"""Fixtures of the evaluation tests."""

from __future__ import annotations

import pytest
from aiops_eval.scenario import Scenario, load_scenarios

from tests.eval.eval_helpers import SCENARIOS_DIR


@pytest.fixture(scope="session")
def scenarios() -> list[Scenario]:
    return load_scenarios(SCENARIOS_DIR)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Show the measured scores after the run, so `make test` reports the pass rate."""
    from tests.eval.eval_helpers import SUMMARY_LINES

    if SUMMARY_LINES:
        terminalreporter.section("evaluation")
        for line in SUMMARY_LINES:
            terminalreporter.write_line(line)
