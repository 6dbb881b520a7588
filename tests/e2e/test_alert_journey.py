"""An alert's whole journey through real Prometheus, Alertmanager and the analyzer (issue 6).

One pipeline of real processes on 127.0.0.1 serves the three scenarios in order: an nginx outage
analysed and resolved, alerts fired while the analyzer is down, and the llm engine's prompt.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import LatencyLog
from tests.e2e.harness.analyzer_api import AnalyzerClient, parse_time
from tests.e2e.harness.pipeline import Pipeline, Tools
from tests.e2e.harness.processes import wait_until

pytestmark = pytest.mark.e2e

# Deadlines for one step of a scenario (the whole run takes well under a minute).
STEP_TIMEOUT = 30.0
POLL = 0.02

NGINX_ALERT = "NginxDown"
# The project's alerts this run makes fire; their `for:` shrinks to 1 s. The others keep theirs
# (minutes to hours) and so stay quiet instead of flapping with the machine's load.
FAST_ALERTS = frozenset({NGINX_ALERT, "AnalyzerDown"})
DRILL_ALERT = "E2ECredentialLeakDrill"
# Secrets planted in the drill alert's annotations: they must never reach the LLM's prompt.
PLANTED_API_KEY = "sk-proj-" + secrets.token_hex(24)
PLANTED_PASSWORD = "Tr0ub4dor-" + secrets.token_hex(6)
RUNBOOK_MARKER = "drill-runbook-" + secrets.token_hex(4)

# The test's own rule file, next to the project's (which this test never edits).
DRILL_RULES: dict[str, Any] = {
    "groups": [
        {
            "name": "e2e-drill",
            "rules": [
                {
                    "alert": DRILL_ALERT,
                    "expr": 'e2e_switch{name="leaky"} == 1',
                    "for": "1s",
                    "labels": {"severity": "warning", "service": "payments"},
                    "annotations": {
                        "summary": "Payments config drill switch is on",
                        "description": (
                            "Someone pasted the deploy settings into the alert: "
                            f"OPENAI_API_KEY {PLANTED_API_KEY} and db password={PLANTED_PASSWORD}"
                        ),
                    },
                }
            ],
        }
    ]
}
DRILL_RUNBOOK = f"""# {DRILL_ALERT}

## Meaning
The end-to-end drill switch is on ({RUNBOOK_MARKER}).

## Impact
None: it exists to exercise the llm engine.

## Diagnosis
Look at `e2e_switch` in Prometheus.

## Mitigation
Turn the switch off.
"""


def answer_like_a_model(request: dict[str, Any]) -> str:
    """The OpenAI stand-in's reply: a valid analysis citing a Prometheus item it was shown."""
    prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
    prom_ids = sorted(set(re.findall(r'"id":\s*"(prom-\d+)"', prompt)))
    return json.dumps(
        {
            "summary": "The drill switch e2e_switch is on (e2e llm stand-in).",
            "severity": "warning",
            "category": "drill",
            "inconclusive": False,
            "probable_causes": [
                {
                    "cause": "The drill switch was turned on",
                    "confidence": 0.9,
                    "evidence_ids": prom_ids[:1],
                }
            ],
            "remediation": ["Turn the drill switch off"],
        }
    )


@pytest.fixture(scope="module")
def pipeline(
    e2e_tools: Tools, pipelines: list[Pipeline], tmp_path_factory: pytest.TempPathFactory
) -> Pipeline:
    started = Pipeline(
        tmp_path_factory.mktemp("e2e-pipeline"),
        e2e_tools,
        fast_alerts=FAST_ALERTS,
        extra_rule_files={"drill": DRILL_RULES},
        extra_runbooks={DRILL_ALERT: DRILL_RUNBOOK},
        openai_builder=answer_like_a_model,
    )
    pipelines.append(started)  # stopped by the `pipelines` fixture whatever happens
    return started.start()


@pytest.fixture(scope="module")
def analyzer(pipeline: Pipeline) -> AnalyzerClient:
    return AnalyzerClient(pipeline.analyzer_url, pipeline.webhook_token)


@pytest.fixture
def nginx_healthy(pipeline: Pipeline) -> Iterator[None]:
    """Each scenario starts, and leaves, with nginx serving and NginxDown not firing."""
    _ensure_nginx_healthy(pipeline)
    yield
    _ensure_nginx_healthy(pipeline)


def _ensure_nginx_healthy(pipeline: Pipeline) -> None:
    if not pipeline.nginx.running():
        pipeline.start_nginx()
    wait_until(
        lambda: not pipeline.prometheus_alerts(NGINX_ALERT),
        timeout=STEP_TIMEOUT,
        what=f"{NGINX_ALERT} to be inactive in Prometheus",
    )


def _one(analyzer: AnalyzerClient, alertname: str, status: str, since: float) -> dict[str, Any]:
    """Wait for the finished analysis of ``alertname`` in ``status`` received since ``since``."""
    found = wait_until(
        lambda: analyzer.done(alertname, status, since),
        timeout=STEP_TIMEOUT,
        interval=POLL,
        what=f"a finished {status} analysis of {alertname}",
    )
    return found[0]


def _stored_at(analyzer: AnalyzerClient, alertname: str, since: float) -> float:
    """When this poll first saw the firing analysis of ``alertname`` with its result stored."""

    def stored() -> dict[str, Any] | None:
        items = analyzer.analyses(alertname=alertname, status="firing", since=since)
        with_result = [a for a in items if a["result"] is not None]
        return with_result[0] if with_result else None

    wait_until(
        stored, timeout=STEP_TIMEOUT, interval=POLL, what=f"the analysis of {alertname} stored"
    )
    return time.time()


def _slack_message_for(pipeline: Pipeline, *needles: str, after: float) -> Any:
    def find() -> Any:
        for message in pipeline.slack.messages():
            if message.received_at >= after and all(n in message.text() for n in needles):
                return message
        return None

    return wait_until(
        find, timeout=STEP_TIMEOUT, interval=POLL, what=f"a Slack message with {needles}"
    )


def _assert_one_analysis_per_alert_state(analyzer: AnalyzerClient) -> None:
    """Idempotency over the whole store: no alert state (fingerprint, status, startsAt) twice."""
    keys = [(a["fingerprint"], a["status"], a["starts_at"]) for a in analyzer.analyses()]
    assert len(keys) == len(set(keys)), f"an alert state was stored twice: {sorted(keys)}"


# ----------------------------------------------------------------------------- scenario 1


def test_nginx_outage_is_analysed_notified_and_resolved(
    pipeline: Pipeline, analyzer: AnalyzerClient, nginx_healthy: None, latencies: LatencyLog
) -> None:
    # Live: Prometheus has found Alertmanager (checked at start) and the heartbeat got through.
    wait_until(
        lambda: pipeline.alertmanager_alerts("Watchdog"),
        timeout=STEP_TIMEOUT,
        what="the Watchdog alert in Alertmanager",
    )

    stopped_at = pipeline.stop_nginx()
    stored_seen = _stored_at(analyzer, NGINX_ALERT, since=stopped_at)
    slack = _slack_message_for(pipeline, NGINX_ALERT, after=stopped_at)
    firing = _one(analyzer, NGINX_ALERT, "firing", since=stopped_at)

    received = parse_time(firing["received_at"])
    assert received is not None
    # The worker stores the analysis, then notifies: the storage time lies between the webhook
    # and the Slack post, and the poll (every POLL seconds) bounds it from above.
    stored = min(stored_seen, slack.received_at)
    latencies.record("nginx stopped -> webhook received", received - stopped_at)
    latencies.record("webhook received -> analysis stored", stored - received)
    latencies.record("analysis stored -> Slack notified", slack.received_at - stored)
    latencies.record("webhook received -> Slack notified", slack.received_at - received)

    result = firing["result"]
    assert firing["job"]["state"] == "done"
    assert result["engine"] == "rules"
    assert firing["labels"]["alertname"] == NGINX_ALERT
    prometheus_items = [
        e for e in firing["evidence"] if e["source"] == "prometheus" and e["status"] == "ok"
    ]
    nginx_up_items = [e for e in prometheus_items if "nginx_up" in e["query"]]
    assert nginx_up_items, f"no nginx_up evidence in {firing['evidence']}"
    cited = {i for cause in result["probable_causes"] for i in cause["evidence_ids"]}
    assert cited & {e["id"] for e in nginx_up_items}, (
        f"the probable causes {result['probable_causes']} do not cite the nginx_up evidence"
    )
    # Loki's stand-in was asked and its lines became evidence.
    assert pipeline.loki.queries(), "the analyzer never queried Loki"
    assert any(e["source"] == "loki" and e["status"] == "ok" for e in firing["evidence"])
    # The Slack stand-in got it, and the analyzer recorded that it did.
    assert any(n["channel"] == "slack" and n["ok"] for n in firing["notifications"])
    # ...with the analysis itself: its summary and the evidence ids its causes cite.
    posted = json.dumps(slack.json(), ensure_ascii=False)
    assert result["summary"][:60] in slack.json()["text"]
    assert all(evidence_id in posted for evidence_id in cited)
    # ...and the link to its page, which opens without the token and charts nginx_up.
    link = re.search(r"<(http://[^|>]+/ui/analyses/\d+\?sig=[^|>]+)\|", posted)
    assert link, f"no page link in the Slack message: {posted[:500]}"
    page = httpx.get(link[1].replace("&amp;", "&"), timeout=10)
    assert page.status_code == 200 and NGINX_ALERT in page.text
    assert '<svg class="chart"' in page.text and "nginx_up" in page.text

    restarted_at = time.time()
    pipeline.start_nginx()
    resolved = _one(analyzer, NGINX_ALERT, "resolved", since=restarted_at)
    resolution_message = _slack_message_for(pipeline, NGINX_ALERT, "resolved", after=restarted_at)
    latencies.record(
        "nginx restarted -> resolution received",
        (parse_time(resolved["received_at"]) or 0.0) - restarted_at,
    )
    assert resolved["fingerprint"] == firing["fingerprint"]
    assert resolved["resolution"]["firing_analysis_id"] == firing["id"]
    assert resolved["resolution"]["duration_seconds"] > 0
    assert analyzer.analysis(firing["id"])["resolved_by"] == resolved["id"]
    assert any(n["channel"] == "slack" and n["ok"] for n in resolved["notifications"])
    assert resolution_message.received_at >= slack.received_at

    # Alertmanager authenticated with the token from its credentials file: no delivery refused.
    assert analyzer.metric("aiops_webhook_requests_total", code="202") >= 2
    assert analyzer.metric("aiops_webhook_requests_total", code="401") == 0
    # Exactly one analysis of this outage, although Alertmanager kept resending it.
    firings = analyzer.analyses(alertname=NGINX_ALERT, status="firing", since=stopped_at)
    assert [a["id"] for a in firings] == [firing["id"]]
    _assert_one_analysis_per_alert_state(analyzer)


# ----------------------------------------------------------------------------- scenario 2


def _held_for_analyzer(pipeline: Pipeline) -> set[tuple[str, str, float]]:
    """Alerts Alertmanager holds, firing, for the analyzer: (alertname, fingerprint, startsAt)."""
    held = set()
    for alert in pipeline.alertmanager_alerts():
        receivers = {r["name"] for r in alert.get("receivers", [])}
        if alert["status"]["state"] == "active" and "analyzer" in receivers:
            starts = round(parse_time(alert["startsAt"]) or 0.0, 3)
            held.add((alert["labels"]["alertname"], alert["fingerprint"], starts))
    return held


def _stored_states(analyzer: AnalyzerClient) -> set[tuple[str, str, float]]:
    return {
        (a["alertname"], a["fingerprint"], round(parse_time(a["starts_at"]) or 0.0, 3))
        for a in analyzer.analyses()
    }


def test_alerts_fired_while_the_analyzer_is_down_arrive_exactly_once(
    pipeline: Pipeline, analyzer: AnalyzerClient, nginx_healthy: None, latencies: LatencyLog
) -> None:
    ids_before = {a["id"] for a in analyzer.analyses()}
    failures_before = pipeline.alertmanager_metric(
        "alertmanager_notifications_failed_total", integration="webhook"
    )

    pipeline.analyzer.stop()
    stopped_at = pipeline.stop_nginx()
    # Alertmanager has the alert and fails to deliver it: the analyzer is not there.
    wait_until(
        lambda: pipeline.alertmanager_alerts(NGINX_ALERT),
        timeout=STEP_TIMEOUT,
        what=f"{NGINX_ALERT} in Alertmanager",
    )
    wait_until(
        lambda: (
            pipeline.alertmanager_metric(
                "alertmanager_notifications_failed_total", integration="webhook"
            )
            > failures_before
        ),
        timeout=STEP_TIMEOUT,
        what="Alertmanager's failed webhook attempt",
    )
    restarted_at = time.time()
    pipeline.restart_analyzer()
    firing = _one(analyzer, NGINX_ALERT, "firing", since=stopped_at)
    latencies.record(
        "analyzer restarted -> missed alert received",
        (parse_time(firing["received_at"]) or 0.0) - restarted_at,
    )
    assert firing["result"]["engine"] == "rules"

    # Alertmanager keeps resending the firing alert: duplicates are counted, not re-analysed.
    wait_until(
        lambda: analyzer.analysis(firing["id"])["deliveries"] >= 2,
        timeout=STEP_TIMEOUT,
        what="a resend of the firing alert",
    )
    deliveries = analyzer.analysis(firing["id"])["deliveries"]
    duplicates = analyzer.metric("aiops_alerts_duplicate_total")
    # The counter restarted with the process, and every delivery since came after the restart.
    assert duplicates >= deliveries - 1 >= 1
    assert analyzer.metric("aiops_alerts_received_total", status="firing") >= deliveries
    firings = analyzer.analyses(alertname=NGINX_ALERT, status="firing", since=stopped_at)
    assert [a["id"] for a in firings] == [firing["id"]]

    # Nothing lost: every alert that fired while the analyzer was down and still fires is
    # stored. (One that fired and resolved entirely within the outage may never be sent:
    # Alertmanager does not notify a group's resolution when its firing was never delivered.)
    wait_until(
        lambda: (
            {held for held in _held_for_analyzer(pipeline) if held[2] <= restarted_at}
            <= _stored_states(analyzer)
        ),
        timeout=STEP_TIMEOUT,
        what="every alert Alertmanager holds for the analyzer to be stored",
        on_timeout=lambda: (
            f"held: {sorted(_held_for_analyzer(pipeline))}\n"
            f"stored: {sorted(_stored_states(analyzer))}"
        ),
    )
    # ...and everything stored before the restart is still there.
    assert ids_before <= {a["id"] for a in analyzer.analyses()}
    _assert_one_analysis_per_alert_state(analyzer)


# ----------------------------------------------------------------------------- scenario 3


def test_llm_prompt_carries_alert_evidence_and_runbook_but_no_secret(
    pipeline: Pipeline, analyzer: AnalyzerClient, latencies: LatencyLog
) -> None:
    pipeline.restart_analyzer(
        AIOPS_ENGINE="llm",
        AIOPS_LLM_BASE_URL=f"{pipeline.openai.url}/v1",
        AIOPS_OPENAI_API_KEY=pipeline.openai_api_key,
        AIOPS_LLM_MODEL="gpt-e2e-stand-in",
    )
    switched_at = time.time()
    with pipeline.switch("leaky"):
        firing = _one(analyzer, DRILL_ALERT, "firing", since=switched_at)
    latencies.record(
        "webhook received -> llm analysis finished",
        (parse_time(firing["job"]["finished_at"]) or 0.0)
        - (parse_time(firing["received_at"]) or 0.0),
    )

    result = firing["result"]
    assert result["engine"] == "llm", f"rules answered: {result.get('fallback_reason')}"
    assert result["fallback_reason"] is None
    assert result["model"] == "gpt-e2e-stand-in"
    assert result["prompt_tokens"] > 0 and result["completion_tokens"] > 0

    prompts = [p for p in pipeline.openai.prompts() if DRILL_ALERT in p]
    assert prompts, "the OpenAI stand-in never received a prompt about the drill alert"
    prom_items = [
        e
        for e in firing["evidence"]
        if e["source"] == "prometheus" and e["status"] == "ok" and "e2e_switch" in e["query"]
    ]
    assert prom_items, f"no Prometheus evidence of the alert's expression in {firing['evidence']}"
    for prompt in prompts:
        # The alert, with its annotations...
        assert "Payments config drill switch is on" in prompt
        assert "Someone pasted the deploy settings into the alert" in prompt
        # ...the Prometheus evidence gathered from the real Prometheus, and the runbook...
        assert prom_items[0]["id"] in prompt and "e2e_switch" in prompt
        assert RUNBOOK_MARKER in prompt
        # ...and none of the secrets.
        for secret in (
            PLANTED_API_KEY,
            PLANTED_PASSWORD,
            pipeline.webhook_token,
            pipeline.openai_api_key,
        ):
            assert secret not in prompt
    # The model's answer was parsed and its citation of the Prometheus item kept.
    cited = {i for cause in result["probable_causes"] for i in cause["evidence_ids"]}
    assert prom_items[0]["id"] in cited

    # Nor do they reach the analyzer's log or the Slack channel.
    analyzer_log = pipeline.analyzer.log_path.read_text(errors="replace")
    slack_message = _slack_message_for(pipeline, DRILL_ALERT, after=switched_at)
    for secret in (PLANTED_API_KEY, PLANTED_PASSWORD, pipeline.webhook_token):
        assert secret not in analyzer_log, "a secret reached the analyzer's log"
        assert secret not in slack_message.text(), "a secret reached Slack"
