"""Almost-right requests get precise answers: typos in query parameters, a token without its
scheme, a trailing slash in the webhook URL; and list pages stay small."""

from __future__ import annotations

import re
from pathlib import Path

from tests.service.apptools import (
    AUTH,
    TOKEN,
    WEBHOOK,
    make_settings,
    payload,
    running_app,
    wait_until,
)


async def test_unknown_query_parameters_are_422_naming_them(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        response = await client.get(
            "/analyses", params={"stauts": "firing", "limit": 5, "zzz": 1}, headers=AUTH
        )
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail.startswith("unknown query parameters: stauts, zzz (accepted: ")
        assert "status" in detail and "alertname" in detail
        one = await client.get("/analyses/1", params={"verbose": "1"}, headers=AUTH)
        assert one.status_code == 422 and "verbose" in one.json()["detail"]
        # Known parameters still work.
        ok = await client.get("/analyses", params={"status": "firing", "limit": 5}, headers=AUTH)
        assert ok.status_code == 200


async def test_a_token_without_the_bearer_scheme_is_told_so(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        bare = await client.get("/analyses", headers={"Authorization": TOKEN})
        assert bare.status_code == 401
        assert "no scheme" in bare.json()["detail"] and "Bearer" in bare.json()["detail"]
        assert TOKEN not in bare.text
        basic = await client.post(WEBHOOK, json=payload(), headers={"Authorization": "Basic abc"})
        assert basic.status_code == 401
        assert basic.json()["detail"].startswith("unsupported authorization scheme 'Basic'")
        missing = await client.get("/analyses")
        assert missing.json()["detail"].startswith("missing bearer token")
        wrong = await client.get("/analyses", headers={"Authorization": "Bearer nope"})
        assert wrong.json()["detail"] == "invalid bearer token"


async def test_the_webhook_with_a_trailing_slash_is_the_webhook(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        response = await client.post(WEBHOOK + "/", json=payload(), headers=AUTH)
        assert response.status_code == 202, response.text
        assert response.json()["new"] == 1
        listed = await client.get("/analyses/", headers=AUTH)
        assert listed.status_code == 200 and listed.json()["total"] == 1
        # Counted as the webhook, like any delivery.
        metrics = (await client.get("/metrics")).text
        assert 'aiops_webhook_requests_total{code="202"} 1.0' in metrics


async def test_list_items_carry_a_short_runbook_and_the_detail_the_whole(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as (_, client):
        accepted = (await client.post(WEBHOOK, json=payload(), headers=AUTH)).json()
        [analysis_id] = accepted["analysis_ids"]

        async def done() -> bool:
            item = (await client.get(f"/analyses/{analysis_id}", headers=AUTH)).json()
            return bool(item["job"]["state"] == "done")

        await wait_until(done)
        full = (await client.get(f"/analyses/{analysis_id}", headers=AUTH)).json()
        [listed] = (await client.get("/analyses", headers=AUTH)).json()["items"]
    full_runbook = next(e for e in full["evidence"] if e["source"] == "runbook")
    listed_runbook = next(e for e in listed["evidence"] if e["source"] == "runbook")
    assert len(full_runbook["text"]) > 1000
    assert len(listed_runbook["text"]) < 400
    assert listed_runbook["text"].endswith(f"[shortened in the list; GET /analyses/{analysis_id}]")
    assert full_runbook["text"].startswith(listed_runbook["text"].split(" ... [")[0])
    assert listed["result"] == full["result"]  # only the runbook body is shortened


async def test_the_list_says_which_resolution_closed_a_firing_alert(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as (_, client):
        await client.post(WEBHOOK, json=payload(), headers=AUTH)
        await client.post(WEBHOOK, json=payload(status="resolved"), headers=AUTH)

        async def all_done() -> list[dict[str, object]] | None:
            items = (await client.get("/analyses", headers=AUTH)).json()["items"]
            finished = all(item["job"]["state"] == "done" for item in items)
            return items if finished and len(items) == 2 else None

        items = await wait_until(all_done)
        by_status = {item["status"]: item for item in items}
        firing_id = by_status["firing"]["id"]
        single = (await client.get(f"/analyses/{firing_id}", headers=AUTH)).json()
    assert by_status["firing"]["resolved_by"] == by_status["resolved"]["id"]
    assert single["resolved_by"] == by_status["firing"]["resolved_by"]


async def test_api_docs_load_everything_from_the_analyzer_itself(tmp_path: Path) -> None:
    """/docs works offline: every script, stylesheet and icon it loads is served locally."""
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        for page in ("/docs", "/redoc"):
            response = await client.get(page)
            assert response.status_code == 200
            html = response.text
            assets = re.findall(r'(?:src|href)="([^"]+)"', html)
            assert assets, html
            assert not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
            for asset in assets:
                loaded = await client.get(asset)
                assert loaded.status_code == 200, asset
                assert len(loaded.content) > 100
