"""The workers with the real pipeline: analyses, resolutions, notifications, the LLM path
against a loopback OpenAI-compatible server, retries, and resuming interrupted jobs."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiops_analyzer import worker
from aiops_analyzer.core.metrics import Metrics
from aiops_analyzer.store import JobState, Store

from tests.service.apptools import (
    AUTH,
    WEBHOOK,
    make_settings,
    payload,
    running_app,
    sample,
    wait_until,
)
from tests.service.loopback import LoopbackServer, Reply, always
from tests.service.test_engine_llm import GOOD, completion
from tests.service.test_notify import requests_to, route
from tests.service.test_webhook import metric_value

# Every test runs on SQLite and on PostgreSQL.
pytestmark = pytest.mark.usefixtures("each_store")


async def finished(client: Any, analysis_id: int) -> dict[str, Any] | None:
    body: dict[str, Any] = (await client.get(f"/analyses/{analysis_id}", headers=AUTH)).json()
    return body if body["job"]["state"] in {"done", "failed"} else None


async def wait_finished(client: Any, analysis_id: int, within: float = 30.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while (body := await finished(client, analysis_id)) is None:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"analysis {analysis_id} not finished within {within}s")
        await asyncio.sleep(0.05)
    return body


async def post(client: Any, body: dict[str, Any]) -> list[int]:
    response = await client.post(WEBHOOK, json=body, headers=AUTH)
    assert response.status_code == 202, response.text
    ids: list[int] = response.json()["analysis_ids"]
    return ids


def llm_settings(tmp_path: Path, server: LoopbackServer, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "engine": "llm",
        "openai_api_key": "sk-test-loopback-only-0123456789abcdef",
        "llm_base_url": f"{server.url}/v1",
        "llm_max_retries": 0,
        "llm_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


def chat_calls(server: LoopbackServer) -> int:
    return sum(1 for path in server.paths() if path.endswith("/chat/completions"))


async def test_firing_alert_is_analysed_by_rules_with_evidence(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as (_, client):
        [analysis_id] = await post(client, sample("02-container-crashloop-firing.json"))
        analysis = await wait_finished(client, analysis_id)
        assert analysis["job"]["state"] == "done" and analysis["job"]["attempts"] == 1
        result = analysis["result"]
        assert result["engine"] == "rules" and result["summary"]
        assert result["category"] != "unknown"
        sources = {item["source"]: item["status"] for item in analysis["evidence"]}
        # No Prometheus or Loki configured: recorded as unavailable, the analysis still done.
        assert sources["prometheus"] == "unavailable" and sources["loki"] == "unavailable"
        assert analysis["outcome"] in {"ok", "inconclusive"}
        metrics = (await client.get("/metrics")).text
        outcome = analysis["outcome"]
        labels = f'engine="rules",outcome="{outcome}"'
        assert metric_value(metrics, f"aiops_analyses_total{{{labels}}}") == 1
        count = 'aiops_analysis_duration_seconds_count{engine="rules"}'
        assert metric_value(metrics, count) == 1
        assert metric_value(metrics, "aiops_queue_depth") == 0


async def test_resolution_is_linked_to_its_firing_analysis_without_an_engine_when_off(
    tmp_path: Path,
) -> None:
    async with running_app(make_settings(tmp_path, analyze_resolved=False)) as (_, client):
        [firing_id] = await post(client, payload())
        await wait_finished(client, firing_id)
        [resolved_id] = await post(client, payload(status="resolved"))
        resolved = await wait_finished(client, resolved_id)
        assert resolved["job"]["state"] == "done" and resolved["outcome"] == "resolved"
        assert resolved["resolution"] == {"firing_analysis_id": firing_id, "duration_seconds": 300}
        assert resolved["result"] is None  # No engine call for a resolution when off.
        firing = (await client.get(f"/analyses/{firing_id}", headers=AUTH)).json()
        assert firing["resolved_by"] == resolved_id


async def test_resolution_is_analysed_by_default(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as (_, client):
        [resolved_id] = await post(client, payload(status="resolved"))
        resolved = await wait_finished(client, resolved_id)
        result = resolved["result"]
        assert result["engine"] == "rules" and result["severity"] == "info"
        assert result["recovery"]["recovered_at"].startswith("2026-11-28T10:05:00")
        assert result["recovery"]["cause_persists"] is False
        assert resolved["resolution"]["firing_analysis_id"] is None  # Never saw it firing.


def resolution_chat_settings(tmp_path: Path, server: LoopbackServer, **overrides: Any) -> Any:
    """Every chat channel, on the loopback server that speaks them (tests/service/test_notify)."""
    values: dict[str, Any] = {
        "slack_webhook_url": f"{server.url}/slack/services/T000/B000/XXXX",
        "discord_webhook_url": f"{server.url}/discord/api/webhooks/1/abc",
        "notify_webhook_url": f"{server.url}/hook",
        "grafana_url": f"{server.url}/grafana",
        "public_url": "https://analyzer.example.com",
    }
    values.update(overrides)
    return make_settings(tmp_path, **values)


async def fire_then_resolve(settings: Any) -> dict[str, Any]:
    async with running_app(settings) as (_, client):
        [firing_id] = await post(client, payload())
        await wait_finished(client, firing_id)
        [resolved_id] = await post(client, payload(status="resolved"))
        return await wait_finished(client, resolved_id)


async def test_resolution_notification_reports_the_recovery_by_default(tmp_path: Path) -> None:
    with LoopbackServer(route()) as chat:
        resolved = await fire_then_resolve(resolution_chat_settings(tmp_path, chat))
    assert all(n["ok"] for n in resolved["notifications"]) and resolved["result"]
    slack = requests_to(chat, "slack")[-1].json()
    assert slack["blocks"][0]["text"]["text"] == "✅ RESOLVED [INFO] NginxDown"
    text = "\n".join(b.get("text", {}).get("text", "") for b in slack["blocks"])
    assert "resolved after 5m 0s; recovered at 10:05:00 UTC" in text
    assert "it has recovered and nothing in the evidence shows the cause still present" in text
    assert "*Firing analysis* (target_down)" in text
    assert "|Open the analysis" in text
    embed = requests_to(chat, "discord")[-1].json()["embeds"][0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Severity"] == "info" and fields["Cause still present"] == "no"
    hook = requests_to(chat, "hook")[-1].json()
    assert hook["event"] == "resolution" and hook["severity"] == "info"
    assert hook["resolved_analysis"]["recovery"]["cause_persists"] is False
    assert hook["firing_analysis"]["severity"] != "info"  # the firing one kept its own
    grafana = requests_to(chat, "grafana")[-1].json()
    assert "resolved" in grafana["tags"] and "info" in grafana["tags"]


async def test_resolution_notification_without_analysis_when_off(tmp_path: Path) -> None:
    with LoopbackServer(route()) as chat:
        settings = resolution_chat_settings(tmp_path, chat, analyze_resolved=False)
        resolved = await fire_then_resolve(settings)
    assert resolved["result"] is None and all(n["ok"] for n in resolved["notifications"])
    slack = requests_to(chat, "slack")[-1].json()
    assert slack["blocks"][0]["text"]["text"] == "✅ RESOLVED NginxDown"
    text = "\n".join(b.get("text", {}).get("text", "") for b in slack["blocks"])
    assert "recovered at 10:05:00 UTC" in text and "AIOPS" in text and "is off" in text
    hook = requests_to(chat, "hook")[-1].json()
    assert hook["resolved_analysis"] is None and hook["cause_persists"] is None
    assert hook["firing_analysis"]["engine"] == "rules"


async def test_resolution_through_the_llm_is_not_a_live_outage(tmp_path: Path) -> None:
    """The prompt tells the model the alert resolved; the stored analysis carries the recovery
    facts. A model answering info: recovered. One answering critical (GOOD) says the cause
    is still there: recorded as persisting, with its cause."""
    recovered = {**GOOD, "severity": "info", "summary": "billing recovered at 10:05."}
    with (
        LoopbackServer(always(Reply(body=completion(json.dumps(recovered))))) as calm,
        LoopbackServer(always(Reply(body=completion(json.dumps(GOOD))))) as alarmed,
    ):
        async with running_app(llm_settings(tmp_path / "a", calm)) as (_, client):
            [first_id] = await post(client, payload(status="resolved"))
            first = (await wait_finished(client, first_id))["result"]
        async with running_app(llm_settings(tmp_path / "b", alarmed)) as (_, client):
            [second_id] = await post(client, payload(status="resolved", fingerprint="other"))
            second = (await wait_finished(client, second_id))["result"]
        prompt = next(r for r in calm.requests if r.path.endswith("/chat/completions")).json()
    system, user = (m["content"] for m in prompt["messages"])
    assert "never describe\n  it as a live outage" in system
    assert '"status": "resolved"' in user and '"ends_at": "2026-11-28T10:05:00' in user
    assert first["engine"] == "llm" and first["severity"] == "info"
    assert first["recovery"]["cause_persists"] is False
    assert first["recovery"]["recovered_at"].startswith("2026-11-28T10:05:00")
    assert second["engine"] == "llm" and second["severity"] == "critical"
    assert second["recovery"]["cause_persists"] is True
    assert (
        "llm analysis finds the cause still there: Port 8080 already in use"
        in (second["recovery"]["detail"])
    )


async def test_notifications_are_sent_and_their_outcome_recorded(tmp_path: Path) -> None:
    with (
        LoopbackServer(always(Reply(200, {"ok": True}))) as receiver,
        LoopbackServer(always(Reply(500, "down"))) as broken,
    ):
        settings = make_settings(
            tmp_path,
            notify_webhook_url=f"{receiver.url}/hook/secret-path",
            discord_webhook_url=f"{broken.url}/api/webhooks/1/secret",
            notify_max_attempts=2,
        )
        async with running_app(settings) as (_, client):
            [firing_id] = await post(client, payload())
            firing = await wait_finished(client, firing_id)
            [resolved_id] = await post(client, payload(status="resolved"))
            resolved = await wait_finished(client, resolved_id)
            metrics = (await client.get("/metrics")).text
    outcomes = {n["channel"]: n for n in firing["notifications"]}
    assert outcomes["webhook"]["ok"] is True
    assert outcomes["discord"]["ok"] is False and outcomes["discord"]["attempts"] == 2
    assert firing["job"]["state"] == "done"  # A failing channel never fails the analysis.
    assert {n["channel"] for n in resolved["notifications"]} == {"webhook", "discord"}
    assert len(receiver.requests) == 2  # One for the analysis, one follow-up on resolution.
    sent = 'aiops_notifications_total{channel="webhook",outcome="sent"}'
    failed = 'aiops_notifications_total{channel="discord",outcome="failed"}'
    assert metric_value(metrics, sent) == 2 and metric_value(metrics, failed) == 2


def at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


async def test_the_api_tells_when_the_result_was_stored_and_notified(tmp_path: Path) -> None:
    with (
        LoopbackServer(always(Reply(200, {"ok": True}))) as receiver,
        LoopbackServer(always(Reply(500, "down"))) as broken,
    ):
        notified = make_settings(tmp_path / "a", notify_webhook_url=f"{receiver.url}/hook")
        async with running_app(notified) as (_, client):
            [firing_id] = await post(client, payload())
            firing = await wait_finished(client, firing_id)
            [listed] = (await client.get("/analyses", headers=AUTH)).json()["items"]
        failing = make_settings(
            tmp_path / "b", notify_webhook_url=f"{broken.url}/hook", notify_max_attempts=1
        )
        async with running_app(failing) as (_, client):
            [failed_id] = await post(client, payload(fingerprint="unsent"))
            unsent = await wait_finished(client, failed_id)
        quiet_settings = make_settings(tmp_path / "c", analyze_resolved=False)
        async with running_app(quiet_settings) as (_, client):
            [quiet_id] = await post(client, payload(fingerprint="quiet"))
            quiet = await wait_finished(client, quiet_id)
            [resolved_id] = await post(client, payload(status="resolved"))
            resolved = await wait_finished(client, resolved_id)
    # Stored before the notification went out, which ended when the job finished.
    received, analyzed = at(firing["received_at"]), at(firing["analyzed_at"])
    assert received <= analyzed <= at(firing["notified_at"]) == at(firing["job"]["finished_at"])
    assert receiver.requests and listed["analyzed_at"] == firing["analyzed_at"]
    assert listed["notified_at"] == firing["notified_at"]
    # Every channel failed: stored, but nobody was notified.
    assert unsent["notifications"][0]["ok"] is False
    assert unsent["analyzed_at"] and unsent["notified_at"] is None
    # No channel configured: stored, nothing to notify; an unanalysed resolution, no result.
    assert quiet["analyzed_at"] and quiet["notified_at"] is None
    assert resolved["result"] is None and resolved["analyzed_at"] is None


async def test_fifty_concurrent_resends_make_one_analysis_and_one_llm_call(
    tmp_path: Path,
) -> None:
    # The reply is slow, so every resend arrives while the one job is still running.
    with LoopbackServer(always(Reply(body=completion(json.dumps(GOOD)), delay=0.3))) as llm:
        async with running_app(llm_settings(tmp_path, llm, workers=4)) as (app, client):
            responses = await asyncio.gather(
                *(client.post(WEBHOOK, json=payload(), headers=AUTH) for _ in range(50))
            )
            assert {r.status_code for r in responses} == {202}
            ids = {r.json()["analysis_ids"][0] for r in responses}
            assert len(ids) == 1
            analysis = await wait_finished(client, ids.pop())
            # Resends after the analysis finished do not reopen it either.
            await asyncio.gather(
                *(client.post(WEBHOOK, json=payload(), headers=AUTH) for _ in range(5))
            )
            await asyncio.sleep(0.3)
            metrics = (await client.get("/metrics")).text
            total = app.state.store.analyses.list()[1]
    assert chat_calls(llm) == 1
    assert total == 1 and analysis["deliveries"] == 50
    result = analysis["result"]
    assert result["engine"] == "llm" and result["fallback_reason"] is None
    assert (result["prompt_tokens"], result["completion_tokens"]) == (420, 80)
    assert metric_value(metrics, 'aiops_llm_tokens_total{kind="prompt"}') == 420
    assert metric_value(metrics, 'aiops_llm_requests_total{outcome="ok"}') == 1
    assert metric_value(metrics, "aiops_alerts_duplicate_total") == 54


async def test_daily_token_budget_counts_stored_tokens(tmp_path: Path) -> None:
    with LoopbackServer(always(Reply(body=completion(json.dumps(GOOD))))) as llm:
        settings = llm_settings(tmp_path, llm, workers=1, llm_daily_token_budget=500)
        async with running_app(settings) as (_, client):
            [first] = await post(client, payload(fingerprint="first"))
            first_analysis = await wait_finished(client, first)
            [second] = await post(client, payload(fingerprint="second"))
            second_analysis = await wait_finished(client, second)
            metrics = (await client.get("/metrics")).text
    assert first_analysis["result"]["engine"] == "llm"  # 420 + 80 tokens: the budget is spent.
    assert second_analysis["result"]["engine"] == "rules"
    assert second_analysis["result"]["fallback_reason"] == "daily_token_budget_exhausted"
    assert second_analysis["outcome"] == "fallback"
    assert chat_calls(llm) == 1
    assert metric_value(metrics, "aiops_llm_budget_exhausted_total") == 1


async def test_llm_failure_falls_back_to_rules_and_is_counted(tmp_path: Path) -> None:
    with LoopbackServer(always(Reply(500, {"error": {"message": "boom"}}))) as llm:
        async with running_app(llm_settings(tmp_path, llm)) as (_, client):
            [analysis_id] = await post(client, payload())
            analysis = await wait_finished(client, analysis_id)
            metrics = (await client.get("/metrics")).text
    assert analysis["job"]["state"] == "done"
    assert analysis["result"]["engine"] == "rules"
    assert analysis["result"]["fallback_reason"].startswith("llm_error")
    assert metric_value(metrics, 'aiops_analyses_total{engine="rules",outcome="fallback"}') == 1
    assert metric_value(metrics, 'aiops_llm_requests_total{outcome="error"}') == 1
    assert "aiops_llm_fallbacks_total{reason=" in metrics


async def test_a_failing_attempt_is_retried_then_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bug or a store hiccup inside a job: stand-in for it, since no client input causes one.
    real_analyze = worker.engines.analyze
    calls = 0

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("transient failure")
        return await real_analyze(*args, **kwargs)

    monkeypatch.setattr(worker.engines, "analyze", flaky)
    monkeypatch.setattr(worker, "RETRY_BASE_SECONDS", 0.05)
    async with running_app(make_settings(tmp_path)) as (_, client):
        [analysis_id] = await post(client, payload())
        analysis = await wait_finished(client, analysis_id)
    assert analysis["job"]["state"] == "done" and analysis["job"]["attempts"] == 2
    assert analysis["job"]["last_error"] is None


async def test_a_job_failing_every_attempt_is_marked_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("always broken")

    monkeypatch.setattr(worker.engines, "analyze", broken)
    monkeypatch.setattr(worker, "RETRY_BASE_SECONDS", 0.05)
    async with running_app(make_settings(tmp_path, job_max_attempts=3)) as (app, client):
        [analysis_id] = await post(client, payload())
        analysis = await wait_finished(client, analysis_id)
        metrics = (await client.get("/metrics")).text
        assert app.state.workers.alive == 2  # The workers survive.
    assert analysis["job"]["state"] == "failed" and analysis["job"]["attempts"] == 3
    assert "always broken" in analysis["job"]["last_error"]
    assert analysis["outcome"] == "failed"
    assert metric_value(metrics, 'aiops_analyses_total{engine="rules",outcome="failed"}') == 1


async def test_jobs_of_a_dead_process_return_when_their_lease_expires(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, job_lease_seconds=1)
    async with running_app(settings, start_workers=False) as (_, client):
        ids = await post(client, payload(count=3))
    # Another process claimed two of them and died without renewing their leases.
    store = Store(settings.effective_database_url)
    assert store.jobs.claim(owner="dead", lease_seconds=1) is not None
    assert store.jobs.claim(owner="dead", lease_seconds=1) is not None
    assert store.analyses.list(state=JobState.RUNNING)[1] == 2
    store.dispose()
    async with running_app(settings) as (_, client):
        analyses = [await wait_finished(client, analysis_id) for analysis_id in ids]
    assert [a["job"]["state"] for a in analyses] == ["done"] * 3
    assert sorted(a["job"]["attempts"] for a in analyses) == [1, 2, 2]


async def test_a_job_longer_than_its_lease_keeps_it_by_renewing(tmp_path: Path) -> None:
    """The model answers after 3 leases: the worker renews, nobody takes the job back, and the
    model is asked once."""
    slow_llm = LoopbackServer(always(Reply(body=completion(json.dumps(GOOD)), delay=3.0)))
    with slow_llm as llm:
        settings = llm_settings(tmp_path, llm, workers=2, job_lease_seconds=1)
        async with running_app(settings) as (_, client):
            [analysis_id] = await post(client, payload())
            analysis = await wait_finished(client, analysis_id)
    assert analysis["job"]["state"] == "done" and analysis["job"]["attempts"] == 1
    assert analysis["result"]["engine"] == "llm" and chat_calls(llm) == 1


async def test_a_clean_stop_gives_running_jobs_back_at_once(tmp_path: Path) -> None:
    slow_llm = LoopbackServer(always(Reply(body=completion(json.dumps(GOOD)), delay=30.0)))
    with slow_llm as llm:
        settings = llm_settings(tmp_path, llm, workers=1, job_lease_seconds=600)
        async with running_app(settings) as (app, client):
            [analysis_id] = await post(client, payload())
            store = app.state.store
            await wait_until(lambda: store.analyses.get(analysis_id).state == JobState.RUNNING)
        # Stopped mid-job: pending again, lease cleared, the attempt not counted.
        store = Store(settings.effective_database_url)
        record = store.analyses.get(analysis_id)
        store.dispose()
    assert record is not None and record.state == JobState.PENDING
    assert record.job.attempts == 0 and record.job.lease_owner is None


async def test_stop_is_prompt_even_when_a_wake_up_races_it(tmp_path: Path) -> None:
    """A wake-up landing together with the shutdown's cancellation must not keep a worker
    alive (asyncio.wait_for on Python 3.11 can swallow such a cancellation)."""
    settings = make_settings(tmp_path, workers=4)
    store = Store(settings.effective_database_url)
    store.migrate()
    for _ in range(20):
        pool = worker.WorkerPool(settings, store, Metrics())
        await pool.start()
        await asyncio.sleep(0.02)  # The workers are idle, waiting for a wake-up.
        tasks = list(pool._tasks)
        pool.wake(4)
        async with asyncio.timeout(5):
            await pool.stop()
        assert all(task.done() for task in tasks)
    store.dispose()


async def test_a_resolution_waits_for_its_firing_analysis_to_quote_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Firing and resolved arrive together; two workers take both at once. The resolution
    waits until the firing analysis is stored, so its notification can quote it."""
    caplog.set_level(logging.INFO, logger="aiops_analyzer.worker")
    slow_llm = LoopbackServer(always(Reply(body=completion(json.dumps(GOOD)), delay=1.0)))
    with slow_llm as llm, LoopbackServer(always(Reply(200, {"ok": True}))) as receiver:
        settings = llm_settings(tmp_path, llm, workers=2, notify_webhook_url=f"{receiver.url}/hook")
        async with running_app(settings) as (_, client):
            [firing_id] = await post(client, payload())
            [resolved_id] = await post(client, payload(status="resolved"))
            resolved = await wait_finished(client, resolved_id)
            firing = await wait_finished(client, firing_id)
    assert resolved["resolution"]["firing_analysis_id"] == firing_id
    assert resolved["job"]["attempts"] == 1  # Waiting did not use up attempts.
    assert resolved["job"]["finished_at"] >= firing["job"]["finished_at"]
    resolution = next(r.json() for r in receiver.requests if r.json()["event"] == "resolution")
    assert resolution["firing_analysis"]["summary"] == GOOD["summary"]
    # Claimed again and again while it waits, its start is still one INFO line (not one a second).
    starts = [
        r
        for r in caplog.records
        if getattr(r, "event", None) == "job_started"
        and getattr(r, "analysis_id", None) == resolved_id
        and r.levelno >= logging.INFO
    ]
    assert len(starts) == 1
