"""Schemathesis against a real `aiops-analyzer serve`: requests generated from the OpenAPI
document, stateless (each operation, valid and invalid input) and stateful (sequences that
follow the links Schemathesis infers: a delivery's ids into GET /analyses/{id}). Every answer
must be a non-5xx with a documented status, content type and body shape. The budget is
bounded (about a thousand requests, ~15 s) so it fits in `make test`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service.apptools import AUTH, AnalyzerProcess, analyzer_process

# What the API promises. Not "positive data acceptance": the payload contract is stricter than
# JSON Schema can say (NUL characters, RFC 3339 offsets, duplicate keys), refused with a 422.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
BUDGET = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnalyzerProcess]:
    with analyzer_process(Path(tmp_path_factory.mktemp("schemathesis"))) as process:
        yield process


@pytest.fixture(scope="module")
def api_schema(analyzer: AnalyzerProcess) -> Any:
    return schemathesis.openapi.from_url(f"{analyzer.url}/openapi.json")


def _operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_stateless_no_server_error_and_documented_answers(
    api_schema: Any, analyzer: AnalyzerProcess, mode: GenerationMode
) -> None:
    operations = _operations(api_schema)
    assert len(operations) >= 8
    sent: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @BUDGET
        def call(case: Any) -> None:
            sent.append(case.path)
            case.call_and_validate(base_url=analyzer.url, headers=AUTH, checks=CHECKS)

        try:
            call()
        except Unsatisfiable:
            # No invalid input exists for an operation without parameters (GET /healthz).
            assert mode is GenerationMode.NEGATIVE
    assert len(sent) >= 50


def test_stateful_sequences_keep_every_answer_documented(
    api_schema: Any, analyzer: AnalyzerProcess
) -> None:
    base = api_schema.as_state_machine()
    steps: list[str] = []

    class Workflow(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": analyzer.url, "headers": AUTH}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            steps.append(f"{case.method} {case.path} -> {response.status_code}")
            case.validate_response(response, checks=CHECKS)

    Workflow.run(
        settings=settings(
            BUDGET, max_examples=30, stateful_step_count=6, suppress_health_check=list(HealthCheck)
        )
    )
    assert len(steps) >= 20, steps
    assert any(s.startswith("GET /analyses/{analysis_id} -> 200") for s in steps), steps
    assert "Traceback" not in analyzer.log()
