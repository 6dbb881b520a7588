"""Configuration of the gcp target: clear errors naming the key, schema and code in agreement."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pytest
import yaml

from stacks.config import ConfigError
from stacks.gcp_config import INGRESS, GcpConfig
from tests.infra.harness import REPO_ROOT, run_stack

PROJECT_ENV = ("GOOGLE_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
REGION_ENV = ("GOOGLE_REGION", "GCLOUD_REGION", "CLOUDSDK_COMPUTE_REGION")
GCP_SECTION = "# ---- target gcp"

# Pulumi.yaml key -> GcpConfig field, with how the schema default reads once loaded.
FIELDS = {
    "gcpNamePrefix": "name_prefix",
    "registryKeepCount": "registry_keep_count",
    "registryUntaggedDays": "registry_untagged_days",
    "cloudRunIngress": "ingress",
    "cloudRunMinInstances": "min_instances",
    "cloudRunMaxInstances": "max_instances",
    "cloudRunConcurrency": "concurrency",
    "cloudRunCpu": "cpu",
    "cloudRunMemory": "memory",
    "cloudRunCpuAlwaysAllocated": "cpu_always_allocated",
    "cloudRunTimeoutSeconds": "timeout_seconds",
    "cloudRunDeletionProtection": "deletion_protection",
    "publicInvoker": "public_invoker",
    "cloudRunInvokerIamDisabled": "invoker_iam_disabled",
    "cloudRunPrometheusUrl": "prometheus_url",
    "cloudRunLokiUrl": "loki_url",
    "database": "database",
    "databaseDeletionProtection": "database_deletion_protection",
    "runtimeServiceAccount": "runtime_service_account",
}
YAML_TYPES = {"string": str, "integer": int, "boolean": bool}


@pytest.fixture
def no_gcp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROJECT_ENV + REGION_ENV:
        monkeypatch.delenv(name, raising=False)


def schema() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]


def gcp_schema_keys() -> list[str]:
    """The keys written below the gcp marker comment of Pulumi.yaml."""
    text = (REPO_ROOT / "Pulumi.yaml").read_text()
    section = text[text.index(GCP_SECTION) :]
    return [
        line.strip().rstrip(":").split(":", 1)[1]
        for line in section.splitlines()
        if line.startswith("  aiops:")
    ]


# --- where to deploy -----------------------------------------------------------------------


@pytest.mark.usefixtures("no_gcp_env")
@pytest.mark.parametrize("key", ["gcp:project", "gcp:region"])
def test_missing_project_or_region_is_named(key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        run_stack("gcp", overrides={key: ""})


@pytest.mark.usefixtures("no_gcp_env")
def test_project_and_region_fall_back_to_the_provider_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOGLE_PROJECT", "env-project")
    monkeypatch.setenv("GOOGLE_REGION", "asia-east1")
    run = run_stack("dev", overrides={"gcp:project": "", "gcp:region": ""})
    (image,) = run.of_type("docker-build:index:Image")
    assert image.plain("tags")[0].startswith("asia-east1-docker.pkg.dev/env-project/")


# --- bad values ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"aiops:cloudRunIngress": "public"}, "aiops:cloudRunIngress"),
        ({"aiops:database": "postgres"}, "aiops:database"),
        # Two instances with two private SQLite stores: split history, duplicate analyses.
        (
            {"aiops:database": "ephemeral", "aiops:cloudRunMaxInstances": 2},
            "aiops:cloudRunMaxInstances",
        ),
        (
            {"aiops:cloudRunMinInstances": 2, "aiops:cloudRunMaxInstances": 1},
            "aiops:cloudRunMaxInstances",
        ),
        ({"aiops:cloudRunMaxInstances": 0}, "aiops:cloudRunMaxInstances"),
        ({"aiops:cloudRunConcurrency": 0}, "aiops:cloudRunConcurrency"),
        ({"aiops:cloudRunCpu": "lots"}, "aiops:cloudRunCpu"),
        ({"aiops:cloudRunCpu": "3"}, "aiops:cloudRunCpu"),
        ({"aiops:cloudRunCpu": "0.01"}, "aiops:cloudRunCpu"),
        (
            {"aiops:cloudRunCpu": "0.5", "aiops:cloudRunConcurrency": 1},
            "aiops:cloudRunCpuAlwaysAllocated",
        ),
        (
            {"aiops:cloudRunCpu": "0.5", "aiops:cloudRunCpuAlwaysAllocated": False},
            "aiops:cloudRunConcurrency",
        ),
        ({"aiops:cloudRunMemory": "1GB"}, "aiops:cloudRunMemory"),
        ({"aiops:cloudRunTimeoutSeconds": 7200}, "aiops:cloudRunTimeoutSeconds"),
        ({"aiops:registryKeepCount": 0}, "aiops:registryKeepCount"),
        ({"aiops:registryUntaggedDays": 0}, "aiops:registryUntaggedDays"),
        ({"aiops:gcpNamePrefix": "Aiops_Prod"}, "aiops:gcpNamePrefix"),
        ({"aiops:gcpNamePrefix": "a" * 27}, "aiops:gcpNamePrefix"),
    ],
)
def test_bad_value_fails_naming_the_key(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        run_stack("dev", overrides=overrides)


def test_non_integer_fails_naming_the_key() -> None:
    with pytest.raises(pulumi.ConfigTypeError, match="aiops:cloudRunMaxInstances"):
        run_stack("dev", overrides={"aiops:cloudRunMaxInstances": "many"})


def test_a_long_stack_name_asks_for_a_prefix() -> None:
    long_stack = "production-europe-west-primary"
    location = {"aiops:target": "gcp", "gcp:project": "p-1", "gcp:region": "europe-west1"}
    with pytest.raises(ConfigError, match="aiops:gcpNamePrefix"):
        run_stack(long_stack, overrides=location)
    run = run_stack(long_stack, overrides={**location, "aiops:gcpNamePrefix": "aiops-prod-ew"})
    (account,) = run.of_type("gcp:serviceaccount/account:Account")
    assert account.plain("accountId") == "aiops-prod-ew-run"


def test_fractional_cpu_is_allowed_when_cpu_is_throttled() -> None:
    run = run_stack(
        "dev",
        overrides={
            "aiops:cloudRunCpu": "0.5",
            "aiops:cloudRunCpuAlwaysAllocated": False,
            "aiops:cloudRunConcurrency": 1,
        },
    )
    (service,) = run.of_type("gcp:cloudrunv2/service:Service")
    resources = service.plain("template")["containers"][0]["resources"]
    assert resources["limits"]["cpu"] == "0.5"
    assert resources["cpuIdle"] is True


# --- schema, stack files and code agree ----------------------------------------------------


def test_gcp_schema_keys_are_typed_and_described() -> None:
    declared = schema()
    keys = gcp_schema_keys()
    assert sorted(keys) == sorted(FIELDS)
    for key in keys:
        entry = declared[f"aiops:{key}"]
        assert entry["type"] in YAML_TYPES, key
        assert entry["description"], key
        assert isinstance(entry["default"], YAML_TYPES[entry["type"]]), key


def test_schema_defaults_match_the_code_defaults() -> None:
    pulumi.runtime.set_all_config({})
    loaded = GcpConfig.load("gcp")
    declared = schema()
    for key, field in FIELDS.items():
        default = declared[f"aiops:{key}"]["default"]
        if key == "gcpNamePrefix":
            assert default == "" and loaded.name_prefix == "aiops-gcp"
        elif key == "cloudRunIngress":
            assert getattr(loaded, field) == INGRESS[default]
        else:
            assert getattr(loaded, field) == default, key
    assert {f.name for f in dataclasses.fields(GcpConfig)} == set(FIELDS.values())


@pytest.mark.parametrize("stack", ["gcp", "dev"])
def test_stack_files_only_use_declared_keys_with_their_types(stack: str) -> None:
    declared = schema()
    data = yaml.safe_load((REPO_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert data["aiops:target"] == "gcp"
    assert data["gcp:region"]
    for key, value in data.items():
        if not key.startswith("aiops:"):
            continue
        assert key in declared, f"Pulumi.{stack}.yaml sets undeclared {key}"
        assert isinstance(value, YAML_TYPES[declared[key]["type"]]), key
