"""What every container of the local stack shares: network alias, labels, restart policy,
ports on the bind address only, pinned images and uploads of monitoring/ files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from stacks.monitoring_files import ConfigFile

STACK_LABEL = "com.aiops.stack"  # Alloy relabels container logs on it (contract)
SERVICE_LABEL = "com.aiops.service"


@dataclass(frozen=True)
class LocalContext:
    """Per-stack facts every local component needs."""

    stack: str
    network: docker.Network
    bind_address: str
    images: dict[str, str]  # monitoring/images.yml key -> pinned ref

    def docker_name(self, service: str) -> str:
        """Docker-level name (containers, volumes): prefixed so two stacks never collide."""
        return f"aiops-{self.stack}-{service}"

    def labels(self, service: str) -> list[docker.ContainerLabelArgs]:
        return [
            docker.ContainerLabelArgs(label=STACK_LABEL, value=self.stack),
            docker.ContainerLabelArgs(label=SERVICE_LABEL, value=service),
        ]


def public_url(bind_address: str, port: int) -> str:
    """The URL a browser on this machine uses for a port published on `bind_address`."""
    host = "localhost" if bind_address in ("127.0.0.1", "0.0.0.0", "::", "::1") else bind_address
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def http_check(url: str, tool: str = "wget") -> docker.ContainerHealthcheckArgs:
    """A healthcheck fetching `url` inside the container with the image's own HTTP client."""
    command = (
        ["CMD", "wget", "-q", "-O", "/dev/null", url]
        if tool == "wget"
        else ["CMD", "curl", "-fsS", "-o", "/dev/null", url]
    )
    return healthcheck(command)


# How long `pulumi up` waits for a container with a healthcheck to report healthy: a broken
# config then fails the update instead of restart-looping behind a green `up`. Must exceed the
# healthcheck's start period plus its retries.
HEALTHY_WAIT_SECONDS = 180


def healthcheck(tests: list[str]) -> docker.ContainerHealthcheckArgs:
    return docker.ContainerHealthcheckArgs(
        tests=tests, interval="15s", timeout="5s", retries=5, start_period="30s"
    )


def uploads(files: Sequence[ConfigFile]) -> list[docker.ContainerUploadArgs]:
    return [docker.ContainerUploadArgs(file=f.target, content=f.content) for f in files]


def pinned_image(context: LocalContext, key: str, parent: pulumi.Resource) -> docker.RemoteImage:
    """Pull one image of monitoring/images.yml; kept on `down` so a new `up` starts fast."""
    return docker.RemoteImage(
        f"{key}-image",
        name=context.images[key],
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def mounted(volume: docker.Volume, container_path: str) -> docker.ContainerVolumeArgs:
    """A named data volume (see `data_volume`) mounted read-write at `container_path`."""
    return docker.ContainerVolumeArgs(volume_name=volume.name, container_path=container_path)


def host_read_only(host_path: str, container_path: str) -> docker.ContainerVolumeArgs:
    """A path of the host the container may read but never change."""
    return docker.ContainerVolumeArgs(
        host_path=host_path, container_path=container_path, read_only=True
    )


def data_volume(context: LocalContext, service: str, parent: pulumi.Resource) -> docker.Volume:
    return docker.Volume(
        f"{service}-data",
        name=context.docker_name(f"{service}-data"),
        labels=[docker.VolumeLabelArgs(label=STACK_LABEL, value=context.stack)],
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass
class ServiceSpec:
    """How one container differs from the others; the rest is filled in by `container`."""

    name: str
    image: pulumi.Input[str]
    command: list[str] | None = None
    envs: pulumi.Input[Sequence[pulumi.Input[str]]] | None = None
    files: Sequence[ConfigFile] = ()
    extra_uploads: list[docker.ContainerUploadArgs] = field(default_factory=list)
    # (port inside the container, host port); published on the bind address only.
    ports: list[tuple[int, int]] = field(default_factory=list)
    volumes: list[docker.ContainerVolumeArgs] = field(default_factory=list)
    healthcheck: docker.ContainerHealthcheckArgs | None = None
    extra_labels: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    privileged: bool | None = None
    pid_mode: str | None = None
    devices: list[docker.ContainerDeviceArgs] = field(default_factory=list)


def container(
    context: LocalContext,
    spec: ServiceSpec,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> docker.Container:
    labels = context.labels(spec.name) + [
        docker.ContainerLabelArgs(label=key, value=value)
        for key, value in spec.extra_labels.items()
    ]
    return docker.Container(
        spec.name,
        name=context.docker_name(spec.name),
        image=spec.image,
        command=spec.command,
        envs=spec.envs,
        uploads=uploads(spec.files) + spec.extra_uploads,
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(name=context.network.name, aliases=[spec.name])
        ],
        ports=[
            docker.ContainerPortArgs(internal=internal, external=external, ip=context.bind_address)
            for internal, external in spec.ports
        ],
        volumes=spec.volumes,
        healthcheck=spec.healthcheck,
        wait=True if spec.healthcheck else None,
        wait_timeout=HEALTHY_WAIT_SECONDS if spec.healthcheck else None,
        labels=labels,
        restart="unless-stopped",
        privileged=spec.privileged,
        pid_mode=spec.pid_mode,
        devices=spec.devices or None,
        # json-file: readable by `docker logs` and Alloy; bounded on a laptop, Loki keeps history.
        log_driver="json-file",
        log_opts={"max-size": "10m", "max-file": "3"},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
