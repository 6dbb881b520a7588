"""Settings: errors name the variable; .env.example and the docs list every setting."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from aiops_analyzer.cli import load_settings, warn_unknown_variables
from aiops_analyzer.core.config import Settings
from aiops_analyzer.core.config_reference import render, table

from tests.service.apptools import REPO

DOC = REPO / "docs" / "analyzer" / "configuration.md"


def env_name(name: str) -> str:
    return "AIOPS_" + name.upper()


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_configuration_reference_is_generated_from_settings() -> None:
    text = DOC.read_text()
    assert render(text) == text, (
        f"{DOC} is out of date: run `make config-docs` (or\n"
        f"python -m aiops_analyzer.core.config_reference --write {DOC.relative_to(REPO)})"
    )


def test_configuration_reference_names_every_variable_and_its_bounds() -> None:
    text = table()
    for name in Settings.model_fields:
        assert f"| `{env_name(name)}`" in text
    assert "| `AIOPS_PORT` (or `PORT`) | `8080` | integer >= 1, <= 65535 |" in text
    assert "`AIOPS_OPENAI_API_KEY` (or `OPENAI_API_KEY`) | unset | text, secret |" in text


def test_env_example_lists_every_setting_with_a_comment() -> None:
    lines = (REPO / ".env.example").read_text().splitlines()
    for name in Settings.model_fields:
        pattern = re.compile(rf"^(# )?{env_name(name)}=")
        index = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
        assert index is not None, f"{env_name(name)} missing from .env.example"
        previous = [line for line in lines[:index] if line.strip()][-1]
        assert previous.startswith("#") and "=" not in previous.split(" ", 2)[1], (
            f"{env_name(name)} has no comment line above it in .env.example"
        )


def test_env_example_holds_no_secret_value() -> None:
    for line in (REPO / ".env.example").read_text().splitlines():
        if re.match(r"^AIOPS_\w*(TOKEN|KEY|URL)=", line):
            assert line.endswith("="), f"a value is filled in: {line}"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AIOPS_PORT", "eighty"),
        ("AIOPS_WORKERS", "0"),
        ("AIOPS_ENGINE", "magic"),
        ("AIOPS_MAX_BODY_BYTES", "10"),
        ("AIOPS_LLM_TIMEOUT_SECONDS", "-1"),
    ],
)
def test_invalid_values_fail_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv("AIOPS_WEBHOOK_TOKEN", "a-token-for-this-test")
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(_env_file=None)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert variable in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_token_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AIOPS_WEBHOOK_TOKEN", raising=False)
    monkeypatch.delenv("AIOPS_AUTH_DISABLED", raising=False)
    with pytest.raises(SystemExit):
        load_settings(_env_file=None)
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "AIOPS_WEBHOOK_TOKEN is required" in line and "AIOPS_AUTH_DISABLED" in line


def test_cloud_run_port_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOPS_PORT", raising=False)
    monkeypatch.setenv("PORT", "9999")
    settings = load_settings(_env_file=None, auth_disabled=True)
    assert settings.port == 9999


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, auth_disabled=True, data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve()}/analyzer.db"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AIOPS_PORT", "99999", "AIOPS_PORT: Input should be less than or equal to 65535"),
        ("PORT", "0", "PORT: Input should be greater than or equal to 1"),
        ("AIOPS_PROMETHEUS_URL", "prometheus:9090", "AIOPS_PROMETHEUS_URL: must start with http"),
        ("AIOPS_LOKI_URL", "http://", "AIOPS_LOKI_URL: has no host name"),
        ("AIOPS_LLM_BASE_URL", "http://host:port/v1", "AIOPS_LLM_BASE_URL: not a valid URL"),
        ("AIOPS_GRAFANA_URL", "ftp://grafana", "AIOPS_GRAFANA_URL: must start with http"),
        ("AIOPS_SLACK_WEBHOOK_URL", "hooks.slack.com/services/T0/B0/x", "AIOPS_SLACK_WEBHOOK_URL"),
        ("AIOPS_DISCORD_WEBHOOK_URL", "discord", "AIOPS_DISCORD_WEBHOOK_URL: must start"),
        ("AIOPS_NOTIFY_WEBHOOK_URL", "//x", "AIOPS_NOTIFY_WEBHOOK_URL: must start"),
        ("AIOPS_DATABASE_URL", "not a url", "AIOPS_DATABASE_URL: not a database URL"),
        (
            "AIOPS_DATABASE_URL",
            "mysql://u:p@db/aiops",
            "AIOPS_DATABASE_URL: mysql is not supported",
        ),
        (
            "AIOPS_DATABASE_URL",
            "postgresql+psycopg2://u:p@db/aiops",
            "AIOPS_DATABASE_URL: the driver 'postgresql+psycopg2' is not installed",
        ),
        ("AIOPS_SCRUB_EXTRA_PATTERNS", '["(unclosed"]', "AIOPS_SCRUB_EXTRA_PATTERNS: invalid"),
        ("AIOPS_SCRUB_EXTRA_PATTERNS", "[not json", "AIOPS_SCRUB_EXTRA_PATTERNS: not valid JSON"),
        (
            "AIOPS_RUNBOOKS_DIR",
            "/nonexistent/runbooks",
            "AIOPS_RUNBOOKS_DIR: /nonexistent/runbooks",
        ),
        ("AIOPS_DATA_DIR", "/etc/hostname/data", "AIOPS_DATA_DIR: /etc/hostname/data does not"),
        ("AIOPS_AUTH_DISABLED", "maybe", "AIOPS_AUTH_DISABLED: Input should be a valid boolean"),
        ("AIOPS_LOG_LEVEL", "loud", "AIOPS_LOG_LEVEL"),
    ],
)
def test_every_kind_of_bad_value_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv("AIOPS_WEBHOOK_TOKEN", "a-token-for-this-test")
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(_env_file=None)
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("aiops-analyzer: configuration error: ")
    assert expected in line
    assert "AIOPS_AIOPS" not in line
    if "WEBHOOK_URL" in variable:
        assert value not in line  # a webhook URL's path is its secret: never echoed


def test_good_urls_directories_and_patterns_pass(tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        auth_disabled=True,
        prometheus_url="http://prometheus:9090",
        loki_url="https://logs.example.com/loki",
        slack_webhook_url="https://hooks.slack.com/services/T0/B0/x",
        database_url="postgresql://u:p@db:5432/aiops",
        runbooks_dir=tmp_path,
        scrub_extra_patterns=["ACME-[0-9]{6}"],
        data_dir=tmp_path / "not" / "yet" / "there",
    )
    assert settings.prometheus_url == "http://prometheus:9090"
    assert not (tmp_path / "not").exists()  # loading settings creates nothing


def test_serve_stops_naming_the_data_dir_it_cannot_write(tmp_path: Path) -> None:
    # /proc refuses new directories even for root, where permission bits would not.
    result = subprocess.run(
        [sys.executable, "-m", "aiops_analyzer.cli", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=dict(os.environ, AIOPS_AUTH_DISABLED="true", AIOPS_DATA_DIR="/proc/aiops-data"),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "aiops-analyzer: configuration error: AIOPS_DATA_DIR: cannot write to /proc/aiops-data: "
        "No such file or directory"
    ]


def test_serve_stops_naming_a_database_it_cannot_reach(tmp_path: Path) -> None:
    # Port 1 on loopback refuses at once: one line naming the variable, never the password.
    result = subprocess.run(
        [sys.executable, "-m", "aiops_analyzer.cli", "serve", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=dict(
            os.environ,
            AIOPS_AUTH_DISABLED="true",
            AIOPS_DATABASE_URL="postgresql://aiops:hunter2-secret@127.0.0.1:1/aiops",
        ),
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        "aiops-analyzer: configuration error: AIOPS_DATABASE_URL: cannot connect to "
        "postgresql+psycopg://aiops:***@127.0.0.1:1/aiops: "
    )
    assert "refused" in line.lower()
    assert "hunter2" not in result.stderr + result.stdout


def test_unknown_aiops_variables_get_a_warning_naming_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIOPS_WORKER", "8")
    monkeypatch.setenv("AIOPS_PROMETHEUS_ULR", "http://x")
    monkeypatch.setenv("AIOPS_ZZZZ", "1")
    monkeypatch.setenv("AIOPS_WORKERS", "2")  # known: no warning
    with caplog.at_level(logging.WARNING, logger="aiops_analyzer"):
        warn_unknown_variables()
    messages = sorted(r.getMessage() for r in caplog.records)
    assert messages == [
        "AIOPS_PROMETHEUS_ULR is not a setting of the analyzer and is ignored; "
        "did you mean AIOPS_PROMETHEUS_URL?",
        "AIOPS_WORKER is not a setting of the analyzer and is ignored; did you mean AIOPS_WORKERS?",
        "AIOPS_ZZZZ is not a setting of the analyzer and is ignored",
    ]
