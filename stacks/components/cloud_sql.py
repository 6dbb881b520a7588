"""Cloud SQL for PostgreSQL as the analyzer's shared store on the gcp target.

One instance (the smallest tier, daily backups with point-in-time recovery), one database, one
user with a generated password, and the full `AIOPS_DATABASE_URL` the analyzer reads. Cloud
Run reaches the instance through its built-in Cloud SQL connection: the instance's unix socket
appears under `/cloudsql/<connection name>` in the container, so the URL names no host and no
network is opened to the instance; the runtime account needs `roles/cloudsql.client`.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp
import pulumi_random as random

from stacks.components.secret_output import as_secret

POSTGRES_VERSION = "POSTGRES_16"
# Shared-core, 0.6 GB: the cheapest tier there is (docs/deploy-gcp.md has the monthly cost).
TIER = "db-f1-micro"
DATABASE = "aiops"
USER = "aiops"
CLIENT_ROLE = "roles/cloudsql.client"
# Where Cloud Run mounts the sockets of the instances a revision connects to.
SOCKET_ROOT = "/cloudsql"
BACKUP_START_UTC = "03:00"
BACKUP_RETAINED = 7
TRANSACTION_LOG_DAYS = 7
_Retention = gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs


def database_url(password: pulumi.Input[str], connection_name: pulumi.Input[str]) -> str:
    """`postgresql://user:password@/db?host=/cloudsql/<connection>`: libpq's unix-socket form.

    The password is generated without URL-special characters, so it needs no quoting.
    """
    return f"postgresql://{USER}:{password}@/{DATABASE}?host={SOCKET_ROOT}/{connection_name}"


class CloudSqlStore(pulumi.ComponentResource):
    """The analyzer's PostgreSQL on Cloud SQL; `url` is secret everywhere it flows."""

    instance: gcp.sql.DatabaseInstance
    url: pulumi.Output[str]
    client_binding: gcp.projects.IAMMember

    def __init__(
        self,
        prefix: str,
        *,
        project: str,
        region: str,
        runtime_account_email: pulumi.Output[str],
        deletion_protection: bool,
        labels: dict[str, str],
        api: gcp.projects.Service,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("aiops:gcp:CloudSqlStore", f"{prefix}-store", None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.instance = gcp.sql.DatabaseInstance(
            f"{prefix}-db",
            name=f"{prefix}-db",
            region=region,
            database_version=POSTGRES_VERSION,
            # Pulumi refuses to delete it, and so does Cloud SQL itself (on gcp; off on dev).
            deletion_protection=deletion_protection,
            settings=gcp.sql.DatabaseInstanceSettingsArgs(
                tier=TIER,
                edition="ENTERPRISE",
                availability_type="ZONAL",
                disk_type="PD_SSD",
                disk_size=10,
                disk_autoresize=True,
                deletion_protection_enabled=deletion_protection,
                user_labels=labels,
                backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
                    enabled=True,
                    point_in_time_recovery_enabled=True,
                    start_time=BACKUP_START_UTC,
                    transaction_log_retention_days=TRANSACTION_LOG_DAYS,
                    backup_retention_settings=_Retention(retained_backups=BACKUP_RETAINED),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[api]),
        )
        database = gcp.sql.Database(
            f"{prefix}-db-{DATABASE}",
            name=DATABASE,
            instance=self.instance.name,
            opts=child,
        )
        password = random.RandomPassword(
            f"{prefix}-db-password", length=32, special=False, opts=child
        )
        secret_password = as_secret(password.result)
        user = gcp.sql.User(
            f"{prefix}-db-user",
            name=USER,
            instance=self.instance.name,
            password=secret_password,
            opts=child,
        )
        # The URL exists once the user and database do, so the first revision can connect.
        self.url = as_secret(
            pulumi.Output.all(
                secret_password, self.instance.connection_name, user.id, database.id
            ).apply(lambda parts: database_url(parts[0], parts[1]))
        )
        # Cloud SQL grants connect rights at project level only (no per-instance IAM policy).
        self.client_binding = gcp.projects.IAMMember(
            f"{prefix}-run-cloudsql-client",
            project=project,
            role=CLIENT_ROLE,
            member=runtime_account_email.apply(lambda email: f"serviceAccount:{email}"),
            opts=child,
        )
        self.register_outputs({"connectionName": self.instance.connection_name, "url": self.url})
