"""An Artifact Registry Docker repository and the analyzer image built and pushed into it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker_build as docker_build
import pulumi_gcp as gcp

from stacks.components.secret_output import as_secret

# The image is built with the repository root as context so the Dockerfile can copy
# monitoring/runbooks (contract). Pulumi runs the program from the project directory, and
# relative paths keep the recorded inputs identical on every machine (no spurious diffs).
BUILD_CONTEXT = "."
DOCKERFILE = "service/Dockerfile"
IMAGE_NAME = "aiops-analyzer"
# Artifact Registry's token login: this fixed username plus an OAuth access token.
REGISTRY_USERNAME = "oauth2accesstoken"


@dataclass(frozen=True)
class PushedImage:
    repository: gcp.artifactregistry.Repository
    image: docker_build.Image
    tag: pulumi.Output[str]
    # name@sha256:... of the pushed build: deploying it rolls out exactly this build.
    ref: pulumi.Output[str]


def registry_host(region: str) -> str:
    return f"{region}-docker.pkg.dev"


def _days(days: int) -> str:
    return f"{days * 86400}s"


def build_and_push(
    prefix: str,
    *,
    project: str,
    region: str,
    stack: str,
    keep_count: int,
    untagged_days: int,
    labels: dict[str, str],
    api: gcp.projects.Service,
) -> PushedImage:
    repository = gcp.artifactregistry.Repository(
        f"{prefix}-images",
        repository_id=f"{prefix}-images",
        location=region,
        format="DOCKER",
        description=f"Analyzer images of the {stack} stack",
        labels=labels,
        # KEEP wins over DELETE: the newest versions stay even when untagged and old.
        cleanup_policies=[
            gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                id="keep-most-recent",
                action="KEEP",
                most_recent_versions=gcp.artifactregistry.RepositoryCleanupPolicyMostRecentVersionsArgs(
                    keep_count=keep_count,
                ),
            ),
            gcp.artifactregistry.RepositoryCleanupPolicyArgs(
                id="delete-untagged",
                action="DELETE",
                condition=gcp.artifactregistry.RepositoryCleanupPolicyConditionArgs(
                    tag_state="UNTAGGED",
                    older_than=_days(untagged_days),
                ),
            ),
        ],
        cleanup_policy_dry_run=False,
        opts=pulumi.ResourceOptions(depends_on=[api]),
    )

    host = registry_host(region)
    tag = pulumi.Output.concat(
        host, "/", project, "/", repository.repository_id, f"/{IMAGE_NAME}:{stack}"
    )
    # The token is short-lived and only needed for the push; keep it out of plain state.
    access_token = as_secret(gcp.organizations.get_client_config_output().access_token)
    image = docker_build.Image(
        f"{prefix}-analyzer-image",
        context=docker_build.BuildContextArgs(location=BUILD_CONTEXT),
        dockerfile=docker_build.DockerfileArgs(location=DOCKERFILE),
        platforms=[docker_build.Platform.LINUX_AMD64],
        push=True,
        tags=[tag],
        registries=[
            docker_build.RegistryArgs(
                address=host, username=REGISTRY_USERNAME, password=access_token
            )
        ],
        # Reuse layers of the previously pushed image; `inline` stores the cache in the image.
        cache_from=[
            docker_build.CacheFromArgs(registry=docker_build.CacheFromRegistryArgs(ref=tag))
        ],
        cache_to=[docker_build.CacheToArgs(inline=docker_build.CacheToInlineArgs())],
        opts=pulumi.ResourceOptions(depends_on=[repository]),
    )
    return PushedImage(repository=repository, image=image, tag=tag, ref=image.ref)
