"""World scenarios replayed through a real Prometheus and the Loki stand-in.

A world's series are loaded into a throwaway Prometheus with the delivery at "now", so PromQL is
evaluated by Prometheus itself; a grouped delivery becomes one scored case per alert, and a
resolved alert keeps its end time relative to the delivery.
"""

from __future__ import annotations

import json
import textwrap
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiops_eval.runner import run_engine
from aiops_eval.scenario import ScenarioError, load_cases, load_scenarios
from aiops_eval.world import load_world
from aiops_eval.world_replay import WorldPrometheus, openmetrics

from tests.eval.eval_helpers import make_settings
from tests.support.tools import require_tool

WORLD = """\
delivered_at: 2026-11-20T10:00:00Z
start: -1h
interval: 1m
series:
  - {series: 'jobs_done_total{instance="w:9000",job="worker"}', values: '100+30x45 ...+6x15'}
  - {series: 'container_start_time_seconds{name="alpha"}', values: '-86400x60', time_values: true}
  - {series: 'container_start_time_seconds{name="beta"}', values: '-600x60', time_values: true}
  - {series: 'container_last_seen{name="beta"}', values: '@x50', time_values: true}
logs:
  - labels: {container: alpha}
    lines:
      - [-30s, '{ts} alpha is fine']
  - labels: {container: beta}
    lines:
      - {every: 1m, from: -12m, until: -10m, line: 'beta tick {n}'}
"""


def _alert(name: str, status: str, ends: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "ContainerDown", "name": name, "severity": "critical"},
        "annotations": {"summary": f"{name} is down"},
        "startsAt": "2026-11-20T09:55:00Z",
        "endsAt": ends,
        "generatorURL": "",
        "fingerprint": f"fp-{name}",
    }


EXPECTED = """\
topic: a grouped delivery
description: alpha is fine again, beta vanished.
alerts:
  - match: {name: alpha}
    category: [unknown, container_crash]
    severity: info
    required_facts: [[resolved]]
  - match: {name: beta}
    category: container_crash
    severity: [critical, warning]
    required_facts: [[beta]]
"""


@pytest.fixture
def prometheus_tools() -> None:
    require_tool("prometheus", "Debian package prometheus")
    require_tool("promtool", "Debian package prometheus")


def _grouped(tmp_path: Path) -> Path:
    folder = tmp_path / "grouped"
    folder.mkdir()
    (folder / "world.yml").write_text(WORLD)
    (folder / "expected.yml").write_text(EXPECTED)
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "r",
        "alerts": [
            _alert("alpha", "resolved", "2026-11-20T09:58:00Z"),
            _alert("beta", "firing", "0001-01-01T00:00:00Z"),
        ],
    }
    (folder / "payload.json").write_text(json.dumps(payload))
    return folder


def _get(url: str, path: str, **params: object) -> Any:
    query = urllib.parse.urlencode({k: str(v) for k, v in params.items()})
    with urllib.request.urlopen(f"{url}{path}?{query}", timeout=10) as answer:  # noqa: S310
        return json.load(answer)["data"]["result"]


def test_prometheus_evaluates_promql_over_the_world(prometheus_tools: None, tmp_path: Path) -> None:
    folder = _grouped(tmp_path)
    world = load_world(folder / "world.yml")
    now = time.time()
    with WorldPrometheus(world, now) as prometheus:
        (rate,) = _get(prometheus.url, "/api/v1/query", query="rate(jobs_done_total[5m])", time=now)
        assert float(rate["value"][1]) == pytest.approx(0.1)  # 6 a minute at the end
        (before,) = _get(
            prometheus.url, "/api/v1/query", query="rate(jobs_done_total[5m])", time=now - 1800
        )
        assert float(before["value"][1]) == pytest.approx(0.5)
        ages = _get(
            prometheus.url,
            "/api/v1/query",
            query="time() - container_start_time_seconds",
            time=now,
        )
        by_name = {a["metric"]["name"]: float(a["value"][1]) for a in ages}
        assert by_name == pytest.approx({"alpha": 86400, "beta": 600}, abs=0.01)
        (seen,) = _get(
            prometheus.url,
            "/api/v1/query",
            query="time() - max_over_time(container_last_seen[1h])",
            time=now,
        )
        assert float(seen["value"][1]) == pytest.approx(600, abs=0.01)  # beta: 10 minutes
        assert _get(prometheus.url, "/api/v1/query", query="jobs_done_total", time=now + 600) == []


def test_openmetrics_escapes_labels_and_skips_stale_samples(tmp_path: Path) -> None:
    path = tmp_path / "world.yml"
    path.write_text(
        textwrap.dedent(
            """\
            delivered_at: 2026-11-20T10:00:00Z
            series:
              - {series: 'm{a="x\\"y"}', values: '1 stale', start: -2m}
            """
        )
    )
    text = openmetrics(load_world(path), 1000.0)
    assert text.splitlines() == ["# TYPE m unknown", 'm{a="x\\"y"} 1.0 880.000', "# EOF"]


def test_a_grouped_delivery_is_one_case_per_alert_with_its_own_expectation(
    tmp_path: Path,
) -> None:
    cases = load_cases(_grouped(tmp_path))
    assert [c.name for c in cases] == ["grouped/alpha", "grouped/beta"]
    assert [c.expected.severities for c in cases] == [["info"], ["critical", "warning"]]
    now = datetime(2027, 1, 1, tzinfo=UTC)
    alpha = cases[0].replayed_at(now).alert
    assert alpha.status == "resolved"
    assert alpha.ends_at == now - timedelta(minutes=2)  # as long before the delivery as recorded
    assert alpha.starts_at == now - timedelta(minutes=5)


def test_a_match_that_picks_no_alert_is_named(tmp_path: Path) -> None:
    folder = _grouped(tmp_path)
    (folder / "expected.yml").write_text(EXPECTED.replace("{name: beta}", "{name: gamma}"))
    with pytest.raises(ScenarioError, match=r"alerts\[1\]: match .*gamma.* picks 0 alerts"):
        load_cases(folder)


async def test_the_runner_scores_each_alert_and_each_folder(
    prometheus_tools: None, tmp_path: Path
) -> None:
    _grouped(tmp_path)
    report = await run_engine(load_scenarios(tmp_path), engine="rules", base=make_settings())
    assert [r.scenario for r in report.runs] == ["grouped/alpha", "grouped/beta"]
    assert [r.error for r in report.runs] == [None, None]
    assert {r.folder for r in report.runs} == {"grouped"}
    passed, total = report.folders_passed()
    assert total == 1 and passed == int(all(r.passed for r in report.runs))
