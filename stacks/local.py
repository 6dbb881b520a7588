"""The `local` target: the whole platform as containers on the local Docker engine.

One network (every container reachable by its service name), generated secrets, the
analyzer built from source, the monitoring/ files uploaded as they are, every published port
bound to `aiops:bindAddress` (127.0.0.1 unless configured).
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from stacks import monitoring_files as files
from stacks.components.analyzer_service import AnalyzerService, PageLinks
from stacks.components.docker_service import STACK_LABEL, LocalContext, public_url
from stacks.components.local_postgres import LocalPostgres
from stacks.components.logging_stack import LoggingStack
from stacks.components.monitoring import GRAFANA_ADMIN_USER, AlertDelivery, MonitoringStack
from stacks.components.sample_workload import SampleWorkload
from stacks.components.secret_output import as_secret
from stacks.config import AnalyzerConfig
from stacks.local_config import WEBHOOK_PATH, LocalConfig


def _generated_secret(name: str, length: int) -> pulumi.Output[str]:
    # Letters and digits only: the value goes into env vars, a file and an HTTP header as is.
    password = random.RandomPassword(name, length=length, special=False)
    # Marked secret here too: the provider's own secret marking is not applied under mocks.
    return as_secret(password.result)


def deploy_local(analyzer: AnalyzerConfig) -> None:
    local = LocalConfig.load()
    stack = pulumi.get_stack()
    network = docker.Network(
        "network",
        name=f"aiops-{stack}",
        labels=[docker.NetworkLabelArgs(label=STACK_LABEL, value=stack)],
    )
    context = LocalContext(
        stack=stack,
        network=network,
        bind_address=local.bind_address,
        images=files.load_images(local.image_overrides),
    )
    grafana_password = _generated_secret("grafana-admin-password", 24)

    analyzer_service: AnalyzerService | None = None
    if local.external_analyzer_url is not None and local.external_webhook_token is not None:
        # Alerts go to an analyzer elsewhere (e.g. the gcp stack's Cloud Run service).
        webhook_token = as_secret(local.external_webhook_token)
        analyzer_url = local.external_analyzer_url
    else:
        webhook_token = _generated_secret("webhook-token", 48)
        analyzer_url = public_url(local.bind_address, local.ports.analyzer)
        # Notifications link to analysis pages at the published port; the analyzer annotates
        # Grafana with that link, and its pages link back to Grafana Explore.
        links = PageLinks(
            public_url=analyzer_url,
            grafana_public_url=public_url(local.bind_address, local.ports.grafana),
            grafana_password=grafana_password,
            grafana_user=GRAFANA_ADMIN_USER,
            runbook_base_url=local.runbook_base_url,
        )
        # SQLite on the analyzer's volume unless aiops:localDatabase asks for PostgreSQL.
        database = LocalPostgres("postgres-database", context) if local.uses_postgresql else None
        analyzer_service = AnalyzerService(
            "analyzer-service",
            context,
            analyzer,
            webhook_token,
            local.ports.analyzer,
            links,
            database,
        )
    webhook_url = f"{analyzer_url}{WEBHOOK_PATH}"
    runbook_base = local.runbook_base(analyzer_url)

    logging_stack = LoggingStack(
        "logging-stack",
        context,
        local.ports,
        runbook_base,
        ship_host_journal=local.enable_host_journal,
    )
    monitoring = MonitoringStack(
        "monitoring-stack",
        context,
        local.ports,
        AlertDelivery(
            webhook_url=webhook_url if analyzer_service is None else None,
            token=webhook_token,
            analyzer=analyzer_service.container if analyzer_service else None,
        ),
        grafana_password,
        runbook_base,
        enable_cadvisor=local.enable_cadvisor,
        scrape_analyzer=analyzer_service is not None,
        grafana_depends_on=[logging_stack.loki],
    )
    workload = SampleWorkload("sample-workload", context, local.ports)

    pulumi.export("grafanaUrl", monitoring.grafana_url)
    pulumi.export("grafanaAdminUser", GRAFANA_ADMIN_USER)
    pulumi.export("grafanaAdminPassword", grafana_password)
    pulumi.export("prometheusUrl", monitoring.prometheus_url)
    pulumi.export("alertmanagerUrl", monitoring.alertmanager_url)
    pulumi.export("lokiUrl", logging_stack.loki_url)
    pulumi.export("nginxUrl", workload.nginx_url)
    pulumi.export("analyzerUrl", analyzer_url)
    pulumi.export("webhookUrl", webhook_url)
    pulumi.export("webhookToken", webhook_token)
