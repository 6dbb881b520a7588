"""Metrics and alerting: Prometheus, Alertmanager, Grafana and the host/container exporters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from stacks import monitoring_files as files
from stacks.components.docker_service import (
    LocalContext,
    ServiceSpec,
    container,
    data_volume,
    host_read_only,
    http_check,
    mounted,
    pinned_image,
    public_url,
)
from stacks.components.secret_output import as_secret
from stacks.local_config import PublishedPorts

GRAFANA_ADMIN_USER = "admin"


@dataclass(frozen=True)
class AlertDelivery:
    """Where Alertmanager sends alerts and with which bearer token (a secret)."""

    webhook_url: str | None  # None: the in-stack analyzer, as alertmanager.yml says
    token: pulumi.Output[str]
    analyzer: pulumi.Resource | None  # started before Alertmanager when in the stack


class MonitoringStack(pulumi.ComponentResource):
    """Prometheus scrapes every container, Alertmanager routes its alerts to the analyzer,
    Grafana shows both with Loki; node-exporter and (optionally) cAdvisor feed host and
    container metrics."""

    def __init__(
        self,
        name: str,
        context: LocalContext,
        ports: PublishedPorts,
        delivery: AlertDelivery,
        grafana_admin_password: pulumi.Output[str],
        runbook_base_url: str,
        enable_cadvisor: bool,
        scrape_analyzer: bool,
        grafana_depends_on: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aiops:local:MonitoringStack", name, None, opts)
        bind = context.bind_address

        node_image = pinned_image(context, "node-exporter", self)
        self.node_exporter = container(
            context,
            ServiceSpec(
                name="node-exporter",
                image=node_image.image_id,
                # The host's filesystems are read through /host; its processes through pid host.
                command=["--path.rootfs=/host", "--no-collector.systemd"],
                volumes=[host_read_only("/", "/host")],
                pid_mode="host",
                healthcheck=http_check("http://127.0.0.1:9100/metrics"),
            ),
            parent=self,
        )

        self.cadvisor: docker.Container | None = None
        if enable_cadvisor:
            cadvisor_image = pinned_image(context, "cadvisor", self)
            self.cadvisor = container(
                context,
                ServiceSpec(
                    name="cadvisor",
                    image=cadvisor_image.image_id,
                    command=["--docker_only=true", "--housekeeping_interval=15s"],
                    # What cAdvisor reads to see every container of the engine (Linux hosts;
                    # Docker Desktop on macOS lacks /var/lib/docker -- turn the switch off).
                    volumes=[
                        host_read_only("/", "/rootfs"),
                        host_read_only("/var/run", "/var/run"),
                        host_read_only("/sys", "/sys"),
                        host_read_only("/var/lib/docker", "/var/lib/docker"),
                        host_read_only("/dev/disk", "/dev/disk"),
                    ],
                    devices=[docker.ContainerDeviceArgs(host_path="/dev/kmsg")],
                    privileged=True,
                    healthcheck=http_check("http://127.0.0.1:8080/healthz"),
                ),
                parent=self,
            )

        # Alertmanager before Prometheus, the analyzer (when local) before Alertmanager: no
        # alert is fired into a receiver that does not exist yet.
        alertmanager_image = pinned_image(context, "alertmanager", self)
        self.alertmanager_volume = data_volume(context, "alertmanager", self)
        alertmanager_url = public_url(bind, ports.alertmanager)
        self.alertmanager = container(
            context,
            ServiceSpec(
                name="alertmanager",
                image=alertmanager_image.image_id,
                command=[
                    "--config.file=/etc/alertmanager/alertmanager.yml",
                    "--storage.path=/alertmanager",
                    f"--web.external-url={alertmanager_url}",
                    # A single instance: no gossip port.
                    "--cluster.listen-address=",
                ],
                files=[files.alertmanager_config(delivery.webhook_url)],
                extra_uploads=[
                    docker.ContainerUploadArgs(
                        file=files.WEBHOOK_TOKEN_PATH, content=as_secret(delivery.token)
                    )
                ],
                ports=[(9093, ports.alertmanager)],
                volumes=[mounted(self.alertmanager_volume, "/alertmanager")],
                healthcheck=http_check("http://127.0.0.1:9093/-/ready"),
            ),
            parent=self,
            depends_on=[delivery.analyzer] if delivery.analyzer else [],
        )

        dropped = set()
        if not enable_cadvisor:
            dropped.add("cadvisor")
        if not scrape_analyzer:
            dropped.add("analyzer")
        prometheus_image = pinned_image(context, "prometheus", self)
        self.prometheus_volume = data_volume(context, "prometheus", self)
        prometheus_url = public_url(bind, ports.prometheus)
        self.prometheus = container(
            context,
            ServiceSpec(
                name="prometheus",
                image=prometheus_image.image_id,
                command=[
                    "--config.file=/etc/prometheus/prometheus.yml",
                    "--storage.tsdb.path=/prometheus",
                    "--storage.tsdb.retention.time=15d",
                    f"--web.external-url={prometheus_url}",
                ],
                files=[
                    files.prometheus_config(frozenset(dropped)),
                    *files.prometheus_rules(runbook_base_url),
                ],
                ports=[(9090, ports.prometheus)],
                volumes=[mounted(self.prometheus_volume, "/prometheus")],
                healthcheck=http_check("http://127.0.0.1:9090/-/ready"),
            ),
            parent=self,
            depends_on=[self.alertmanager],
        )

        grafana_image = pinned_image(context, "grafana", self)
        self.grafana_volume = data_volume(context, "grafana", self)
        grafana_url = public_url(bind, ports.grafana)
        plain_env = [
            f"GF_SECURITY_ADMIN_USER={GRAFANA_ADMIN_USER}",
            "GF_USERS_ALLOW_SIGN_UP=false",
            "GF_ANALYTICS_REPORTING_ENABLED=false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES=false",
            f"GF_SERVER_ROOT_URL={grafana_url}",
        ]
        self.grafana = container(
            context,
            ServiceSpec(
                name="grafana",
                image=grafana_image.image_id,
                envs=as_secret(grafana_admin_password).apply(
                    lambda password: [*plain_env, f"GF_SECURITY_ADMIN_PASSWORD={password}"]
                ),
                files=files.grafana_files(),
                ports=[(3000, ports.grafana)],
                volumes=[mounted(self.grafana_volume, "/var/lib/grafana")],
                healthcheck=http_check("http://127.0.0.1:3000/api/health", tool="curl"),
            ),
            parent=self,
            # Its datasources (Prometheus, Loki, Alertmanager) exist before it provisions them.
            depends_on=[self.prometheus, self.alertmanager, *grafana_depends_on],
        )

        self.grafana_url = grafana_url
        self.prometheus_url = prometheus_url
        self.alertmanager_url = alertmanager_url
        self.register_outputs(
            {
                "grafanaUrl": grafana_url,
                "prometheusUrl": prometheus_url,
                "alertmanagerUrl": alertmanager_url,
            }
        )
