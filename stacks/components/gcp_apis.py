"""Enable the Google APIs the gcp target uses, one `projects.Service` per API."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

# Enabled first, everything else waits for them: Service Usage enables the other APIs, Cloud
# Resource Manager reads the project, IAM Credentials and STS serve the Workload Identity
# Federation a CI deploy authenticates with. (Service Usage and Cloud Resource Manager must be
# on before the very first `pulumi up` of a fresh project; docs/deploy-gcp.md has the command.)
BASE_APIS = {
    "serviceusage": "serviceusage.googleapis.com",
    "cloudresourcemanager": "cloudresourcemanager.googleapis.com",
    "iamcredentials": "iamcredentials.googleapis.com",
    "sts": "sts.googleapis.com",
}
# Short key -> API. Every other gcp resource depends on the Service of its API, so a fresh
# project works on the first `pulumi up` instead of failing with "API not enabled".
APIS = {
    "run": "run.googleapis.com",
    "artifactregistry": "artifactregistry.googleapis.com",
    "secretmanager": "secretmanager.googleapis.com",
    "iam": "iam.googleapis.com",
}
# Only with `aiops:database cloudsql`: Cloud SQL Admin creates the instance and serves Cloud
# Run's built-in connection to it.
CLOUD_SQL_APIS = {"sqladmin": "sqladmin.googleapis.com"}


def _service(prefix: str, key: str, api: str, after: list[pulumi.Resource]) -> gcp.projects.Service:
    return gcp.projects.Service(
        f"{prefix}-api-{key}",
        service=api,
        disable_on_destroy=False,
        opts=pulumi.ResourceOptions(depends_on=after),
    )


def enable_apis(prefix: str, *, cloud_sql: bool) -> dict[str, gcp.projects.Service]:
    """One Service per API, the base ones first; never disabled on destroy, because other
    stacks (dev and prod in one project) and other workloads may rely on the same API."""
    base = {key: _service(prefix, key, api, []) for key, api in BASE_APIS.items()}
    wanted = {**APIS, **(CLOUD_SQL_APIS if cloud_sql else {})}
    services = {key: _service(prefix, key, api, list(base.values())) for key, api in wanted.items()}
    return {**base, **services}
