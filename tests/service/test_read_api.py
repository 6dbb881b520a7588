"""GET /analyses, GET /analyses/{id}, /healthz, /readyz, /metrics and /docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from tests.service.apptools import AUTH, WEBHOOK, make_settings, payload, running_app

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("each_store")


async def test_list_is_newest_first_filtered_and_paginated(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        firing = (await client.post(WEBHOOK, json=payload(count=5), headers=AUTH)).json()
        other = payload(alertname="HighMemoryUsage", fingerprint="other")
        await client.post(WEBHOOK, json=other, headers=AUTH)
        await client.post(WEBHOOK, json=payload(status="resolved", count=5), headers=AUTH)

        page = (await client.get("/analyses", params={"limit": 3}, headers=AUTH)).json()
        assert page["total"] == 11 and len(page["items"]) == 3 and page["next_offset"] == 3
        ids = [item["id"] for item in page["items"]]
        assert ids == sorted(ids, reverse=True)

        last = (
            await client.get("/analyses", params={"limit": 3, "offset": 9}, headers=AUTH)
        ).json()
        assert len(last["items"]) == 2 and last["next_offset"] is None

        by_name = (
            await client.get("/analyses", params={"alertname": "HighMemoryUsage"}, headers=AUTH)
        ).json()
        assert [item["alertname"] for item in by_name["items"]] == ["HighMemoryUsage"]

        by_status = (
            await client.get("/analyses", params={"status": "firing", "limit": 500}, headers=AUTH)
        ).json()
        assert by_status["total"] == 6
        assert set(firing["analysis_ids"]) <= {item["id"] for item in by_status["items"]}

        future = (
            await client.get("/analyses", params={"since": "2999-01-01T00:00:00Z"}, headers=AUTH)
        ).json()
        assert future["total"] == 0

        pending = (await client.get("/analyses", params={"state": "pending"}, headers=AUTH)).json()
        assert pending["total"] == 11


async def test_detail_and_404_naming_the_id(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        [analysis_id] = (await client.post(WEBHOOK, json=payload(), headers=AUTH)).json()[
            "analysis_ids"
        ]
        detail = await client.get(f"/analyses/{analysis_id}", headers=AUTH)
        assert detail.status_code == 200
        body = detail.json()
        assert body["id"] == analysis_id and body["job"]["state"] == "pending"
        assert body["starts_at"] == "2026-11-28T10:00:00Z"
        missing = await client.get("/analyses/424242", headers=AUTH)
        assert missing.status_code == 404
        assert missing.json()["detail"] == "analysis 424242 not found"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/analyses", {"limit": "0"}),
        ("/analyses", {"limit": "100000"}),
        ("/analyses", {"offset": "-1"}),
        ("/analyses", {"status": "on-fire"}),
        ("/analyses", {"since": "last tuesday"}),
        ("/analyses/abc", {}),
        ("/analyses/0", {}),
        ("/analyses/99999999999999999999999999", {}),
    ],
)
async def test_invalid_queries_are_422_naming_the_parameter(
    tmp_path: Path, path: str, params: dict[str, str]
) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        response = await client.get(path, params=params, headers=AUTH)
        assert response.status_code == 422
        name = next(iter(params), "analysis_id")
        assert name in response.json()["detail"]


async def test_reading_analyses_needs_the_token(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        assert (await client.get("/analyses")).status_code == 401
        assert (await client.get("/analyses/1")).status_code == 401


async def test_health_and_readiness(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path, workers=3)) as (_, client):
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/health")).json() == {"status": "ok"}  # for Cloud Run
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["workers_alive"] == 3 and ready.json()["store"] == "ok"


async def test_not_ready_without_workers(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["workers_alive"] == 0
        assert (await client.get("/healthz")).status_code == 200  # Liveness is not readiness.


async def test_not_ready_when_the_store_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(make_settings(tmp_path)) as (app, client):

        def broken_ping() -> bool:
            raise OperationalError("SELECT 1", {}, Exception("disk I/O error"))

        monkeypatch.setattr(app.state.store, "ping", broken_ping)
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert "store unreachable" in response.json()["store"]


async def test_metrics_expose_the_contract_names(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as (_, client):
        await client.post(WEBHOOK, json=payload(), headers=AUTH)
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
        for name in (
            "aiops_webhook_requests_total",
            "aiops_alerts_received_total",
            "aiops_alerts_duplicate_total",
            "aiops_alerts_truncated_total",
            "aiops_analyses_total",
            "aiops_analysis_duration_seconds_bucket",
            "aiops_llm_requests_total",
            "aiops_llm_budget_exhausted_total",
            "aiops_llm_tokens_total",
            "aiops_llm_cost_usd_total",
            "aiops_queue_depth",
            "aiops_workers_alive",
        ):
            assert f"\n{name}" in text, name
        # Families that only get series when something happens still declare their type.
        assert "# TYPE aiops_llm_fallbacks_total counter" in text
        assert "# TYPE aiops_notifications_total counter" in text
        assert "aiops_workers_alive 2.0" in text


async def test_openapi_documents_the_endpoints_and_the_payload(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        spec = (await client.get("/openapi.json")).json()
        for path in ("/webhook/alertmanager", "/analyses", "/analyses/{analysis_id}", "/readyz"):
            assert path in spec["paths"]
        body = spec["paths"]["/webhook/alertmanager"]["post"]["requestBody"]
        ref = body["content"]["application/json"]["schema"]["$ref"]
        payload_schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert "truncatedAlerts" in payload_schema["properties"]
        assert "AlertmanagerAlert" in spec["components"]["schemas"]
        assert (await client.get("/docs")).status_code == 200
