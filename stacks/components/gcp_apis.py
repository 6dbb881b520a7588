"""Enable the Google APIs the gcp target uses, one `projects.Service` per API."""

from __future__ import annotations

import pulumi_gcp as gcp

# Short key -> API. Every other gcp resource depends on the Service of its API, so a fresh
# project works on the first `pulumi up` instead of failing with "API not enabled".
APIS = {
    "run": "run.googleapis.com",
    "artifactregistry": "artifactregistry.googleapis.com",
    "secretmanager": "secretmanager.googleapis.com",
    "iam": "iam.googleapis.com",
}


def enable_apis(prefix: str) -> dict[str, gcp.projects.Service]:
    """One Service per API; never disabled on destroy, because other stacks (dev and prod in
    one project) and other workloads may rely on the same API."""
    return {
        key: gcp.projects.Service(
            f"{prefix}-api-{key}",
            service=api,
            disable_on_destroy=False,
        )
        for key, api in APIS.items()
    }
