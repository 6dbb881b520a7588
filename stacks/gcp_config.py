"""Typed configuration of the `gcp` target (the `aiops:` keys of Pulumi.yaml's gcp section).

Mocks do not apply the schema's defaults, so they are repeated here; a test keeps both in
agreement. Every error names the key to fix.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pulumi

from stacks.config import PROJECT, ConfigError

# Friendly ingress names (as `gcloud run deploy --ingress` spells them) -> Cloud Run v2 enum.
INGRESS = {
    "all": "INGRESS_TRAFFIC_ALL",
    "internal": "INGRESS_TRAFFIC_INTERNAL_ONLY",
    "internal-and-cloud-load-balancing": "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
}

# The longest suffix appended to the prefix in a length-limited cloud name: the service
# account id "<prefix>-run" must fit GCP's 6..30 characters.
_ACCOUNT_SUFFIX = "-run"
_ACCOUNT_ID_MAX = 30
_NAME_PREFIX = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_MEMORY = re.compile(r"^[1-9][0-9]*(Mi|Gi)$")
_ACCOUNT_EMAIL = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.gserviceaccount\.com$")
_WHOLE_CPUS = (1.0, 2.0, 4.0, 6.0, 8.0)
# Where the analyzer keeps its store: Cloud SQL for PostgreSQL (shared, survives restarts) or
# SQLite in the instance's memory (free, lost at every scale-down; one instance only).
DATABASES = ("cloudsql", "ephemeral")

# The gcp provider's own fallbacks when gcp:project / gcp:region are not in the stack config.
_PROJECT_ENV = ("GOOGLE_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
_REGION_ENV = ("GOOGLE_REGION", "GCLOUD_REGION", "CLOUDSDK_COMPUTE_REGION")


def _first_env(names: tuple[str, ...]) -> str:
    return next((os.environ[n] for n in names if os.environ.get(n)), "")


@dataclass(frozen=True)
class GcpLocation:
    """Where the stack deploys: the gcp provider's project and region."""

    project: str
    region: str

    @classmethod
    def load(cls, config: pulumi.Config | None = None) -> GcpLocation:
        config = config or pulumi.Config("gcp")
        project = config.get("project") or _first_env(_PROJECT_ENV)
        region = config.get("region") or _first_env(_REGION_ENV)
        if not project:
            raise ConfigError(
                "gcp:project is not set: run `pulumi config set gcp:project <PROJECT_ID>` "
                f"(or export {_PROJECT_ENV[0]})"
            )
        if not region:
            raise ConfigError(
                "gcp:region is not set: run `pulumi config set gcp:region europe-west1` "
                f"(or export {_REGION_ENV[0]})"
            )
        return cls(project=project, region=region)


def _int(config: pulumi.Config, key: str, default: int, low: int, high: int) -> int:
    value = config.get_int(key)
    value = default if value is None else value
    if not low <= value <= high:
        raise ConfigError(f"{PROJECT}:{key} must be between {low} and {high}, got {value}")
    return value


def _bool(config: pulumi.Config, key: str, default: bool) -> bool:
    value = config.get_bool(key)
    return default if value is None else value


def _cpu(cpu: str, always_allocated: bool, concurrency: int) -> str:
    """Cloud Run's vCPU rules: whole 1, 2, 4, 6 or 8, or a fraction (0.08-1) that only runs
    throttled between requests and one request at a time."""
    try:
        amount = float(cpu)
    except ValueError:
        amount = 0.0
    if amount not in _WHOLE_CPUS and not 0.08 <= amount < 1:
        raise ConfigError(
            f"{PROJECT}:cloudRunCpu must be 1, 2, 4, 6, 8 or a fraction from 0.08, got {cpu!r}"
        )
    if amount < 1 and (always_allocated or concurrency != 1):
        raise ConfigError(
            f"{PROJECT}:cloudRunCpu {cpu!r} below 1 vCPU needs "
            f"{PROJECT}:cloudRunCpuAlwaysAllocated false and {PROJECT}:cloudRunConcurrency 1"
        )
    return cpu


def default_name_prefix(stack: str) -> str:
    """`aiops-<stack>` with the stack name folded to the characters GCP names allow."""
    folded = re.sub(r"[^a-z0-9]+", "-", stack.lower()).strip("-")
    return f"aiops-{folded}" if folded else "aiops"


@dataclass(frozen=True)
class GcpConfig:
    """Sizing and behaviour of the gcp target; one instance per stack."""

    name_prefix: str
    registry_keep_count: int
    registry_untagged_days: int
    ingress: str
    min_instances: int
    max_instances: int
    concurrency: int
    cpu: str
    memory: str
    cpu_always_allocated: bool
    timeout_seconds: int
    deletion_protection: bool
    public_invoker: bool
    invoker_iam_disabled: bool
    prometheus_url: str
    loki_url: str
    database: str
    database_deletion_protection: bool
    # An existing runtime account (email) to run as instead of creating `<prefix>-run`: the CI
    # deployer may then act as that one account only (docs/ci.md).
    runtime_service_account: str

    @property
    def cloud_sql(self) -> bool:
        return self.database == "cloudsql"

    @classmethod
    def load(cls, stack: str, config: pulumi.Config | None = None) -> GcpConfig:
        config = config or pulumi.Config(PROJECT)
        prefix = config.get("gcpNamePrefix") or default_name_prefix(stack)
        longest = len(prefix) + len(_ACCOUNT_SUFFIX)
        if not _NAME_PREFIX.match(prefix) or not 6 <= longest <= _ACCOUNT_ID_MAX:
            raise ConfigError(
                f"{PROJECT}:gcpNamePrefix {prefix!r} must be lowercase letters, digits and '-', "
                f"start with a letter and be 2-{_ACCOUNT_ID_MAX - len(_ACCOUNT_SUFFIX)} characters "
                "(it prefixes every cloud name; set it when the stack name is too long)"
            )

        ingress = config.get("cloudRunIngress") or "all"
        if ingress not in INGRESS:
            raise ConfigError(
                f"{PROJECT}:cloudRunIngress must be one of {', '.join(INGRESS)}, got {ingress!r}"
            )

        min_instances = _int(config, "cloudRunMinInstances", 0, 0, 100)
        max_instances = _int(config, "cloudRunMaxInstances", 1, 1, 100)
        if max_instances < min_instances:
            raise ConfigError(
                f"{PROJECT}:cloudRunMaxInstances ({max_instances}) must be at least "
                f"{PROJECT}:cloudRunMinInstances ({min_instances})"
            )

        database = config.get("database") or "cloudsql"
        if database not in DATABASES:
            raise ConfigError(
                f"{PROJECT}:database must be one of {', '.join(DATABASES)}, got {database!r}"
            )
        if max_instances > 1 and database != "cloudsql":
            raise ConfigError(
                f"{PROJECT}:cloudRunMaxInstances ({max_instances}) above 1 needs "
                f"{PROJECT}:database cloudsql: each instance would keep its own ephemeral store"
            )

        concurrency = _int(config, "cloudRunConcurrency", 80, 1, 1000)
        cpu_always_allocated = _bool(config, "cloudRunCpuAlwaysAllocated", True)
        cpu = _cpu(config.get("cloudRunCpu") or "1", cpu_always_allocated, concurrency)

        memory = config.get("cloudRunMemory") or "512Mi"
        if not _MEMORY.match(memory):
            raise ConfigError(
                f"{PROJECT}:cloudRunMemory must look like 512Mi or 1Gi, got {memory!r}"
            )

        runtime_account = config.get("runtimeServiceAccount") or ""
        if runtime_account and not _ACCOUNT_EMAIL.match(runtime_account):
            raise ConfigError(
                f"{PROJECT}:runtimeServiceAccount must be a service account email "
                f"(NAME@PROJECT.iam.gserviceaccount.com), got {runtime_account!r}"
            )

        return cls(
            name_prefix=prefix,
            registry_keep_count=_int(config, "registryKeepCount", 5, 1, 100),
            registry_untagged_days=_int(config, "registryUntaggedDays", 7, 1, 365),
            ingress=INGRESS[ingress],
            min_instances=min_instances,
            max_instances=max_instances,
            concurrency=concurrency,
            cpu=cpu,
            memory=memory,
            cpu_always_allocated=cpu_always_allocated,
            timeout_seconds=_int(config, "cloudRunTimeoutSeconds", 60, 1, 3600),
            deletion_protection=_bool(config, "cloudRunDeletionProtection", True),
            public_invoker=_bool(config, "publicInvoker", True),
            invoker_iam_disabled=_bool(config, "cloudRunInvokerIamDisabled", False),
            prometheus_url=config.get("cloudRunPrometheusUrl") or "",
            loki_url=config.get("cloudRunLokiUrl") or "",
            database=database,
            database_deletion_protection=_bool(config, "databaseDeletionProtection", True),
            runtime_service_account=runtime_account,
        )
