"""The gcp target under Pulumi mocks: what `pulumi up --stack gcp|dev` would register.

Each stack runs the whole program once per module (about a second each); the assertions read
the recorded inputs (secrets still wrapped), the recorded dependencies and the stack outputs.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.components.alertmanager_receiver import CREDENTIALS_FILE
from tests.infra.harness import (
    FAKE_ACCESS_TOKEN,
    FAKE_GCP_PROJECT,
    RecordedResource,
    StackRun,
    contains_secret,
    is_secret,
    run_stack,
    unwrap,
)
from tests.support.tools import require_tool

REGION = "europe-west1"
SERVICE = "gcp:cloudrunv2/service:Service"
SECRET = "gcp:secretmanager/secret:Secret"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SECRET_MEMBER = "gcp:secretmanager/secretIamMember:SecretIamMember"
ACCOUNT = "gcp:serviceaccount/account:Account"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
API = "gcp:projects/service:Service"
IMAGE = "docker-build:index:Image"
INVOKER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"
SQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
SQL_DATABASE = "gcp:sql/database:Database"
SQL_USER = "gcp:sql/user:User"
PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
PASSWORD = "random:index/randomPassword:RandomPassword"
STORE = "aiops:gcp:CloudSqlStore"

OPTIONAL_SECRETS = {
    "aiops:openaiApiKey": "sk-proj-test0123456789abcdefABCDEF",
    "aiops:slackWebhookUrl": "https://hooks.slack.com/services/T0000/B0000/slacksecret123",
    "aiops:discordWebhookUrl": "https://discord.com/api/webhooks/42/discordsecret456",
    "aiops:notifyWebhookUrl": "https://hooks.example.test/aiops?key=notifysecret789",
}
SECRET_ENV_VARS = {
    "AIOPS_WEBHOOK_TOKEN",
    "AIOPS_DATABASE_URL",
    "AIOPS_OPENAI_API_KEY",
    "AIOPS_SLACK_WEBHOOK_URL",
    "AIOPS_DISCORD_WEBHOOK_URL",
    "AIOPS_NOTIFY_WEBHOOK_URL",
}
# Shapes of credentials that must never sit in a plain env value.
SECRET_SHAPES = [
    re.compile(r"sk-[A-Za-z0-9_-]{8,}"),
    re.compile(r"hooks\.slack\.com/services/"),
    re.compile(r"discord(app)?\.com/api/webhooks/"),
    re.compile(r"(?i)(token|key|secret|password)="),
    re.compile(r"^[A-Za-z0-9+/_=-]{32,}$"),
]


@pytest.fixture(scope="module")
def gcp() -> StackRun:
    return run_stack("gcp")


@pytest.fixture(scope="module")
def dev() -> StackRun:
    return run_stack("dev")


@pytest.fixture(scope="module")
def gcp_full() -> StackRun:
    """The gcp stack with every optional secret set, as `pulumi config set --secret` would."""
    return run_stack("gcp", secrets=OPTIONAL_SECRETS)


def one(run: StackRun, type_: str) -> RecordedResource:
    found = run.of_type(type_)
    assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
    return found[0]


def one_named(run: StackRun, type_: str, name: str) -> RecordedResource:
    (found,) = [r for r in run.of_type(type_) if r.name == name]
    return found


def container(run: StackRun) -> dict[str, Any]:
    containers = one(run, SERVICE).inputs["template"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def envs(run: StackRun) -> dict[str, dict[str, Any]]:
    return {env["name"]: env for env in container(run)["envs"]}


def expected_inventory(
    prefix: str, secrets: list[str], *, cloud_sql: bool = True
) -> list[tuple[str, str]]:
    """Every resource of a gcp stack; with Cloud SQL (the default) also its store and the
    database URL's secret."""
    names = [
        (API, f"{prefix}-api-serviceusage"),
        (API, f"{prefix}-api-cloudresourcemanager"),
        (API, f"{prefix}-api-iamcredentials"),
        (API, f"{prefix}-api-sts"),
        (API, f"{prefix}-api-run"),
        (API, f"{prefix}-api-artifactregistry"),
        (API, f"{prefix}-api-secretmanager"),
        (API, f"{prefix}-api-iam"),
        (REPOSITORY, f"{prefix}-images"),
        (IMAGE, f"{prefix}-analyzer-image"),
        (ACCOUNT, f"{prefix}-run"),
        (PASSWORD, f"{prefix}-webhook-token-value"),
        (SERVICE, f"{prefix}-analyzer"),
        (INVOKER, f"{prefix}-analyzer-public-invoker"),
    ]
    if cloud_sql:
        names += [
            (API, f"{prefix}-api-sqladmin"),
            (STORE, f"{prefix}-store"),
            (SQL_INSTANCE, f"{prefix}-db"),
            (SQL_DATABASE, f"{prefix}-db-aiops"),
            (SQL_USER, f"{prefix}-db-user"),
            (PASSWORD, f"{prefix}-db-password"),
            (PROJECT_MEMBER, f"{prefix}-run-cloudsql-client"),
        ]
        secrets = [*secrets, "database-url"]
    for secret in secrets:
        names += [
            (SECRET, f"{prefix}-{secret}"),
            (SECRET_VERSION, f"{prefix}-{secret}-version"),
            (SECRET_MEMBER, f"{prefix}-{secret}-accessor"),
        ]
    return sorted(names)


def plain_strings(value: Any) -> list[str]:
    """Every string in an input that is NOT inside a secret envelope."""
    if is_secret(value):
        return []
    if isinstance(value, dict):
        return [s for item in value.values() for s in plain_strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in plain_strings(item)]
    return [value] if isinstance(value, str) else []


def cloud_names(run: StackRun) -> set[str]:
    """Names the cloud sees (they collide across stacks of one project, unlike URNs)."""
    names = {r.plain("secretId") for r in run.of_type(SECRET)}
    names |= {r.plain("name") for r in run.of_type(SERVICE)}
    names |= {r.plain("accountId") for r in run.of_type(ACCOUNT)}
    names |= {r.plain("repositoryId") for r in run.of_type(REPOSITORY)}
    names |= {tag for r in run.of_type(IMAGE) for tag in r.plain("tags")}
    names |= {r.plain("name") for r in run.of_type(SQL_INSTANCE)}
    return names


def dependency_closure(run: StackRun, name: str) -> set[str]:
    by_name = {r.name: r for r in run.resources}
    seen: set[str] = set()
    todo = list(by_name[name].depends_on)
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo += by_name[current].depends_on
    return seen


# --- inventory and names -------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "cloud_sql"), [("gcp", True), ("dev", False)])
def test_full_inventory_without_optional_secrets(
    stack: str, cloud_sql: bool, gcp: StackRun, dev: StackRun
) -> None:
    run = {"gcp": gcp, "dev": dev}[stack]
    expected = expected_inventory(f"aiops-{stack}", ["webhook-token"], cloud_sql=cloud_sql)
    assert run.inventory() == expected


def test_full_inventory_with_every_optional_secret(gcp_full: StackRun) -> None:
    secrets = [
        "webhook-token",
        "openai-api-key",
        "slack-webhook-url",
        "discord-webhook-url",
        "notify-webhook-url",
    ]
    assert gcp_full.inventory() == expected_inventory("aiops-gcp", secrets)


def test_logical_names_are_unique(gcp: StackRun, dev: StackRun, gcp_full: StackRun) -> None:
    for run in (gcp, dev, gcp_full):
        names = [r.name for r in run.resources]
        assert len(names) == len(set(names)), run.stack


def test_dev_and_gcp_never_collide(gcp: StackRun, dev: StackRun) -> None:
    assert not {r.name for r in gcp.resources} & {r.name for r in dev.resources}
    gcp_cloud, dev_cloud = cloud_names(gcp), cloud_names(dev)
    assert len(gcp_cloud) == 7  # with the database URL's secret and the Cloud SQL instance
    assert len(dev_cloud) == 5
    assert not gcp_cloud & dev_cloud


def test_a_staging_stack_needs_only_its_config() -> None:
    # No Pulumi.staging.yaml: everything comes from the overrides a new stack file would hold.
    staging = run_stack(
        "staging",
        overrides={
            "aiops:target": "gcp",
            "gcp:project": FAKE_GCP_PROJECT,
            "gcp:region": "us-central1",
        },
    )
    assert staging.inventory() == expected_inventory("aiops-staging", ["webhook-token"])
    assert one(staging, SERVICE).plain("location") == "us-central1"
    tag = one(staging, IMAGE).plain("tags")[0]
    assert tag.startswith(f"us-central1-docker.pkg.dev/{FAKE_GCP_PROJECT}/aiops-staging-images/")


def test_apis_are_enabled_and_never_disabled_on_destroy(gcp: StackRun) -> None:
    apis = gcp.of_type(API)
    assert {a.plain("service") for a in apis} == {
        "serviceusage.googleapis.com",
        "cloudresourcemanager.googleapis.com",
        "iamcredentials.googleapis.com",
        "sts.googleapis.com",
        "run.googleapis.com",
        "artifactregistry.googleapis.com",
        "secretmanager.googleapis.com",
        "iam.googleapis.com",
        "sqladmin.googleapis.com",
    }
    assert all(a.plain("disableOnDestroy") is False for a in apis)


def test_the_base_apis_come_before_every_other_api(gcp: StackRun) -> None:
    """A fresh project: Service Usage, Resource Manager, IAM Credentials and STS first."""
    base = {f"aiops-gcp-api-{key}" for key in ("serviceusage", "cloudresourcemanager")}
    base |= {f"aiops-gcp-api-{key}" for key in ("iamcredentials", "sts")}
    others = [api for api in gcp.of_type(API) if api.name not in base]
    assert len(others) == 5
    for api in others:
        assert base <= set(api.depends_on), api.name
    for api in gcp.of_type(API):
        if api.name in base:
            assert api.depends_on == [], api.name


def test_every_cloud_resource_depends_on_its_api(gcp_full: StackRun) -> None:
    api_of = {
        "gcp:artifactregistry/": "aiops-gcp-api-artifactregistry",
        "gcp:secretmanager/": "aiops-gcp-api-secretmanager",
        "gcp:serviceaccount/": "aiops-gcp-api-iam",
        "gcp:cloudrunv2/": "aiops-gcp-api-run",
        "gcp:sql/": "aiops-gcp-api-sqladmin",
        "docker-build:": "aiops-gcp-api-artifactregistry",
    }
    checked = 0
    for resource in gcp_full.resources:
        for type_prefix, api in api_of.items():
            if resource.type.startswith(type_prefix):
                assert api in dependency_closure(gcp_full, resource.name), resource.name
                checked += 1
    # All but the nine APIs, the two passwords, the store component and the project binding.
    assert checked == len(gcp_full.resources) - 13


# --- image ---------------------------------------------------------------------------------


def test_image_is_pushed_under_the_repository_host_path(gcp: StackRun) -> None:
    repository = one(gcp, REPOSITORY)
    image = one(gcp, IMAGE)
    host = f"{REGION}-docker.pkg.dev"
    base = f"{host}/{FAKE_GCP_PROJECT}/{repository.plain('repositoryId')}/"
    assert image.plain("tags") == [f"{base}aiops-analyzer:gcp"]
    assert image.plain("push") is True
    assert image.plain("platforms") == ["linux/amd64"]
    assert image.plain("context") == {"location": "."}
    assert image.plain("dockerfile") == {"location": "service/Dockerfile"}
    assert repository.plain("format") == "DOCKER"
    assert repository.plain("location") == REGION


def test_registry_login_uses_the_access_token_as_a_secret(gcp: StackRun) -> None:
    registries = one(gcp, IMAGE).inputs["registries"]
    # The SDK wraps the whole list once an element holds a secret: the token stays hidden.
    assert contains_secret(registries)
    assert FAKE_ACCESS_TOKEN not in plain_strings(registries)
    assert unwrap(registries) == [
        {
            "address": f"{REGION}-docker.pkg.dev",
            "username": "oauth2accesstoken",
            "password": FAKE_ACCESS_TOKEN,
        }
    ]


def test_cloud_run_deploys_the_build_by_digest(gcp: StackRun) -> None:
    ref = one(gcp, IMAGE).outputs["ref"]
    assert "@sha256:" in ref
    assert container(gcp)["image"] == ref
    assert gcp.outputs["imageRef"].value == ref


@pytest.mark.parametrize(
    ("stack", "keep", "days"),
    [("gcp", 10, 14), ("dev", 2, 1)],
)
def test_registry_cleanup_policy_follows_config(
    stack: str, keep: int, days: int, gcp: StackRun, dev: StackRun
) -> None:
    repository = one({"gcp": gcp, "dev": dev}[stack], REPOSITORY)
    policies = {p["id"]: p for p in repository.plain("cleanupPolicies")}
    assert policies["keep-most-recent"]["action"] == "KEEP"
    assert policies["keep-most-recent"]["mostRecentVersions"]["keepCount"] == keep
    assert policies["delete-untagged"]["action"] == "DELETE"
    assert policies["delete-untagged"]["condition"] == {
        "tagState": "UNTAGGED",
        "olderThan": f"{days * 86400}s",
    }
    assert repository.plain("cleanupPolicyDryRun") is False


# --- secrets -------------------------------------------------------------------------------


def test_optional_secrets_are_absent_unless_configured(gcp: StackRun, gcp_full: StackRun) -> None:
    assert {s.plain("secretId") for s in gcp.of_type(SECRET)} == {
        "aiops-gcp-webhook-token",
        "aiops-gcp-database-url",
    }
    assert SECRET_ENV_VARS & set(envs(gcp)) == {"AIOPS_WEBHOOK_TOKEN", "AIOPS_DATABASE_URL"}
    assert set(envs(gcp_full)) >= SECRET_ENV_VARS
    assert len(gcp_full.of_type(SECRET)) == 6


def test_secret_envs_use_secret_key_ref(gcp_full: StackRun) -> None:
    secret_ids = {s.plain("secretId") for s in gcp_full.of_type(SECRET)}
    referenced = set()
    for name in SECRET_ENV_VARS:
        env = envs(gcp_full)[name]
        assert "value" not in env, name
        ref = env["valueSource"]["secretKeyRef"]
        assert ref["secret"] in secret_ids
        # Pinned to the version this update wrote (the mock provider numbers it "1").
        assert ref["version"] == "1"
        referenced.add(ref["secret"])
    assert referenced == secret_ids


def test_secret_replication_is_automatic(gcp_full: StackRun) -> None:
    for secret in gcp_full.of_type(SECRET):
        assert secret.plain("replication") == {"auto": {}}


def test_secret_version_data_is_secret_wrapped(gcp_full: StackRun) -> None:
    versions = gcp_full.of_type(SECRET_VERSION)
    assert len(versions) == 6
    stored = set()
    for version in versions:
        assert is_secret(version.inputs["secretData"]), version.name
        stored.add(unwrap(version.inputs["secretData"]))
    assert stored >= set(OPTIONAL_SECRETS.values())
    assert gcp_full.outputs["webhookToken"].value in stored


def test_no_secret_value_appears_in_plain_inputs(gcp_full: StackRun) -> None:
    secrets = [*OPTIONAL_SECRETS.values(), gcp_full.outputs["webhookToken"].value]
    secrets.append(FAKE_ACCESS_TOKEN)
    for resource in gcp_full.resources:
        if resource.type == "random:index/randomPassword:RandomPassword":
            continue
        for text in plain_strings(resource.inputs):
            assert not any(secret in text for secret in secrets), (resource.name, text)


def test_no_plain_env_value_looks_secret(gcp_full: StackRun) -> None:
    plain = {name: env["value"] for name, env in envs(gcp_full).items() if "value" in env}
    assert plain, "expected plain settings too"
    for name, value in plain.items():
        assert not contains_secret(value)
        assert not any(shape.search(value) for shape in SECRET_SHAPES), (name, value)


def test_container_settings_for_cloud_run(gcp: StackRun) -> None:
    env = {name: item.get("value") for name, item in envs(gcp).items()}
    assert env["AIOPS_HOST"] == "0.0.0.0"
    assert env["AIOPS_DATA_DIR"] == "/tmp/aiops"
    assert env["AIOPS_ENGINE"] == "auto"
    assert env["AIOPS_LOG_LEVEL"] == "INFO"
    assert "PORT" not in env  # reserved: Cloud Run sets it from the container port
    # The URL is public: OpenAPI pages off, /metrics behind the bearer token.
    assert env["AIOPS_DOCS_ENABLED"] == "false"
    assert env["AIOPS_METRICS_REQUIRE_TOKEN"] == "true"
    assert container(gcp)["ports"] == {"containerPort": 8080}


def test_engine_and_evidence_urls_reach_the_container() -> None:
    run = run_stack(
        "dev",
        overrides={
            "aiops:analyzerEngine": "rules",
            "aiops:llmBaseUrl": "https://llm.internal.test/v1",
            "aiops:cloudRunPrometheusUrl": "https://prometheus.internal.test",
            "aiops:cloudRunLokiUrl": "https://loki.internal.test",
        },
    )
    env = {name: item.get("value") for name, item in envs(run).items()}
    assert env["AIOPS_ENGINE"] == "rules"
    assert env["AIOPS_LLM_BASE_URL"] == "https://llm.internal.test/v1"
    assert env["AIOPS_PROMETHEUS_URL"] == "https://prometheus.internal.test"
    assert env["AIOPS_LOKI_URL"] == "https://loki.internal.test"
    assert env["AIOPS_LOG_LEVEL"] == "DEBUG"


# --- identity and access -------------------------------------------------------------------


def test_service_account_has_exactly_one_accessor_binding_per_secret(gcp_full: StackRun) -> None:
    account = one(gcp_full, ACCOUNT)
    email = account.outputs["email"]
    member = f"serviceAccount:{email}"
    assert account.plain("accountId") == "aiops-gcp-run"
    assert one(gcp_full, SERVICE).inputs["template"]["serviceAccount"] == email

    # Every IAM resource of any kind that names the account.
    bindings = [
        r
        for r in gcp_full.resources
        if "iam" in r.type.lower() and member in json.dumps(unwrap(r.inputs))
    ]
    secret_bindings = [b for b in bindings if b.type == SECRET_MEMBER]
    assert sorted(b.plain("secretId") for b in secret_bindings) == sorted(
        s.plain("secretId") for s in gcp_full.of_type(SECRET)
    )
    assert {(b.plain("role"), b.plain("member")) for b in secret_bindings} == {
        ("roles/secretmanager.secretAccessor", member)
    }
    # At project level only the Cloud SQL client role (Cloud SQL has no per-instance policy).
    (project_binding,) = [b for b in bindings if b.type != SECRET_MEMBER]
    assert project_binding.type == PROJECT_MEMBER
    assert (project_binding.plain("role"), project_binding.plain("member")) == (
        "roles/cloudsql.client",
        member,
    )
    assert project_binding.plain("project") == FAKE_GCP_PROJECT


def test_cloud_run_waits_for_apis_secret_versions_and_bindings(gcp_full: StackRun) -> None:
    service = one(gcp_full, SERVICE)
    needed = {"aiops-gcp-api-run"}
    needed |= {r.name for r in gcp_full.of_type(SECRET_MEMBER)}
    needed |= {r.name for r in gcp_full.of_type(SECRET_VERSION)}
    needed.add("aiops-gcp-run-cloudsql-client")  # the socket needs the role from the start
    assert len(needed) == 14
    assert needed <= set(service.depends_on)


def test_public_invoker_by_default(gcp: StackRun) -> None:
    invoker = one(gcp, INVOKER)
    service = one(gcp, SERVICE)
    assert invoker.plain("name") == service.plain("name")
    assert invoker.plain("location") == REGION
    assert invoker.plain("role") == "roles/run.invoker"
    assert invoker.plain("member") == "allUsers"
    assert service.name in invoker.depends_on


def test_invoker_iam_disabled_replaces_the_all_users_binding() -> None:
    """For organisations whose policy forbids `allUsers` members."""
    run = run_stack("gcp", overrides={"aiops:cloudRunInvokerIamDisabled": True})
    assert run.of_type(INVOKER) == []
    assert one(run, SERVICE).plain("invokerIamDisabled") is True


def test_an_existing_runtime_account_is_used_instead_of_creating_one(gcp: StackRun) -> None:
    """With aiops:runtimeServiceAccount the deployer needs no right to create or administer
    accounts, only serviceAccountUser on that one account (docs/ci.md)."""
    email = "aiops-gcp-run@my-project.iam.gserviceaccount.com"
    run = run_stack("gcp", overrides={"aiops:runtimeServiceAccount": email})
    assert run.of_type(ACCOUNT) == []
    assert one(run, SERVICE).inputs["template"]["serviceAccount"] == email
    members = {r.plain("member") for r in run.of_type(SECRET_MEMBER)}
    members |= {r.plain("member") for r in run.of_type(PROJECT_MEMBER)}
    assert members == {f"serviceAccount:{email}"}
    # Everything else is the same stack.
    assert len(run.resources) == len(gcp.resources) - 1


@pytest.mark.parametrize(
    "value", ["aiops-gcp-run", "someone@example.com", "x@p.iam.gserviceaccount.com"]
)
def test_a_runtime_account_that_is_no_service_account_email_is_refused(value: str) -> None:
    with pytest.raises(Exception, match="aiops:runtimeServiceAccount"):
        run_stack("gcp", overrides={"aiops:runtimeServiceAccount": value})


def test_invoker_iam_check_stays_on_by_default(gcp: StackRun) -> None:
    assert one(gcp, SERVICE).plain("invokerIamDisabled") in (None, False)


def test_private_service_has_no_invoker_binding() -> None:
    private = run_stack("gcp", overrides={"aiops:publicInvoker": False})
    assert private.of_type(INVOKER) == []
    assert len(private.of_type(SERVICE)) == 1


# --- sizing --------------------------------------------------------------------------------


def test_deletion_protection_on_for_gcp_off_for_dev(gcp: StackRun, dev: StackRun) -> None:
    assert one(gcp, SERVICE).plain("deletionProtection") is True
    assert one(dev, SERVICE).plain("deletionProtection") is False


@pytest.mark.parametrize(
    ("stack", "memory", "concurrency", "timeout", "max_instances"),
    # gcp shares Cloud SQL between instances; dev's ephemeral store allows only one.
    [("gcp", "1Gi", 80, "60s", 3), ("dev", "512Mi", 20, "30s", 1)],
)
def test_scaling_and_limits_follow_the_stack_file(
    stack: str,
    memory: str,
    concurrency: int,
    timeout: str,
    max_instances: int,
    gcp: StackRun,
    dev: StackRun,
) -> None:
    service = one({"gcp": gcp, "dev": dev}[stack], SERVICE)
    template = service.plain("template")
    assert service.plain("location") == REGION
    assert service.plain("ingress") == "INGRESS_TRAFFIC_ALL"
    assert template["scaling"] == {"minInstanceCount": 0, "maxInstanceCount": max_instances}
    assert template["maxInstanceRequestConcurrency"] == concurrency
    assert template["timeout"] == timeout
    resources = template["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "1", "memory": memory}
    assert resources["cpuIdle"] is False


def test_probes_check_health_on_the_container_port(gcp: StackRun) -> None:
    spec = container(gcp)
    for probe in ("startupProbe", "livenessProbe"):
        # /health, not /healthz: Cloud Run reserves some paths ending in `z`.
        assert spec[probe]["httpGet"] == {"path": "/health", "port": 8080}
    startup = spec["startupProbe"]
    # Enough attempts for a cold start (imports, migrations) before Cloud Run gives up.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_internal_ingress_and_more_instances_are_configurable() -> None:
    run = run_stack(
        "dev",
        overrides={
            "aiops:cloudRunIngress": "internal",
            "aiops:database": "cloudsql",
            "aiops:cloudRunMinInstances": 1,
            "aiops:cloudRunMaxInstances": 3,
        },
    )
    service = one(run, SERVICE)
    assert service.plain("ingress") == "INGRESS_TRAFFIC_INTERNAL_ONLY"
    assert service.plain("template")["scaling"] == {"minInstanceCount": 1, "maxInstanceCount": 3}


# --- outputs -------------------------------------------------------------------------------


def test_outputs_and_their_secretness(gcp: StackRun) -> None:
    outputs = gcp.outputs
    assert set(outputs) == {
        "serviceUrl",
        "webhookUrl",
        "imageRef",
        "webhookToken",
        "alertmanagerConfig",
    }
    assert {name for name, out in outputs.items() if out.secret} == {"webhookToken"}
    assert outputs["serviceUrl"].value == one(gcp, SERVICE).outputs["uri"]
    assert outputs["webhookUrl"].value == f"{outputs['serviceUrl'].value}/webhook/alertmanager"
    assert len(outputs["webhookToken"].value) >= 32


def test_alertmanager_snippet_references_a_credentials_file(gcp: StackRun) -> None:
    snippet = gcp.outputs["alertmanagerConfig"].value
    assert gcp.outputs["webhookToken"].value not in snippet
    (entry,) = yaml.safe_load(snippet)["webhook_configs"]
    assert entry["url"] == gcp.outputs["webhookUrl"].value
    assert entry["send_resolved"] is True
    assert entry["http_config"]["authorization"] == {
        "type": "Bearer",
        "credentials_file": CREDENTIALS_FILE,
    }


def test_alertmanager_accepts_the_snippet(gcp: StackRun, tmp_path: Path) -> None:
    amtool = require_tool("amtool", "apt-get install prometheus-alertmanager")
    token_file = tmp_path / "webhook-token"
    token_file.write_text(gcp.outputs["webhookToken"].value)
    snippet = gcp.outputs["alertmanagerConfig"].value.replace(CREDENTIALS_FILE, str(token_file))
    receiver = {"name": "aiops-analyzer", **yaml.safe_load(snippet)}
    config = {"route": {"receiver": "aiops-analyzer"}, "receivers": [receiver]}
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 receivers" in result.stdout


# --- the store: Cloud SQL on gcp, ephemeral on dev -----------------------------------------


def test_cloud_sql_instance_is_the_smallest_postgresql_with_backups(gcp: StackRun) -> None:
    instance = one(gcp, SQL_INSTANCE)
    version = instance.plain("databaseVersion")
    assert version.startswith("POSTGRES_") and int(version.split("_")[1]) >= 15
    assert instance.plain("region") == REGION
    settings = instance.plain("settings")
    assert settings["tier"] == "db-f1-micro"
    # Shared-core tiers exist only in the Enterprise edition.
    assert settings["edition"] == "ENTERPRISE"
    backups = settings["backupConfiguration"]
    assert backups["enabled"] is True
    assert backups["pointInTimeRecoveryEnabled"] is True
    assert backups["backupRetentionSettings"]["retainedBackups"] >= 7
    assert instance.parent == "aiops-gcp-store"


@pytest.mark.parametrize(("override", "protected"), [(None, True), (False, False)])
def test_cloud_sql_deletion_protection_follows_config(
    override: bool | None, protected: bool, gcp: StackRun
) -> None:
    run = (
        gcp
        if override is None
        else run_stack("gcp", overrides={"aiops:databaseDeletionProtection": override})
    )
    instance = one(run, SQL_INSTANCE)
    assert instance.plain("deletionProtection") is protected
    assert instance.plain("settings")["deletionProtectionEnabled"] is protected


def test_database_and_user_live_on_the_instance(gcp: StackRun) -> None:
    instance = one(gcp, SQL_INSTANCE)
    database, user = one(gcp, SQL_DATABASE), one(gcp, SQL_USER)
    assert database.plain("instance") == user.plain("instance") == instance.plain("name")
    assert database.plain("name") == "aiops"
    assert user.plain("name") == "aiops"
    # The generated password reaches the user only as a secret.
    assert is_secret(user.inputs["password"])
    password = one_named(gcp, PASSWORD, "aiops-gcp-db-password")
    assert password.plain("special") is False  # nothing to escape in the URL
    assert password.plain("length") >= 24
    assert unwrap(user.inputs["password"]) == password.outputs["result"]


def test_the_database_url_is_a_secret_in_secret_manager(gcp: StackRun) -> None:
    instance = one(gcp, SQL_INSTANCE)
    password = one_named(gcp, PASSWORD, "aiops-gcp-db-password").outputs["result"]
    (version,) = [v for v in gcp.of_type(SECRET_VERSION) if "database-url" in v.name]
    assert is_secret(version.inputs["secretData"])
    connection = f"{FAKE_GCP_PROJECT}:{REGION}:{instance.plain('name')}"
    assert unwrap(version.inputs["secretData"]) == (
        f"postgresql://aiops:{password}@/aiops?host=/cloudsql/{connection}"
    )
    env = envs(gcp)["AIOPS_DATABASE_URL"]
    assert "value" not in env
    assert env["valueSource"]["secretKeyRef"]["secret"] == "aiops-gcp-database-url"
    for resource in gcp.resources:
        if resource.type != PASSWORD:
            assert not any(password in text for text in plain_strings(resource.inputs))


def test_cloud_run_mounts_the_instance_socket(gcp: StackRun) -> None:
    instance = one(gcp, SQL_INSTANCE)
    template = one(gcp, SERVICE).plain("template")
    connection = f"{FAKE_GCP_PROJECT}:{REGION}:{instance.plain('name')}"
    assert template["volumes"] == [
        {"name": "cloudsql", "cloudSqlInstance": {"instances": [connection]}}
    ]
    assert container(gcp)["volumeMounts"] == [{"name": "cloudsql", "mountPath": "/cloudsql"}]


def test_dev_keeps_the_ephemeral_store(dev: StackRun) -> None:
    assert not [r for r in dev.resources if r.type.startswith(("gcp:sql/", "aiops:gcp:"))]
    assert not dev.of_type(PROJECT_MEMBER)
    assert "sqladmin.googleapis.com" not in {a.plain("service") for a in dev.of_type(API)}
    assert "AIOPS_DATABASE_URL" not in envs(dev)
    assert "volumes" not in one(dev, SERVICE).plain("template")
    assert "volumeMounts" not in container(dev)
    assert envs(dev)["AIOPS_DATA_DIR"]["value"] == "/tmp/aiops"
