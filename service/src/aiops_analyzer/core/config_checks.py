"""Checks of settings that a type alone cannot express, and the variables' names.

Every problem becomes one line naming its environment variable, so `serve` stops at once with
a message a user can act on instead of failing later (a non-URL Prometheus address, a regex
that does not compile, a data directory nobody can write).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo

if TYPE_CHECKING:
    from aiops_analyzer.core.config import Settings

PREFIX = "AIOPS_"
# Fields named *_url that are not HTTP endpoints, checked on their own below.
NOT_HTTP_URLS = {"database_url"}


def env_names(name: str, field: FieldInfo) -> list[str]:
    """The environment variables that set a field, in order of precedence."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    if isinstance(alias, str):
        return [alias]
    return [PREFIX + name.upper()]


def variable_for(
    name: str, fields: Mapping[str, FieldInfo], environ: Mapping[str, str] | None = None
) -> str:
    """The variable a user set for `name` (e.g. PORT rather than AIOPS_PORT), else the first."""
    field = fields.get(name)
    if field is None:
        return name if name.startswith(PREFIX) or name.isupper() else PREFIX + name.upper()
    names = env_names(name, field)
    environ = os.environ if environ is None else environ
    return next((n for n in names if n in environ), names[0])


def known_variables(fields: Mapping[str, FieldInfo]) -> set[str]:
    return {variable for name, field in fields.items() for variable in env_names(name, field)}


def unknown_variables(
    fields: Mapping[str, FieldInfo], environ: Mapping[str, str]
) -> list[tuple[str, str | None]]:
    """AIOPS_* variables no setting reads, each with the closest known name (or None)."""
    known = sorted(v for v in known_variables(fields) if v.startswith(PREFIX))
    unknown = sorted(k for k in environ if k.startswith(PREFIX) and k not in known)
    # Compare without the shared prefix, which would make every name look alike.
    bare = {v.removeprefix(PREFIX): v for v in known}

    def closest(variable: str) -> str | None:
        matches = difflib.get_close_matches(variable.removeprefix(PREFIX), bare, n=1, cutoff=0.6)
        return bare[matches[0]] if matches else None

    return [(variable, closest(variable)) for variable in unknown]


def _plain(value: Any) -> str | None:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None or value == "":
        return None
    return str(value)


def url_problem(value: str) -> str | None:
    """Why `value` is not a usable http(s) URL (never quoting it: it may hold a secret)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in {"http", "https"}:
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host name"
    return None


DATABASE_URL_EXAMPLE = "e.g. postgresql://user:pass@host:5432/db or sqlite:///path.db"
SUPPORTED_DATABASES = {"postgresql", "sqlite"}


def database_url_problem(value: str) -> str | None:
    """Why the store cannot use `value`: not a URL, another database, a driver not installed."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from aiops_analyzer.store.db import normalise_url

    try:
        url = normalise_url(value)
    except ArgumentError:
        return f"not a database URL ({DATABASE_URL_EXAMPLE})"
    backend = url.get_backend_name()
    if backend not in SUPPORTED_DATABASES:
        return (
            f"{backend} is not supported: the store is PostgreSQL or SQLite"
            f" ({DATABASE_URL_EXAMPLE})"
        )
    try:
        url.get_dialect().import_dbapi()
    except (ImportError, NoSuchModuleError):
        return (
            f"the driver {url.drivername!r} is not installed"
            " (write postgresql://, served by psycopg 3, or sqlite://)"
        )
    return None


def database_connection_problem(settings: Settings) -> str | None:
    """Whether the configured database answers (run once by `serve` before it starts).

    Without this a wrong host, port or password surfaces as a traceback from the migration.
    The message names the variable and the server, never the password.
    """
    if not settings.database_url:
        return None
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from aiops_analyzer.store.db import create_store_engine, normalise_url

    engine = None
    try:
        engine = create_store_engine(settings.database_url, immediate=False, pool_size=1)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (DBAPIError, OSError) as exc:
        cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        where = normalise_url(settings.database_url).render_as_string(hide_password=True)
        fields = type(settings).model_fields
        return f"{variable_for('database_url', fields)}: cannot connect to {where}: {reason}"
    finally:
        if engine is not None:
            engine.dispose()
    return None


def writable_dir_problem(path: Path) -> str | None:
    """Why the analyzer cannot create files in `path` (it may not exist yet)."""
    if path.exists():
        if not path.is_dir():
            return f"{path} is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{path} is not writable by this user (uid {os.getuid()})"
        return None
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return f"{path} does not exist and cannot be created ({parent} is not writable)"
    return None


def problems(settings: Settings) -> Iterable[str]:
    """Every problem of a typed Settings object, one line each, naming its variable."""
    fields = type(settings).model_fields

    def named(field: str, message: str) -> str:
        return f"{variable_for(field, fields)}: {message}"

    for name in fields:
        value = _plain(getattr(settings, name))
        if value is None:
            continue
        if name.endswith("_url") and name not in NOT_HTTP_URLS:
            problem = url_problem(value)
            if problem:
                yield named(name, problem)
    if settings.database_url:
        problem = database_url_problem(settings.database_url)
        if problem:
            yield named("database_url", problem)
    elif (problem := writable_dir_problem(settings.data_dir)) is not None:
        yield named("data_dir", problem)
    if settings.runbooks_dir is not None and not settings.runbooks_dir.is_dir():
        yield named("runbooks_dir", f"{settings.runbooks_dir} is not a directory")
    for pattern in settings.scrub_extra_patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            yield named("scrub_extra_patterns", f"invalid regular expression {pattern!r}: {exc}")


def prepare_data_dir(settings: Settings) -> str | None:
    """Create the SQLite store's directory and prove a file can be written there.

    Run by `serve` before anything else: permission checks alone cannot tell (root passes them,
    read-only and special filesystems do not), so this writes and removes a probe file.
    Returns the problem, naming AIOPS_DATA_DIR, or None.
    """
    if settings.database_url:
        return None
    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        fields = type(settings).model_fields
        return f"{variable_for('data_dir', fields)}: cannot write to {path.absolute()}: {reason}"
    return None
