"""Alertmanager configuration: amtool's checks, routing tests, and inhibition in a real process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.monitoring.files import MONITORING, load_yaml
from tests.monitoring.loopback import free_port, running, wait_until
from tests.support.tools import require_tool

CONFIG = MONITORING / "alertmanager" / "alertmanager.yml"
TOKEN_FILE = "/etc/alertmanager/secrets/webhook-token"
WEBHOOK_URL = "http://analyzer:8080/webhook/alertmanager"


def amtool() -> str:
    return require_tool("amtool", "Debian package prometheus-alertmanager")


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_amtool_accepts_the_config() -> None:
    result = run([amtool(), "check-config", str(CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_analyzer_receiver_reads_its_token_from_a_file_and_sends_resolutions() -> None:
    config = load_yaml(CONFIG)
    receivers = {r["name"]: r for r in config["receivers"]}
    assert set(receivers) == {"analyzer", "watchdog"}
    (webhook,) = receivers["analyzer"]["webhook_configs"]
    assert webhook["url"] == WEBHOOK_URL
    assert webhook["send_resolved"] is True
    authorization = webhook["http_config"]["authorization"]
    assert authorization == {"type": "Bearer", "credentials_file": TOKEN_FILE}
    # The heartbeat must not reach the analyzer (it would be analysed every 5 minutes).
    assert not any(key.endswith("_configs") for key in receivers["watchdog"])
    assert config["route"]["receiver"] == "analyzer"
    assert {"alertname", "instance"} <= set(config["route"]["group_by"])


def test_config_holds_no_inline_secret() -> None:
    text = CONFIG.read_text(encoding="utf-8")
    for key in ("credentials:", "password:", "bearer_token:", "api_key:", "api_url:"):
        assert key not in text, f"{key} in alertmanager.yml; use a *_file setting"


# (labels of an alert, the receiver it must reach)
ROUTES = [
    ({"alertname": "Watchdog", "severity": "none"}, "watchdog"),
    (
        {"alertname": "NginxDown", "severity": "critical", "instance": "nginx-exporter:9113"},
        "analyzer",
    ),
    ({"alertname": "HostDiskSpaceLow", "severity": "warning", "mountpoint": "/"}, "analyzer"),
    ({"alertname": "AnalyzerDown", "severity": "critical"}, "analyzer"),
    ({"alertname": "NginxHigh5xxRate", "severity": "warning"}, "analyzer"),
    # Only the exact heartbeat name goes to the black hole.
    ({"alertname": "WatchdogLike", "severity": "none"}, "analyzer"),
]


def route_test(receiver: str, labels: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """amtool's verdict on whether an alert with `labels` is routed to `receiver`."""
    pairs = [f"{key}={value}" for key, value in labels.items()]
    return run(
        [
            amtool(),
            "config",
            "routes",
            "test",
            f"--config.file={CONFIG}",
            f"--verify.receivers={receiver}",
            *pairs,
        ]
    )


@pytest.mark.parametrize(("labels", "receiver"), ROUTES, ids=lambda v: str(v))
def test_route(labels: dict[str, str], receiver: str) -> None:
    result = route_test(receiver, labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_route_check_rejects_a_wrong_receiver() -> None:
    # Proves the routing tests above can fail.
    result = route_test("watchdog", {"alertname": "NginxDown"})
    assert result.returncode != 0


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on 127.0.0.1 running a copy of the config.

    Only the webhook address (a closed loopback port) and the token file path are rewritten.
    """
    binary = require_tool("prometheus-alertmanager", "Debian package prometheus-alertmanager")
    token = tmp_path / "webhook-token"
    token.write_text("test-token\n", encoding="utf-8")
    text = CONFIG.read_text(encoding="utf-8")
    text = text.replace(WEBHOOK_URL, f"http://127.0.0.1:{free_port()}/webhook/alertmanager")
    text = text.replace(TOKEN_FILE, str(token))
    config = tmp_path / "alertmanager.yml"
    config.write_text(text, encoding="utf-8")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url={url}",
        "--cluster.listen-address=",
    ]
    log = tmp_path / "alertmanager.log"
    with running(args, log) as process:
        ready = lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200  # noqa: E731
        wait_until(ready, process, log, "Alertmanager")
        yield url


def alert(**labels: str) -> dict:
    return {"labels": labels, "annotations": {"summary": "test"}}


# Sources first, then (alert, muted?) pairs the inhibition rules must decide.
INHIBITION_SOURCES = [
    alert(alertname="TargetDown", severity="critical", instance="node-exporter:9100", job="node"),
    alert(alertname="ContainerDown", severity="critical", instance="cadvisor:8080", name="db"),
    alert(alertname="HostDiskSpaceLow", severity="critical", instance="h:9100", mountpoint="/data"),
]
INHIBITION_CASES = [
    (alert(alertname="HighCpuUsage", severity="warning", instance="node-exporter:9100"), True),
    (alert(alertname="HighCpuUsage", severity="warning", instance="other:9100"), False),
    (
        alert(
            alertname="ContainerHighMemoryUsage",
            severity="warning",
            instance="cadvisor:8080",
            name="db",
        ),
        True,
    ),
    (
        alert(
            alertname="ContainerRestarting",
            severity="warning",
            instance="cadvisor:8080",
            name="web",
        ),
        False,
    ),
    (
        alert(
            alertname="HostDiskSpaceLow", severity="warning", instance="h:9100", mountpoint="/data"
        ),
        True,
    ),
    (
        alert(alertname="HostDiskSpaceLow", severity="warning", instance="h:9100", mountpoint="/"),
        False,
    ),
]


def test_inhibition_rules_mute_the_lesser_alerts_of_the_same_object(alertmanager: str) -> None:
    posted = INHIBITION_SOURCES + [case for case, _ in INHIBITION_CASES]
    response = httpx.post(f"{alertmanager}/api/v2/alerts", json=posted, timeout=5)
    assert response.status_code == 200, response.text

    def key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(labels.items()))

    expected = {key(case["labels"]): muted for case, muted in INHIBITION_CASES}
    expected |= {key(source["labels"]): False for source in INHIBITION_SOURCES}
    # The inhibitor learns about sources asynchronously: poll until it has settled.
    deadline = time.monotonic() + 20
    while True:
        alerts = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        muted = {key(a["labels"]): bool(a["status"]["inhibitedBy"]) for a in alerts}
        if muted == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert muted == expected


def test_group_timings_are_ordered() -> None:
    # A guard for the timings the comments explain: group_wait < group_interval < repeat.
    route = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))["route"]
    seconds = {"s": 1, "m": 60, "h": 3600}

    def parse(value: str) -> int:
        return int(value[:-1]) * seconds[value[-1]]

    assert (
        parse(route["group_wait"])
        < parse(route["group_interval"])
        < parse(route["repeat_interval"])
    )
