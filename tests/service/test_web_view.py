"""The page's links out: the alert's query in Prometheus and in the local stack's Grafana Explore.

An Explore link only opens the query if its datasource uid is the one the stack's Grafana
provisions and its range covers the alert, so both are read back from the link itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import yaml
from aiops_analyzer.api.models import AnalysisOut, JobInfo
from aiops_analyzer.web.view import build_page

from tests.service import webworld
from tests.service.apptools import REPO, make_settings

DATASOURCES = REPO / "monitoring" / "grafana" / "provisioning" / "datasources" / "datasources.yml"
GRAFANA = "http://localhost:3000"
STARTS = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def analysis(generator_url: str, **extra: Any) -> AnalysisOut:
    fields: dict[str, Any] = {
        "id": 7,
        "fingerprint": "f",
        "status": "firing",
        "alertname": "HighMemoryUsage",
        "labels": {"alertname": "HighMemoryUsage"},
        "annotations": {},
        "starts_at": STARTS,
        "ends_at": None,
        "generator_url": generator_url,
        "received_at": STARTS,
        "deliveries": 1,
        "truncated_alerts": 0,
        "job": JobInfo(state="done", attempts=1),
    }
    return AnalysisOut(**{**fields, **extra})


def links_of(
    item: AnalysisOut, tmp_path: Path, resolved_at: datetime | None = None
) -> dict[str, str]:
    settings = make_settings(tmp_path, grafana_public_url=GRAFANA)
    return {link.label: link.url for link in build_page(item, settings, resolved_at).links}


def explore_pane(url: str) -> dict[str, Any]:
    assert url.startswith(f"{GRAFANA}/explore?")
    [panes] = parse_qs(urlsplit(url).query)["panes"]
    [pane] = json.loads(panes).values()
    return dict(pane)


def provisioned_prometheus_uid() -> str:
    sources = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    [prometheus] = [s for s in sources if s["type"] == "prometheus"]
    return str(prometheus["uid"])


def test_explore_opens_the_alerts_query_on_the_provisioned_datasource_over_its_time(
    tmp_path: Path,
) -> None:
    generator = f"http://localhost:9090/graph?g0.expr={quote_plus(webworld.EXPR)}&g0.tab=1"
    resolved = STARTS + timedelta(minutes=20)
    found = links_of(analysis(generator), tmp_path, resolved_at=resolved)

    assert found["Alert query in Prometheus"] == generator
    pane = explore_pane(found["Alert query in Grafana Explore"])
    [query] = pane["queries"]
    assert query["expr"] == webworld.EXPR
    uid = provisioned_prometheus_uid()
    assert pane["datasource"] == query["datasource"]["uid"] == uid
    start, end = (int(pane["range"][k]) / 1000 for k in ("from", "to"))
    assert start < STARTS.timestamp() and end > resolved.timestamp()


def test_an_expression_from_the_annotations_still_gets_an_explore_link(tmp_path: Path) -> None:
    item = analysis("", annotations={"expr": "up == 0"})
    found = links_of(item, tmp_path)
    assert "Alert query in Prometheus" not in found
    assert explore_pane(found["Alert query in Grafana Explore"])["queries"][0]["expr"] == "up == 0"


def test_a_generator_url_that_is_not_http_is_not_a_link(tmp_path: Path) -> None:
    found = links_of(analysis("javascript:alert(1)//?g0.expr=up"), tmp_path)
    assert "Alert query in Prometheus" not in found
    assert all(url.startswith(f"{GRAFANA}/") for url in found.values())
