"""The whole alert pipeline as processes on 127.0.0.1, started and stopped as one unit.

nginx -> nginx exporter / node exporter -> Prometheus (the project's rules) -> Alertmanager (the
project's routing) -> the analyzer (``aiops-analyzer serve``) -> Slack / Loki / OpenAI stand-ins.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.harness import configs
from tests.e2e.harness.analyzer_api import metric_sum
from tests.e2e.harness.processes import ManagedProcess, free_ports, wait_until
from tests.e2e.harness.stand_ins import (
    CompletionBuilder,
    LokiStandIn,
    OpenAIStandIn,
    RecordingServer,
    SlackStandIn,
    SwitchboardExporter,
    WebhookSink,
)

STARTUP_TIMEOUT = 30.0
REPO_ROOT = configs.REPO_ROOT
ANALYZER_BIN = REPO_ROOT / ".venv" / "bin" / "aiops-analyzer"

# Log lines the Loki stand-in serves: what an nginx outage looks like in the access/error logs.
LOKI_LINES: list[tuple[dict[str, str], str]] = [
    (
        {"job": "nginx", "container": "nginx", "stream": "stderr"},
        "2026/11/28 01:00:00 [notice] 1#1: signal 15 (SIGTERM) received, exiting",
    ),
    (
        {"job": "nginx", "container": "nginx", "stream": "stderr"},
        "2026/11/28 01:00:00 [notice] 1#1: exit",
    ),
    (
        {"job": "nginx", "container": "nginx", "stream": "stdout"},
        '127.0.0.1 - - [28/Nov/2026:00:59:59 +0000] "GET / HTTP/1.1" 200 3 "-" "curl/8"',
    ),
]


@dataclass(frozen=True)
class Tools:
    """Paths of the Debian daemons (resolved by the caller with ``require_tool``)."""

    nginx: str
    nginx_exporter: str
    node_exporter: str
    prometheus: str
    alertmanager: str


@dataclass(frozen=True)
class Ports:
    nginx_web: int
    nginx_status: int
    nginx_exporter: int
    node_exporter: int
    prometheus: int
    alertmanager: int
    analyzer: int

    @classmethod
    def allocate(cls) -> Ports:
        return cls(*free_ports(len(fields(cls))))


def _addr(port: int) -> str:
    return f"127.0.0.1:{port}"


def _get(url: str, **params: Any) -> httpx.Response:
    return httpx.get(url, params=params or None, timeout=3.0)


class Pipeline:
    """Owns every process and stand-in of one run; ``close()`` stops them all by PID."""

    def __init__(
        self,
        root: Path,
        tools: Tools,
        *,
        fast_alerts: Collection[str] | None = None,
        extra_rule_files: Mapping[str, dict[str, Any]] | None = None,
        extra_runbooks: Mapping[str, str] | None = None,
        openai_builder: CompletionBuilder | None = None,
        timings: configs.Timings = configs.DEFAULT_TIMINGS,
    ) -> None:
        self.root = root
        self.tools = tools
        self.timings = timings
        self.fast_alerts = fast_alerts
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.webhook_token = "e2e-webhook-" + secrets.token_urlsafe(18)
        self.openai_api_key = "sk-e2e-test-" + secrets.token_urlsafe(12)
        self.processes: list[ManagedProcess] = []
        self.stand_ins: list[RecordingServer] = []

        self.slack = self._stand_in(SlackStandIn())
        self.sink = self._stand_in(WebhookSink())
        self.loki = self._stand_in(LokiStandIn(LOKI_LINES))
        self.switchboard = self._stand_in(SwitchboardExporter())
        self.openai = self._stand_in(
            OpenAIStandIn(openai_builder or (lambda _: "{}"), api_key=self.openai_api_key)
        )
        # After the stand-ins have bound theirs, so no daemon is handed one of their ports.
        self.ports = Ports.allocate()

        self._write_runbooks(extra_runbooks or {})
        self._write_configs(extra_rule_files or {})
        self.nginx = self._process("nginx", self._nginx_argv())
        self.nginx_exporter = self._process(
            "nginx-exporter",
            [
                tools.nginx_exporter,
                f"-nginx.scrape-uri=http://{_addr(self.ports.nginx_status)}/stub_status",
                f"-web.listen-address={_addr(self.ports.nginx_exporter)}",
            ],
        )
        self.node_exporter = self._process(
            "node-exporter",
            [
                tools.node_exporter,
                f"--web.listen-address={_addr(self.ports.node_exporter)}",
                "--no-collector.systemd",
            ],
        )
        self.prometheus = self._process(
            "prometheus",
            [
                tools.prometheus,
                f"--config.file={self.root / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.root / 'prometheus-data'}",
                f"--web.listen-address={_addr(self.ports.prometheus)}",
                f"--web.external-url={self.prometheus_url}",
                "--rules.alert.resend-delay=1s",
            ],
        )
        self.alertmanager = self._process(
            "alertmanager",
            [
                tools.alertmanager,
                f"--config.file={self.root / 'alertmanager.yml'}",
                f"--storage.path={self.root / 'alertmanager-data'}",
                f"--web.listen-address={_addr(self.ports.alertmanager)}",
                f"--web.external-url={self.alertmanager_url}",
                "--cluster.listen-address=",
            ],
        )
        self.analyzer = self._process(
            "analyzer",
            [str(ANALYZER_BIN), "serve", "--host", "127.0.0.1"],
            env=self.analyzer_env(),
            cwd=self.root / "analyzer-cwd",
        )

    # ------------------------------------------------------------------ addresses

    @property
    def prometheus_url(self) -> str:
        return f"http://{_addr(self.ports.prometheus)}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{_addr(self.ports.alertmanager)}"

    @property
    def analyzer_url(self) -> str:
        return f"http://{_addr(self.ports.analyzer)}"

    # ------------------------------------------------------------------ setup

    def _stand_in(self, server: Any) -> Any:
        self.stand_ins.append(server.start())
        return server

    def _process(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        process = ManagedProcess(name, argv, log_dir=self.logs, env=env, cwd=cwd)
        self.processes.append(process)
        return process

    def _nginx_argv(self) -> list[str]:
        prefix = self.root / "nginx"
        return [
            self.tools.nginx,
            "-p",
            str(prefix),
            "-c",
            str(prefix / "nginx.conf"),
            "-e",
            str(prefix / "error.log"),
            "-g",
            "daemon off;",
        ]

    def _write_runbooks(self, extra: Mapping[str, str]) -> None:
        # Like the image: the project's runbooks copied to a directory named by AIOPS_RUNBOOKS_DIR.
        self.runbooks_dir = self.root / "runbooks"
        if configs.PROJECT_RUNBOOKS_DIR.is_dir():
            shutil.copytree(configs.PROJECT_RUNBOOKS_DIR, self.runbooks_dir)
        self.runbooks_dir.mkdir(exist_ok=True)
        for alertname, text in extra.items():
            (self.runbooks_dir / f"{alertname}.md").write_text(text)

    def _write_configs(self, extra_rule_files: Mapping[str, dict[str, Any]]) -> None:
        rules_dir = self.root / "rules"
        rule_files = configs.write_project_rules(rules_dir, self.timings, self.fast_alerts)
        for name, document in extra_rule_files.items():
            path = rules_dir / f"e2e-{name}.yml"
            rewritten = configs.rewrite_rule_group_file(document, self.timings)
            path.write_text(yaml.safe_dump(rewritten, sort_keys=False))
            rule_files.append(path)
        self.rule_files = rule_files
        self.prometheus_config = configs.render_prometheus_config(
            addresses={
                "nginx_exporter": _addr(self.ports.nginx_exporter),
                "node_exporter": _addr(self.ports.node_exporter),
                "prometheus": _addr(self.ports.prometheus),
                "alertmanager": _addr(self.ports.alertmanager),
                "analyzer": _addr(self.ports.analyzer),
            },
            rule_files=rule_files,
            alertmanager=_addr(self.ports.alertmanager),
            timings=self.timings,
            extra_jobs={"e2e-switchboard": _addr(self.switchboard.port)},
        )
        (self.root / "prometheus.yml").write_text(yaml.safe_dump(self.prometheus_config))

        self.credentials_file = self.root / "secrets" / "webhook-token"
        self.credentials_file.parent.mkdir()
        self.credentials_file.write_text(self.webhook_token)
        self.credentials_file.chmod(0o600)
        self.alertmanager_config = configs.render_alertmanager_config(
            analyzer_url=self.analyzer_url,
            credentials_file=self.credentials_file,
            sink_url=self.sink.url,
            timings=self.timings,
        )
        (self.root / "alertmanager.yml").write_text(yaml.safe_dump(self.alertmanager_config))

        prefix = self.root / "nginx"
        prefix.mkdir()
        (prefix / "nginx.conf").write_text(
            configs.render_nginx_conf(
                prefix, web_port=self.ports.nginx_web, status_port=self.ports.nginx_status
            )
        )
        (self.root / "analyzer-cwd").mkdir()

    def analyzer_env(self, **overrides: str) -> dict[str, str]:
        """The analyzer's environment: the caller's minus any AIOPS_/OPENAI_ setting, plus ours."""
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIOPS_", "OPENAI_", "PORT"))
        }
        env.update(
            AIOPS_WEBHOOK_TOKEN=self.webhook_token,
            AIOPS_DATA_DIR=str(self.root / "analyzer-data"),
            AIOPS_PORT=str(self.ports.analyzer),
            AIOPS_PROMETHEUS_URL=self.prometheus_url,
            AIOPS_LOKI_URL=self.loki.url,
            AIOPS_SLACK_WEBHOOK_URL=f"{self.slack.url}/services/T000/B000/e2e",
            # Notifications link to the analysis pages this analyzer serves.
            AIOPS_PUBLIC_URL=self.analyzer_url,
            AIOPS_RUNBOOKS_DIR=str(self.runbooks_dir),
            AIOPS_ENGINE="rules",
            AIOPS_LOG_LEVEL="INFO",
            # The rules' `for:` shrank from minutes to 1 s, so the look-back shrinks too: over
            # 30 minutes the range query's step (30 s) would skip a condition only seconds old.
            AIOPS_EVIDENCE_WINDOW_MINUTES="1",
            # Short notification backoff so a retry fits in the run.
            AIOPS_NOTIFY_TIMEOUT_SECONDS="3",
            PYTHONUNBUFFERED="1",
        )
        env.update(overrides)
        return env

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Pipeline:
        """Start everything and wait until an alert can travel the whole way."""
        try:
            self.start_nginx()
            # The nginx exporter gives up at start when nginx does not answer: nginx goes first.
            # The analyzer first: it takes the longest to start and Alertmanager calls it.
            for process in (
                self.analyzer,
                self.nginx_exporter,
                self.node_exporter,
                self.alertmanager,
                self.prometheus,
            ):
                process.start()
            wait_until(
                lambda: _get(f"http://{_addr(self.ports.node_exporter)}/metrics").is_success,
                timeout=STARTUP_TIMEOUT,
                what="node exporter",
            )
            wait_until(self._alertmanager_ready, timeout=STARTUP_TIMEOUT, what="alertmanager")
            self.wait_analyzer_ready()
            # Prometheus drops alerts until it has discovered Alertmanager: wait for that.
            wait_until(
                self._prometheus_sees_alertmanager,
                timeout=STARTUP_TIMEOUT,
                what="Prometheus to discover Alertmanager",
            )
            wait_until(
                lambda: self.query_value('nginx_up{job!=""}') == 1.0,
                timeout=STARTUP_TIMEOUT,
                what="Prometheus to scrape nginx_up == 1",
            )
        except Exception as exc:
            raise RuntimeError(f"pipeline did not start: {exc}\n{self.report()}") from exc
        return self

    def close(self) -> None:
        """Stop every process by its PID (SIGTERM, then SIGKILL) and every stand-in."""
        errors = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{process.name}: {exc!r}")
        for server in self.stand_ins:
            try:
                server.stop()
            except Exception as exc:
                errors.append(f"{server.name}: {exc!r}")
        if errors:
            print("pipeline teardown problems:", *errors, sep="\n  ", file=sys.stderr)

    def report(self) -> str:
        """Every daemon's log tail and every stand-in's traffic, for a failure report."""
        parts = []
        for process in self.processes:
            parts.append(f"----- {process.describe()} log {process.log_path}\n{process.log_tail()}")
        for server in self.stand_ins:
            parts.append(f"----- {server.summary()}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ nginx

    def start_nginx(self) -> None:
        self.nginx.start()
        wait_until(
            lambda: _get(f"http://{_addr(self.ports.nginx_status)}/stub_status").is_success,
            timeout=STARTUP_TIMEOUT,
            what="nginx stub_status",
        )

    def stop_nginx(self) -> float:
        """SIGTERM to the nginx master (it stops its workers); return the wall-clock time."""
        stopped_at = time.time()
        self.nginx.stop()
        return stopped_at

    # ------------------------------------------------------------------ analyzer

    def restart_analyzer(self, **env_overrides: str) -> None:
        self.analyzer.stop()
        self.analyzer.env = self.analyzer_env(**env_overrides)
        self.analyzer.start()
        self.wait_analyzer_ready()

    def wait_analyzer_ready(self) -> None:
        process = self.analyzer

        def ready() -> bool:
            if not process.running():
                raise RuntimeError(f"analyzer exited with {process.exit_code()}")
            return _get(f"{self.analyzer_url}/readyz").is_success

        wait_until(ready, timeout=STARTUP_TIMEOUT, what="analyzer /readyz")

    # ------------------------------------------------------------------ Prometheus / Alertmanager

    def _alertmanager_ready(self) -> bool:
        return _get(f"{self.alertmanager_url}/-/ready").is_success

    def _prometheus_sees_alertmanager(self) -> bool:
        response = _get(f"{self.prometheus_url}/api/v1/alertmanagers")
        return bool(response.json()["data"]["activeAlertmanagers"])

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = _get(f"{self.prometheus_url}/api/v1/query", query=expr)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def query_value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def prometheus_alerts(self, alertname: str) -> list[dict[str, Any]]:
        alerts = _get(f"{self.prometheus_url}/api/v1/alerts").json()["data"]["alerts"]
        return [a for a in alerts if a["labels"].get("alertname") == alertname]

    def alertmanager_alerts(self, alertname: str | None = None) -> list[dict[str, Any]]:
        params = {"filter": f"alertname={alertname}"} if alertname else {}
        response = _get(f"{self.alertmanager_url}/api/v2/alerts", **params)
        response.raise_for_status()
        return list(response.json())

    def alertmanager_metric(self, name: str, **labels: str) -> float:
        """Sum of Alertmanager's own metric samples matching ``labels``."""
        return metric_sum(_get(f"{self.alertmanager_url}/metrics").text, name, **labels)

    @contextmanager
    def switch(self, name: str) -> Iterator[None]:
        """Turn an ``e2e_switch`` on for the duration of the block."""
        self.switchboard.set(name, True)
        try:
            yield
        finally:
            self.switchboard.set(name, False)
