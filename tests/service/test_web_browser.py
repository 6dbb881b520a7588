"""The analysis page in a real browser: Debian's Chromium driven by Playwright.

The analyzer runs as a real process with Prometheus, Loki and Slack stood in by a loopback
server; the page is opened from the link in the Slack message the analyzer sent, as an
on-call engineer would. Screenshots go to ``test-artifacts/screenshots/`` (gitignored); with
``UPDATE_DOCS_SCREENSHOT=1`` the desktop one also replaces the docs' image.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.service import webworld
from tests.service.apptools import AUTH, REPO, TOKEN, AnalyzerProcess
from tests.service.loopback import LoopbackServer
from tests.support.tools import require_tool

ARTIFACTS = REPO / "test-artifacts" / "screenshots"
DOCS_IMAGE = REPO / "docs" / "images" / "analysis-page.png"
# Headless, and nothing that reaches out: the machine's network is closed to Chromium's
# background services, and as root Chromium needs --no-sandbox.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
SLACK_LINK = re.compile(r"<(http://127\.0\.0\.1:\d+/ui/analyses/\d+\?sig=[^|>]+)\|")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_tool("chromium", "apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def world() -> Iterator[LoopbackServer]:
    with LoopbackServer(webworld.handle) as server:
        yield server


@pytest.fixture(scope="module")
def analyzer(world: LoopbackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process = AnalyzerProcess(tmp_path_factory.mktemp("analyzer"))
    process.env.update(
        {
            "AIOPS_PUBLIC_URL": process.url,
            "AIOPS_PROMETHEUS_URL": f"{world.url}/prom",
            "AIOPS_LOKI_URL": f"{world.url}/loki",
            "AIOPS_SLACK_WEBHOOK_URL": f"{world.url}/slack/services/T0/B0/X",
            "AIOPS_GRAFANA_PUBLIC_URL": "http://grafana.example:3000",
        }
    )
    process.start(timeout=120)  # a loaded CI machine can take long to import and migrate
    try:
        yield process.url
    finally:
        process.stop()


@pytest.fixture(scope="module")
def link(analyzer: str, world: LoopbackServer) -> str:
    """Send a hostile alert; return the page link from the Slack message it produced."""
    starts = datetime.now(UTC) - timedelta(minutes=10)
    body = webworld.alert_payload(starts, note=webworld.HOSTILE)
    answer = httpx.post(f"{analyzer}/webhook/alertmanager", json=body, headers=AUTH, timeout=10)
    assert answer.status_code == 202, answer.text

    def slack_messages() -> list[Any]:
        return [r.json() for r in world.requests if r.path.startswith("/slack/")]

    deadline = time.monotonic() + 60
    while not slack_messages():
        assert time.monotonic() < deadline, "no Slack message within 60 s"
        time.sleep(0.1)
    found = SLACK_LINK.search(str(slack_messages()[0]))
    assert found, f"no page link in the Slack message: {slack_messages()[0]}"
    return found[1].replace("&amp;", "&")


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def watch(page: Page) -> list[str]:
    """Collect every dialog (an alert() that got through) and page error."""
    events: list[str] = []
    page.on("dialog", lambda d: (events.append(f"dialog: {d.message}"), d.dismiss()))
    page.on("pageerror", lambda e: events.append(f"pageerror: {e}"))
    return events


def test_the_link_from_slack_opens_the_page_with_its_charts(browser: Browser, link: str) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, color_scheme="light")
    page = context.new_page()
    events = watch(page)
    response = page.goto(link)
    assert response is not None and response.status == 200
    assert page.locator("h1#alertname").inner_text() == "HighMemoryUsage"
    assert "memory" in page.locator("#summary").inner_text().lower()
    assert [t.strip() for t in page.locator(".timeline .what").all_inner_texts()][:2] == [
        "fired",
        "received",
    ]
    # The charts are drawn: lines with real extent, the threshold and the alert start visible.
    charts = page.locator("svg.chart")
    assert charts.count() >= 2
    first = page.locator("#ev-prom-1 svg.chart")
    box = first.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 150
    for selector in ("path.line", "line.threshold", "line.alert-start"):
        part = first.locator(selector).first.bounding_box()
        assert part is not None, selector
        assert part["width"] > 0 or part["height"] > 0, selector
    assert "threshold > 90" in (first.text_content() or "")
    # Evidence cited by a cause jumps to its chart.
    page.locator(".cites a[href='#ev-prom-1']").first.click()
    assert page.url.endswith("#ev-prom-1")
    logs = page.locator(".log-templates, .log-lines").all_inner_texts()
    assert any("Out of memory: Killed process 4242" in text for text in logs)
    assert page.locator("#notifications td.ok").first.inner_text() == "delivered"
    explore = page.locator("a", has_text="Grafana Explore").get_attribute("href") or ""
    assert explore.startswith("http://grafana.example:3000/explore?")
    path = shot(page, "analysis-desktop-light")
    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        page.set_viewport_size({"width": 900, "height": 1500})
        page.goto(link)
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGE))  # the first screen: header, causes, charts
    assert path.stat().st_size > 10_000
    assert events == []
    context.close()


def test_hostile_text_stays_text_and_the_csp_blocks_injected_script(
    browser: Browser, link: str
) -> None:
    context = browser.new_context()
    page = context.new_page()
    events = watch(page)
    page.goto(link)
    title = page.title()
    assert "pwned" not in title and title != "1"
    # The label is shown, as text.
    labels = page.locator("#labels").inner_text()
    assert '<script>document.title="pwned"</script>' in labels
    assert page.locator("script").count() == 0 and page.locator("img").count() == 0
    # Even a script that got into the DOM would not run: the policy allows none.
    ran = page.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.__injected = 1';
                   document.body.appendChild(s); return window.__injected === 1; }"""
    )
    assert ran is False
    assert events == []
    context.close()


def test_phone_viewport_has_no_sideways_scroll(browser: Browser, link: str) -> None:
    context = browser.new_context(**PHONE)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(link)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"page is {widths[0]}px wide on a {widths[1]}px screen"
    chart = page.locator("#ev-prom-1 svg.chart").bounding_box()
    assert chart is not None and chart["x"] >= 0 and chart["x"] + chart["width"] <= widths[1]
    assert chart["width"] > 250  # still a readable chart
    font = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    assert font >= 16
    shot(page, "analysis-phone-light")
    context.close()


def luminance(css_color: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css_color)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_dark_mode_follows_the_system(browser: Browser, link: str) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(**PHONE, color_scheme=scheme)  # type: ignore[arg-type]
        page = context.new_page()
        page.goto(link)
        colours[scheme] = page.evaluate(
            """() => [getComputedStyle(document.body).backgroundColor,
                      getComputedStyle(document.body).color,
                      getComputedStyle(document.querySelector('svg.chart path.line')).stroke]"""
        )
        if scheme == "dark":
            shot(page, "analysis-phone-dark")
        context.close()
    assert luminance(colours["light"][0]) > 0.8 and luminance(colours["dark"][0]) < 0.2
    assert luminance(colours["dark"][1]) > 0.7  # light text on the dark background
    assert colours["light"][2] != colours["dark"][2]  # the chart follows too


def test_list_needs_a_login_then_leads_to_the_page(
    browser: Browser, analyzer: str, link: str
) -> None:
    context = browser.new_context(**PHONE)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(f"{analyzer}/")
    assert page.url.endswith("/ui/login")
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    assert "not valid" in page.locator(".error").inner_text()
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    assert page.url.endswith("/ui/analyses")
    cookie = next(c for c in context.cookies() if c["name"] == "aiops_session")
    assert cookie["httpOnly"] and TOKEN not in cookie["value"]
    assert page.evaluate("() => document.cookie") == ""  # invisible to scripts
    page.select_option("select[name=status]", "firing")
    page.click("form.filters button")
    assert "status=firing" in page.url
    page.locator("a.row-link", has_text="HighMemoryUsage").first.click()
    assert page.locator("h1#alertname").inner_text() == "HighMemoryUsage"
    shot(page, "list-then-page-phone")
    # A tampered link is refused with a page that says so.
    page.goto(link[:-3] + ("xyz" if not link.endswith("xyz") else "abc"))
    context.clear_cookies()
    page.reload()
    assert "This link is not valid" in page.locator("h1").inner_text()
    context.close()
