"""A query that names a column or table the database no longer has, and the lines that may
have changed the schema under it (DDL naming that object, a migration tool's run).

Another team's migration on a shared database, or a release that expects a migration that
has not run, shows in the service's logs only as "column x does not exist": what changed the
schema is logged elsewhere, by the database (`log_statement = 'ddl'`) or the migration tool.
"""

from __future__ import annotations

import re

# PostgreSQL, MySQL and SQLite naming what they cannot find; the group names the object.
SCHEMA_MISMATCH = re.compile(
    r'column "?(?:\w+\.)*(\w+)"? does not exist'
    r"|Unknown column '(?:\w+\.)*(\w+)'"
    r"|no such column: (?:\w+\.)*(\w+)"
    r'|relation "(?:\w+\.)*(\w+)" does not exist'
    r"|Table '(?:\w+\.)*(\w+)' doesn't exist"
    r"|no such table: (?:\w+\.)*(\w+)",
    re.I,
)
# Migration tools saying they changed a schema: Flyway, Liquibase, Alembic, Rails, Django,
# golang-migrate, Prisma.
MIGRATION_RUN = (
    r"Migrating schema|Successfully applied \d+ migrations?|ChangeSet .* ran successfully"
    r"|Running upgrade \w+ -> \w+|== \d+ \w+: migrat(?:ing|ed)|Applying \w+\.\d{4}_\w+"
    r"|migrat(?:ed|ing) (?:up )?to version|Applying migration"
)


def missing_object(line: str) -> str:
    """The column or table a failing query names, or ""."""
    found = SCHEMA_MISMATCH.search(line)
    return next((g for g in found.groups() if g), "") if found else ""


def schema_change_filter(name: str) -> str:
    """A LogQL line filter for DDL that names ``name`` and for migration tools' runs."""
    ddl = rf"(?:alter|drop|rename)\b.{{0,80}}\b{re.escape(name)}\b"
    return ' |~ "' + f"(?i){ddl}|{MIGRATION_RUN}".replace("\\", "\\\\") + '"'
