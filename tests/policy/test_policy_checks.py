"""Each policy check on good and bad inputs, without the Pulumi CLI.

Inputs are written the way the engine sends them to a pack (camelCase; secrets in the wire
envelope; preview-time unknowns as pulumi-policy's sentinel strings).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_policy.policy as sdk
import pytest
from pulumi_policy import Secret
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from policy.policies import (
    ARTIFACT_REPOSITORY,
    CLOUD_RUN_JOB,
    CLOUD_RUN_SERVICE,
    DOCKER_BUILD_IMAGE,
    DOCKER_CONTAINER,
    DOCKER_IMAGE,
    DOCKER_REMOTE_IMAGE,
    SECRET_SIG,
    SIG_KEY,
    check_dedicated_service_account,
    check_image_pinned,
    check_no_plain_secret_env,
    check_ports_not_public,
    check_registry_cleanup,
    check_shared_store_to_scale,
    credential_format,
    image_pin_problem,
    is_credential_name,
    materialize,
    violations_of,
)

FAKE_OPENAI_KEY = "sk-proj-" + "A1b2C3d4" * 4
FAKE_SLACK_URL = "https://hooks.slack.com/services/T0000/B0000/" + "x" * 24


def envelope(value: Any) -> dict[str, Any]:
    """A value marked secret, as the engine (and the mocks) transmit it."""
    return {SIG_KEY: SECRET_SIG, "value": value}


def cloud_run(
    *,
    image: Any = "europe-west1-docker.pkg.dev/p/r/analyzer@sha256:" + "ab" * 32,
    envs: list[Any] | None = None,
    service_account: Any = "aiops-analyzer@p.iam.gserviceaccount.com",
) -> dict[str, Any]:
    return {
        "template": {
            "serviceAccount": service_account,
            "containers": [{"image": image, "envs": envs or []}],
        }
    }


# ---- image references ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "prom/prometheus:v3.13.0",
        "ghcr.io/google/cadvisor:v0.60.0",
        "localhost:5000/team/app:1.2",
        "europe-west1-docker.pkg.dev/p/r/analyzer@sha256:" + "ab" * 32,
        "nginx:latest@sha256:" + "cd" * 32,
        "sha256:" + "ef" * 32,
    ],
)
def test_pinned_image_refs_pass(ref: str) -> None:
    assert image_pin_problem(ref) is None


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("nginx:latest", "latest"),
        ("nginx:LATEST", "latest"),
        ("nginx", "no tag"),
        ("localhost:5000/team/app", "no tag"),
        ("grafana/grafana:", "latest"),
        ("  ", "empty"),
    ],
)
def test_unpinned_image_refs_are_named(ref: str, expected: str) -> None:
    problem = image_pin_problem(ref)
    assert problem is not None and expected in problem


@pytest.mark.parametrize(
    ("resource_type", "props"),
    [
        (DOCKER_REMOTE_IMAGE, {"name": "grafana/grafana:latest"}),
        (DOCKER_CONTAINER, {"image": "grafana/grafana"}),
        (DOCKER_IMAGE, {"imageName": "registry.local/analyzer:latest"}),
        (DOCKER_BUILD_IMAGE, {"tags": ["r/analyzer:1.0", "r/analyzer:latest"]}),
        (CLOUD_RUN_SERVICE, cloud_run(image="r/analyzer:latest")),
        (CLOUD_RUN_JOB, {"template": {"template": {"containers": [{"image": "r/job"}]}}}),
    ],
)
def test_every_image_setting_is_checked(resource_type: str, props: dict[str, Any]) -> None:
    violations = check_image_pinned(resource_type, "thing", props)
    assert len(violations) == 1
    assert violations[0].startswith("thing: ")


def test_pinned_images_of_every_kind_pass() -> None:
    assert check_image_pinned(DOCKER_REMOTE_IMAGE, "r", {"name": "prom/prometheus:v3.13.0"}) == []
    assert check_image_pinned(DOCKER_CONTAINER, "c", {"image": "sha256:" + "ef" * 32}) == []
    assert check_image_pinned(DOCKER_BUILD_IMAGE, "b", {"tags": ["r/analyzer:0.1.0"]}) == []
    assert check_image_pinned(CLOUD_RUN_SERVICE, "s", cloud_run()) == []


def test_a_computed_or_secret_image_is_judged_only_when_known() -> None:
    assert check_image_pinned(CLOUD_RUN_SERVICE, "s", cloud_run(image=UNKNOWN_STRING_VALUE)) == []
    secret_latest = cloud_run(image=envelope("r/analyzer:latest"))
    assert len(check_image_pinned(CLOUD_RUN_SERVICE, "s", secret_latest)) == 1


def test_the_message_names_the_setting_path() -> None:
    [message] = check_image_pinned(DOCKER_BUILD_IMAGE, "img", {"tags": ["a:1", "a:latest"]})
    assert "tags[1]" in message and "'a:latest'" in message


# ---- secrets in plain envs ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["AIOPS_WEBHOOK_TOKEN", "OPENAI_API_KEY", "db_password", "SECRET_KEY_BASE", "GF_PASSPHRASE"],
)
def test_credential_names(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize(
    "name",
    ["AIOPS_LLM_DAILY_TOKEN_BUDGET", "AIOPS_LLM_MODEL", "KEYCLOAK_URL", "AWS_ACCESS_KEY_ID", ""],
)
def test_names_that_merely_mention_a_credential_word(name: str) -> None:
    assert not is_credential_name(name)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (FAKE_OPENAI_KEY, "OpenAI"),
        (FAKE_SLACK_URL, "Slack webhook"),
        ("https://discord.com/api/webhooks/123/abc-def", "Discord"),
        ("xoxb-1234567890-abcdefghij", "Slack token"),
        ("ghp_" + "a" * 36, "GitHub"),
        ("AKIAABCDEFGHIJKLMNOP", "AWS"),
        ("ya29." + "a" * 30, "Google OAuth"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMII...", "private key"),
        ("postgresql://aiops:hunter2@db:5432/aiops", "embedded password"),
    ],
)
def test_well_known_credential_formats(text: str, kind: str) -> None:
    found = credential_format(text)
    assert found is not None and kind in found


@pytest.mark.parametrize(
    "text",
    ["http://prometheus:9090", "gpt-4o-mini", "INFO", "postgresql://db:5432/aiops", "sk-short"],
)
def test_ordinary_values_are_not_credentials(text: str) -> None:
    assert credential_format(text) is None


def test_docker_env_with_a_plain_credential_is_reported_without_its_value() -> None:
    props = {
        "envs": [
            "AIOPS_LLM_MODEL=gpt-4o-mini",
            "AIOPS_WEBHOOK_TOKEN=plain-generated-token",
            f"AIOPS_NOTIFY_WEBHOOK_URL={FAKE_SLACK_URL}",
        ]
    }
    violations = check_no_plain_secret_env(DOCKER_CONTAINER, "analyzer", props)
    assert len(violations) == 2
    assert "AIOPS_WEBHOOK_TOKEN" in violations[0] and "name says" in violations[0]
    assert "AIOPS_NOTIFY_WEBHOOK_URL" in violations[1] and "Slack webhook" in violations[1]
    assert not any("plain-generated-token" in v or FAKE_SLACK_URL in v for v in violations)


def test_docker_env_holding_a_pulumi_secret_or_a_computed_value_passes() -> None:
    props = {
        "envs": [
            envelope("AIOPS_WEBHOOK_TOKEN=generated"),
            Secret(f"AIOPS_OPENAI_API_KEY={FAKE_OPENAI_KEY}"),
            UNKNOWN_STRING_VALUE,
            "AIOPS_WEBHOOK_TOKEN=",  # empty: nothing to leak
        ]
    }
    assert check_no_plain_secret_env(DOCKER_CONTAINER, "analyzer", props) == []


def test_cloud_run_env_with_a_plain_credential_is_reported() -> None:
    props = cloud_run(envs=[{"name": "AIOPS_OPENAI_API_KEY", "value": FAKE_OPENAI_KEY}])
    [message] = check_no_plain_secret_env(CLOUD_RUN_SERVICE, "analyzer", props)
    assert "AIOPS_OPENAI_API_KEY" in message and "secret_key_ref" in message
    assert FAKE_OPENAI_KEY not in message


def test_a_switch_named_after_a_token_is_no_credential() -> None:
    props = cloud_run(
        envs=[
            {"name": "AIOPS_METRICS_REQUIRE_TOKEN", "value": "true"},
            {"name": "AIOPS_USE_API_KEY", "value": "False"},
        ]
    )
    assert check_no_plain_secret_env(CLOUD_RUN_SERVICE, "analyzer", props) == []
    # A real value under such a name is still reported.
    props = cloud_run(envs=[{"name": "AIOPS_METRICS_REQUIRE_TOKEN", "value": "tok-abc123"}])
    assert len(check_no_plain_secret_env(CLOUD_RUN_SERVICE, "analyzer", props)) == 1


def test_cloud_run_env_carrying_a_pulumi_secret_is_still_a_plain_env() -> None:
    # Secret in Pulumi's state, but Cloud Run would store and show it in clear.
    props = cloud_run(envs=[{"name": "AIOPS_LLM_BASE_URL", "value": envelope("http://x")}])
    [message] = check_no_plain_secret_env(CLOUD_RUN_SERVICE, "analyzer", props)
    assert "Pulumi secret" in message


def test_cloud_run_env_from_secret_manager_and_ordinary_values_pass() -> None:
    props = cloud_run(
        envs=[
            {"name": "AIOPS_LLM_MODEL", "value": "gpt-4o-mini"},
            {"name": "AIOPS_LLM_DAILY_TOKEN_BUDGET", "value": "200000"},
            {
                "name": "AIOPS_WEBHOOK_TOKEN",
                "valueSource": {"secretKeyRef": {"secret": "aiops-webhook", "version": "latest"}},
            },
            {"name": "AIOPS_PROMETHEUS_URL", "value": UNKNOWN_STRING_VALUE},
        ]
    )
    assert check_no_plain_secret_env(CLOUD_RUN_SERVICE, "analyzer", props) == []


def test_cloud_run_job_envs_are_checked_too() -> None:
    props = {
        "template": {"template": {"containers": [{"envs": [{"name": "A_TOKEN", "value": "x"}]}]}}
    }
    assert len(check_no_plain_secret_env(CLOUD_RUN_JOB, "job", props)) == 1


# ---- Cloud Run identity -------------------------------------------------------------------


def test_dedicated_service_account_passes() -> None:
    assert check_dedicated_service_account(CLOUD_RUN_SERVICE, "s", cloud_run()) == []
    computed = cloud_run(service_account=UNKNOWN_STRING_VALUE)
    assert check_dedicated_service_account(CLOUD_RUN_SERVICE, "s", computed) == []


@pytest.mark.parametrize(
    ("account", "expected"),
    [
        (None, "not set"),
        ("", "not set"),
        ("123456789012-compute@developer.gserviceaccount.com", "default service account"),
        ("acme@appspot.gserviceaccount.com", "default service account"),
    ],
)
def test_default_or_missing_service_account_is_reported(account: Any, expected: str) -> None:
    props = cloud_run(service_account=account)
    [message] = check_dedicated_service_account(CLOUD_RUN_SERVICE, "s", props)
    assert expected in message


def test_service_account_check_ignores_other_resources() -> None:
    assert check_dedicated_service_account(DOCKER_CONTAINER, "c", {}) == []


# ---- published ports ----------------------------------------------------------------------


def test_loopback_ports_pass() -> None:
    props = {"ports": [{"internal": 9090, "external": 9090, "ip": "127.0.0.1"}, {"internal": 1}]}
    props["ports"][1]["ip"] = "::1"
    assert check_ports_not_public(DOCKER_CONTAINER, "prometheus", props) == []


@pytest.mark.parametrize("ip", [None, "", "0.0.0.0", "::", "[::]"])
def test_ports_on_every_interface_are_reported(ip: str | None) -> None:
    port: dict[str, Any] = {"internal": 3000, "external": 3000.0}
    if ip is not None:
        port["ip"] = ip
    [message] = check_ports_not_public(DOCKER_CONTAINER, "grafana", {"ports": [port]})
    assert "ports[0] (external 3000)" in message and "127.0.0.1" in message


def test_host_network_is_reported() -> None:
    [message] = check_ports_not_public(DOCKER_CONTAINER, "n", {"networkMode": "host"})
    assert "host" in message


def test_a_container_without_published_ports_passes() -> None:
    assert check_ports_not_public(DOCKER_CONTAINER, "loki", {"ports": []}) == []
    assert check_ports_not_public(DOCKER_CONTAINER, "loki", {}) == []


# ---- Artifact Registry --------------------------------------------------------------------


def _repository(**extra: Any) -> dict[str, Any]:
    return {"format": "DOCKER", "repositoryId": "aiops", **extra}


def test_repository_with_enforced_cleanup_passes() -> None:
    props = _repository(
        cleanupPolicies=[
            {"id": "keep-recent", "action": "KEEP", "mostRecentVersions": {"keepCount": 5}},
            {"id": "delete-old", "action": "DELETE", "condition": {"olderThan": "604800s"}},
        ],
        cleanupPolicyDryRun=False,
    )
    assert check_registry_cleanup(ARTIFACT_REPOSITORY, "registry", props) == []


@pytest.mark.parametrize(
    "props",
    [
        _repository(),
        _repository(cleanupPolicies=[]),
        _repository(cleanupPolicies=[{"id": "keep", "action": "KEEP"}]),
    ],
)
def test_repository_without_a_delete_policy_is_reported(props: dict[str, Any]) -> None:
    [message] = check_registry_cleanup(ARTIFACT_REPOSITORY, "registry", props)
    assert "DELETE" in message


def test_repository_in_dry_run_is_reported() -> None:
    props = _repository(cleanupPolicies=[{"id": "d", "action": "DELETE"}], cleanupPolicyDryRun=True)
    [message] = check_registry_cleanup(ARTIFACT_REPOSITORY, "registry", props)
    assert "dry" in message.lower()


# ---- the CrossGuard adapter ---------------------------------------------------------------


def test_materialize_reads_around_preview_unknowns() -> None:
    # pulumi-policy's proxy raises on reading an unknown; the adapter keeps the rest readable.
    proxied = unknown_checking_proxy(
        {
            "image": UNKNOWN_STRING_VALUE,
            "envs": ["AIOPS_WEBHOOK_TOKEN=plain", UNKNOWN_STRING_VALUE],
            "ports": [{"internal": 80, "ip": "0.0.0.0"}],
        }
    )
    plain = materialize(proxied)
    assert plain["image"] == UNKNOWN_STRING_VALUE
    assert plain["envs"] == ["AIOPS_WEBHOOK_TOKEN=plain", UNKNOWN_STRING_VALUE]
    assert len(violations_of(DOCKER_CONTAINER, "c", plain)) == 2


def test_unrelated_resources_have_no_violations() -> None:
    assert (
        violations_of("random:index/randomPassword:RandomPassword", "token", {"length": 32}) == []
    )


def test_a_secret_around_the_whole_env_list_counts_for_every_entry() -> None:
    docker = {"envs": envelope(["AIOPS_WEBHOOK_TOKEN=generated"])}
    assert check_no_plain_secret_env(DOCKER_CONTAINER, "analyzer", docker) == []
    run = cloud_run(envs=envelope([{"name": "AIOPS_LLM_MODEL", "value": "gpt-4o-mini"}]))
    [message] = check_no_plain_secret_env(CLOUD_RUN_SERVICE, "analyzer", run)
    assert "Pulumi secret" in message


def test_decoding_keeps_secrets_and_still_decodes_assets() -> None:
    # policy.policies replaced pulumi-policy's decoder when it was imported above.
    asset_sig = "c44067f5952c0a294b673a41bacd8c17"  # the engine's asset signature
    decoded = sdk.deserialize_properties(
        {
            "envs": [envelope("AIOPS_WEBHOOK_TOKEN=t"), "PORT=8080"],
            "content": {SIG_KEY: asset_sig, "text": "hello"},
        }
    )
    assert isinstance(decoded["envs"][0], Secret) and decoded["envs"][0].value.endswith("=t")
    assert decoded["envs"][1] == "PORT=8080"
    assert isinstance(decoded["content"], pulumi.StringAsset)
    # The remediation path keeps pulumi-policy's own behaviour (its secret-preserving proxy).
    proxied = sdk.deserialize_properties({"k": envelope("v")}, True)
    assert proxied["k"] == "v"


def analyzer_service(max_instances: Any, *database_env: dict[str, Any]) -> dict[str, Any]:
    props = cloud_run(envs=[{"name": "AIOPS_HOST", "value": "0.0.0.0"}, *database_env])
    if max_instances is not None:
        props["template"]["scaling"] = {"maxInstanceCount": max_instances}
    return props


SECRET_DATABASE_URL = {
    "name": "AIOPS_DATABASE_URL",
    "valueSource": {"secretKeyRef": {"secret": "aiops-database-url", "version": "1"}},
}


@pytest.mark.parametrize(
    "props",
    [
        analyzer_service(1),
        analyzer_service(5, SECRET_DATABASE_URL),
        analyzer_service(5, {"name": "AIOPS_DATABASE_URL", "value": "postgresql://db/aiops"}),
        analyzer_service(UNKNOWN_STRING_VALUE),  # Computed at preview: not guessed.
        cloud_run(),  # Not the analyzer.
    ],
)
def test_one_instance_or_a_shared_store_passes(props: dict[str, Any]) -> None:
    assert check_shared_store_to_scale(CLOUD_RUN_SERVICE, "analyzer", props) == []


@pytest.mark.parametrize(
    ("props", "ceiling"),
    [
        (analyzer_service(3), 3),
        (analyzer_service(None), 100),  # Cloud Run's default ceiling.
        (analyzer_service(2, {"name": "AIOPS_DATABASE_URL", "value": "sqlite:////tmp/a.db"}), 2),
    ],
)
def test_scaling_out_on_instance_local_sqlite_is_reported(
    props: dict[str, Any], ceiling: int
) -> None:
    [message] = check_shared_store_to_scale(CLOUD_RUN_SERVICE, "analyzer", props)
    assert message.startswith(f"analyzer: template.scaling.maxInstanceCount = {ceiling} ")
    assert "AIOPS_DATABASE_URL" in message
