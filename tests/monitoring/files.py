"""Where the monitoring content lives, and the small parsers its tests share."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MONITORING = REPO_ROOT / "monitoring"
PROMETHEUS_DIR = MONITORING / "prometheus"
PROMETHEUS_RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
PROMETHEUS_RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
LOKI_RULES = sorted((MONITORING / "loki" / "rules" / "fake").glob("*.yml"))
RUNBOOKS_DIR = MONITORING / "runbooks"

# Every runbook_url is this placeholder base plus "<AlertName>.md" (the runbook's file name);
# the local stack uploads the rules with aiops:runbookBaseUrl in its place.
RUNBOOK_BASE_URL = "https://aiops.invalid/runbooks/"

# The analyzer's metric names, fixed in the cross-team contracts.
CONTRACT_METRICS = frozenset(
    {
        "aiops_webhook_requests_total",
        "aiops_alerts_received_total",
        "aiops_alerts_duplicate_total",
        "aiops_alerts_truncated_total",
        "aiops_analyses_total",
        "aiops_analysis_duration_seconds",
        "aiops_llm_requests_total",
        "aiops_llm_fallbacks_total",
        "aiops_llm_budget_exhausted_total",
        "aiops_llm_tokens_total",
        "aiops_llm_cost_usd_total",
        "aiops_queue_depth",
        "aiops_notifications_total",
        "aiops_workers_alive",
    }
)

SEVERITIES = frozenset({"critical", "warning", "info", "none"})


@dataclass(frozen=True)
class AlertRule:
    name: str
    source: Path
    expr: str
    severity: str
    for_: str | None
    labels: dict[str, str]
    annotations: dict[str, str]


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def alert_rules(files: list[Path]) -> list[AlertRule]:
    """Every alerting rule of Prometheus-format rule files (Loki's ruler uses the same format)."""
    found = []
    for path in files:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                labels = {str(k): str(v) for k, v in (rule.get("labels") or {}).items()}
                found.append(
                    AlertRule(
                        name=rule["alert"],
                        source=path,
                        expr=str(rule["expr"]),
                        severity=labels.get("severity", ""),
                        for_=rule.get("for"),
                        labels=labels,
                        annotations=dict(rule.get("annotations") or {}),
                    )
                )
    return found


def all_alert_names() -> set[str]:
    return {rule.name for rule in alert_rules(PROMETHEUS_RULES + LOKI_RULES)}


_METRIC_NAME = re.compile(r"\baiops_[a-z0-9_]+")


def aiops_metric_names(expr: str) -> set[str]:
    """The analyzer metric names an expression uses, histogram suffixes folded to the base."""
    names = set()
    for name in _METRIC_NAME.findall(expr):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name.removesuffix(suffix) in CONTRACT_METRICS:
                name = name.removesuffix(suffix)
        names.add(name)
    return names


def promtool_check_expressions(
    promtool: str, directory: Path, exprs: list[str]
) -> subprocess.CompletedProcess[str]:
    """`promtool check rules` on the expressions written as recording rules of one group."""
    rules = [{"record": f"check:expr:{i}", "expr": expr} for i, expr in enumerate(exprs)]
    path = directory / "expressions.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "check", "rules": rules}]}), encoding="utf-8"
    )
    return subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
