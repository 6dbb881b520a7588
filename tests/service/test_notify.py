"""Notifications against loopback servers speaking Slack, Discord, webhook and Grafana."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiops_analyzer.core.config import Settings
from aiops_analyzer.notify import notify_analysis, notify_resolution
from aiops_analyzer.notify.delivery import MAX_RETRY_AFTER_SECONDS, retry_after_seconds
from aiops_analyzer.notify.format import RESOLVED_COLOR, SEVERITY_COLOR
from aiops_analyzer.schemas import Alert, AnalysisResult, ProbableCause, Recovery

from tests.service.loopback import (
    LoopbackServer,
    Recorded,
    Reply,
    always,
    sequence,
)

GRAFANA_TOKEN = "glsa_" + "T3stS3rv1c3Acc0untT0k3n_0123abcd"
# Alerts reach the notifier from the store, scrubbed where they entered (the webhook).
MASKED = "[REDACTED:secret]"
STARTS = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)

ALERT = Alert(
    fingerprint="1122334455667788",
    status="firing",
    labels={
        "alertname": "NginxDown",
        "severity": "critical",
        "instance": "nginx-exporter:9113",
        "job": "nginx",
        "db_password": MASKED,
    },
    annotations={"summary": "nginx is down @everyone <!channel>"},
    starts_at=STARTS,
    generator_url="http://prometheus:9090/graph?g0.expr=nginx_up+%3D%3D+0",
)
RESOLVED = ALERT.model_copy(
    update={"status": "resolved", "ends_at": STARTS + timedelta(seconds=252)}
)
RESULT = AnalysisResult(
    summary="NginxDown: nginx stopped; the exporter cannot reach stub_status.",
    severity="critical",
    category="target_down",
    probable_causes=[
        ProbableCause(cause="nginx master process exited", confidence=0.7, evidence_ids=["prom-1"])
    ],
    remediation=["systemctl status nginx", "Start nginx"],
    runbook_urls=["https://runbooks.example.com/nginx-down", "monitoring/runbooks/NginxDown.md"],
    engine="rules",
)


def make_settings(server: LoopbackServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_disabled": True,
        "slack_webhook_url": f"{server.url}/slack/services/T000/B000/XXXX",
        "discord_webhook_url": f"{server.url}/discord/api/webhooks/1/abc",
        "notify_webhook_url": f"{server.url}/hook",
        "grafana_url": f"{server.url}/grafana",
        "grafana_api_token": GRAFANA_TOKEN,
        "notify_max_attempts": 3,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def route(**handlers: Any) -> Any:
    """Dispatch by the first path segment: slack, discord, hook, grafana."""

    def handle(request: Recorded) -> Reply:
        channel = request.path.strip("/").split("/")[0]
        return handlers.get(channel, always(Reply(204)))(request)  # type: ignore[no-any-return]

    return handle


def requests_to(server: LoopbackServer, channel: str) -> list[Recorded]:
    return [r for r in server.requests if r.path.startswith(f"/{channel}")]


async def send(server: LoopbackServer, **overrides: Any) -> dict[str, Any]:
    outcomes = await notify_analysis(
        ALERT, RESULT, make_settings(server, **overrides), analysis_id=42, backoff_seconds=0.01
    )
    return {o.channel: o for o in outcomes}


async def test_every_configured_channel_gets_one_message() -> None:
    with LoopbackServer(route()) as server:
        outcomes = await send(server)
    assert set(outcomes) == {"slack", "discord", "webhook", "grafana"}
    assert all(o.ok and o.attempts == 1 for o in outcomes.values())
    assert sorted(r.path.split("/")[1] for r in server.requests) == [
        "discord",
        "grafana",
        "hook",
        "slack",
    ]


async def test_slack_block_kit_message() -> None:
    with LoopbackServer(route()) as server:
        await send(server)
    body = requests_to(server, "slack")[0].json()
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header"
    assert "NginxDown" in blocks[0]["text"]["text"]
    assert "CRITICAL" in blocks[0]["text"]["text"]
    texts = "\n".join(
        b.get("text", {}).get("text", "") + " ".join(f["text"] for f in b.get("fields", []))
        for b in blocks
        if b["type"] == "section"
    )
    assert "*Severity*\ncritical" in texts
    assert RESULT.summary in texts
    assert "nginx master process exited (70%; evidence prom-1)" in texts
    assert "1. systemctl status nginx" in texts
    context = blocks[-1]["elements"][0]["text"]
    assert "<https://runbooks.example.com/nginx-down|Runbook>" in context
    assert "<http://prometheus:9090/graph?g0.expr=nginx_up+%3D%3D+0|Source>" in context
    assert "analysis #42" in context
    assert body["text"]  # the notification fallback text


async def test_discord_embed_never_pings() -> None:
    with LoopbackServer(route()) as server:
        await send(server)
    body = requests_to(server, "discord")[0].json()
    assert body["allowed_mentions"] == {"parse": []}
    embed = body["embeds"][0]
    assert "NginxDown" in embed["title"]
    # Markdown characters arrive backslash-escaped (rendered, they read as written).
    assert embed["description"] == RESULT.summary.replace("_", "\\_")
    assert embed["color"] == 0xD62828
    names = [f["name"] for f in embed["fields"]]
    assert names[:3] == ["Severity", "Category", "Target"]
    assert "Remediation" in names
    assert embed["timestamp"].startswith("2026-11-28T01:00:00")


async def test_generic_webhook_carries_alert_and_analysis() -> None:
    with LoopbackServer(route()) as server:
        await send(server)
    body = requests_to(server, "hook")[0].json()
    assert body["event"] == "analysis"
    assert body["analysis_id"] == 42
    assert body["analysis"] == RESULT.model_dump(mode="json")
    assert body["alert"]["labels"]["alertname"] == "NginxDown"
    assert body["alert"]["labels"]["db_password"] == "[REDACTED:secret]"


async def test_grafana_annotation() -> None:
    with LoopbackServer(route()) as server:
        await send(server)
    (request,) = requests_to(server, "grafana")
    assert request.path == "/grafana/api/annotations"
    assert request.headers["authorization"] == f"Bearer {GRAFANA_TOKEN}"
    body = request.json()
    assert body["time"] == int(STARTS.timestamp() * 1000)
    assert body["tags"] == ["aiops", "NginxDown", "critical"]
    assert RESULT.summary in body["text"]


async def test_server_error_then_success_is_retried() -> None:
    flaky = sequence(Reply(500, "oops"), Reply(200, "ok"))
    with LoopbackServer(route(slack=flaky)) as server:
        outcomes = await send(server)
    assert outcomes["slack"].ok
    assert outcomes["slack"].attempts == 2
    assert len(requests_to(server, "slack")) == 2


async def test_rate_limit_honours_retry_after() -> None:
    limited = sequence(Reply(429, "slow down", {"Retry-After": "0.3"}), Reply(200, "ok"))
    with LoopbackServer(route(discord=limited)) as server:
        outcomes = await send(server)
    first, second = requests_to(server, "discord")
    assert outcomes["discord"].ok
    # Backoff alone is 0.01 s; the 30-fold wait comes from Retry-After.
    assert (second.at - first.at) / 0.01 >= 30


async def test_permanent_client_error_gives_up_at_once() -> None:
    with LoopbackServer(route(slack=always(Reply(404, "no_service")))) as server:
        outcomes = await send(server)
    slack = outcomes["slack"]
    assert not slack.ok
    assert slack.attempts == 1
    assert slack.status_code == 404
    assert slack.error == "HTTP 404: no_service"
    assert len(requests_to(server, "slack")) == 1


async def test_one_channel_down_does_not_stop_the_others() -> None:
    with LoopbackServer(route(slack=always(Reply(503, "down")))) as server:
        outcomes = await send(server)
    assert not outcomes["slack"].ok
    assert outcomes["slack"].attempts == 3
    assert len(requests_to(server, "slack")) == 3
    assert all(outcomes[c].ok for c in ("discord", "webhook", "grafana"))


async def test_unreachable_channel_is_a_failed_outcome_without_its_url() -> None:
    dead = LoopbackServer(always(Reply(200)))
    dead_url = f"{dead.url}/slack/services/T000/B000/SECRETPART"
    dead.stop()
    with LoopbackServer(route()) as server:
        outcomes = await send(server, slack_webhook_url=dead_url, notify_max_attempts=2)
    slack = outcomes["slack"]
    assert not slack.ok
    assert slack.attempts == 2
    assert slack.error and "connection failed" in slack.error
    assert "SECRETPART" not in slack.error
    assert outcomes["discord"].ok


async def test_only_configured_channels_appear() -> None:
    with LoopbackServer(route()) as server:
        s = Settings(  # type: ignore[call-arg]
            _env_file=None, auth_disabled=True, notify_webhook_url=f"{server.url}/hook"
        )
        outcomes = await notify_analysis(ALERT, RESULT, s, analysis_id=1)
        assert [o.channel for o in outcomes] == ["webhook"]
        nothing = Settings(_env_file=None, auth_disabled=True)  # type: ignore[call-arg]
        assert await notify_analysis(ALERT, RESULT, nothing, analysis_id=1) == []
    assert len(server.requests) == 1


async def test_resolution_follow_up_with_duration() -> None:
    with LoopbackServer(route()) as server:
        outcomes = await notify_resolution(
            RESOLVED, RESULT, 252.0, make_settings(server), analysis_id=42, backoff_seconds=0.01
        )
    assert all(o.ok for o in outcomes)
    slack = requests_to(server, "slack")[0].json()
    assert "RESOLVED NginxDown" in slack["blocks"][0]["text"]["text"]
    assert "resolved after 4m 12s" in slack["blocks"][1]["text"]["text"]
    discord = requests_to(server, "discord")[0].json()["embeds"][0]
    assert "4m 12s" in discord["description"]
    hook = requests_to(server, "hook")[0].json()
    assert hook["event"] == "resolution"
    assert hook["duration_seconds"] == 252.0
    assert hook["firing_analysis"]["summary"] == RESULT.summary
    grafana = requests_to(server, "grafana")[0].json()
    assert grafana["timeEnd"] - grafana["time"] == 252_000
    assert "resolved" in grafana["tags"]


RECOVERED = AnalysisResult(
    summary="NginxDown (info, resolved): Resolved at 01:04:12 UTC after 4 min; recovered.",
    severity="info",
    category="target_down",
    engine="rules",
    recovery=Recovery(
        recovered_at=STARTS + timedelta(seconds=252),
        fired_seconds=252,
        cause_persists=False,
        detail="Resolved at 01:04:12 UTC after 4 min; it has recovered and nothing in the "
        "evidence shows the cause still present.",
    ),
)
STILL_BROKEN = RECOVERED.model_copy(
    update={
        "severity": "critical",
        "recovery": Recovery(
            recovered_at=STARTS + timedelta(seconds=252),
            fired_seconds=252,
            cause_persists=True,
            detail="Resolved at 01:04:12 UTC after 4 min, but the cause is still there: its "
            "condition holds again after the resolution (prom-1).",
            evidence_ids=["prom-1"],
        ),
    }
)


async def resolution_bodies(resolved: AnalysisResult | None) -> dict[str, Any]:
    """What each loopback channel received for the resolution of RESULT's alert."""
    with LoopbackServer(route()) as server:
        settings = make_settings(server, public_url="https://analyzer.example.com")
        outcomes = await notify_resolution(
            RESOLVED, RESULT, 252.0, settings, analysis_id=43, resolved=resolved, backoff_seconds=0
        )
    assert all(o.ok for o in outcomes)
    return {c: requests_to(server, c)[0].json() for c in ("slack", "discord", "hook", "grafana")}


def slack_text(body: dict[str, Any]) -> str:
    parts = [body["text"]]
    for block in body["blocks"]:
        parts.append(block.get("text", {}).get("text", ""))
        parts += [f["text"] for f in block.get("fields", [])]
        parts += [e["text"] for e in block.get("elements", [])]
    return "\n".join(parts)


async def test_resolution_reports_recovery_with_the_resolved_severity() -> None:
    sent = await resolution_bodies(RECOVERED)
    slack = slack_text(sent["slack"])
    assert sent["slack"]["blocks"][0]["text"]["text"] == "✅ RESOLVED [INFO] NginxDown"
    assert "resolved after 4m 12s; recovered at 01:04:12 UTC on 2026-11-28" in slack
    assert "*Severity*\ninfo" in slack and "*Cause still present*\nno" in slack
    assert "nothing in the evidence shows the cause still present" in slack
    # The firing analysis in brief: its most likely cause, not its whole summary.
    assert "*Firing analysis* (target_down): nginx master process exited" in slack
    assert RESULT.summary not in slack
    assert "<https://analyzer.example.com/" in slack and "|Open the analysis" in slack
    embed = sent["discord"]["embeds"][0]
    assert embed["title"] == "✅ RESOLVED \\[INFO\\] NginxDown"
    assert embed["color"] == RESOLVED_COLOR
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Severity"] == "info" and fields["Cause still present"] == "no"
    assert "nginx master process exited" in fields["Firing analysis"]
    assert "recovered at 01:04:12 UTC" in embed["description"]
    assert embed["url"].startswith("https://analyzer.example.com/")
    hook = sent["hook"]
    assert hook["severity"] == "info" and hook["cause_persists"] is False
    assert hook["resolved_analysis"]["recovery"]["fired_seconds"] == 252
    assert hook["firing_analysis"]["severity"] == "critical"
    grafana = sent["grafana"]
    assert "info" in grafana["tags"] and "critical" not in grafana["tags"]
    assert "cause-persists" not in grafana["tags"]
    assert "recovered at 01:04:12 UTC" in grafana["text"]
    assert "While firing: nginx master process exited" in grafana["text"]


async def test_resolution_whose_cause_persists_keeps_its_severity_and_says_so() -> None:
    sent = await resolution_bodies(STILL_BROKEN)
    heading = sent["slack"]["blocks"][0]["text"]["text"]
    assert heading == "✅ RESOLVED [CRITICAL] NginxDown (cause still present)"
    slack = slack_text(sent["slack"])
    assert "*Cause still present*\nyes" in slack and "condition holds again" in slack
    embed = sent["discord"]["embeds"][0]
    assert embed["color"] == SEVERITY_COLOR["critical"]
    assert sent["hook"]["cause_persists"] is True and sent["hook"]["severity"] == "critical"
    assert {"critical", "resolved", "cause-persists"} <= set(sent["grafana"]["tags"])


async def test_resolution_not_analysed_says_the_cause_is_unknown() -> None:
    sent = await resolution_bodies(None)
    slack = slack_text(sent["slack"])
    assert sent["slack"]["blocks"][0]["text"]["text"] == "✅ RESOLVED NginxDown"
    assert "*Cause still present*\nunknown" in slack and "is off" in slack
    assert "recovered at 01:04:12 UTC" in slack  # endsAt is known without an analysis
    assert sent["hook"]["resolved_analysis"] is None and sent["hook"]["cause_persists"] is None
    assert "critical" in sent["grafana"]["tags"]  # the firing analysis's severity then


async def test_resolution_without_a_firing_analysis() -> None:
    with LoopbackServer(route()) as server:
        outcomes = await notify_resolution(
            RESOLVED, None, None, make_settings(server), analysis_id=7, backoff_seconds=0.01
        )
    assert all(o.ok for o in outcomes)
    assert requests_to(server, "hook")[0].json()["firing_analysis"] is None
    assert "an unknown time" in requests_to(server, "slack")[0].json()["text"]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_no_client_error_is_retried(status: int) -> None:
    with LoopbackServer(route(hook=always(Reply(status)))) as server:
        outcomes = await send(server)
    assert outcomes["webhook"].attempts == 1
    assert not outcomes["webhook"].ok


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("100000") == MAX_RETRY_AFTER_SECONDS
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 0 < (retry_after_seconds(soon) or 0) <= 10
    assert retry_after_seconds("soon-ish") is None
    assert retry_after_seconds(None) is None


async def test_alert_text_cannot_forge_slack_links_or_mentions() -> None:
    sneaky = RESULT.model_copy(update={"summary": "click <https://evil.example|here> <!channel>"})
    with LoopbackServer(route()) as server:
        await notify_analysis(
            ALERT, sneaky, make_settings(server), analysis_id=1, backoff_seconds=0.01
        )
    body = requests_to(server, "slack")[0].body.decode()
    assert "<!channel>" not in body
    assert "<https://evil.example|here>" not in body
    assert "&lt;!channel&gt;" in body


async def test_alert_text_cannot_forge_discord_links() -> None:
    sneaky = RESULT.model_copy(update={"summary": "see [the fix](https://evil.example)"})
    with LoopbackServer(route()) as server:
        await notify_analysis(
            ALERT, sneaky, make_settings(server), analysis_id=1, backoff_seconds=0.01
        )
    embed = requests_to(server, "discord")[0].json()["embeds"][0]
    assert embed["description"] == "see \\[the fix\\]\\(https://evil.example\\)"
    # The analyzer's own links stay links.
    links = next(f["value"] for f in embed["fields"] if f["name"] == "Links")
    assert "[Runbook](https://runbooks.example.com/nginx-down)" in links
