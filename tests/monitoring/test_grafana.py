"""Grafana provisioning and dashboards: structure, and every query parsed by promtool.

Grafana itself cannot run here. Each dashboard is read as Grafana's provisioning would, and
each PromQL expression is handed to promtool with Grafana's variables replaced by values of
the right shape, so that no dashboard ships a broken query.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.monitoring import logql
from tests.monitoring.dashboards import (
    BUILTIN_VARIABLES,
    DASHBOARDS,
    GRAFANA,
    load,
    panels,
    queries,
    substitute,
    variables_of,
)
from tests.monitoring.files import (
    CONTRACT_METRICS,
    aiops_metric_names,
    load_yaml,
    promtool_check_expressions,
)
from tests.support.tools import require_tool

DATASOURCE_UIDS = {"prometheus": "prometheus", "loki": "loki"}


def test_there_are_the_five_dashboards() -> None:
    titles = {load(path)["uid"]: load(path)["title"] for path in DASHBOARDS}
    assert set(titles) == {
        "aiops-host",
        "aiops-containers",
        "aiops-nginx",
        "aiops-logs",
        "aiops-analyzer",
    }


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_schema_shaped(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid), panel["title"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == DATASOURCE_UIDS[panel["datasource"]["type"]]
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def with_queries(kind: str) -> list[Path]:
    return [path for path in DASHBOARDS if queries(load(path), kind)]


@pytest.mark.parametrize("path", with_queries("prometheus"), ids=lambda p: p.name)
def test_every_promql_query_parses_with_promtool(path: Path, tmp_path: Path) -> None:
    promtool = require_tool("promtool", "Debian package prometheus")
    dashboard = load(path)
    variables = variables_of(dashboard)
    exprs = [substitute(expr, variables) for expr in queries(dashboard, "prometheus")]
    # label_values(selector, label) is Grafana's, not PromQL: check its selector.
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query" and variable["datasource"]["type"] == "prometheus":
            match = re.fullmatch(r"label_values\((.+), *(\w+)\)", variable["definition"])
            assert match, variable["definition"]
            exprs.append(f"count by ({match.group(2)}) ({match.group(1)})")
    result = promtool_check_expressions(promtool, tmp_path, exprs)
    assert result.returncode == 0, result.stdout + result.stderr + "\n" + "\n".join(exprs)


@pytest.mark.parametrize("path", with_queries("loki"), ids=lambda p: p.name)
def test_every_logql_query_is_well_formed(path: Path, tmp_path: Path) -> None:
    dashboard = load(path)
    variables = variables_of(dashboard)
    shapes = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query" and variable["datasource"]["type"] == "loki":
            match = re.fullmatch(r"label_values\((\w+)\)", variable["definition"])
            assert match and match.group(1) in logql.ALLOY_STREAM_LABELS, variable["definition"]
    for expr in queries(dashboard, "loki"):
        query = logql.parse(substitute(expr, variables))
        assert logql.problems(query) == [], expr
        shapes.append(query.promql_shape)
    promtool = require_tool("promtool", "Debian package prometheus")
    result = promtool_check_expressions(promtool, tmp_path, shapes)
    assert result.returncode == 0, result.stdout + result.stderr + "\n" + "\n".join(shapes)


def test_substitution_catches_undefined_variables() -> None:
    with pytest.raises(AssertionError, match="undefined variable"):
        substitute('up{instance=~"$nope"}', BUILTIN_VARIABLES)


def test_analyzer_dashboard_shows_every_contract_metric_and_no_other() -> None:
    dashboard = load(GRAFANA / "dashboards" / "analyzer.json")
    used: set[str] = set()
    for expr in queries(dashboard, "prometheus"):
        used |= aiops_metric_names(expr)
    assert used <= CONTRACT_METRICS, sorted(used - CONTRACT_METRICS)
    assert used == CONTRACT_METRICS, f"not shown: {sorted(CONTRACT_METRICS - used)}"


def test_datasources_have_the_uids_the_dashboards_use() -> None:
    config = load_yaml(GRAFANA / "provisioning" / "datasources" / "datasources.yml")
    assert config["apiVersion"] == 1
    by_uid = {source["uid"]: source for source in config["datasources"]}
    assert set(by_uid) == {"prometheus", "loki", "alertmanager"}
    assert (by_uid["prometheus"]["type"], by_uid["prometheus"]["url"]) == (
        "prometheus",
        "http://prometheus:9090",
    )
    assert (by_uid["loki"]["type"], by_uid["loki"]["url"]) == ("loki", "http://loki:3100")
    alertmanager = by_uid["alertmanager"]
    assert (alertmanager["type"], alertmanager["url"]) == (
        "alertmanager",
        "http://alertmanager:9093",
    )
    assert alertmanager["jsonData"]["implementation"] == "prometheus"
    assert [s["uid"] for s in config["datasources"] if s.get("isDefault")] == ["prometheus"]


def test_dashboard_provider_reads_the_mounted_directory() -> None:
    config = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
