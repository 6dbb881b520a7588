"""Settings: errors name the variable; .env.example and the docs list every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiops_analyzer.cli import load_settings
from aiops_analyzer.core.config import Settings
from pydantic.fields import FieldInfo

from tests.service.apptools import REPO

DOC = REPO / "docs" / "analyzer" / "configuration.md"
TABLE_START = "<!-- settings-table:start (generated from Settings; tests check it) -->"
TABLE_END = "<!-- settings-table:end -->"


def env_name(name: str) -> str:
    return "AIOPS_" + name.upper()


def default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return "`[]`"
    value = field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def settings_table() -> str:
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        variable = f"`{env_name(name)}`"
        if name == "port":
            variable += " (or `PORT`)"
        if name == "openai_api_key":
            variable += " (or `OPENAI_API_KEY`)"
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| {variable} | {default_text(field)} | {description} |")
    return "\n".join(lines)


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_docs_settings_table_matches_settings() -> None:
    text = DOC.read_text()
    assert TABLE_START in text and TABLE_END in text, f"{DOC} lacks the settings table markers"
    documented = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    expected = settings_table()
    assert documented == expected, f"update the table in {DOC} to:\n{expected}"


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


if __name__ == "__main__":  # Print the table to paste into the docs.
    print(settings_table())
