"""The optional PostgreSQL container of the local stack (aiops:localDatabase postgresql).

Reachable only as postgres:5432 on the stack's network (no published port), its data on a
named volume, a generated password that is secret everywhere it flows, and the
`AIOPS_DATABASE_URL` the analyzer reads.
"""

from __future__ import annotations

import pulumi
import pulumi_random as random

from stacks.components.docker_service import (
    LocalContext,
    ServiceSpec,
    container,
    data_volume,
    healthcheck,
    mounted,
    pinned_image,
)
from stacks.components.secret_output import as_secret

SERVICE = "postgres"
PORT = 5432
USER = "aiops"
DATABASE = "aiops"
# The official image's data directory up to PostgreSQL 17.
DATA_DIR = "/var/lib/postgresql/data"


def database_url(password: str) -> str:
    """The analyzer's URL; the password is generated without URL-special characters."""
    return f"postgresql://{USER}:{password}@{SERVICE}:{PORT}/{DATABASE}"


class LocalPostgres(pulumi.ComponentResource):
    """PostgreSQL for the analyzer; `url` is secret, `container` is what the analyzer waits on."""

    def __init__(
        self, name: str, context: LocalContext, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aiops:local:LocalPostgres", name, None, opts)
        password = random.RandomPassword(
            "postgres-password", length=32, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        # Marked secret here too: the provider's own secret marking is not applied under mocks.
        secret_password = as_secret(password.result)
        image = pinned_image(context, SERVICE, self)
        self.volume = data_volume(context, SERVICE, self)
        self.container = container(
            context,
            ServiceSpec(
                name=SERVICE,
                image=image.image_id,
                # Secret as a whole: it carries the password.
                envs=pulumi.Output.secret(
                    secret_password.apply(
                        lambda value: [
                            f"POSTGRES_USER={USER}",
                            f"POSTGRES_DB={DATABASE}",
                            f"POSTGRES_PASSWORD={value}",
                        ]
                    )
                ),
                volumes=[mounted(self.volume, DATA_DIR)],
                # Ready means accepting connections to the analyzer's database, not just started.
                healthcheck=healthcheck(
                    ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", USER, "-d", DATABASE]
                ),
            ),
            parent=self,
        )
        self.url: pulumi.Output[str] = as_secret(secret_password.apply(database_url))
        self.register_outputs({"container": self.container.name, "url": self.url})
