"""`make up`, `make preview` and `make down` drive the Pulumi CLI in the documented order.

The real Makefile and scripts/pulumi-stack.sh run in a scratch copy of the repository layout;
stand-in `pulumi` and `python` executables on PATH record their arguments to one log, so the
order of install, login, stack selection and the operation is what the test reads back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.harness import REPO_ROOT
from tests.support.tools import require_tool

PULUMI_STUB = """#!/bin/bash
echo "pulumi $*" >> "$CALL_LOG"
# STUB_UP_FAILURES updates fail with STUB_UP_ERROR before one succeeds.
if [ "$1" = up ] && [ -n "${STUB_UP_FAILURES:-}" ]; then
  count=$(cat "$CALL_LOG.ups" 2>/dev/null || echo 0)
  echo $((count + 1)) > "$CALL_LOG.ups"
  if [ "$count" -lt "$STUB_UP_FAILURES" ]; then
    echo "error: $STUB_UP_ERROR"
    exit 255
  fi
fi
if [ "$1" = whoami ]; then
  [ "${STUB_LOGGED_IN:-0}" = 1 ] && { echo someone; exit 0; }
  echo "error: not logged in" >&2
  exit 1
fi
exit 0
"""
# `make install` runs `$(PYTHON) -m uv sync ...` (scripts/ensure-uv.sh finds uv importable
# there): record it and create what uv would.
PYTHON_STUB = """#!/bin/bash
echo "python $*" >> "$CALL_LOG"
mkdir -p .venv
exit 0
"""


def _write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The files the targets use, copied into a scratch directory (nothing else is needed)."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    (root / "service").mkdir()
    shutil.copy(REPO_ROOT / "Makefile", root / "Makefile")
    for script in ("pulumi-stack.sh", "ensure-uv.sh"):
        shutil.copy(REPO_ROOT / "scripts" / script, root / "scripts" / script)
    for name in ("pyproject.toml", "uv.lock", "service/pyproject.toml", "service/uv.lock"):
        (root / name).write_text("")
    return root


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """PATH for the run: the stand-ins plus the few system tools the recipes call."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in ("bash", "touch", "mkdir", "mktemp", "tee", "grep", "rm", "sleep", "cat"):
        found = shutil.which(tool)
        assert found, tool
        (directory / tool).symlink_to(found)
    _write_executable(directory / "python-stub", PYTHON_STUB)
    return directory


def run_make(
    project: Path,
    bin_dir: Path,
    target: str,
    *,
    with_pulumi: bool = True,
    logged_in: bool = False,
    extra_env: dict[str, str] | None = None,
    make_args: tuple[str, ...] = (),
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    make = require_tool("make")
    if with_pulumi:
        _write_executable(bin_dir / "pulumi", PULUMI_STUB)
    log = project / "calls.log"
    log.write_text("")
    env = {
        "PATH": str(bin_dir),
        "HOME": str(project),
        "CALL_LOG": str(log),
        "STUB_LOGGED_IN": "1" if logged_in else "0",
        **(extra_env or {}),
    }
    result = subprocess.run(
        [make, "--no-print-directory", target, f"PYTHON={bin_dir / 'python-stub'}", *make_args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, log.read_text().splitlines()


def pulumi_calls(calls: list[str]) -> list[str]:
    return [call for call in calls if call.startswith("pulumi ")]


def test_up_installs_logs_in_locally_selects_the_stack_then_deploys(
    project: Path, bin_dir: Path
) -> None:
    result, calls = run_make(project, bin_dir, "up")
    assert result.returncode == 0, result.stderr
    first_pulumi = calls.index(pulumi_calls(calls)[0])
    install = [i for i, call in enumerate(calls) if call.startswith("python") and "sync" in call]
    assert install and install[0] < first_pulumi, calls
    assert pulumi_calls(calls) == [
        "pulumi whoami",
        "pulumi login --local",
        "pulumi stack select --create local",
        "pulumi up --stack local --policy-pack policy",
    ]


def test_a_configured_backend_is_used_as_is(project: Path, bin_dir: Path) -> None:
    _, by_env = run_make(project, bin_dir, "up", extra_env={"PULUMI_BACKEND_URL": "gs://bucket"})
    assert "pulumi login --local" not in by_env
    assert pulumi_calls(by_env)[-2:] == [
        "pulumi stack select --create local",
        "pulumi up --stack local --policy-pack policy",
    ]
    _, logged_in = run_make(project, bin_dir, "up", logged_in=True)
    assert pulumi_calls(logged_in) == [
        "pulumi whoami",
        "pulumi stack select --create local",
        "pulumi up --stack local --policy-pack policy",
    ]


@pytest.mark.parametrize(("target", "operation"), [("preview", "preview"), ("down", "destroy")])
def test_preview_and_down(project: Path, bin_dir: Path, target: str, operation: str) -> None:
    result, calls = run_make(project, bin_dir, target, logged_in=True)
    assert result.returncode == 0, result.stderr
    policy = " --policy-pack policy" if operation == "preview" else ""
    assert pulumi_calls(calls)[-2:] == [
        "pulumi stack select --create local",
        f"pulumi {operation} --stack local{policy}",
    ]


def test_stack_variable_selects_another_stack(project: Path, bin_dir: Path) -> None:
    _, from_make = run_make(project, bin_dir, "up", logged_in=True, make_args=("STACK=gcp",))
    assert pulumi_calls(from_make)[-2:] == [
        "pulumi stack select --create gcp",
        "pulumi up --stack gcp --policy-pack policy",
    ]
    _, from_env = run_make(project, bin_dir, "down", logged_in=True, extra_env={"STACK": "dev"})
    assert pulumi_calls(from_env)[-1] == "pulumi destroy --stack dev"


def test_extra_pulumi_flags_are_passed_through(project: Path, bin_dir: Path) -> None:
    _, calls = run_make(
        project, bin_dir, "up", logged_in=True, extra_env={"PULUMI_ARGS": "--yes --skip-preview"}
    )
    assert pulumi_calls(calls)[-1] == (
        "pulumi up --stack local --policy-pack policy --yes --skip-preview"
    )


def test_the_policy_pack_can_be_replaced_or_switched_off(project: Path, bin_dir: Path) -> None:
    _, other = run_make(
        project, bin_dir, "preview", logged_in=True, extra_env={"POLICY_PACK": "../my-pack"}
    )
    assert pulumi_calls(other)[-1] == "pulumi preview --stack local --policy-pack ../my-pack"
    _, none = run_make(project, bin_dir, "up", logged_in=True, extra_env={"POLICY_PACK": ""})
    assert pulumi_calls(none)[-1] == "pulumi up --stack local"


def test_missing_cli_fails_with_a_message_naming_it(project: Path, bin_dir: Path) -> None:
    result, calls = run_make(project, bin_dir, "up", with_pulumi=False)
    assert result.returncode != 0
    assert "Pulumi CLI is not on PATH" in result.stderr
    assert pulumi_calls(calls) == []


def test_script_rejects_an_unknown_operation(project: Path) -> None:
    result = subprocess.run(
        ["/bin/bash", "scripts/pulumi-stack.sh", "deploy"],
        cwd=project,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "usage" in result.stderr


SECRET_IAM_ERROR = (
    "googleapi: Error 400: Revision 'aiops-gcp-analyzer-00001' is not ready: "
    "Permission denied on secret: projects/1/secrets/aiops-gcp-webhook-token/versions/1"
)


def failing_up(
    project: Path, bin_dir: Path, failures: int, error: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`make up STACK=gcp` whose first `failures` updates fail with `error`."""
    result, calls = run_make(
        project,
        bin_dir,
        "up",
        logged_in=True,
        make_args=("STACK=gcp",),
        extra_env={
            "STUB_UP_FAILURES": str(failures),
            "STUB_UP_ERROR": error,
            "SECRET_IAM_WAIT": "0",
        },
    )
    return result, [call for call in pulumi_calls(calls) if call.startswith("pulumi up")]


def test_up_retries_once_when_secret_bindings_have_not_propagated(
    project: Path, bin_dir: Path
) -> None:
    result, ups = failing_up(project, bin_dir, 1, SECRET_IAM_ERROR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ups == ["pulumi up --stack gcp --policy-pack policy"] * 2
    assert "retrying" in result.stdout


@pytest.mark.parametrize(
    ("failures", "error"),
    [(1, "googleapi: Error 403: Permission denied on resource project"), (2, SECRET_IAM_ERROR)],
)
def test_other_failures_and_a_second_propagation_failure_are_not_retried(
    project: Path, bin_dir: Path, failures: int, error: str
) -> None:
    result, ups = failing_up(project, bin_dir, failures, error)
    assert result.returncode != 0
    assert len(ups) == (2 if error == SECRET_IAM_ERROR else 1)
