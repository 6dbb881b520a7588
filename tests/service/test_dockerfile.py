"""service/Dockerfile: hadolint, what it copies, and what its ignore file keeps out."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.service.apptools import REPO
from tests.support.tools import require_tool

DOCKERFILE = REPO / "service" / "Dockerfile"
IGNORE_FILE = REPO / "service" / "Dockerfile.dockerignore"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else require_tool("hadolint")


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [hadolint(), "--format", "json", str(DOCKERFILE)], capture_output=True, text=True
    )
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], findings


def test_base_image_is_pinned_slim_python_and_multi_stage() -> None:
    bases = [args for keyword, args in instructions() if keyword == "FROM"]
    assert len(bases) >= 2
    for base in bases:
        image = base.split()[0]
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image)


def test_runs_as_non_root_on_port_with_healthcheck_and_exec_form_cmd() -> None:
    steps = instructions()
    user = [args for keyword, args in steps if keyword == "USER"][-1]
    assert user.split(":")[0] not in {"root", "0"}
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    assert "PORT=8080" in env and "AIOPS_HOST=0.0.0.0" in env
    assert "AIOPS_RUNBOOKS_DIR=/app/runbooks" in env
    healthcheck = [args for keyword, args in steps if keyword == "HEALTHCHECK"][-1]
    assert "/healthz" in healthcheck and "curl" not in healthcheck
    cmd = [args for keyword, args in steps if keyword == "CMD"][-1]
    assert json.loads(cmd)[0] == "aiops-analyzer"  # Exec form: a JSON array.
    run_steps = " ".join(args for keyword, args in steps if keyword == "RUN")
    assert "uv sync --frozen --no-dev" in run_steps


def test_copy_sources_exist_relative_to_the_repository_root() -> None:
    for keyword, args in instructions():
        if keyword != "COPY" or args.startswith("--from"):
            continue
        *sources, _destination = args.split()
        for source in sources:
            assert (REPO / source).exists(), f"COPY source {source} missing"
    copied = [args for keyword, args in instructions() if keyword == "COPY"]
    assert any(args.startswith("monitoring/runbooks ") for args in copied)
    assert (REPO / "monitoring" / "runbooks").is_dir()


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def is_ignored(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent folder
    matches everything inside it."""
    rules = []
    for line in IGNORE_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _pattern_regex(line.lstrip("!").strip("/"))))
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_ignore_file_keeps_secrets_and_local_state_out() -> None:
    for path in (
        ".env",
        "service/.env",
        "service/src/aiops_analyzer/.env",
        ".venv/bin/python",
        "data/analyzer.db",
        "service/src/data/analyzer.db",
        ".pulumi-state/stacks/local.json",
        ".git/config",
        "tests/service/test_webhook.py",
        "service/src/aiops_analyzer/__pycache__/main.cpython-311.pyc",
        "service/src/key.pem",
    ):
        assert is_ignored(path), f"{path} would be sent to the Docker build"


def test_ignore_file_lets_the_build_inputs_in() -> None:
    for path in (
        "service/pyproject.toml",
        "service/uv.lock",
        "service/README.md",
        "service/src/aiops_analyzer/main.py",
        "service/src/aiops_analyzer/store/migrations/versions/0001_initial.py",
        "monitoring/runbooks/NginxDown.md",
    ):
        assert not is_ignored(path), f"{path} is needed by the build but ignored"
