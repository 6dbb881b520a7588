"""Entry point of the policy pack: the CLI runs `python policy/`, which serves these policies.

Constructing PolicyPack starts the pack's gRPC server, so nothing else lives here; the policies
are plain functions in policies.py, tested without the CLI.
"""

from policies import (
    dedicated_service_account,
    image_pinned,
    no_plain_secret_env,
    ports_not_public,
    registry_cleanup,
    shared_store_to_scale,
)
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="aiops-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        image_pinned,
        no_plain_secret_env,
        dedicated_service_account,
        ports_not_public,
        registry_cleanup,
        shared_store_to_scale,
    ],
)
