"""Every notification (Slack, Discord, webhook, Grafana) carries the signed page link."""

from __future__ import annotations

import json
import re
from typing import Any

from aiops_analyzer.notify import notify_analysis, notify_resolution
from aiops_analyzer.web import links

from tests.service.loopback import LoopbackServer, Reply, always
from tests.service.test_notify import ALERT, RESOLVED, RESULT, make_settings

PUBLIC = "https://aiops.example.com/base"
PAGE = re.compile(re.escape(PUBLIC) + r"/ui/analyses/(\d+)\?sig=([A-Za-z0-9_.\-]+)")


def links_in(body: dict[str, Any]) -> list[tuple[int, str]]:
    return [(int(m[1]), m[2]) for m in PAGE.finditer(json.dumps(body))]


def by_channel(server: LoopbackServer) -> dict[str, dict[str, Any]]:
    return {r.path.strip("/").split("/")[0]: r.json() for r in server.requests}


async def test_each_channel_links_the_analysis_and_its_resolution() -> None:
    with LoopbackServer(always(Reply(200, {}))) as server:
        settings = make_settings(server, public_url=PUBLIC)
        await notify_analysis(ALERT, RESULT, settings, analysis_id=41, backoff_seconds=0)
        firing = by_channel(server)
        server.requests.clear()
        await notify_resolution(RESOLVED, RESULT, 252.0, settings, analysis_id=42)
        resolved = by_channel(server)

    assert set(firing) == set(resolved) == {"slack", "discord", "hook", "grafana"}
    for messages, analysis_id in ((firing, 41), (resolved, 42)):
        for channel, body in messages.items():
            found = links_in(body)
            assert found, f"{channel} message has no page link"
            for number, sig in found:
                assert number == analysis_id
                assert links.check_page(settings, analysis_id, sig).ok, channel

    slack_link = [b for b in firing["slack"]["blocks"] if "Open the analysis" in json.dumps(b)]
    assert slack_link and slack_link[0]["text"]["text"].startswith(f"*<{PUBLIC}/ui/analyses/41?")
    assert firing["discord"]["embeds"][0]["url"].startswith(f"{PUBLIC}/ui/analyses/41?sig=")
    assert firing["hook"]["page_url"].startswith(f"{PUBLIC}/ui/analyses/41?sig=")
    assert resolved["hook"]["page_url"].startswith(f"{PUBLIC}/ui/analyses/42?sig=")
    # Grafana renders annotation text as HTML: the link is an anchor, its URL attribute-escaped.
    assert re.search(
        r'<a href="https://aiops\.example\.com/base/ui/analyses/41\?sig=[^"<>]+">',
        firing["grafana"]["text"],
    )


async def test_without_a_public_url_no_channel_sends_a_link() -> None:
    with LoopbackServer(always(Reply(200, {}))) as server:
        await notify_analysis(
            ALERT, RESULT, make_settings(server), analysis_id=41, backoff_seconds=0
        )
        bodies = by_channel(server)
    assert len(bodies) == 4
    assert all("/ui/analyses/" not in json.dumps(b) for b in bodies.values())
    assert bodies["hook"]["page_url"] is None


async def test_grafana_basic_auth_when_there_is_no_service_account_token() -> None:
    with LoopbackServer(always(Reply(200, {}))) as server:
        settings = make_settings(
            server, grafana_api_token=None, grafana_basic_auth="admin:s3cret-pass"
        )
        await notify_analysis(ALERT, RESULT, settings, analysis_id=41, backoff_seconds=0)
        [annotation] = [r for r in server.requests if r.path.startswith("/grafana")]
    assert annotation.headers["authorization"] == "Basic YWRtaW46czNjcmV0LXBhc3M="
