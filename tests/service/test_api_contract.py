"""The API answers what its OpenAPI document says: one error shape (ErrorResponse) for every
4xx/5xx, 401 documented where a token is needed, strict times in queries, and no server paths
in evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiops_analyzer.api.errors import ErrorResponse
from aiops_analyzer.evidence import runbooks
from aiops_analyzer.schemas import Alert

from tests.service.apptools import AUTH, WEBHOOK, make_settings, running_app


async def _spec(tmp_path: Path) -> dict[str, Any]:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        spec: dict[str, Any] = (await client.get("/openapi.json")).json()
    return spec


async def test_every_documented_error_is_an_error_response(tmp_path: Path) -> None:
    spec = await _spec(tmp_path)
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    documented = 0
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            for code, response in operation["responses"].items():
                if code[0] in "45" and path != "/readyz":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, code)
                    documented += 1
    assert documented >= 10
    for path in ("/analyses", "/analyses/{analysis_id}"):
        assert "401" in spec["paths"][path]["get"]["responses"]


async def test_every_operation_that_answers_401_declares_the_bearer_scheme(
    tmp_path: Path,
) -> None:
    spec = await _spec(tmp_path)
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    guarded = []
    settings = make_settings(tmp_path, metrics_require_token=True)  # /metrics: 401 when asked
    async with running_app(settings, start_workers=False) as (_, client):
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                if "401" not in operation["responses"] or "{" in path:
                    continue
                answer = await client.request(method, path, json={})  # no token
                assert answer.status_code == 401, (method, path)
                assert operation.get("security") == [{"HTTPBearer": []}], (method, path)
                guarded.append(path)
    assert "/webhook/alertmanager" in guarded and "/analyses" in guarded


async def test_error_bodies_match_the_documented_shape(tmp_path: Path) -> None:
    fields = set(ErrorResponse.model_fields)
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        answers = [
            await client.post(WEBHOOK, json={"alerts": []}, headers=AUTH),  # 422
            await client.get("/analyses?limit=0", headers=AUTH),  # 422
            await client.get("/analyses"),  # 401
            await client.get("/analyses/999", headers=AUTH),  # 404
        ]
    assert [a.status_code for a in answers] == [422, 422, 401, 404]
    for answer in answers:
        body = answer.json()
        assert set(body) <= fields, body
        ErrorResponse.model_validate(body)


@pytest.mark.parametrize("since", ["0.5", "1764324000", "2026-11-28", "yesterday"])
async def test_since_must_be_an_rfc3339_time(tmp_path: Path, since: str) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        answer = await client.get("/analyses", params={"since": since}, headers=AUTH)
        assert answer.status_code == 422
        assert "since" in answer.json()["detail"]
        good = await client.get("/analyses", params={"since": "2026-11-28T10:00:00Z"}, headers=AUTH)
        assert good.status_code == 200


def test_runbook_evidence_does_not_reveal_the_servers_paths(tmp_path: Path) -> None:
    directory = tmp_path / "srv" / "secret-layout" / "runbooks"
    directory.mkdir(parents=True)
    (directory / "DiskFull.md").write_text("# DiskFull\nFree some space.\n")
    settings = make_settings(tmp_path, runbooks_dir=directory)
    alert = Alert(
        fingerprint="f",
        status="firing",
        labels={"alertname": "DiskFull"},
        annotations={},
        starts_at="2026-11-28T10:00:00Z",
        generator_url="",
    )
    [item] = runbooks.collect(alert, settings)
    assert item.query == "runbooks/DiskFull.md"
    assert str(tmp_path) not in item.model_dump_json()
