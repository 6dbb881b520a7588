"""The configuration reference, docs/analyzer/configuration.md, generated from `Settings`.

    python -m aiops_analyzer.core.config_reference --write docs/analyzer/configuration.md

rewrites the table between the markers in that file (`make config-docs` does this); a test
fails when the file and `Settings` disagree, so a new setting cannot go undocumented.
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from aiops_analyzer.core.config import Settings
from aiops_analyzer.core.config_checks import NOT_HTTP_URLS, env_names

START = "<!-- settings-table:start (generated from Settings by `make config-docs`) -->"
END = "<!-- settings-table:end -->"


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return f"`{field.default_factory()!r}`".replace("'", '"')  # type: ignore[call-arg]
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value}`"
    return f"`{value}`"


def _kind(name: str, annotation: Any) -> str:
    """A short description of what a value must look like."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if len(args) == 1 and typing.get_origin(annotation) is not list else annotation
    if typing.get_origin(base) is typing.Literal:
        return " \\| ".join(f"`{choice}`" for choice in typing.get_args(base))
    secret = base is SecretStr
    if name.endswith("_url"):
        kind = "database URL" if name in NOT_HTTP_URLS else "http(s) URL"
    elif base is bool:
        kind = "`true` \\| `false`"
    elif base is int:
        kind = "integer"
    elif base is float:
        kind = "number"
    elif base is Path:
        kind = "directory"
    elif typing.get_origin(base) is list:
        kind = "JSON list"
    else:
        kind = "text"
    return kind + (", secret" if secret else "")


def _bounds(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        if isinstance(item, Ge):
            parts.append(f">= {item.ge}")
        elif isinstance(item, Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, Le):
            parts.append(f"<= {item.le}")
        elif isinstance(item, Lt):
            parts.append(f"< {item.lt}")
    return " " + ", ".join(parts) if parts else ""


def table() -> str:
    lines = ["| Variable | Default | Value | Meaning |", "| --- | --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        names = env_names(name, field)
        variable = f"`{names[0]}`" + "".join(f" (or `{other}`)" for other in names[1:])
        value = _kind(name, field.annotation) + _bounds(field)
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| {variable} | {_default(field)} | {value} | {description} |")
    return "\n".join(lines)


def render(document: str) -> str:
    """`document` with the generated table between its markers."""
    if START not in document or END not in document:
        raise ValueError(f"the markers {START!r} and {END!r} are missing")
    before = document.split(START, 1)[0]
    after = document.split(END, 1)[1]
    return f"{before}{START}\n{table()}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", type=Path, help="Rewrite the table in this Markdown file.")
    args = parser.parse_args(argv)
    if args.write is None:
        print(table())
        return 0
    args.write.write_text(render(args.write.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote the settings table of {args.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
