"""The workload the platform watches: nginx and the exporter reading its stub_status."""

from __future__ import annotations

import pulumi

from stacks import monitoring_files as files
from stacks.components.docker_service import (
    LocalContext,
    ServiceSpec,
    container,
    http_check,
    pinned_image,
    public_url,
)
from stacks.local_config import PublishedPorts


class SampleWorkload(pulumi.ComponentResource):
    """nginx serving a page on 80 (published) and stub_status on 8081 (network only), and
    nginx-prometheus-exporter turning that page into metrics. Stopping the nginx container
    is the documented way to trigger a test alert (NginxDown)."""

    def __init__(
        self,
        name: str,
        context: LocalContext,
        ports: PublishedPorts,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aiops:local:SampleWorkload", name, None, opts)

        nginx_image = pinned_image(context, "nginx", self)
        self.nginx = container(
            context,
            ServiceSpec(
                name="nginx",
                image=nginx_image.image_id,
                files=files.nginx_files(),
                ports=[(80, ports.nginx)],
                healthcheck=http_check("http://127.0.0.1:80/"),
            ),
            parent=self,
        )

        exporter_image = pinned_image(context, "nginx-exporter", self)
        self.exporter = container(
            context,
            ServiceSpec(
                name="nginx-exporter",
                image=exporter_image.image_id,
                command=["--nginx.scrape-uri=http://nginx:8081/stub_status"],
                # No healthcheck: the image is built FROM scratch (the binary only, no shell or
                # HTTP client). Prometheus scrapes it; nginx_up == 0 reports nginx itself.
            ),
            parent=self,
            depends_on=[self.nginx],
        )
        self.nginx_url = public_url(context.bind_address, ports.nginx)
        self.register_outputs({"nginxUrl": self.nginx_url})
