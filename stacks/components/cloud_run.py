"""The analyzer as a Cloud Run v2 service, and who may invoke it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from stacks.components.secret_env import SecretEnv
from stacks.gcp_config import GcpConfig

CONTAINER_PORT = 8080
# Cloud Run's front end reserves some paths ending in `z` (/healthz among them) on the public
# URL; the probes go to the container directly, but /health is the path that works everywhere.
HEALTH_PATH = "/health"
INVOKER_ROLE = "roles/run.invoker"
CLOUD_SQL_VOLUME = "cloudsql"
run = gcp.cloudrunv2


@dataclass(frozen=True)
class CloudSqlConnection:
    """A Cloud SQL instance the revision connects to through Cloud Run's built-in connection."""

    connection_name: pulumi.Output[str]
    mount_path: str
    # What must exist before the first revision starts (the client role binding).
    ready: list[pulumi.Resource]


@dataclass(frozen=True)
class AnalyzerService:
    service: gcp.cloudrunv2.Service
    invoker: gcp.cloudrunv2.ServiceIamMember | None


def service_name(prefix: str) -> str:
    return f"{prefix}-analyzer"


def deterministic_url(prefix: str, project: str, region: str) -> pulumi.Output[str]:
    """The service's URL before it exists: `https://<service>-<project number>.<region>.run.app`.

    The analyzer needs its own public URL (AIOPS_PUBLIC_URL, for links to analysis pages), and
    the service's `uri` output cannot feed the service's own environment (a cycle).
    """
    number = gcp.organizations.get_project_output(project_id=project).number
    name = service_name(prefix)
    return number.apply(lambda n: f"https://{name}-{n}.{region}.run.app")


def _container(
    image: pulumi.Input[str],
    plain_env: dict[str, pulumi.Input[str]],
    secret_envs: list[SecretEnv],
    settings: GcpConfig,
    volume_mounts: list[run.ServiceTemplateContainerVolumeMountArgs],
) -> run.ServiceTemplateContainerArgs:
    envs = [run.ServiceTemplateContainerEnvArgs(name=k, value=v) for k, v in plain_env.items()]
    envs += [
        run.ServiceTemplateContainerEnvArgs(
            name=item.env_var,
            value_source=run.ServiceTemplateContainerEnvValueSourceArgs(
                # Pinned to the version this update wrote: changing a secret rolls out a new
                # revision instead of surprising the next cold start.
                secret_key_ref=run.ServiceTemplateContainerEnvValueSourceSecretKeyRefArgs(
                    secret=item.secret.secret_id,
                    version=item.version.version,
                ),
            ),
        )
        for item in secret_envs
    ]
    return run.ServiceTemplateContainerArgs(
        name="analyzer",
        image=image,
        # Cloud Run sets PORT from this; PORT itself is reserved and must not be in envs.
        ports=run.ServiceTemplateContainerPortsArgs(container_port=CONTAINER_PORT),
        envs=envs,
        volume_mounts=volume_mounts or None,
        resources=run.ServiceTemplateContainerResourcesArgs(
            limits={"cpu": settings.cpu, "memory": settings.memory},
            # False = CPU stays allocated after the 202 answer, so the background workers
            # finish the analysis; True would throttle them between requests.
            cpu_idle=not settings.cpu_always_allocated,
            startup_cpu_boost=True,
        ),
        # Up to 60 s to come up (migrations, imports), probing every 2 s.
        startup_probe=run.ServiceTemplateContainerStartupProbeArgs(
            http_get=run.ServiceTemplateContainerStartupProbeHttpGetArgs(
                path=HEALTH_PATH, port=CONTAINER_PORT
            ),
            period_seconds=2,
            timeout_seconds=2,
            failure_threshold=30,
        ),
        liveness_probe=run.ServiceTemplateContainerLivenessProbeArgs(
            http_get=run.ServiceTemplateContainerLivenessProbeHttpGetArgs(
                path=HEALTH_PATH, port=CONTAINER_PORT
            ),
            period_seconds=30,
            timeout_seconds=5,
            failure_threshold=3,
        ),
    )


def analyzer_service(
    prefix: str,
    *,
    region: str,
    image: pulumi.Input[str],
    service_account_email: pulumi.Input[str],
    plain_env: dict[str, pulumi.Input[str]],
    secret_envs: list[SecretEnv],
    settings: GcpConfig,
    labels: dict[str, str],
    api: gcp.projects.Service,
    cloud_sql: CloudSqlConnection | None = None,
) -> AnalyzerService:
    name = service_name(prefix)
    volumes: list[run.ServiceTemplateVolumeArgs] = []
    mounts: list[run.ServiceTemplateContainerVolumeMountArgs] = []
    extra_dependencies: list[pulumi.Resource] = []
    if cloud_sql is not None:
        # Cloud Run's built-in connection: the instance's socket under <mount>/<connection>.
        volumes.append(
            run.ServiceTemplateVolumeArgs(
                name=CLOUD_SQL_VOLUME,
                cloud_sql_instance=run.ServiceTemplateVolumeCloudSqlInstanceArgs(
                    instances=[cloud_sql.connection_name]
                ),
            )
        )
        mounts.append(
            run.ServiceTemplateContainerVolumeMountArgs(
                name=CLOUD_SQL_VOLUME, mount_path=cloud_sql.mount_path
            )
        )
        # Connecting needs the client role from the first revision on.
        extra_dependencies += cloud_sql.ready
    # The first revision reads every secret at start: without these bindings (and the
    # versions) in place it fails with a permission error, so wait for them explicitly.
    secret_dependencies: list[pulumi.Resource] = []
    for item in secret_envs:
        secret_dependencies += [item.version, item.accessor]
    service = run.Service(
        name,
        name=name,
        location=region,
        ingress=settings.ingress,
        deletion_protection=settings.deletion_protection,
        # Where an organisation policy forbids `allUsers`, Cloud Run can skip the invoker check
        # instead (the bearer token still guards the webhook and the API).
        invoker_iam_disabled=settings.invoker_iam_disabled or None,
        labels=labels,
        template=run.ServiceTemplateArgs(
            service_account=service_account_email,
            containers=[_container(image, plain_env, secret_envs, settings, mounts)],
            volumes=volumes or None,
            max_instance_request_concurrency=settings.concurrency,
            timeout=f"{settings.timeout_seconds}s",
            scaling=run.ServiceTemplateScalingArgs(
                min_instance_count=settings.min_instances,
                max_instance_count=settings.max_instances,
            ),
            labels=labels,
        ),
        opts=pulumi.ResourceOptions(depends_on=[api, *secret_dependencies, *extra_dependencies]),
    )
    invoker = None
    if settings.public_invoker and not settings.invoker_iam_disabled:
        # Alertmanager cannot mint Google ID tokens; the app's bearer token guards the webhook.
        invoker = run.ServiceIamMember(
            f"{name}-public-invoker",
            name=service.name,
            location=region,
            role=INVOKER_ROLE,
            member="allUsers",
        )
    return AnalyzerService(service=service, invoker=invoker)
