"""A failing LLM, evidence source or channel is logged once at WARNING with its reason, its
recovery once at INFO, and /readyz shows each dependency's state; refused clients are named."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.service.apptools import (
    AUTH,
    WEBHOOK,
    free_port,
    make_settings,
    payload,
    running_app,
    wait_until,
)
from tests.service.loopback import LoopbackServer, Reply, always


def warnings(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING and getattr(r, "event", None) == event
    ]


async def post_and_wait(client: Any, fingerprints: list[str]) -> None:
    ids: list[int] = []
    for fingerprint in fingerprints:
        response = await client.post(WEBHOOK, json=payload(fingerprint=fingerprint), headers=AUTH)
        ids += response.json()["analysis_ids"]

    async def finished() -> bool:
        items = [(await client.get(f"/analyses/{i}", headers=AUTH)).json() for i in ids]
        return all(item["job"]["state"] == "done" for item in items)

    await wait_until(finished, within=60)


async def test_failing_dependencies_warn_once_each_and_show_in_readyz(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    refused = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    prometheus_error = Reply(500, "internal error")
    slack_error = Reply(503, "busy")
    with (
        LoopbackServer(always(prometheus_error)) as prometheus,
        LoopbackServer(always(slack_error)) as slack,
    ):
        settings = make_settings(
            tmp_path,
            engine="llm",
            llm_base_url=refused,
            llm_max_retries=0,
            prometheus_url=prometheus.url,
            slack_webhook_url=f"{slack.url}/services/T0/B0/secret-path-123",
            notify_max_attempts=2,
        )
        caplog.set_level(logging.INFO)
        async with running_app(settings) as (_, client):
            await post_and_wait(client, ["aaaa000000000001", "aaaa000000000002"])
            ready = await client.get("/readyz")
    # One warning per failing dependency, although two alerts met each failure.
    [llm] = [r for r in warnings(caplog, "dependency_failing") if r.dependency == "llm"]
    assert "connection_error" in llm.getMessage() and "rules engine answered" in llm.getMessage()
    failing = {r.dependency: r.getMessage() for r in warnings(caplog, "dependency_failing")}
    assert sorted(failing) == ["llm", "prometheus", "slack"]
    assert len(warnings(caplog, "dependency_failing")) == 3
    assert "HTTP 500" in failing["prometheus"]
    assert "HTTP 503" in failing["slack"] and "after 2 attempts" in failing["slack"]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("aiops_analyzer")]
    assert not [m for m in ours if "secret-path-123" in m]
    # Readiness: still ready (alerts are stored and analysed), each dependency reported.
    assert ready.status_code == 200
    dependencies = ready.json()["dependencies"]
    assert dependencies["llm"]["state"] == "failing" and dependencies["llm"]["since"]
    assert dependencies["prometheus"]["state"] == "failing"
    assert dependencies["slack"]["state"] == "failing"
    assert dependencies["loki"] == {"state": "not configured"}
    assert dependencies["discord"] == {"state": "not configured"}


async def test_a_dependency_that_recovers_is_logged_once_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    replies = iter([Reply(500, "down")] * 2)

    def slack_handler(_: Any) -> Reply:
        return next(replies, Reply(200, "ok"))

    with LoopbackServer(slack_handler) as slack:
        settings = make_settings(
            tmp_path, slack_webhook_url=f"{slack.url}/services/x", notify_max_attempts=2
        )
        caplog.set_level(logging.INFO)
        async with running_app(settings) as (_, client):
            await post_and_wait(client, ["bbbb000000000001"])
            await post_and_wait(client, ["bbbb000000000002"])
            await post_and_wait(client, ["bbbb000000000003"])
            state = (await client.get("/readyz")).json()["dependencies"]["slack"]
    assert len(warnings(caplog, "dependency_failing")) == 1
    recovered = [r for r in caplog.records if getattr(r, "event", None) == "dependency_recovered"]
    assert len(recovered) == 1 and recovered[0].levelno == logging.INFO
    assert state["state"] == "ok" and state["last_checked"]


async def test_refused_requests_are_logged_with_the_client_address_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        for _ in range(5):
            wrong = {"Authorization": "Bearer not-the-token"}
            assert (await client.post(WEBHOOK, json=payload(), headers=wrong)).status_code == 401
        await client.get("/analyses")
    refusals = warnings(caplog, "auth_refused")
    assert len(refusals) == 2  # one per reason, not one per request
    messages = sorted(r.getMessage() for r in refusals)
    assert messages[0].startswith("refused GET /analyses from 127.0.0.1: missing bearer token")
    assert messages[1] == "refused POST /webhook/alertmanager from 127.0.0.1: invalid bearer token"
    assert "not-the-token" not in caplog.text


async def test_a_rate_limited_llm_is_named_as_such(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limited = Reply(
        429,
        {"error": {"message": "Rate limit reached", "type": "requests"}},
        headers={"Retry-After": "0"},
    )
    with LoopbackServer(always(limited)) as openai:
        settings = make_settings(
            tmp_path,
            engine="llm",
            openai_api_key="sk-test-0123456789abcdef",
            llm_base_url=f"{openai.url}/v1",
            llm_max_retries=0,
        )
        caplog.set_level(logging.INFO)
        async with running_app(settings) as (_, client):
            await post_and_wait(client, ["cccc000000000001", "cccc000000000002"])
            llm = (await client.get("/readyz")).json()["dependencies"]["llm"]
    [warning] = warnings(caplog, "dependency_failing")
    message = warning.getMessage()
    assert (
        message.startswith("llm failed; the rules engine answered: ") and "rate_limited" in message
    )
    assert llm["state"] == "failing" and "rate_limited" in llm["reason"]
