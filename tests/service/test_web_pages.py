"""The analysis pages over HTTP (ASGI): signed links, login, list filters, escaping, headers.

The browser side (rendering, CSP enforcement, phone and dark mode) is in test_web_browser.py.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from aiops_analyzer.core.config import Settings
from aiops_analyzer.web import links

from tests.service import webworld
from tests.service.apptools import AUTH, WEBHOOK, make_settings, payload, running_app, wait_until
from tests.service.loopback import LoopbackServer

PUBLIC = "https://aiops.example.com"


def world_settings(tmp_path: Path, server: LoopbackServer, **overrides: Any) -> Settings:
    return make_settings(
        tmp_path,
        prometheus_url=f"{server.url}/prom",
        loki_url=f"{server.url}/loki",
        slack_webhook_url=f"{server.url}/slack",
        public_url=PUBLIC,
        **overrides,
    )


async def analysed(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    [analysis_id] = (await client.post(WEBHOOK, json=body, headers=AUTH)).json()["analysis_ids"]

    async def done() -> dict[str, Any] | None:
        item: dict[str, Any] = (await client.get(f"/analyses/{analysis_id}", headers=AUTH)).json()
        return item if item["job"]["state"] == "done" else None

    result: dict[str, Any] = await wait_until(done)
    return result


def local(url: str) -> str:
    assert url.startswith(PUBLIC)
    return url[len(PUBLIC) :]


async def test_page_link_opens_the_page_without_the_token(tmp_path: Path) -> None:
    starts = datetime.now(UTC) - timedelta(minutes=10)
    body = webworld.alert_payload(starts, note=webworld.HOSTILE)
    with LoopbackServer(webworld.handle) as world:
        async with running_app(world_settings(tmp_path, world)) as (_, client):
            item = await analysed(client, body)
            page = await client.get(local(item["page_url"]))
            listed = (await client.get("/analyses", headers=AUTH)).json()["items"][0]

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert listed["page_url"].startswith(f"{PUBLIC}/ui/analyses/{item['id']}?sig=")
    html = page.text
    assert "HighMemoryUsage" in html and item["result"]["summary"].split(":")[0] in html
    # A chart per Prometheus item, with the threshold from the alert's expression and the start.
    assert html.count('<svg class="chart"') >= 2
    assert 'class="threshold"' in html and 'class="alert-start"' in html
    assert "threshold &gt; 90" in html and f"fired {starts:%H:%M}" in html
    # Ranked log lines, remediation, engine, the Slack notification's outcome.
    assert "Out of memory: Killed process 4242" in html
    assert 'id="h-remediation"' in html and "rules" in html
    assert re.search(r"<td>slack</td><td class=\"ok\">delivered</td>", html)
    # The alert's query, in Prometheus.
    assert "http://prometheus.example:9090/graph?g0.expr=" in html
    # Attacker-controlled text (a label, an annotation, a log line, a series label) is escaped.
    assert "<script>" not in html and "onerror=" not in html.replace("onerror=&#34;", "")
    assert "&lt;script&gt;document.title" in html
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"


async def test_tampered_foreign_and_expired_links_are_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, public_url=PUBLIC, page_link_ttl_hours=1)
    async with running_app(settings, start_workers=False) as (_, client):
        ids = (await client.post(WEBHOOK, json=payload(count=2), headers=AUTH)).json()[
            "analysis_ids"
        ]
        good = links.sign_page(settings, ids[0])
        assert (await client.get(f"/ui/analyses/{ids[0]}?sig={good}")).status_code == 200

        tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
        refused = await client.get(f"/ui/analyses/{ids[0]}?sig={tampered}")
        assert refused.status_code == 403 and "This link is not valid" in refused.text
        # A valid signature of another analysis opens nothing else.
        other = await client.get(f"/ui/analyses/{ids[1]}?sig={good}")
        assert other.status_code == 403 and "not valid" in other.text

        two_hours_ago = int(time.time()) - 7200
        old = links.sign_page(settings, ids[0], issued_at=two_hours_ago)
        expired = await client.get(f"/ui/analyses/{ids[0]}?sig={old}")
        assert expired.status_code == 403 and "This link has expired" in expired.text
        assert expired.headers["content-security-policy"].startswith("default-src 'none'")

        bare = await client.get(f"/ui/analyses/{ids[0]}")
        assert bare.status_code == 303
        assert bare.headers["location"] == f"/ui/login?next=%2Fui%2Fanalyses%2F{ids[0]}"
        assert f'href="/ui/login?next=%2Fui%2Fanalyses%2F{ids[0]}"' in expired.text
        assert (await client.get("/ui/analyses/abc")).status_code == 404


async def test_links_follow_the_key_and_survive_a_declared_rotation(tmp_path: Path) -> None:
    first = make_settings(tmp_path, public_url=PUBLIC)
    token = links.sign_page(first, 7)
    assert links.check_page(first, 7, token).ok
    # The default key derives from the webhook token: a new token retires every link.
    rotated_token = make_settings(tmp_path, public_url=PUBLIC, webhook_token="another-token-9876")
    assert links.check_page(rotated_token, 7, token).problem is links.LinkProblem.INVALID

    explicit = make_settings(tmp_path, page_signing_key="key-one-0123456789")
    issued = links.sign_page(explicit, 7)
    new_key = make_settings(tmp_path, page_signing_key="key-two-0123456789")
    assert not links.check_page(new_key, 7, issued).ok
    with_previous = make_settings(
        tmp_path,
        page_signing_key="key-two-0123456789",
        page_signing_previous_keys=["key-one-0123456789"],
    )
    assert links.check_page(with_previous, 7, issued).ok
    # New links are signed with the current key only.
    assert not links.check_page(explicit, 7, links.sign_page(with_previous, 7)).ok

    assert links.page_url(make_settings(tmp_path), 7) is None  # no AIOPS_PUBLIC_URL, no link


async def test_list_needs_a_login_and_filters_and_pages(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        await client.post(WEBHOOK, json=payload(count=25), headers=AUTH)
        await client.post(
            WEBHOOK, json=payload(alertname="DiskFull", fingerprint="disk"), headers=AUTH
        )

        assert (await client.get("/")).headers["location"] == "/ui/analyses"
        anonymous = await client.get("/ui/analyses")
        assert anonymous.status_code == 303 and anonymous.headers["location"] == "/ui/login"

        wrong = await client.post("/ui/login", data={"token": "nope"})
        assert wrong.status_code == 401 and "not valid" in wrong.text
        assert "set-cookie" not in wrong.headers

        login = await client.post("/ui/login", data={"token": AUTH["Authorization"][7:]})
        assert login.status_code == 303
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/ui" in cookie
        assert AUTH["Authorization"][7:] not in cookie  # the session is not the token

        first = await client.get("/ui/analyses")
        assert first.status_code == 200 and "1 to 20 of 26" in first.text
        assert first.text.count('class="card row"') == 20
        older = re.search(r'rel="next" href="([^"]+)"', first.text)
        assert older
        second = await client.get(older[1].replace("&amp;", "&"))
        assert "21 to 26 of 26" in second.text

        by_name = await client.get("/ui/analyses", params={"alertname": "DiskFull", "state": ""})
        assert "1 to 1 of 1" in by_name.text and "DiskFull" in by_name.text
        resolved = await client.get("/ui/analyses", params={"status": "resolved"})
        assert "No analyses match." in resolved.text
        future = await client.get("/ui/analyses", params={"since": "2999-01-01T00:00"})
        assert "No analyses match." in future.text

        bad = await client.get("/ui/analyses", params={"since": "yesterday"})
        assert bad.status_code == 400 and "since must be a date" in bad.text
        assert (await client.get("/ui/analyses", params={"limit": "0"})).status_code == 400

        # A logged-in user opens any page without a signature.
        assert (await client.get("/ui/analyses/1")).status_code == 200

        await client.post("/ui/logout")
        assert (await client.get("/ui/analyses")).status_code == 303


async def test_forged_session_cookie_is_not_a_login(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    page_token = links.sign_page(settings, 1)  # a page signature is no session
    async with running_app(settings, start_workers=False) as (_, client):
        for forged in (
            "ui",
            page_token,
            links.new_session(make_settings(tmp_path, webhook_token="x" * 20)),
        ):
            client.cookies.set("aiops_session", forged, path="/ui")
            assert (await client.get("/ui/analyses")).status_code == 303
        client.cookies.set("aiops_session", links.new_session(settings), path="/ui")
        assert (await client.get("/ui/analyses")).status_code == 200


async def test_stylesheet_is_served_by_the_analyzer(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        css = await client.get("/ui/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "prefers-color-scheme: dark" in css.text


async def test_firing_and_resolution_pages_link_each_other(tmp_path: Path) -> None:
    starts = datetime.now(UTC) - timedelta(minutes=10)
    firing_body = webworld.alert_payload(starts)
    resolved_body = webworld.alert_payload(starts)
    ends = datetime.now(UTC) - timedelta(minutes=1)
    resolved_body["status"] = "resolved"
    resolved_body["alerts"][0].update(status="resolved", endsAt=ends.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with LoopbackServer(webworld.handle) as world:
        async with running_app(world_settings(tmp_path, world)) as (_, client):
            firing = await analysed(client, firing_body)
            resolution = await analysed(client, resolved_body)
            firing = (await client.get(f"/analyses/{firing['id']}", headers=AUTH)).json()
            resolved_page = await client.get(local(resolution["page_url"]))
            firing_page = await client.get(local(firing["page_url"]))

    assert resolved_page.status_code == firing_page.status_code == 200
    assert "Resolved after 9m" in resolved_page.text
    # Resolved alerts are analysed by default: the page says whether the cause is still there
    # (the loopback world's series keeps its points after endsAt, so it is).
    assert "Resolved after 9m 0s. Cause still present: yes." in resolved_page.text
    # Each page links the other by a signed link the reader can follow without the token.
    back = re.search(
        r'href="(/ui/analyses/(\d+)\?sig=[^"]+)">The firing analysis', resolved_page.text
    )
    assert back and int(back[2]) == firing["id"]
    assert links.check_page(
        world_settings(tmp_path, world), firing["id"], back[1].split("sig=")[1]
    ).ok
    forward = re.search(r'href="/ui/analyses/(\d+)\?sig=[^"]+">The resolution', firing_page.text)
    assert forward and int(forward[1]) == resolution["id"]
    assert re.search(r"UTC</span> <span class=\"what\">resolved</span>", firing_page.text)


async def test_login_leads_back_to_the_page_asked_for_and_nowhere_else(tmp_path: Path) -> None:
    token = AUTH["Authorization"][7:]
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        form = await client.get("/ui/login", params={"next": "/ui/analyses/7"})
        assert 'name="next" value="/ui/analyses/7"' in form.text
        back = await client.post("/ui/login", data={"token": token, "next": "/ui/analyses/7"})
        assert back.status_code == 303 and back.headers["location"] == "/ui/analyses/7"
        for elsewhere in ("https://evil.example/", "//evil.example/ui/", "/ui/..//evil", "/docs"):
            answer = await client.post("/ui/login", data={"token": token, "next": elsewhere})
            assert answer.headers["location"] == "/ui/analyses", elsewhere
        refused = await client.post("/ui/login", data={"token": "no", "next": "/ui/analyses/7"})
        assert refused.status_code == 401 and 'value="/ui/analyses/7"' in refused.text


def test_public_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(pydantic.ValidationError, match="public_url"):
        make_settings(tmp_path, public_url="javascript:alert(1)")
    assert make_settings(tmp_path, public_url="https://a.example/x/").public_url == (
        "https://a.example/x"
    )
