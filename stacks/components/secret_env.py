"""Secret Manager secrets that reach a Cloud Run container as environment variables.

Each secret gets one version holding the value (marked secret, so it never lands in plain
state) and one IAM binding granting only the runtime service account read access to that one
secret -- nothing project-wide.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from stacks.components.secret_output import as_secret

ACCESSOR_ROLE = "roles/secretmanager.secretAccessor"


@dataclass(frozen=True)
class SecretEnv:
    """A container variable read from Secret Manager at revision start."""

    env_var: str
    secret: gcp.secretmanager.Secret
    version: gcp.secretmanager.SecretVersion
    accessor: gcp.secretmanager.SecretIamMember


def secret_env(
    prefix: str,
    short_name: str,
    *,
    env_var: str,
    value: pulumi.Input[str],
    reader_email: pulumi.Output[str],
    labels: dict[str, str],
    api: gcp.projects.Service,
) -> SecretEnv:
    """Store `value` as secret `<prefix>-<short_name>` and let `reader_email` read it."""
    name = f"{prefix}-{short_name}"
    secret = gcp.secretmanager.Secret(
        name,
        secret_id=name,
        replication=gcp.secretmanager.SecretReplicationArgs(
            auto=gcp.secretmanager.SecretReplicationAutoArgs(),
        ),
        labels=labels,
        opts=pulumi.ResourceOptions(depends_on=[api]),
    )
    version = gcp.secretmanager.SecretVersion(
        f"{name}-version",
        secret=secret.id,
        # Wrapped again on purpose: whatever the caller passes is stored as a secret.
        secret_data=as_secret(value),
    )
    accessor = gcp.secretmanager.SecretIamMember(
        f"{name}-accessor",
        secret_id=secret.secret_id,
        role=ACCESSOR_ROLE,
        member=reader_email.apply(lambda email: f"serviceAccount:{email}"),
    )
    return SecretEnv(env_var=env_var, secret=secret, version=version, accessor=accessor)
