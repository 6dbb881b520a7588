"""The gcp target: the analyzer on Cloud Run, its image in Artifact Registry, its secrets in
Secret Manager, run by a dedicated service account that can read those secrets and nothing else.

`dev`, `gcp` (and any staging stack) run this same code; each stack's names start with its own
prefix (`aiops-<stack>` by default), so several stacks share a project without colliding.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from stacks.components.alertmanager_receiver import WEBHOOK_PATH, webhook_configs_snippet
from stacks.components.artifact_image import build_and_push
from stacks.components.cloud_run import (
    CloudSqlConnection,
    analyzer_service,
    deterministic_url,
)
from stacks.components.cloud_sql import SOCKET_ROOT, CloudSqlStore
from stacks.components.gcp_apis import enable_apis
from stacks.components.secret_env import SecretEnv, secret_env
from stacks.components.secret_output import as_secret
from stacks.config import AnalyzerConfig
from stacks.gcp_config import GcpConfig, GcpLocation

# /tmp is the writable (in-memory) filesystem of a Cloud Run instance: with `aiops:database
# ephemeral` the SQLite store lives and dies with the instance (docs/deploy-gcp.md, "The store:
# Cloud SQL or ephemeral"); with Cloud SQL the URL in Secret Manager takes precedence.
DATA_DIR = "/tmp/aiops"  # noqa: S108 -- deliberate, documented instance-local store


def _plain_env(
    analyzer: AnalyzerConfig, settings: GcpConfig, public_url: pulumi.Input[str]
) -> dict[str, pulumi.Input[str]]:
    """Settings that are not secret; secrets go through Secret Manager only."""
    env: dict[str, pulumi.Input[str]] = {
        # Notifications link to analysis pages under the service's own URL.
        "AIOPS_PUBLIC_URL": public_url,
        # Cloud Run routes to the container's interface, not to loopback.
        "AIOPS_HOST": "0.0.0.0",
        "AIOPS_DATA_DIR": DATA_DIR,
        "AIOPS_ENGINE": analyzer.engine,
        "AIOPS_LLM_MODEL": analyzer.llm_model,
        "AIOPS_LOG_LEVEL": analyzer.log_level,
        # The service URL is public: no OpenAPI pages there, and /metrics wants the token.
        "AIOPS_DOCS_ENABLED": "false",
        "AIOPS_METRICS_REQUIRE_TOKEN": "true",
    }
    optional = {
        "AIOPS_LLM_BASE_URL": analyzer.llm_base_url,
        "AIOPS_PROMETHEUS_URL": settings.prometheus_url,
        "AIOPS_LOKI_URL": settings.loki_url,
    }
    env.update({key: value for key, value in optional.items() if value})
    return env


def _runtime_account(
    prefix: str, stack: str, settings: GcpConfig, iam_api: gcp.projects.Service
) -> pulumi.Output[str]:
    """The email of the account the service runs as: `<prefix>-run`, created here, unless
    `aiops:runtimeServiceAccount` names one made beforehand (so a CI deployer can be granted
    serviceAccountUser on that account alone, docs/ci.md)."""
    if settings.runtime_service_account:
        return pulumi.Output.from_input(settings.runtime_service_account)
    account = gcp.serviceaccount.Account(
        f"{prefix}-run",
        account_id=f"{prefix}-run",
        display_name=f"AIOps analyzer ({stack})",
        description="Runs the analyzer on Cloud Run; reads only its own secrets.",
        opts=pulumi.ResourceOptions(depends_on=[iam_api]),
    )
    return account.email


def deploy_gcp(analyzer: AnalyzerConfig) -> None:
    stack = pulumi.get_stack()
    location = GcpLocation.load()
    settings = GcpConfig.load(stack)
    prefix = settings.name_prefix
    labels = {"app": "aiops-analyzer", "deployment": prefix}

    apis = enable_apis(prefix, cloud_sql=settings.cloud_sql)

    pushed = build_and_push(
        prefix,
        project=location.project,
        region=location.region,
        stack=stack,
        keep_count=settings.registry_keep_count,
        untagged_days=settings.registry_untagged_days,
        labels=labels,
        api=apis["artifactregistry"],
    )

    account_email = _runtime_account(prefix, stack, settings, apis["iam"])

    token = random.RandomPassword(f"{prefix}-webhook-token-value", length=48, special=False)
    # Under mocks (and for callers) the result must be secret wherever it flows.
    webhook_token = as_secret(token.result)

    secret_values: list[tuple[str, str, pulumi.Input[str] | None]] = [
        ("webhook-token", "AIOPS_WEBHOOK_TOKEN", webhook_token),
        ("openai-api-key", "AIOPS_OPENAI_API_KEY", analyzer.openai_api_key),
        ("slack-webhook-url", "AIOPS_SLACK_WEBHOOK_URL", analyzer.slack_webhook_url),
        ("discord-webhook-url", "AIOPS_DISCORD_WEBHOOK_URL", analyzer.discord_webhook_url),
        ("notify-webhook-url", "AIOPS_NOTIFY_WEBHOOK_URL", analyzer.notify_webhook_url),
    ]
    store = None
    if settings.cloud_sql:
        store = CloudSqlStore(
            prefix,
            project=location.project,
            region=location.region,
            runtime_account_email=account_email,
            deletion_protection=settings.database_deletion_protection,
            labels=labels,
            api=apis["sqladmin"],
        )
        secret_values.append(("database-url", "AIOPS_DATABASE_URL", store.url))

    secrets: list[SecretEnv] = [
        secret_env(
            prefix,
            short_name,
            env_var=env_var,
            value=value,
            reader_email=account_email,
            labels=labels,
            api=apis["secretmanager"],
        )
        for short_name, env_var, value in secret_values
        if value is not None
    ]

    analyzer_run = analyzer_service(
        prefix,
        region=location.region,
        image=pushed.ref,
        service_account_email=account_email,
        plain_env=_plain_env(
            analyzer, settings, deterministic_url(prefix, location.project, location.region)
        ),
        secret_envs=secrets,
        settings=settings,
        labels=labels,
        api=apis["run"],
        cloud_sql=None
        if store is None
        else CloudSqlConnection(
            connection_name=store.instance.connection_name,
            mount_path=SOCKET_ROOT,
            ready=[store.client_binding],
        ),
    )

    service_url = analyzer_run.service.uri
    webhook_url = service_url.apply(lambda uri: f"{uri}{WEBHOOK_PATH}")
    pulumi.export("serviceUrl", service_url)
    pulumi.export("webhookUrl", webhook_url)
    pulumi.export("imageRef", pushed.ref)
    pulumi.export("webhookToken", webhook_token)
    pulumi.export("alertmanagerConfig", webhook_url.apply(webhook_configs_snippet))
