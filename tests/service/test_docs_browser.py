"""/docs renders in a real browser with no internet: Debian's Chromium, every request that
leaves 127.0.0.1 refused and recorded. The stock page would load Swagger UI from a CDN and
stay blank; Swagger UI 4 would refuse FastAPI's OpenAPI 3.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, sync_playwright

from tests.service.apptools import AnalyzerProcess
from tests.service.test_web_browser import CHROMIUM_ARGS
from tests.support.tools import require_tool


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process = AnalyzerProcess(tmp_path_factory.mktemp("analyzer"))
    process.start(timeout=120)  # a loaded machine can take long to import and migrate
    try:
        yield process.url
    finally:
        process.stop()


def test_swagger_ui_renders_every_operation_offline(analyzer: str, tmp_path: Path) -> None:
    chromium = require_tool("chromium", "apt-get install chromium")
    outside: list[str] = []

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.route("**/*", only_loopback)
            page.goto(f"{analyzer}/docs")
            page.wait_for_selector(".opblock", timeout=30_000)
            text = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "docs.png"))
        finally:
            browser.close()
    assert outside == []
    assert "aiops-analyzer" in text and "Unable to render" not in text
    for path in ("/webhook/alertmanager", "/analyses", "/analyses/{analysis_id}", "/readyz"):
        assert path in text
