"""Rules and dashboards against real exporters: the metric names exist and the queries run.

promtool proves that an expression parses; only real data proves that it names metrics the
exporters actually export and that its vector matching works. Prometheus, node-exporter,
nginx and the nginx exporter (Debian packages) and the analyzer (`aiops-analyzer serve`, rules
engine, one sample alert delivered) run on 127.0.0.1 with the project's rules and a copy of
prometheus.yml whose targets point at them. Every rule must evaluate without error, and the
host, nginx and analyzer dashboards must show data on the first start. cAdvisor and Loki have
no binary here: their queries are only parsed (see test_grafana.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.monitoring.dashboards import GRAFANA, load, queries, substitute, variables_of
from tests.monitoring.files import PROMETHEUS_DIR, REPO_ROOT, load_yaml
from tests.monitoring.loopback import free_port, nginx_args, nginx_config, running, wait_until
from tests.support.tools import require_tool

# Jobs whose exporters run here, by job name in prometheus.yml.
LIVE_JOBS = ("prometheus", "node-exporter", "nginx-exporter", "analyzer")

# Panels whose data depends on the machine, not on the query: a container may have no block
# device statistics and only overlay/tmpfs filesystems (excluded from the free-space panel).
MACHINE_DEPENDENT = ("node_disk_", "node_filesystem_avail_bytes{fstype")
# Series the analyzer only has once an LLM fell back or a notification channel is configured.
NEEDS_LLM_OR_CHANNELS = ("aiops_llm_fallbacks_total", "aiops_notifications_total")
SAMPLE_ALERT = REPO_ROOT / "service" / "samples" / "01-nginx-down-firing.json"
TOKEN = "live-test-token"


def loopback_prometheus_config(tmp_path: Path, targets: dict[str, str]) -> Path:
    """prometheus.yml with 1s intervals, only the live jobs, and no Alertmanager to resolve."""
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config.pop("alerting")
    jobs = [job for job in config["scrape_configs"] if job["job_name"] in targets]
    for job in jobs:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    config["scrape_configs"] = jobs
    rules = tmp_path / "rules"
    shutil.copytree(PROMETHEUS_DIR / "rules", rules)
    config["rule_files"] = [str(rules / "*.yml")]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tools = {
        "prometheus": require_tool("prometheus", "Debian package prometheus"),
        "node": require_tool("prometheus-node-exporter", "Debian package prometheus-node-exporter"),
        "exporter": require_tool(
            "prometheus-nginx-exporter", "Debian package prometheus-nginx-exporter"
        ),
        "nginx": require_tool("nginx", "Debian package nginx"),
    }
    tmp = tmp_path_factory.mktemp("live")
    ports = {
        name: free_port()
        for name in ("prometheus", "node", "exporter", "site", "status", "analyzer")
    }
    with ExitStack() as stack:
        # nginx first: the exporter reads its stub_status from the start.
        nginx_dir = tmp / "nginx"
        nginx_dir.mkdir()
        conf = nginx_config(nginx_dir, ports["site"], ports["status"])
        nginx_log = nginx_dir / "nginx.log"
        process = stack.enter_context(
            running([*nginx_args(tools["nginx"], nginx_dir, conf), "-g", "daemon off;"], nginx_log)
        )
        site = f"http://127.0.0.1:{ports['site']}"
        wait_until(serves(site), process, nginx_log, "nginx")
        daemons = {
            "node-exporter": [
                tools["node"],
                f"--web.listen-address=127.0.0.1:{ports['node']}",
                "--no-collector.systemd",
            ],
            # The Debian exporter (0.11) takes single-dash flags.
            "nginx-exporter": [
                tools["exporter"],
                f"-nginx.scrape-uri=http://127.0.0.1:{ports['status']}/stub_status",
                f"-web.listen-address=127.0.0.1:{ports['exporter']}",
            ],
        }
        targets = {
            "prometheus": f"127.0.0.1:{ports['prometheus']}",
            "node-exporter": f"127.0.0.1:{ports['node']}",
            "nginx-exporter": f"127.0.0.1:{ports['exporter']}",
            "analyzer": f"127.0.0.1:{ports['analyzer']}",
        }
        analyzer = start_analyzer(stack, tmp, ports["analyzer"])
        for name, args in daemons.items():
            log = tmp / f"{name}.log"
            process = stack.enter_context(running(args, log))
            wait_until(serves(f"http://{targets[name]}/metrics"), process, log, name)
        config = loopback_prometheus_config(tmp, targets)
        log = tmp / "prometheus.log"
        url = f"http://{targets['prometheus']}"
        args = [
            tools["prometheus"],
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address={targets['prometheus']}",
        ]
        process = stack.enter_context(running(args, log))

        def scraped_enough() -> bool:
            # Every job up, and enough samples for rate() over the dashboards' 1m windows.
            result = instant(url, "count_over_time(up[1m]) >= 4 and up == 1")
            return {sample["metric"]["job"] for sample in result} == set(LIVE_JOBS)

        wait_until(
            lambda: httpx.get(f"{url}/-/ready", timeout=1).is_success, process, log, "Prometheus"
        )
        # Some traffic, so that request rates are not all zero, and one alert to analyse.
        for _ in range(5):
            httpx.get(site, timeout=2)
        delivered = httpx.post(
            f"{analyzer}/webhook/alertmanager",
            content=SAMPLE_ALERT.read_bytes(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            timeout=10,
        )
        assert delivered.status_code == 202, delivered.text
        analysed = (
            "sum(aiops_analyses_total) >= 1 and sum(count_over_time(aiops_analyses_total[1m])) > 4"
        )
        wait_until(lambda: bool(instant(url, analysed)), process, log, "the analysis", limit=60)
        wait_until(scraped_enough, process, log, "the first scrapes", limit=60)
        yield url


def start_analyzer(stack: ExitStack, tmp: Path, port: int) -> str:
    """`aiops-analyzer serve` with the rules engine, its store in `tmp`; returns its URL."""
    binary = require_tool(str(REPO_ROOT / ".venv" / "bin" / "aiops-analyzer"), "make install")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "AIOPS_WEBHOOK_TOKEN": TOKEN,
        "AIOPS_DATA_DIR": str(tmp / "analyzer"),
        "AIOPS_ENGINE": "rules",
        "AIOPS_WORKERS": "1",
    }
    log = tmp / "analyzer.log"
    args = [binary, "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = stack.enter_context(running(args, log, env=env))
    url = f"http://127.0.0.1:{port}"
    wait_until(serves(f"{url}/readyz"), process, log, "the analyzer")
    return url


def serves(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=2).is_success


def instant(url: str, query: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=10)
    body = response.json()
    assert body["status"] == "success", f"{query}: {body.get('error')}"
    return body["data"]["result"]


def test_every_rule_evaluates_without_error(prometheus: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if all(rule.get("lastEvaluation", "").startswith("2") for rule in rules):
            break
        assert time.monotonic() < deadline, "rules were not evaluated"
        time.sleep(0.5)
    assert {r["name"] for r in rules} >= {"NginxDown", "HighCpuUsage", "Watchdog"}
    errors = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert errors == {}


def test_watchdog_fires_and_nginx_is_not_down(prometheus: str) -> None:
    firing = {sample["metric"]["alertname"] for sample in instant(prometheus, "ALERTS")}
    assert "Watchdog" in firing
    assert instant(prometheus, "nginx_up")[0]["value"][1] == "1"
    assert "NginxDown" not in firing


@pytest.mark.parametrize("dashboard", ["host-overview.json", "nginx.json", "analyzer.json"])
def test_dashboard_queries_return_data_from_real_exporters(prometheus: str, dashboard: str) -> None:
    board = load(GRAFANA / "dashboards" / dashboard)
    variables = variables_of(board)
    allowed_empty = MACHINE_DEPENDENT + NEEDS_LLM_OR_CHANNELS
    empty = []
    for expr in queries(board, "prometheus"):
        result = instant(prometheus, substitute(expr, variables))
        if not result and not any(marker in expr for marker in allowed_empty):
            empty.append(expr)
    assert empty == [], "panels without data on a fresh stack"


def test_metric_names_the_host_rules_need_exist(prometheus: str) -> None:
    # The host alerts stay silent here; their inputs must still be there to be meaningful.
    for metric in (
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes",
        "node_filesystem_size_bytes",
        "node_filesystem_readonly",
        "nginx_up",
    ):
        assert instant(prometheus, f"count({metric})"), f"{metric} is not exported"


def test_prometheus_config_copy_still_passes_promtool(tmp_path: Path) -> None:
    # Guards the rewrite above: the loopback copy is a valid configuration too.
    promtool = require_tool("promtool", "Debian package prometheus")
    config = loopback_prometheus_config(tmp_path, {job: "127.0.0.1:1" for job in LIVE_JOBS})
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
