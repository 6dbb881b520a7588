"""Settings for a public deployment: AIOPS_DOCS_ENABLED=false removes /docs, /redoc and
/openapi.json; AIOPS_METRICS_REQUIRE_TOKEN=true puts /metrics behind the bearer token."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiops_analyzer.core.config import Settings

from tests.service.apptools import AUTH, make_settings, running_app

DOCS = ("/docs", "/redoc", "/openapi.json")


async def test_docs_are_served_by_default_and_can_be_switched_off(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        assert [(await client.get(p)).status_code for p in DOCS] == [200, 200, 200]
    off = make_settings(tmp_path, docs_enabled=False)
    async with running_app(off, start_workers=False) as (_, client):
        assert [(await client.get(p)).status_code for p in DOCS] == [404, 404, 404]
        assert (await client.get("/healthz")).status_code == 200


async def test_metrics_public_by_default_token_when_asked(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        assert (await client.get("/metrics")).status_code == 200
    locked = make_settings(tmp_path, metrics_require_token=True)
    async with running_app(locked, start_workers=False) as (_, client):
        refused = await client.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        allowed = await client.get("/metrics", headers=AUTH)
        assert allowed.status_code == 200
        assert "aiops_" in allowed.text


def test_settings_read_the_documented_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIOPS_DOCS_ENABLED", "false")
    monkeypatch.setenv("AIOPS_METRICS_REQUIRE_TOKEN", "true")
    settings = Settings(_env_file=None, webhook_token="t")  # type: ignore[call-arg]
    assert settings.docs_enabled is False
    assert settings.metrics_require_token is True
