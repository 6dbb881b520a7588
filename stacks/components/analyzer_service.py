"""The analyzer built from this repository's source and run next to the monitoring stack."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pulumi
import pulumi_docker_build as docker_build

from stacks.components.docker_service import (
    LocalContext,
    ServiceSpec,
    container,
    data_volume,
    healthcheck,
    mounted,
)
from stacks.components.local_postgres import LocalPostgres
from stacks.config import AnalyzerConfig
from stacks.monitoring_files import REPO_ROOT

CONTAINER_PORT = 8080
# Where the image keeps its SQLite store; the named volume is mounted here so analyses
# survive a container replacement (the image must create it for its non-root user).
DATA_DIR = "/app/data"
DOCKERFILE = "service/Dockerfile"
# The analyzer annotates Grafana over the stack's network.
GRAFANA_INTERNAL_URL = "http://grafana:3000"
IMAGE_DIGEST_LABEL = "com.aiops.image-digest"


def _build_path(relative: str) -> str:
    """A path relative to the working directory (the project root under the Pulumi CLI), so
    the stored inputs do not depend on where the repository is checked out."""
    return os.path.relpath(REPO_ROOT / relative) if relative else os.path.relpath(REPO_ROOT)


@dataclass(frozen=True)
class PageLinks:
    """Where browsers reach the analyzer and Grafana, so notifications link to analysis pages
    and pages link to Grafana Explore; and the Grafana the analyzer annotates."""

    public_url: str
    grafana_public_url: str
    grafana_password: pulumi.Output[str]
    grafana_user: str = "admin"
    # aiops:runbookBaseUrl when set, so analyses link the runbooks the alerts link.
    runbook_base_url: str | None = None


def analyzer_env(
    analyzer: AnalyzerConfig,
    webhook_token: pulumi.Output[str],
    links: PageLinks | None = None,
    database_url: pulumi.Output[str] | None = None,
) -> pulumi.Output[list[str]]:
    """The container's environment; secret as a whole because it carries the token (and the
    database password when a PostgreSQL URL replaces the SQLite file in DATA_DIR)."""
    plain = {
        "AIOPS_HOST": "0.0.0.0",
        "PORT": str(CONTAINER_PORT),
        "AIOPS_DATA_DIR": DATA_DIR,
        "AIOPS_ENGINE": analyzer.engine,
        "AIOPS_LLM_MODEL": analyzer.llm_model,
        "AIOPS_LOG_LEVEL": analyzer.log_level,
        "AIOPS_PROMETHEUS_URL": "http://prometheus:9090",
        "AIOPS_LOKI_URL": "http://loki:3100",
    }
    if analyzer.llm_base_url:
        plain["AIOPS_LLM_BASE_URL"] = analyzer.llm_base_url
    secrets: dict[str, pulumi.Output[str]] = {"AIOPS_WEBHOOK_TOKEN": webhook_token}
    if database_url is not None:
        secrets["AIOPS_DATABASE_URL"] = database_url
    if links is not None:
        plain["AIOPS_PUBLIC_URL"] = links.public_url
        plain["AIOPS_GRAFANA_URL"] = GRAFANA_INTERNAL_URL
        plain["AIOPS_GRAFANA_PUBLIC_URL"] = links.grafana_public_url
        if links.runbook_base_url:
            plain["AIOPS_RUNBOOK_BASE_URL"] = links.runbook_base_url
        user = links.grafana_user
        secrets["AIOPS_GRAFANA_BASIC_AUTH"] = links.grafana_password.apply(
            lambda password: f"{user}:{password}"
        )
    optional = {
        "AIOPS_OPENAI_API_KEY": analyzer.openai_api_key,
        "AIOPS_SLACK_WEBHOOK_URL": analyzer.slack_webhook_url,
        "AIOPS_DISCORD_WEBHOOK_URL": analyzer.discord_webhook_url,
        "AIOPS_NOTIFY_WEBHOOK_URL": analyzer.notify_webhook_url,
    }
    secrets.update({name: value for name, value in optional.items() if value is not None})
    names = list(secrets)
    return pulumi.Output.secret(
        pulumi.Output.all(*secrets.values()).apply(
            lambda values: (
                [f"{k}={v}" for k, v in plain.items()]
                + [f"{name}={value}" for name, value in zip(names, values, strict=True)]
            )
        )
    )


class AnalyzerService(pulumi.ComponentResource):
    """Image built from service/ (loaded into the local engine, never pushed), its data
    volume and its container, reachable as analyzer:8080 on the stack's network."""

    def __init__(
        self,
        name: str,
        context: LocalContext,
        analyzer: AnalyzerConfig,
        webhook_token: pulumi.Output[str],
        host_port: int,
        links: PageLinks | None = None,
        database: LocalPostgres | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aiops:local:AnalyzerService", name, None, opts)
        tag = f"aiops-analyzer:{context.stack}"
        self.image = docker_build.Image(
            "analyzer-image",
            context=docker_build.BuildContextArgs(location=_build_path("")),
            dockerfile=docker_build.DockerfileArgs(location=_build_path(DOCKERFILE)),
            tags=[tag],
            push=False,
            # Export to the local Docker engine so a container can run it by tag.
            load=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.volume = data_volume(context, "analyzer", self)
        self.container = container(
            context,
            ServiceSpec(
                name="analyzer",
                # Depend on the build; the tag is what the local engine knows the image by.
                image=self.image.ref.apply(lambda _: tag),
                envs=analyzer_env(
                    analyzer, webhook_token, links, database.url if database else None
                ),
                ports=[(CONTAINER_PORT, host_port)],
                volumes=[mounted(self.volume, DATA_DIR)],
                healthcheck=healthcheck(
                    [
                        "CMD",
                        "python",
                        "-c",
                        "import urllib.request; "
                        f"urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}/healthz', "
                        "timeout=4)",
                    ]
                ),
                # A rebuilt image keeps its tag; the digest label makes the container follow it.
                extra_labels={IMAGE_DIGEST_LABEL: self.image.digest},
            ),
            parent=self,
            # The analyzer migrates its store at start: PostgreSQL must accept connections.
            depends_on=[database.container] if database else (),
        )
        self.register_outputs({"image": tag, "container": self.container.name})
