"""Runbook links follow the deployment: the analyzer serves its runbooks and links to them
(or to AIOPS_RUNBOOK_BASE_URL) instead of the upstream repository's URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from aiops_analyzer.core.config import Settings

from tests.service.apptools import (
    AUTH,
    REPO,
    WEBHOOK,
    make_settings,
    payload,
    running_app,
    wait_until,
)

# What the local stack puts in the alert by default (the sample payload is such an alert).
AS_SENT = "http://localhost:8080/runbooks/NginxDown.md"


async def analysed_runbook_urls(settings: Settings) -> tuple[list[str], httpx.Response]:
    async with running_app(settings) as (_, client):
        [analysis_id] = (await client.post(WEBHOOK, json=payload(), headers=AUTH)).json()[
            "analysis_ids"
        ]

        async def done() -> dict[str, Any] | None:
            item = (await client.get(f"/analyses/{analysis_id}", headers=AUTH)).json()
            return item if item["job"]["state"] == "done" else None

        item = await wait_until(done)
        served = await client.get("/runbooks/NginxDown.md")
    return item["result"]["runbook_urls"], served


async def test_links_point_at_the_analyzers_own_runbooks_under_its_public_url(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, public_url="https://aiops.example.com/")
    urls, served = await analysed_runbook_urls(settings)
    assert urls == ["https://aiops.example.com/runbooks/NginxDown.md"]
    assert served.status_code == 200
    assert served.text == (REPO / "monitoring/runbooks/NginxDown.md").read_text()
    assert served.headers["content-type"].startswith("text/markdown")


async def test_a_forks_base_url_wins(tmp_path: Path) -> None:
    base = "https://github.com/someone/aiops-fork/blob/main/monitoring/runbooks"
    settings = make_settings(tmp_path, runbook_base_url=base, public_url="https://a.example")
    urls, _ = await analysed_runbook_urls(settings)
    assert urls == [f"{base}/NginxDown.md"]


async def test_without_a_base_the_annotation_is_kept_as_sent(tmp_path: Path) -> None:
    urls, _ = await analysed_runbook_urls(make_settings(tmp_path))
    assert urls[0] == AS_SENT


async def test_unknown_or_hostile_runbook_names_are_404(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path), start_workers=False) as (_, client):
        missing = await client.get("/runbooks/NoSuchAlert")
        assert missing.status_code == 404 and "NoSuchAlert" in missing.json()["detail"]
        escape = await client.get("/runbooks/..%2F..%2Fpyproject")
        assert escape.status_code == 404
        plain = await client.get("/runbooks/NginxDown")
        assert plain.status_code == 200 and plain.text.startswith("# NginxDown")
