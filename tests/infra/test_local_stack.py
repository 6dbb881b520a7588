"""The `local` stack under Pulumi mocks: what `pulumi up --stack local` would create."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from stacks.components.analyzer_service import DATA_DIR
from stacks.local_config import is_pinned
from tests.infra.harness import REPO_ROOT, StackRun, contains_secret, is_secret, run_stack, unwrap
from tests.infra.local_expectations import (
    CONTAINER,
    CONTAINERS,
    EXPECTED_INVENTORY,
    MONITORING,
    OPTIONAL_IMAGES,
    REMOTE_IMAGE,
    TOKEN_FILE,
    WITHOUT_HEALTHCHECK,
    containers,
    env_map,
    expected_content,
    expected_uploads,
    uploadable_files,
    uploads_of,
)


@pytest.fixture(scope="module")
def run() -> StackRun:
    return run_stack("local")


def test_inventory_is_exactly_the_expected_resources(run: StackRun) -> None:
    assert run.inventory() == EXPECTED_INVENTORY


def test_resource_names_are_unique(run: StackRun) -> None:
    counts = Counter(r.name for r in run.resources)
    assert [name for name, n in counts.items() if n > 1] == []


def test_components_own_their_resources(run: StackRun) -> None:
    parents = {r.name: r.parent for r in run.resources}
    assert parents["prometheus"] == "monitoring-stack"
    assert parents["cadvisor-image"] == "monitoring-stack"
    assert parents["loki-data"] == "logging-stack"
    assert parents["analyzer-image"] == "analyzer-service"
    assert parents["nginx-exporter"] == "sample-workload"
    # Shared by several components, so created at the top.
    assert parents["network"] is None
    assert parents["webhook-token"] is None


def test_every_pulled_image_is_pinned_from_images_yml(run: StackRun) -> None:
    pinned = yaml.safe_load((MONITORING / "images.yml").read_text())
    pulled = {r.name.removesuffix("-image"): r for r in run.of_type(REMOTE_IMAGE)}
    for key in OPTIONAL_IMAGES:
        del pinned[key]
    assert {key: r.plain("name") for key, r in pulled.items()} == pinned
    for resource in pulled.values():
        assert is_pinned(resource.plain("name")), resource.plain("name")
        assert resource.plain("keepLocally") is True


def test_every_container_runs_a_pulled_image_or_the_built_analyzer(run: StackRun) -> None:
    pulled_ids = {r.outputs["imageId"] for r in run.of_type(REMOTE_IMAGE)}
    for name, resource in containers(run).items():
        image = resource.plain("image")
        if name == "analyzer":
            assert image == "aiops-analyzer:local"
        else:
            assert image in pulled_ids, name
            assert image == run.named(f"{name}-image").outputs["imageId"]


def test_analyzer_image_is_built_from_the_repository_and_not_pushed(run: StackRun) -> None:
    build = run.named("analyzer-image")
    assert build.plain("push") is False
    assert build.plain("load") is True
    assert build.plain("tags") == ["aiops-analyzer:local"]
    assert build.plain("context")["location"] == "."
    assert build.plain("dockerfile")["location"] == "service/Dockerfile"
    # The container follows a rebuilt image: its digest is a (replacing) label.
    labels = {item["label"]: item["value"] for item in run.named("analyzer").plain("labels")}
    assert labels["com.aiops.image-digest"] == build.outputs["digest"]


def test_every_upload_is_its_file_in_monitoring(run: StackRun) -> None:
    found = containers(run)
    for name, expected in expected_uploads().items():
        uploaded = uploads_of(found[name])
        uploaded.pop(TOKEN_FILE, None)
        assert set(uploaded) == set(expected), name
        for target, source in expected.items():
            assert unwrap(uploaded[target]) == expected_content(source), f"{name}:{target}"


def test_every_configuration_file_of_monitoring_is_uploaded(run: StackRun) -> None:
    uploaded_sources = {
        source for files in expected_uploads().values() for source in files.values()
    }
    assert uploadable_files() - uploaded_sources == set()
    # And the containers the map names really receive them (checked file by file above).
    assert set(expected_uploads()) <= set(containers(run))


def test_config_files_exist_for_every_required_upload() -> None:
    for files in expected_uploads().values():
        for source in files.values():
            assert source.is_file(), source


def test_published_ports_bind_to_loopback_by_default(run: StackRun) -> None:
    published = {
        name: [(p["internal"], p["external"], p["ip"]) for p in r.plain("ports") or []]
        for name, r in containers(run).items()
    }
    assert {name: ports for name, ports in published.items() if ports} == {
        "grafana": [(3000, 3000, "127.0.0.1")],
        "prometheus": [(9090, 9090, "127.0.0.1")],
        "alertmanager": [(9093, 9093, "127.0.0.1")],
        "analyzer": [(8080, 8080, "127.0.0.1")],
        "loki": [(3100, 3100, "127.0.0.1")],
        "alloy": [(12345, 12345, "127.0.0.1")],
        "nginx": [(80, 8000, "127.0.0.1")],
    }


def test_every_container_is_on_the_network_with_its_alias(run: StackRun) -> None:
    network_name = run.named("network").plain("name")
    assert network_name == "aiops-local"
    for name, resource in containers(run).items():
        assert resource.plain("networksAdvanced") == [{"name": network_name, "aliases": [name]}]
        assert resource.plain("name") == f"aiops-local-{name}"
        assert "network" in resource.depends_on


def test_containers_restart_carry_stack_labels_and_bounded_logs(run: StackRun) -> None:
    for name, resource in containers(run).items():
        assert resource.plain("restart") == "unless-stopped", name
        labels = {item["label"]: item["value"] for item in resource.plain("labels")}
        assert labels["com.aiops.stack"] == "local", name
        assert labels["com.aiops.service"] == name
        assert resource.plain("logDriver") == "json-file"
        assert resource.plain("logOpts") == {"max-size": "10m", "max-file": "3"}


def test_healthchecks_exist_where_the_image_can_run_one(run: StackRun) -> None:
    found = containers(run)
    checked = {name for name, r in found.items() if r.plain("healthcheck")}
    assert checked == set(CONTAINERS) - WITHOUT_HEALTHCHECK
    for name in checked:
        check = found[name].plain("healthcheck")
        assert check["tests"][0] == "CMD", name
        assert check["interval"] and check["timeout"] and check["retries"] > 0
    # Each probes its own service's port, not some other container.
    probes = {name: " ".join(found[name].plain("healthcheck")["tests"]) for name in checked}
    assert ":9090/-/ready" in probes["prometheus"]
    assert ":9093/-/ready" in probes["alertmanager"]
    assert ":3000/api/health" in probes["grafana"]
    assert ":8080/healthz" in probes["analyzer"]
    assert "/dev/tcp/127.0.0.1/12345" in probes["alloy"]
    assert probes["loki"] == "CMD /usr/bin/loki -health"


def test_up_waits_for_every_healthcheck_with_a_bounded_timeout(run: StackRun) -> None:
    """A broken config fails `pulumi up` instead of restart-looping behind a green update."""
    for name, resource in containers(run).items():
        check = resource.plain("healthcheck")
        if not check:
            assert resource.plain("wait") in (None, False), name
            continue
        assert resource.plain("wait") is True, name
        timeout = resource.plain("waitTimeout")
        start = int(check["startPeriod"].rstrip("s"))
        each = int(check["interval"].rstrip("s")) + int(check["timeout"].rstrip("s"))
        # Long enough for the start period and every retry, yet bounded.
        assert start + each * check["retries"] <= timeout <= 600, name


def test_volumes_persist_the_stateful_services(run: StackRun) -> None:
    mounts = {
        name: {v.get("volumeName"): v["containerPath"] for v in r.plain("volumes") or []}
        for name, r in containers(run).items()
    }
    assert mounts["prometheus"]["aiops-local-prometheus-data"] == "/prometheus"
    assert mounts["alertmanager"]["aiops-local-alertmanager-data"] == "/alertmanager"
    assert mounts["grafana"]["aiops-local-grafana-data"] == "/var/lib/grafana"
    assert mounts["loki"]["aiops-local-loki-data"] == "/loki"
    assert mounts["analyzer"]["aiops-local-analyzer-data"] == "/app/data"
    # Alloy's log positions survive a replacement of its container.
    assert mounts["alloy"]["aiops-local-alloy-data"] == "/var/lib/alloy/data"
    assert "--storage.path=/var/lib/alloy/data" in containers(run)["alloy"].plain("command")
    assert env_map(run.named("analyzer"))["AIOPS_DATA_DIR"] == "/app/data"


def test_start_order_dependencies(run: StackRun) -> None:
    assert "analyzer" in run.named("alertmanager").depends_on
    assert "alertmanager" in run.named("prometheus").depends_on
    assert "loki" in run.named("alloy").depends_on
    assert "nginx" in run.named("nginx-exporter").depends_on
    assert {"prometheus", "loki", "alertmanager"} <= set(run.named("grafana").depends_on)


def test_alertmanager_token_equals_the_analyzers_and_both_are_secret(run: StackRun) -> None:
    alertmanager = run.named("alertmanager")
    analyzer = run.named("analyzer")
    token_upload = uploads_of(alertmanager)[TOKEN_FILE]
    # The whole uploads list or the single content: either way wrapped, never plain.
    assert contains_secret(alertmanager.inputs["uploads"])
    assert is_secret(analyzer.inputs["envs"])
    token = unwrap(token_upload)
    assert len(token) >= 32
    assert env_map(analyzer)["AIOPS_WEBHOOK_TOKEN"] == token
    assert run.named("webhook-token").outputs["result"] == token


def test_grafana_admin_password_reaches_grafana_as_a_secret(run: StackRun) -> None:
    grafana = run.named("grafana")
    assert is_secret(grafana.inputs["envs"])
    env = env_map(grafana)
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == run.outputs["grafanaAdminPassword"].value
    assert env["GF_SECURITY_ADMIN_USER"] == "admin"
    assert env["GF_SERVER_ROOT_URL"] == "http://localhost:3000"


def test_analyzer_environment_wires_evidence_sources_and_engine(run: StackRun) -> None:
    env = env_map(run.named("analyzer"))
    assert env["AIOPS_PROMETHEUS_URL"] == "http://prometheus:9090"
    assert env["AIOPS_LOKI_URL"] == "http://loki:3100"
    assert env["AIOPS_ENGINE"] == "auto"
    assert env["AIOPS_LLM_MODEL"] == "gpt-4o-mini"
    assert env["PORT"] == "8080"
    # Unset optional secrets are absent, not empty strings.
    assert "AIOPS_OPENAI_API_KEY" not in env
    assert "AIOPS_SLACK_WEBHOOK_URL" not in env


def test_no_plain_input_carries_a_generated_secret(run: StackRun) -> None:
    secrets = {
        run.named("webhook-token").outputs["result"],
        run.named("grafana-admin-password").outputs["result"],
    }
    for resource in run.resources:
        if resource.type.startswith("random:"):
            continue
        for key, value in resource.inputs.items():
            if contains_secret(value):
                continue
            text = repr(value)
            assert not any(secret in text for secret in secrets), f"{resource.name}.{key}"


def test_outputs_and_their_secretness(run: StackRun) -> None:
    plain = {name: out.value for name, out in run.outputs.items() if not out.secret}
    assert plain == {
        "grafanaUrl": "http://localhost:3000",
        "grafanaAdminUser": "admin",
        "prometheusUrl": "http://localhost:9090",
        "alertmanagerUrl": "http://localhost:9093",
        "lokiUrl": "http://localhost:3100",
        "nginxUrl": "http://localhost:8000",
        "analyzerUrl": "http://localhost:8080",
        "webhookUrl": "http://localhost:8080/webhook/alertmanager",
    }
    secret = {name for name, out in run.outputs.items() if out.secret}
    assert secret == {"grafanaAdminPassword", "webhookToken"}
    assert run.outputs["webhookToken"].value == run.named("webhook-token").outputs["result"]


def test_every_resource_type_is_a_docker_random_or_component_type(run: StackRun) -> None:
    prefixes = ("docker:", "docker-build:", "random:", "aiops:local:")
    assert [r.type for r in run.resources if not r.type.startswith(prefixes)] == []
    assert len(run.of_type(CONTAINER)) == len(CONTAINERS)


def test_optional_secrets_reach_the_analyzer_as_secrets() -> None:
    run = run_stack(
        "local",
        overrides={"aiops:analyzerEngine": "llm", "aiops:llmBaseUrl": "http://127.0.0.1:11434/v1"},
        secrets={
            "aiops:openaiApiKey": "sk-test-key",
            "aiops:slackWebhookUrl": "http://127.0.0.1:9/slack",
        },
    )
    analyzer = run.named("analyzer")
    assert is_secret(analyzer.inputs["envs"])
    env = env_map(analyzer)
    assert env["AIOPS_OPENAI_API_KEY"] == "sk-test-key"
    assert env["AIOPS_SLACK_WEBHOOK_URL"] == "http://127.0.0.1:9/slack"
    assert env["AIOPS_ENGINE"] == "llm"
    assert env["AIOPS_LLM_BASE_URL"] == "http://127.0.0.1:11434/v1"
    assert "sk-test-key" not in repr({k: v for k, v in run.outputs.items() if not v.secret})


def test_the_analyzer_image_prepares_the_data_volume_mount_point() -> None:
    """A named volume mounted where the image has no directory is created root-owned, and the
    image's non-root user could not write its store; the Dockerfile must create it."""
    dockerfile = (REPO_ROOT / "service/Dockerfile").read_text()
    assert re.search(rf"^RUN .*mkdir -p {DATA_DIR}\b.*chown \S+ {DATA_DIR}\b", dockerfile, re.M)
    assert re.search(r"^USER \S+", dockerfile, re.M)


# Ports each service listens on inside the stack's network (the contract's alias:port list).
SERVICE_PORTS = {
    "prometheus": {9090},
    "alertmanager": {9093},
    "grafana": {3000},
    "loki": {3100},
    "alloy": {12345},
    "nginx": {80, 8081},
    "nginx-exporter": {9113},
    "node-exporter": {9100},
    "cadvisor": {8080},
    "analyzer": {8080},
}
# http://<host>[:port] with a dot-free host: an address on the stack's network.
IN_STACK_URL = re.compile(r"https?://([a-z][a-z0-9-]*)(?::(\d+))?(?=[/\"'\s]|$)")


def references(run: StackRun) -> set[tuple[str, str, int]]:
    """(container, host, port) for every in-stack address the uploaded files and the
    containers' commands and environments name."""
    found: set[tuple[str, str, int]] = set()
    for name, resource in containers(run).items():
        texts = [str(unwrap(content)) for content in uploads_of(resource).values()]
        texts += [str(item) for item in resource.plain("command") or []]
        texts += [str(item) for item in resource.plain("envs") or []]
        for text in texts:
            for host, port in IN_STACK_URL.findall(text):
                found.add((name, host, int(port) if port else 80))
        for path, content in uploads_of(resource).items():
            if path == "/etc/prometheus/prometheus.yml":
                for job in yaml.safe_load(str(unwrap(content)))["scrape_configs"]:
                    for static in job.get("static_configs", []):
                        for target in static["targets"]:
                            host, _, port = target.partition(":")
                            found.add((name, host, int(port)))
    return found


def test_every_in_stack_address_is_a_container_alias_and_port(run: StackRun) -> None:
    found = references(run)
    hosts = {host for _, host, _ in found}
    # The wiring really is scanned: Grafana's datasources, Prometheus's targets, Alertmanager's
    # webhook, the exporter's scrape URI, the analyzer's evidence sources.
    assert {"prometheus", "loki", "alertmanager", "analyzer", "nginx", "cadvisor"} <= hosts
    wrong = {
        (name, host, port)
        for name, host, port in found
        if host not in ("localhost",) and port not in SERVICE_PORTS.get(host, set())
    }
    assert wrong == set()


def test_grafana_loads_dashboards_from_where_they_are_uploaded(run: StackRun) -> None:
    uploads = uploads_of(run.named("grafana"))
    dashboards = {Path(p).parent.as_posix() for p in uploads if p.endswith(".json")}
    providers = [
        yaml.safe_load(str(unwrap(content)))
        for path, content in uploads.items()
        if path.startswith("/etc/grafana/provisioning/dashboards/")
    ]
    paths = {p["options"]["path"] for doc in providers for p in doc.get("providers", [])}
    assert dashboards <= paths
