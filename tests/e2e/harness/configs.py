"""The project's monitoring configuration, rewritten only where a loopback run must differ.

Prometheus rules keep their expressions, labels and annotations; only ``for:`` and group
intervals shrink. Alertmanager keeps its routing tree, matchers, inhibitions and receivers; only
webhook URLs, the credentials file path and the timings change. nginx keeps its configuration;
only listen addresses and file paths move into the temporary directory.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
MONITORING = REPO_ROOT / "monitoring"
PROJECT_RULES_DIR = MONITORING / "prometheus" / "rules"
PROJECT_PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
PROJECT_ALERTMANAGER_CONFIG = MONITORING / "alertmanager" / "alertmanager.yml"
PROJECT_NGINX_CONFIG = MONITORING / "nginx" / "nginx.conf"
PROJECT_RUNBOOKS_DIR = MONITORING / "runbooks"

# The analyzer's receiver name and webhook path are contracts of the monitoring content.
ANALYZER_RECEIVER = "analyzer"
WEBHOOK_PATH = "/webhook/alertmanager"


@dataclass(frozen=True)
class Timings:
    """The loopback run's intervals: short, so an alert's whole life fits in a few seconds."""

    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    rule_for: str = "1s"
    group_wait: str = "1s"
    group_interval: str = "1s"
    # Short on purpose: Alertmanager resends firing alerts, so the analyzer sees duplicates.
    repeat_interval: str = "3s"


DEFAULT_TIMINGS = Timings()


# ----------------------------------------------------------------------------- Prometheus


def rewrite_rule_group_file(
    document: dict[str, Any], timings: Timings, fast_alerts: Collection[str] | None = None
) -> dict[str, Any]:
    """One rule file with group ``interval`` set to the short one, and the ``for:`` of the
    alerts named in ``fast_alerts`` (all alerts when None) shortened to ``timings.rule_for``.

    The other alerts keep their ``for:`` (minutes to hours), so they cannot fire during a run
    that lasts seconds: shortening all of them would turn, say, a 15-minute CPU alert into
    noise that flaps with the load of the machine running the test.
    """
    rewritten = copy.deepcopy(document)
    for group in rewritten.get("groups") or []:
        if "interval" in group:
            group["interval"] = timings.evaluation_interval
        for rule in group.get("rules") or []:
            if "alert" not in rule or (
                fast_alerts is not None and rule["alert"] not in fast_alerts
            ):
                continue
            if rule.get("for") not in (None, "0", "0s", "0m"):
                rule["for"] = timings.rule_for
            if rule.get("keep_firing_for"):
                rule["keep_firing_for"] = "0s"
    return rewritten


def write_project_rules(
    dest: Path,
    timings: Timings,
    fast_alerts: Collection[str] | None = None,
    rules_dir: Path = PROJECT_RULES_DIR,
) -> list[Path]:
    """Copy the project's rule files into ``dest``, rewritten as above; return their paths."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(rules_dir.glob("*.yml")) + sorted(rules_dir.glob("*.yaml")):
        document = yaml.safe_load(source.read_text()) or {}
        target = dest / f"project-{source.name}"
        rewritten = rewrite_rule_group_file(document, timings, fast_alerts)
        target.write_text(yaml.safe_dump(rewritten, sort_keys=False))
        written.append(target)
    return written


# Contract host:port of each local-stack service -> the role this run gives it.
CONTRACT_TARGETS = {
    "nginx-exporter:9113": "nginx_exporter",
    "node-exporter:9100": "node_exporter",
    "prometheus:9090": "prometheus",
    "alertmanager:9093": "alertmanager",
    "analyzer:8080": "analyzer",
}
DEFAULT_JOB_NAMES = {
    "nginx_exporter": "nginx",
    "node_exporter": "node",
    "prometheus": "prometheus",
    "alertmanager": "alertmanager",
    "analyzer": "analyzer",
}


def render_prometheus_config(
    *,
    addresses: dict[str, str],
    rule_files: list[Path],
    alertmanager: str,
    timings: Timings,
    extra_jobs: dict[str, str] | None = None,
    project_config: Path = PROJECT_PROMETHEUS_CONFIG,
) -> dict[str, Any]:
    """A prometheus.yml scraping this run's processes under the project's job names.

    ``addresses`` maps a role (see CONTRACT_TARGETS) to its 127.0.0.1 address. Jobs of the
    project's config whose targets do not run here (Grafana, Loki, cAdvisor...) are left out;
    each kept job keeps its name, metrics path, labels and relabelling.
    """
    jobs: list[dict[str, Any]] = []
    global_section: dict[str, Any] = {}
    seen_roles: set[str] = set()
    if project_config.exists():
        project = yaml.safe_load(project_config.read_text()) or {}
        global_section = dict(project.get("global") or {})
        for job in project.get("scrape_configs") or []:
            kept_targets: list[str] = []
            labels: dict[str, str] = {}
            for static in job.get("static_configs") or []:
                labels.update(static.get("labels") or {})
                for target in static.get("targets") or []:
                    role = CONTRACT_TARGETS.get(target)
                    if role in addresses:
                        kept_targets.append(addresses[role])
                        seen_roles.add(role)
            if not kept_targets:
                continue
            job = {
                k: v
                for k, v in job.items()
                if k not in ("static_configs", "scrape_interval", "scrape_timeout")
                and not k.endswith("_sd_configs")
            }
            static_config: dict[str, Any] = {"targets": kept_targets}
            if labels:
                static_config["labels"] = labels
            job["static_configs"] = [static_config]
            jobs.append(job)
    # Roles the project's config does not scrape (or no config yet): default job names.
    for role, address in addresses.items():
        if role not in seen_roles:
            jobs.append(
                {"job_name": DEFAULT_JOB_NAMES[role], "static_configs": [{"targets": [address]}]}
            )
    for job_name, address in (extra_jobs or {}).items():
        jobs.append({"job_name": job_name, "static_configs": [{"targets": [address]}]})
    global_section.update(
        scrape_interval=timings.scrape_interval,
        scrape_timeout=timings.scrape_interval,
        evaluation_interval=timings.evaluation_interval,
    )
    return {
        "global": global_section,
        "rule_files": [str(p) for p in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": jobs,
    }


# ----------------------------------------------------------------------------- Alertmanager

_TIMING_KEYS = ("group_wait", "group_interval", "repeat_interval")
# Integrations that would call the internet; a loopback run sends their traffic to the sink.
_OUTBOUND_CONFIGS = (
    "slack_configs",
    "email_configs",
    "pagerduty_configs",
    "opsgenie_configs",
    "victorops_configs",
    "pushover_configs",
    "wechat_configs",
    "telegram_configs",
    "sns_configs",
    "discord_configs",
    "webex_configs",
    "msteams_configs",
)


def _rewrite_route(route: dict[str, Any], timings: Timings) -> None:
    for key in _TIMING_KEYS:
        if key in route or route.get("_root"):
            route[key] = getattr(timings, key)
    route.pop("_root", None)
    for child in route.get("routes") or []:
        _rewrite_route(child, timings)


def _is_analyzer_webhook(receiver_name: str, config: dict[str, Any]) -> bool:
    url = str(config.get("url", ""))
    return receiver_name == ANALYZER_RECEIVER or WEBHOOK_PATH in url


def render_alertmanager_config(
    *,
    analyzer_url: str,
    credentials_file: Path,
    sink_url: str,
    timings: Timings,
    project_config: Path = PROJECT_ALERTMANAGER_CONFIG,
) -> dict[str, Any]:
    """The project's alertmanager.yml pointed at this run's analyzer and sink.

    The analyzer's webhook gets ``analyzer_url`` + the webhook path and the credentials file;
    every other receiver's traffic goes to ``sink_url`` (a recorder), so nothing leaves 127.0.0.1.
    """
    config = copy.deepcopy(yaml.safe_load(project_config.read_text()) or {})
    route = config.setdefault("route", {})
    route["_root"] = True  # the root route always gets explicit timings
    _rewrite_route(route, timings)
    for receiver in config.get("receivers") or []:
        name = receiver.get("name", "")
        for webhook in receiver.get("webhook_configs") or []:
            webhook.pop("url_file", None)
            if _is_analyzer_webhook(name, webhook):
                webhook["url"] = analyzer_url.rstrip("/") + WEBHOOK_PATH
                auth = webhook.setdefault("http_config", {}).setdefault("authorization", {})
                auth.pop("credentials", None)
                auth["credentials_file"] = str(credentials_file)
            else:
                webhook["url"] = f"{sink_url.rstrip('/')}/{name}"
                webhook.pop("http_config", None)
        had_outbound = False
        for key in _OUTBOUND_CONFIGS:
            if receiver.pop(key, None):
                had_outbound = True
        if had_outbound and not receiver.get("webhook_configs"):
            receiver["webhook_configs"] = [{"url": f"{sink_url.rstrip('/')}/{name}"}]
    return config


# ----------------------------------------------------------------------------- nginx


def _temp_paths(prefix: Path) -> str:
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    return "".join(f"    {k}_temp_path {prefix / ('tmp-' + k)};\n" for k in kinds)


def render_nginx_conf(
    prefix: Path,
    *,
    web_port: int,
    status_port: int,
    project_config: Path = PROJECT_NGINX_CONFIG,
) -> str:
    """nginx.conf for 127.0.0.1: the project's file with ports and paths moved, or a minimal one.

    In the project's file a ``listen`` on 8081 is the stub_status server (contract) and every
    other ``listen`` is the web server; log, pid and temp paths move under ``prefix``.
    """
    if not project_config.exists():
        return (
            "worker_processes 1;\n"
            f"pid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} warn;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            f"    access_log {prefix / 'access.log'};\n"
            f"{_temp_paths(prefix)}"
            f"    server {{ listen 127.0.0.1:{web_port}; location / {{ return 200 'ok\\n'; }} }}\n"
            f"    server {{ listen 127.0.0.1:{status_port};"
            " location = /stub_status { stub_status; } }\n"
            "}\n"
        )
    text = project_config.read_text()

    def listen(match: re.Match[str]) -> str:
        port = status_port if re.search(r"\b8081\b", match.group(1)) else web_port
        return f"listen 127.0.0.1:{port};"

    text = re.sub(r"listen\s+([^;]*);", listen, text)
    text = re.sub(r"(?m)^\s*pid\s+[^;]*;\s*$", "", text)
    text = re.sub(r"(?m)^\s*user\s+[^;]*;\s*$", "", text)
    text = re.sub(r"(?m)^\s*\w+_temp_path\s+[^;]*;\s*$", "", text)
    text = re.sub(
        r"\b(access_log|error_log)\s+(?!off\b)[^\s;]+",
        lambda m: f"{m.group(1)} {prefix / (m.group(1) + '.log')}",
        text,
    )
    text = re.sub(r"\bhttp\s*\{", lambda m: "http {\n" + _temp_paths(prefix), text, count=1)
    return f"pid {prefix / 'nginx.pid'};\n" + text
