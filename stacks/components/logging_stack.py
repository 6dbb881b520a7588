"""Logs: Loki stores them, Alloy ships every container's output and the host's journal to it."""

from __future__ import annotations

import pulumi

from stacks import monitoring_files as files
from stacks.components.docker_service import (
    LocalContext,
    ServiceSpec,
    container,
    data_volume,
    healthcheck,
    host_read_only,
    mounted,
    pinned_image,
    public_url,
)
from stacks.local_config import PublishedPorts

ALLOY_STORAGE = "/var/lib/alloy/data"
# What loki.source.journal opens: the persistent and the volatile journal, and the machine id
# that names the host's own journal directory (the journal is opened "local only").
HOST_JOURNAL_PATHS = ("/var/log/journal", "/run/log/journal", "/etc/machine-id")
# Alloy's image has bash but neither curl nor wget: ask its readiness endpoint over
# bash's /dev/tcp and accept only an HTTP 200 status line.
ALLOY_READY_CHECK = (
    "exec 3<>/dev/tcp/127.0.0.1/12345 && "
    "printf 'GET /-/ready HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && "
    "head -n 1 <&3 | grep -q ' 200 '"
)


class LoggingStack(pulumi.ComponentResource):
    """Loki (single binary, filesystem storage, ruler sending to Alertmanager, its rules'
    runbook links based at `runbook_base_url`) and Alloy
    reading the Docker engine's container logs and, with `ship_host_journal`, the host's
    systemd journal (off where the Docker host has none, e.g. Docker Desktop on macOS)."""

    def __init__(
        self,
        name: str,
        context: LocalContext,
        ports: PublishedPorts,
        runbook_base_url: str,
        ship_host_journal: bool = True,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aiops:local:LoggingStack", name, None, opts)

        loki_image = pinned_image(context, "loki", self)
        self.loki_volume = data_volume(context, "loki", self)
        self.loki = container(
            context,
            ServiceSpec(
                name="loki",
                image=loki_image.image_id,
                command=["-config.file=/etc/loki/config.yml"],
                files=files.loki_files(runbook_base_url),
                ports=[(3100, ports.loki)],
                volumes=[mounted(self.loki_volume, "/loki")],
                # The image is distroless (no shell, wget or curl); since 3.7 the binary checks
                # its own /ready endpoint with -health.
                healthcheck=healthcheck(["CMD", "/usr/bin/loki", "-health"]),
            ),
            parent=self,
        )

        alloy_image = pinned_image(context, "alloy", self)
        # Alloy's positions (how far each container's log and the journal were shipped)
        # survive a replacement of the container, so logs are neither lost nor sent twice.
        self.alloy_volume = data_volume(context, "alloy", self)
        self.alloy = container(
            context,
            ServiceSpec(
                name="alloy",
                image=alloy_image.image_id,
                command=[
                    "run",
                    "--server.http.listen-addr=0.0.0.0:12345",
                    f"--storage.path={ALLOY_STORAGE}",
                    "/etc/alloy/config.alloy",
                ],
                files=files.alloy_files(),
                ports=[(12345, ports.alloy)],
                # discovery.docker and loki.source.docker read the engine's API;
                # loki.source.journal reads the journal at the same paths as on the host.
                volumes=[
                    host_read_only("/var/run/docker.sock", "/var/run/docker.sock"),
                    mounted(self.alloy_volume, ALLOY_STORAGE),
                    *(
                        host_read_only(path, path)
                        for path in (HOST_JOURNAL_PATHS if ship_host_journal else ())
                    ),
                ],
                healthcheck=healthcheck(["CMD", "bash", "-c", ALLOY_READY_CHECK]),
            ),
            parent=self,
            # Loki before Alloy: logs shipped at start are not dropped into a missing endpoint.
            depends_on=[self.loki],
        )
        self.loki_url = public_url(context.bind_address, ports.loki)
        self.register_outputs({"lokiUrl": self.loki_url})
