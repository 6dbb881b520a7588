"""aiops:localDatabase: SQLite on the analyzer's volume by default; with `postgresql` a
PostgreSQL container on the stack's network only, its own volume, a generated password and a
secret AIOPS_DATABASE_URL the analyzer waits for."""

from __future__ import annotations

import pytest
import yaml

from stacks.components.docker_service import HEALTHY_WAIT_SECONDS
from stacks.config import ConfigError
from tests.infra.harness import StackRun, contains_secret, is_secret, run_stack
from tests.infra.local_expectations import CONTAINER, MONITORING, REMOTE_IMAGE, env_map

VOLUME = "docker:index/volume:Volume"
PASSWORD = "random:index/randomPassword:RandomPassword"


@pytest.fixture(scope="module")
def default_run() -> StackRun:
    return run_stack("local")


@pytest.fixture(scope="module")
def postgresql() -> StackRun:
    return run_stack("local", overrides={"aiops:localDatabase": "postgresql"})


def test_default_is_sqlite_without_a_database_container(default_run: StackRun) -> None:
    assert not any("postgres" in name for _, name in default_run.inventory())
    env = env_map(default_run.named("analyzer"))
    assert "AIOPS_DATABASE_URL" not in env
    assert env["AIOPS_DATA_DIR"] == "/app/data"
    assert "postgres" not in default_run.named("analyzer").depends_on


def test_postgresql_adds_exactly_the_database_resources(
    default_run: StackRun, postgresql: StackRun
) -> None:
    added = set(postgresql.inventory()) - set(default_run.inventory())
    assert added == {
        ("aiops:local:LocalPostgres", "postgres-database"),
        (CONTAINER, "postgres"),
        (REMOTE_IMAGE, "postgres-image"),
        (VOLUME, "postgres-data"),
        (PASSWORD, "postgres-password"),
    }
    assert set(default_run.inventory()) <= set(postgresql.inventory())
    for name in ("postgres", "postgres-image", "postgres-data", "postgres-password"):
        assert postgresql.named(name).parent == "postgres-database", name


def test_postgres_image_is_the_pinned_one(postgresql: StackRun) -> None:
    pinned = yaml.safe_load((MONITORING / "images.yml").read_text())["postgres"]
    assert postgresql.named("postgres-image").plain("name") == pinned
    assert postgresql.named("postgres-image").plain("keepLocally") is True


def test_postgres_keeps_its_data_on_a_named_volume(postgresql: StackRun) -> None:
    volume = postgresql.named("postgres-data")
    assert volume.plain("name") == "aiops-local-postgres-data"
    mounts = postgresql.named("postgres").plain("volumes")
    assert mounts == [
        {"volumeName": "aiops-local-postgres-data", "containerPath": "/var/lib/postgresql/data"}
    ]


def test_postgres_is_on_the_stack_network_only(postgresql: StackRun) -> None:
    database = postgresql.named("postgres")
    assert not database.plain("ports")
    networks = database.plain("networksAdvanced")
    assert networks == [{"name": "aiops-local", "aliases": ["postgres"]}]


def test_postgres_is_waited_for_until_pg_isready(postgresql: StackRun) -> None:
    database = postgresql.named("postgres")
    check = database.plain("healthcheck")
    assert check["tests"][:2] == ["CMD", "pg_isready"]
    assert check["tests"][check["tests"].index("-d") + 1] == "aiops"
    assert database.plain("wait") is True
    assert database.plain("waitTimeout") == HEALTHY_WAIT_SECONDS


def test_password_is_generated_and_secret_in_both_containers(postgresql: StackRun) -> None:
    password = postgresql.named("postgres-password")
    assert password.plain("special") is False  # pasted into a URL unquoted
    value = password.outputs["result"]
    database = postgresql.named("postgres")
    assert is_secret(database.inputs["envs"])
    env = env_map(database)
    assert env["POSTGRES_PASSWORD"] == value
    assert env["POSTGRES_USER"] == "aiops"
    assert env["POSTGRES_DB"] == "aiops"
    analyzer = postgresql.named("analyzer")
    assert is_secret(analyzer.inputs["envs"])
    assert env_map(analyzer)["AIOPS_DATABASE_URL"] == (
        f"postgresql://aiops:{value}@postgres:5432/aiops"
    )
    # Nowhere in plain text: every input carrying it is inside a secret envelope.
    for resource in postgresql.resources:
        for key, raw in resource.inputs.items():
            if value in str(raw):
                assert contains_secret(raw), f"{resource.name}.{key}"
    for name, output in postgresql.outputs.items():
        assert output.secret or value not in str(output.value), name


def test_analyzer_starts_after_the_database(postgresql: StackRun) -> None:
    assert "postgres" in postgresql.named("analyzer").depends_on


@pytest.mark.parametrize(
    ("overrides", "secrets"),
    [
        ({"aiops:localDatabase": "postgres"}, {}),
        ({"aiops:localDatabase": "mysql"}, {}),
        (
            {
                "aiops:localDatabase": "postgresql",
                "aiops:externalAnalyzerUrl": "https://aiops.example.run.app",
            },
            {"aiops:externalWebhookToken": "t0k3n"},
        ),
    ],
)
def test_bad_local_database_is_refused_naming_the_key(
    overrides: dict[str, object], secrets: dict[str, str]
) -> None:
    with pytest.raises(ConfigError) as error:
        run_stack("local", overrides=overrides, secrets=secrets)
    assert "aiops:localDatabase" in str(error.value)
