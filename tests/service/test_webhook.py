"""POST /webhook/alertmanager through the app: every status code and the stored outcome."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiops_analyzer.api.deps import WebhookContext, authorized_webhook
from aiops_analyzer.store import JobState
from fastapi import Request
from sqlalchemy import event

from tests.service.apptools import (
    AUTH,
    WEBHOOK,
    delivery_row,
    make_settings,
    payload,
    running_app,
    sample,
)

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("each_store")


def metric_value(text: str, name: str) -> float:
    """The sample ``name`` (with its labels, as exposed) in Prometheus text format; 0 if absent."""
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    return 0.0


async def test_accepts_alertmanager_payload_and_returns_analysis_ids(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        body = sample("01-nginx-down-firing.json")
        response = await client.post(WEBHOOK, json=body, headers=AUTH)
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert accepted["new"] == 1 and accepted["duplicates"] == 0
        [analysis_id] = accepted["analysis_ids"]
        stored = app.state.store.analyses.get(analysis_id)
        assert stored.alert.fingerprint == body["alerts"][0]["fingerprint"]
        assert stored.alert.alertname == "NginxDown"
        assert stored.state == JobState.PENDING
        assert stored.alert.ends_at is None  # Alertmanager's zero time means "no end yet".


async def test_one_analysis_id_per_alert_in_payload_order(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        response = await client.post(WEBHOOK, json=payload(count=10), headers=AUTH)
        assert response.status_code == 202
        ids = response.json()["analysis_ids"]
        assert len(ids) == 10 and len(set(ids)) == 10 and ids == sorted(ids)


async def test_unknown_fields_are_accepted(tmp_path: Path) -> None:
    body = payload()
    body["notification_reason"] = "repeat_interval"
    body["someFutureField"] = {"nested": [1, 2]}
    body["alerts"][0]["silencedBy"] = []
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        response = await client.post(WEBHOOK, json=body, headers=AUTH)
        assert response.status_code == 202, response.text


async def test_resend_is_a_duplicate_not_a_second_analysis(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        first = (await client.post(WEBHOOK, json=payload(), headers=AUTH)).json()
        again = (await client.post(WEBHOOK, json=payload(), headers=AUTH)).json()
        assert again["analysis_ids"] == first["analysis_ids"]
        assert again["new"] == 0 and again["duplicates"] == 1
        assert app.state.store.analyses.get(first["analysis_ids"][0]).deliveries == 2
        # Another status or another startsAt is another alert state.
        resolved = (
            await client.post(WEBHOOK, json=payload(status="resolved"), headers=AUTH)
        ).json()
        refired = (
            await client.post(WEBHOOK, json=payload(starts_at="2026-11-28T11:00:00Z"), headers=AUTH)
        ).json()
        assert resolved["new"] == 1 and refired["new"] == 1
        metrics = (await client.get("/metrics")).text
        assert metric_value(metrics, "aiops_alerts_duplicate_total") == 1
        assert metric_value(metrics, 'aiops_alerts_received_total{status="firing"}') == 3
        assert metric_value(metrics, 'aiops_alerts_received_total{status="resolved"}') == 1


async def test_same_instant_in_another_offset_is_the_same_key(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        utc = (await client.post(WEBHOOK, json=payload(), headers=AUTH)).json()
        paris = payload(starts_at="2026-11-28T11:00:00+01:00")
        other = (await client.post(WEBHOOK, json=paris, headers=AUTH)).json()
        assert other["analysis_ids"] == utc["analysis_ids"] and other["duplicates"] == 1


async def test_truncated_alerts_are_recorded_and_surfaced(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        response = await client.post(WEBHOOK, json=payload(truncated=7), headers=AUTH)
        assert response.json()["truncated_alerts"] == 7
        [analysis_id] = response.json()["analysis_ids"]
        delivery = delivery_row(app.state.store, response.json()["delivery_id"])
        assert delivery.truncated_alerts == 7
        detail = (await client.get(f"/analyses/{analysis_id}", headers=AUTH)).json()
        assert detail["truncated_alerts"] == 7
        metrics = (await client.get("/metrics")).text
        assert metric_value(metrics, "aiops_alerts_truncated_total") == 7


async def test_secrets_in_labels_and_annotations_are_not_stored(tmp_path: Path) -> None:
    body = sample("02-container-crashloop-firing.json")
    body["alerts"][0]["labels"]["api_key"] = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        response = await client.post(WEBHOOK, json=body, headers=AUTH)
        stored = app.state.store.analyses.get(response.json()["analysis_ids"][0])
        text = stored.alert.model_dump_json()
        assert "s3cr3t-pass" not in text
        assert "abcdefghijklmnopqrstuvwxyz0123456789" not in text
        assert stored.alert.labels["name"] == "checkout-api"  # Ordinary values stay readable.


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Bearer wrong-token"}, "invalid bearer token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "unsupported authorization scheme 'Basic'"),
        ({"Authorization": "Bearer "}, "missing bearer token"),
    ],
)
async def test_401_without_the_right_token(
    tmp_path: Path, headers: dict[str, str], reason: str
) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        response = await client.post(WEBHOOK, json=payload(), headers=headers)
        assert response.status_code == 401
        assert reason in response.json()["detail"]
        assert response.headers["www-authenticate"] == "Bearer"
        assert app.state.store.analyses.count_active() == 0  # Nothing stored.


async def test_auth_disabled_accepts_without_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, webhook_token=None, auth_disabled=True)
    async with running_app(settings, start_workers=False) as (_, client):
        assert (await client.post(WEBHOOK, json=payload())).status_code == 202


async def test_413_when_the_body_exceeds_the_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_body_bytes=4096)
    async with running_app(settings, start_workers=False) as (app, client):
        big = payload(description="x" * 5000)
        response = await client.post(WEBHOOK, json=big, headers=AUTH)
        assert response.status_code == 413
        assert "4096" in response.json()["detail"]
        assert app.state.store.analyses.count_active() == 0


async def test_413_is_enforced_while_streaming_without_content_length(tmp_path: Path) -> None:
    """A chunked body has no Content-Length: the limit must hold while reading it."""
    chunks_sent = 0

    async def endless() -> object:
        nonlocal chunks_sent
        while chunks_sent < 10_000:  # Far more than the limit; stops early if the server stops.
            chunks_sent += 1
            yield b"[" * 1024

    settings = make_settings(tmp_path, max_body_bytes=8192)
    async with running_app(settings, start_workers=False) as (_, client):
        response = await client.post(
            WEBHOOK,
            content=endless(),  # type: ignore[arg-type]
            headers={**AUTH, "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert chunks_sent < 100  # Refused near the limit, not after reading everything.


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "", "application/xml"]
)
async def test_415_for_non_json_content_types(tmp_path: Path, content_type: str) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        headers = {**AUTH, "Content-Type": content_type}
        response = await client.post(WEBHOOK, content=json.dumps(payload()), headers=headers)
        assert response.status_code == 415
        assert "application/json" in response.json()["detail"]


async def test_json_with_charset_parameter_is_accepted(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        headers = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
        response = await client.post(WEBHOOK, content=json.dumps(payload()), headers=headers)
        assert response.status_code == 202


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["alerts"][0].pop("startsAt"), "alerts.0.startsAt"),
        (lambda b: b["alerts"][0].update(status="burning"), "alerts.0.status"),
        (lambda b: b["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda b: b["alerts"][0]["labels"].update(severity=3), "alerts.0.labels.severity"),
        (lambda b: b.update(alerts=[]), "alerts"),
        (lambda b: b.pop("status"), "status"),
        (lambda b: b.update(truncatedAlerts=-1), "truncatedAlerts"),
        # Valid ISO 8601, but before year 1 once converted to UTC.
        (
            lambda b: b["alerts"][0].update(startsAt="0001-01-01T00:00:00+01:00"),
            "alerts.0.startsAt",
        ),
    ],
)
async def test_422_names_the_invalid_field(tmp_path: Path, mutate: object, field: str) -> None:
    body = payload()
    mutate(body)  # type: ignore[operator]
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        response = await client.post(WEBHOOK, json=body, headers=AUTH)
        assert response.status_code == 422
        assert field in response.json()["detail"]
        assert field in [error["field"] for error in response.json()["errors"]]


@pytest.mark.parametrize(
    "body",
    [
        # A complete payload but for a lone surrogate, which no UTF-8 store can hold.
        json.dumps(payload(fingerprint="\ud800")).encode(),
        b"{",
        b"not json",
        b"\xff\xfe\x00",
        b"[" * 50_000,
        b"",
        b"[]",
        b"null",
        b'"text"',
    ],
)
async def test_422_for_bodies_that_are_not_a_payload(tmp_path: Path, body: bytes) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        headers = {**AUTH, "Content-Type": "application/json"}
        response = await client.post(WEBHOOK, content=body, headers=headers)
        assert response.status_code == 422
        assert response.json()["detail"]


async def test_every_answer_is_counted_by_code(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        await client.post(WEBHOOK, json=payload(), headers=AUTH)
        await client.post(WEBHOOK, json=payload())
        await client.post(WEBHOOK, content=b"x", headers={**AUTH, "Content-Type": "text/plain"})
        await client.post(WEBHOOK, json={}, headers=AUTH)
        metrics = (await client.get("/metrics")).text
        for code in ("202", "401", "415", "422"):
            assert metric_value(metrics, f'aiops_webhook_requests_total{{code="{code}"}}') == 1


async def test_concurrent_identical_deliveries_store_one_alert(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        responses = await asyncio.gather(
            *(client.post(WEBHOOK, json=payload(), headers=AUTH) for _ in range(50))
        )
        assert {r.status_code for r in responses} == {202}
        ids = {r.json()["analysis_ids"][0] for r in responses}
        assert len(ids) == 1
        assert sum(r.json()["new"] for r in responses) == 1
        assert app.state.store.analyses.get(ids.pop()).deliveries == 50


async def test_concurrent_deliveries_share_commits(tmp_path: Path) -> None:
    """Group commit: 60 requests at once are stored in far fewer transactions (fsyncs)."""
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        commits = []
        event.listen(app.state.store.db.writer, "commit", lambda _: commits.append(1))
        responses = await asyncio.gather(
            *(
                client.post(WEBHOOK, json=payload(fingerprint=f"fp-{n}"), headers=AUTH)
                for n in range(60)
            )
        )
        assert [r.status_code for r in responses] == [202] * 60
        ids = [r.json()["analysis_ids"][0] for r in responses]
        assert len(set(ids)) == 60 and app.state.store.analyses.count_active() == 60
        assert len(commits) <= 30, len(commits)


async def test_an_internal_bug_answers_json_500_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stand-in for a bug (no client input reaches one): the store raising unexpectedly.
    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):

        def broken_ingest(*_: object, **__: object) -> None:
            raise RuntimeError("secret internals: /var/lib/analyzer.db is corrupt")

        async def broken_ingest_async(*_: object) -> None:
            broken_ingest()

        ingestor = app.state.store.ingestor
        monkeypatch.setattr(ingestor, "ingest_many", broken_ingest)
        monkeypatch.setattr(ingestor, "ingest_many_async", broken_ingest_async)
        response = await client.post(WEBHOOK, json=payload(), headers=AUTH)
        assert response.status_code == 500
        body = response.json()
        assert body["error_id"] and "internal error" in body["detail"]
        assert "Traceback" not in response.text and "corrupt" not in response.text
        metrics = (await client.get("/metrics")).text
        assert metric_value(metrics, 'aiops_webhook_requests_total{code="500"}') == 1


async def test_the_fast_path_and_the_route_give_the_same_answers(tmp_path: Path) -> None:
    """A delivery with a Content-Length is served by WebhookFastPath, a streamed one (chunked,
    no length) by the FastAPI route: the same fields, status, headers and stored outcome."""

    async def streamed(body: bytes) -> object:
        yield body

    async with running_app(make_settings(tmp_path), start_workers=False) as (app, client):
        routed: list[int] = []  # requests that reached the FastAPI route

        async def counting(request: Request) -> WebhookContext:
            routed.append(1)
            return await authorized_webhook(request)

        app.dependency_overrides[authorized_webhook] = counting
        first = payload(fingerprint="fp-fast", count=2)
        fast = await client.post(WEBHOOK, json=first, headers=AUTH)
        assert routed == []
        headers = {**AUTH, "Content-Type": "application/json"}
        route = await client.post(
            WEBHOOK,
            content=streamed(json.dumps(first).encode()),  # type: ignore[arg-type]
            headers=headers,
        )
        assert routed == [1]
        assert "content-length" in fast.request.headers
        assert "content-length" not in route.request.headers
        assert fast.status_code == route.status_code == 202
        assert fast.headers["content-type"] == route.headers["content-type"]
        assert fast.json().keys() == route.json().keys()
        assert fast.json()["new"] == 2 and route.json()["duplicates"] == 2
        assert fast.json()["analysis_ids"] == route.json()["analysis_ids"]
        assert app.state.store.analyses.get(fast.json()["analysis_ids"][0]).deliveries == 2
        # And the other way round: a new delivery through the route, its resend fast.
        second = payload(fingerprint="fp-route")
        by_route = await client.post(
            WEBHOOK,
            content=streamed(json.dumps(second).encode()),  # type: ignore[arg-type]
            headers=headers,
        )
        resent = await client.post(WEBHOOK, json=second, headers=AUTH)
        assert by_route.json()["new"] == 1 and resent.json()["duplicates"] == 1
        # A body read by the fast path and then found invalid gets the route's precise 422.
        bad = payload()
        bad["alerts"][0]["startsAt"] = "yesterday"
        invalid = await client.post(WEBHOOK, json=bad, headers=AUTH)
        assert invalid.status_code == 422
        assert "startsAt" in invalid.json()["detail"]
