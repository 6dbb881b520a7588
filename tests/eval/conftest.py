"""Fixtures of the evaluation tests."""

from __future__ import annotations

import pytest
from aiops_eval.scenario import Scenario, load_scenarios

from tests.eval.eval_helpers import SCENARIOS_DIR


@pytest.fixture(scope="session")
def scenarios() -> list[Scenario]:
    return load_scenarios(SCENARIOS_DIR)
