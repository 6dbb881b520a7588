"""Links between notifications, analysis pages and Grafana, as the stacks wire them.

Each stack gives the analyzer its public URL (the base of the signed page links): locally the
published port, on Cloud Run the service's deterministic URL (its own `uri` output would be a
cycle). The local analyzer also annotates the stack's Grafana, whose dashboards show those
annotations, and its pages link back to Grafana Explore.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiops_analyzer.core.config import Settings
from aiops_analyzer.notify import configured_channels
from aiops_analyzer.notify.grafana import analysis_message
from aiops_analyzer.schemas import Alert, AnalysisResult

from tests.infra.harness import REPO_ROOT, StackRun, is_secret, run_stack
from tests.infra.local_expectations import env_map

DASHBOARDS = sorted((REPO_ROOT / "monitoring" / "grafana" / "dashboards").glob("*.json"))
SERVICE = "gcp:cloudrunv2/service:Service"


@pytest.fixture(scope="module")
def local() -> StackRun:
    return run_stack("local")


def test_local_analyzer_links_to_its_published_port_and_annotates_grafana(
    local: StackRun,
) -> None:
    analyzer = local.named("analyzer")
    env = env_map(analyzer)
    assert env["AIOPS_PUBLIC_URL"] == local.outputs["analyzerUrl"].value == "http://localhost:8080"
    assert env["AIOPS_GRAFANA_PUBLIC_URL"] == local.outputs["grafanaUrl"].value
    assert env["AIOPS_GRAFANA_URL"] == "http://grafana:3000"  # over the stack's network
    password = local.outputs["grafanaAdminPassword"].value
    assert env["AIOPS_GRAFANA_BASIC_AUTH"] == f"admin:{password}"
    assert is_secret(analyzer.inputs["envs"])
    # The analyzer reading that environment sends its annotations as Grafana's admin.
    settings = Settings(
        _env_file=None, **{k[6:].lower(): v for k, v in env.items() if k.startswith("AIOPS_")}
    )  # type: ignore[arg-type]
    [grafana] = [c for c in configured_channels(settings) if c.name == "grafana"]
    assert grafana.url == "http://grafana:3000/api/annotations"
    scheme, encoded = (grafana.headers or {})["Authorization"].split(" ", 1)
    assert scheme == "Basic" and base64.b64decode(encoded).decode() == f"admin:{password}"


def test_local_alerts_link_to_prometheus_where_the_browser_reaches_it(local: StackRun) -> None:
    """The page's "Alert query in Prometheus" link is the alert's generatorURL, which
    Prometheus builds from its external URL: the published port, not the stack's network."""
    command = local.named("prometheus").plain("command")
    assert f"--web.external-url={local.outputs['prometheusUrl'].value}" in command
    assert local.outputs["prometheusUrl"].value.startswith("http://localhost:")


@pytest.mark.parametrize("stack", ["gcp", "dev"])
def test_cloud_run_analyzer_links_to_its_deterministic_url(stack: str) -> None:
    run = run_stack(stack)
    [service] = run.of_type(SERVICE)
    [container] = service.inputs["template"]["containers"]
    env = {e["name"]: e.get("value") for e in container["envs"]}
    region = service.inputs["location"]
    # <service>-<project number>.<region>.run.app; only the project lookup knows the number.
    assert env["AIOPS_PUBLIC_URL"] == (
        f"https://{service.inputs['name']}-123456789012.{region}.run.app"
    )


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_shows_the_analyzers_annotations(path: Any) -> None:
    dashboard = json.loads(path.read_text())
    queries = [a for a in dashboard["annotations"]["list"] if a.get("name") == "AIOps analyses"]
    assert len(queries) == 1 and queries[0]["enable"]
    target = queries[0]["target"]
    assert target["type"] == "tags"
    # The analyzer's annotations carry every tag the query asks for, so they are shown.
    alert = Alert(
        fingerprint="f", status="firing", labels={"alertname": "X"}, starts_at=datetime.now(UTC)
    )
    result = AnalysisResult(summary="s", severity="warning", engine="rules")
    sent = analysis_message(alert, result, 1, "http://localhost:8080/ui/analyses/1?sig=x")
    assert set(target["tags"]) <= set(sent["tags"])
