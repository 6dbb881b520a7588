"""The local stack's switches: cAdvisor, external analyzer, bind address, ports, images,
and the errors a bad setting gives (each names its `aiops:` key)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from stacks.config import ConfigError
from tests.infra.harness import StackRun, contains_secret, is_secret, run_stack, unwrap
from tests.infra.local_expectations import (
    CONTAINER,
    EXPECTED_INVENTORY,
    MONITORING,
    OPTIONAL_IMAGES,
    REMOTE_IMAGE,
    TOKEN_FILE,
    containers,
    uploads_of,
)
from tests.support.tools import require_tool

PROMETHEUS_YML = "/etc/prometheus/prometheus.yml"
ALERTMANAGER_YML = "/etc/alertmanager/alertmanager.yml"
LOCAL_WEBHOOK = "http://analyzer:8080/webhook/alertmanager"
CLOUD_RUN_URL = "https://aiops-gcp-analyzer-abc123-ew.a.run.app"


def scrape_jobs(prometheus_yml: str) -> list[str]:
    return [job["job_name"] for job in yaml.safe_load(prometheus_yml)["scrape_configs"]]


def uploaded(run: StackRun, container: str, path: str) -> str:
    return str(unwrap(uploads_of(run.named(container))[path]))


@pytest.fixture(scope="module")
def default_run() -> StackRun:
    return run_stack("local")


@pytest.fixture(scope="module")
def without_cadvisor() -> StackRun:
    return run_stack("local", overrides={"aiops:enableCadvisor": "false"})


@pytest.fixture(scope="module")
def external() -> StackRun:
    return run_stack(
        "local",
        overrides={"aiops:externalAnalyzerUrl": CLOUD_RUN_URL},
        secrets={"aiops:externalWebhookToken": "cloud-run-token-0123456789"},
    )


# ---- cAdvisor switch ---------------------------------------------------------------------------


def test_cadvisor_off_removes_exactly_cadvisor(
    default_run: StackRun, without_cadvisor: StackRun
) -> None:
    removed = set(default_run.inventory()) - set(without_cadvisor.inventory())
    added = set(without_cadvisor.inventory()) - set(default_run.inventory())
    assert removed == {(CONTAINER, "cadvisor"), (REMOTE_IMAGE, "cadvisor-image")}
    assert added == set()


def test_cadvisor_on_uploads_prometheus_yml_unchanged(default_run: StackRun) -> None:
    content = uploaded(default_run, "prometheus", PROMETHEUS_YML)
    assert content == (MONITORING / "prometheus/prometheus.yml").read_text()
    assert "cadvisor" in scrape_jobs(content)


def test_cadvisor_off_drops_only_its_scrape_job(without_cadvisor: StackRun) -> None:
    # The one legitimate difference from the file on disk: no job for an absent container.
    original = yaml.safe_load((MONITORING / "prometheus/prometheus.yml").read_text())
    content = uploaded(without_cadvisor, "prometheus", PROMETHEUS_YML)
    derived = yaml.safe_load(content)
    assert "cadvisor" not in scrape_jobs(content)
    original["scrape_configs"] = [
        job for job in original["scrape_configs"] if job["job_name"] != "cadvisor"
    ]
    assert derived == original


@pytest.mark.tool("promtool")
def test_prometheus_yml_without_cadvisor_passes_promtool(
    without_cadvisor: StackRun, tmp_path: Path
) -> None:
    promtool = require_tool("promtool", "apt-get install prometheus")
    uploads = {
        path: str(unwrap(content))
        for path, content in uploads_of(without_cadvisor.named("prometheus")).items()
    }
    # Mirror /etc/prometheus in a temp dir so rule_files resolve to the uploaded rules.
    config_text = uploads[PROMETHEUS_YML].replace("/etc/prometheus/", f"{tmp_path}/")
    for path, content in uploads.items():
        if path.startswith("/etc/prometheus/rules/"):
            target = tmp_path / "rules" / Path(path).name
            target.parent.mkdir(exist_ok=True)
            target.write_text(content)
    config = tmp_path / "prometheus.yml"
    config.write_text(config_text)
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rule_count = len(list((tmp_path / "rules").glob("*.yml")))
    assert rule_count == len(list((MONITORING / "prometheus/rules").glob("*.yml")))
    if rule_count:
        assert "SUCCESS" in result.stdout + result.stderr


# ---- host journal switch -----------------------------------------------------------------------
# Alloy's loki.source.journal opens the host's journal "local only": it needs both journal
# directories and the machine id, at the host's own paths, and must never be able to change them.
HOST_JOURNAL = {"/var/log/journal", "/run/log/journal", "/etc/machine-id"}


def host_mounts(run: StackRun, container: str) -> dict[str, dict[str, object]]:
    """Bind mounts of the host into `container`, by container path."""
    return {
        volume["containerPath"]: volume
        for volume in run.named(container).plain("volumes") or []
        if volume.get("hostPath")
    }


@pytest.fixture(scope="module")
def without_host_journal() -> StackRun:
    return run_stack("local", overrides={"aiops:enableHostJournal": "false"})


def test_alloy_reads_the_host_journal_read_only_by_default(default_run: StackRun) -> None:
    mounts = host_mounts(default_run, "alloy")
    assert set(mounts) >= HOST_JOURNAL
    for path in HOST_JOURNAL:
        assert mounts[path]["hostPath"] == path
        assert mounts[path]["readOnly"] is True, path
    # No other container is given the journal.
    for name in containers(default_run):
        if name != "alloy":
            assert not HOST_JOURNAL & set(host_mounts(default_run, name)), name


def test_host_journal_off_removes_only_the_journal_mounts(
    default_run: StackRun, without_host_journal: StackRun
) -> None:
    # For Docker Desktop on macOS, which has no host journal: same resources, same Alloy
    # config (its journal source then finds no journal), minus the three mounts.
    assert without_host_journal.inventory() == default_run.inventory()
    on, off = host_mounts(default_run, "alloy"), host_mounts(without_host_journal, "alloy")
    assert set(on) - set(off) == HOST_JOURNAL
    assert set(off) == set(on) - HOST_JOURNAL
    assert (
        uploads_of(without_host_journal.named("alloy")).keys()
        == uploads_of(default_run.named("alloy")).keys()
    )


# ---- external analyzer -------------------------------------------------------------------------


def test_external_analyzer_removes_the_analyzer_and_its_generated_token(
    default_run: StackRun, external: StackRun
) -> None:
    removed = set(default_run.inventory()) - set(external.inventory())
    assert removed == {
        ("aiops:local:AnalyzerService", "analyzer-service"),
        ("docker-build:index:Image", "analyzer-image"),
        (CONTAINER, "analyzer"),
        ("docker:index/volume:Volume", "analyzer-data"),
        ("random:index/randomPassword:RandomPassword", "webhook-token"),
    }
    assert set(external.inventory()) <= set(default_run.inventory())


def test_external_analyzer_gets_the_alerts_with_its_token(external: StackRun) -> None:
    alertmanager = external.named("alertmanager")
    content = uploaded(external, "alertmanager", ALERTMANAGER_YML)
    original = (MONITORING / "alertmanager/alertmanager.yml").read_text()
    # The one legitimate difference: the analyzer webhook's URL.
    assert content == original.replace(LOCAL_WEBHOOK, f"{CLOUD_RUN_URL}/webhook/alertmanager")
    assert LOCAL_WEBHOOK not in content
    assert contains_secret(alertmanager.inputs["uploads"])
    assert unwrap(uploads_of(alertmanager)[TOKEN_FILE]) == "cloud-run-token-0123456789"
    assert "analyzer" not in alertmanager.depends_on


def test_external_analyzer_is_not_scraped(external: StackRun) -> None:
    # Its /metrics is not reachable as analyzer:8080; the job would only raise TargetDown.
    assert "analyzer" not in scrape_jobs(uploaded(external, "prometheus", PROMETHEUS_YML))


def test_external_analyzer_outputs(external: StackRun) -> None:
    outputs = external.outputs
    assert outputs["analyzerUrl"].value == CLOUD_RUN_URL
    assert outputs["webhookUrl"].value == f"{CLOUD_RUN_URL}/webhook/alertmanager"
    assert outputs["webhookToken"].secret
    assert outputs["webhookToken"].value == "cloud-run-token-0123456789"


def test_external_webhook_url_is_accepted_in_full() -> None:
    run = run_stack(
        "local",
        overrides={"aiops:externalAnalyzerUrl": f"{CLOUD_RUN_URL}/webhook/alertmanager/"},
        secrets={"aiops:externalWebhookToken": "t0k3n"},
    )
    assert run.outputs["webhookUrl"].value == f"{CLOUD_RUN_URL}/webhook/alertmanager"


# ---- bind address, ports, images ---------------------------------------------------------------


def test_bind_address_and_ports_are_configurable() -> None:
    run = run_stack(
        "local", overrides={"aiops:bindAddress": "192.168.1.20", "aiops:grafanaPort": 3300}
    )
    for name, resource in containers(run).items():
        for port in resource.plain("ports") or []:
            assert port["ip"] == "192.168.1.20", name
    grafana_ports = run.named("grafana").plain("ports")
    assert [(p["internal"], p["external"]) for p in grafana_ports] == [(3000, 3300)]
    assert run.outputs["grafanaUrl"].value == "http://192.168.1.20:3300"


def test_image_overrides_replace_only_the_named_image() -> None:
    run = run_stack("local", overrides={"aiops:imageOverrides": ["grafana=grafana/grafana:13.1.1"]})
    pinned = yaml.safe_load((MONITORING / "images.yml").read_text())
    pulled = {r.name.removesuffix("-image"): r.plain("name") for r in run.of_type(REMOTE_IMAGE)}
    for key in OPTIONAL_IMAGES:
        del pinned[key]
    assert pulled == {**pinned, "grafana": "grafana/grafana:13.1.1"}


# ---- isolation and errors ----------------------------------------------------------------------


def test_stacks_are_isolated() -> None:
    """A second stack name gets its own Docker names; config of one run does not leak."""
    first = run_stack("local", overrides={"aiops:enableCadvisor": "false"})
    second = run_stack("laptop2", overrides={"aiops:target": "local"})
    assert (CONTAINER, "cadvisor") not in first.inventory()
    assert second.inventory() == EXPECTED_INVENTORY
    assert second.named("network").plain("name") == "aiops-laptop2"
    assert second.named("prometheus").plain("name") == "aiops-laptop2-prometheus"
    assert second.named("prometheus-data").plain("name") == "aiops-laptop2-prometheus-data"
    labels = {i["label"]: i["value"] for i in second.named("nginx").plain("labels")}
    assert labels["com.aiops.stack"] == "laptop2"
    assert second.named("analyzer-image").plain("tags") == ["aiops-analyzer:laptop2"]
    assert is_secret(second.named("analyzer").inputs["envs"])


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"aiops:bindAddress": "localhost:80"}, "aiops:bindAddress"),
        ({"aiops:enableCadvisor": "maybe"}, "aiops:enableCadvisor"),
        ({"aiops:enableHostJournal": "yes please"}, "aiops:enableHostJournal"),
        ({"aiops:grafanaPort": "http"}, "aiops:grafanaPort"),
        ({"aiops:lokiPort": 70000}, "aiops:lokiPort"),
        ({"aiops:nginxPort": 3000}, "aiops:nginxPort"),
        ({"aiops:externalAnalyzerUrl": "analyzer.example"}, "aiops:externalAnalyzerUrl"),
        ({"aiops:externalAnalyzerUrl": CLOUD_RUN_URL}, "aiops:externalWebhookToken"),
        ({"aiops:imageOverrides": ["grafana=grafana/grafana:latest"]}, "aiops:imageOverrides"),
        ({"aiops:imageOverrides": ["grafana=grafana/grafana"]}, "aiops:imageOverrides"),
        ({"aiops:imageOverrides": ["grafana"]}, "aiops:imageOverrides"),
        ({"aiops:imageOverrides": ["redis=redis:7.4.1"]}, "aiops:imageOverrides"),
        ({"aiops:imageOverrides": "grafana=grafana/grafana:13.1.1"}, "aiops:imageOverrides"),
        ({"aiops:logLevel": "LOUD"}, "aiops:logLevel"),
    ],
)
def test_bad_settings_fail_naming_the_key(overrides: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        run_stack("local", overrides=overrides)
    assert key in str(error.value)
