"""Grafana dashboards as the tests read them: panels, queries and template variables."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.monitoring.files import MONITORING

GRAFANA = MONITORING / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

# Grafana's built-in variables, replaced by values promtool accepts in the same position.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_s": "3600",
}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, including those nested in collapsed rows."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries(dashboard: dict[str, Any], kind: str) -> list[str]:
    """The expressions of every panel target that uses the datasource of `kind`."""
    return [
        target["expr"]
        for panel in panels(dashboard)
        if panel["type"] != "row"
        for target in panel["targets"]
        if (target.get("datasource") or panel["datasource"])["type"] == kind
    ]


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace $var, ${var}, ${var:format} and [[var]] as Grafana would."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        assert name in variables, f"undefined variable ${name} in {expr!r}"
        return variables[name]

    pattern = r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)"
    return re.sub(pattern, value, expr)


def variables_of(dashboard: dict[str, Any]) -> dict[str, str]:
    """Each template variable with a value of its shape: matchers use regex, "All" is .+"""
    values = dict(BUILTIN_VARIABLES)
    for variable in dashboard.get("templating", {}).get("list", []):
        values[variable["name"]] = ".+" if variable["type"] == "query" else "error"
    return values
