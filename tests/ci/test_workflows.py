"""The users' CI: actionlint accepts the workflows, and they keep the promised shape.

actionlint also runs shellcheck on every `run:` block when shellcheck is on PATH
(scripts/install-system-deps.sh installs it); without it the shell checks are simply not made.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.tools import require_tool

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
GCP_AUTH = "google-github-actions/auth"
PULUMI_ACTION = "pulumi/actions"


def actionlint() -> str:
    """The locked actionlint of the repository's venv, else one on PATH (skip/fail as usual)."""
    bundled = REPO_ROOT / ".venv" / "bin" / "actionlint"
    if os.access(bundled, os.X_OK):
        return str(bundled)
    return require_tool("actionlint", "installed into .venv by `make install`")


def run_actionlint(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint(), "-no-color", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(f"{action}@")]


def all_workflows() -> dict[str, dict[str, Any]]:
    return {path.name: load(path.name) for path in sorted(WORKFLOWS.glob("*.yml"))}


# ---- actionlint ---------------------------------------------------------------------------


def test_actionlint_accepts_every_workflow() -> None:
    result = run_actionlint()
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    # The same linter run must catch the classic mistake the gcp jobs avoid: secrets in `if:`.
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  deploy:\n"
        "    if: secrets.GCP_SERVICE_ACCOUNT != ''\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: echo hi\n"
    )
    result = run_actionlint(str(broken), cwd=tmp_path)
    assert result.returncode != 0
    assert "secrets" in result.stdout


# ---- the promised shape -------------------------------------------------------------------


def test_the_three_workflows_exist() -> None:
    assert set(all_workflows()) == {"ci.yml", "preview.yml", "deploy.yml"}


def test_ci_runs_make_test_on_every_push_and_pull_request() -> None:
    ci = load("ci.yml")
    assert set(ci["on"]) == {"push", "pull_request"}
    assert ci["on"]["push"] is None  # every branch
    commands = [s.get("run", "") for job in ci["jobs"].values() for s in job["steps"]]
    assert ".ci/run" in commands and "make lint typecheck" in commands
    for job in ci["jobs"].values():
        [python] = steps_using(job, "actions/setup-python")
        assert python["with"]["python-version"] == "3.11"
        cache = steps_using(job, "actions/cache")[0]
        assert "uv.lock" in cache["with"]["key"] and cache["with"]["path"] == "~/.cache/uv"
    # The engine tests' CLI is built once and cached, keyed on the script holding its pins.
    caches = {
        c["with"]["path"]: c["with"]["key"]
        for c in steps_using(ci["jobs"]["test"], "actions/cache")
    }
    assert "scripts/pulumi-cli.sh" in caches["~/.cache/aiops-platform/pulumi"]
    # A fresh runner gets the Go the script needs to build them (Pulumi v3.274.1: Go 1.26).
    [go] = steps_using(ci["jobs"]["test"], "actions/setup-go")
    assert go["with"]["go-version"] == "1.26"


def test_preview_runs_the_local_stack_on_a_file_backend_with_the_policy_pack() -> None:
    preview = load("preview.yml")
    assert set(preview["on"]) == {"pull_request"}
    [step] = steps_using(preview["jobs"]["local"], PULUMI_ACTION)
    assert step["with"]["command"] == "preview"
    assert step["with"]["stack-name"] == "local"
    assert step["with"]["cloud-url"].startswith("file://")
    assert step["with"]["policyPacks"] == "policy"
    passphrase_step = next(
        s
        for s in preview["jobs"]["local"]["steps"]
        if "PULUMI_CONFIG_PASSPHRASE" in s.get("run", "")
    )
    assert (
        passphrase_step["env"]["REPOSITORY_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"
    )


PREVIEW_IDENTITY = "${{ secrets.GCP_PREVIEW_SERVICE_ACCOUNT }}"
DEPLOY_IDENTITY = "${{ secrets.GCP_DEPLOY_SERVICE_ACCOUNT }}"


@pytest.mark.parametrize(("workflow", "job_name"), [("preview.yml", "gcp"), ("deploy.yml", "plan")])
def test_gcp_previews_use_the_read_only_identity_and_skip_without_secrets(
    workflow: str, job_name: str
) -> None:
    jobs = load(workflow)["jobs"]
    job = jobs[job_name]
    gate = jobs[job["needs"]]
    assert job["if"] == f"needs.{job['needs']}.outputs.configured == 'true'"
    gate_env = " ".join(
        str(value) for step in gate["steps"] for value in step.get("env", {}).values()
    )
    for secret in ("GCP_WORKLOAD_IDENTITY_PROVIDER", "GCP_PREVIEW_SERVICE_ACCOUNT"):
        assert f"secrets.{secret}" in gate_env
    assert "secrets.PULUMI_BACKEND_URL" in gate_env
    [auth] = steps_using(job, GCP_AUTH)
    assert (
        auth["with"]["workload_identity_provider"]
        == "${{ secrets.GCP_WORKLOAD_IDENTITY_PROVIDER }}"
    )
    assert auth["with"]["service_account"] == PREVIEW_IDENTITY
    assert "credentials_json" not in auth["with"]  # no long-lived key
    [pulumi] = steps_using(job, PULUMI_ACTION)
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["stack-name"] == "gcp"
    assert pulumi["with"]["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert pulumi["with"]["policyPacks"] == "policy"
    assert pulumi["with"]["comment-on-summary"] is True


def test_only_the_approved_production_job_acts_as_the_deployer() -> None:
    for name, workflow in all_workflows().items():
        for job_name, job in workflow["jobs"].items():
            identities = [auth["with"]["service_account"] for auth in steps_using(job, GCP_AUTH)]
            if DEPLOY_IDENTITY in identities:
                assert (name, job_name) == ("deploy.yml", "deploy")
                assert job["environment"]["name"] == "production"
    deploy = load("deploy.yml")["jobs"]["deploy"]
    [auth] = steps_using(deploy, GCP_AUTH)
    assert auth["with"]["service_account"] == DEPLOY_IDENTITY
    # The plan job runs (read-only) before the approval the environment asks for.
    assert deploy["needs"] == "plan"
    commands = [step.get("run", "") for step in deploy["steps"]]
    assert "make up STACK=gcp" in commands  # the policy pack and the secret-IAM retry


def test_previews_are_posted_on_the_pull_request() -> None:
    jobs = load("preview.yml")["jobs"]
    for job_name in ("local", "gcp"):
        job = jobs[job_name]
        [pulumi] = steps_using(job, PULUMI_ACTION)
        assert pulumi["with"]["comment-on-pr"] is True
        assert pulumi["with"]["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
        assert job["permissions"]["pull-requests"] == "write"


def test_the_local_preview_creates_its_file_backend_first() -> None:
    job = load("preview.yml")["jobs"]["local"]
    [pulumi] = steps_using(job, PULUMI_ACTION)
    backend = pulumi["with"]["cloud-url"].removeprefix("file://")
    assert backend == "${{ runner.temp }}/pulumi-state"
    before = job["steps"][: job["steps"].index(pulumi)]
    assert any('mkdir -p "$RUNNER_TEMP/pulumi-state"' in step.get("run", "") for step in before)


def test_every_pulumi_version_comes_from_the_one_pin() -> None:
    for name, workflow in all_workflows().items():
        for job in workflow["jobs"].values():
            for step in steps_using(job, PULUMI_ACTION):
                assert step["with"]["pulumi-version"] == "${{ steps.pin.outputs.version }}", name
                assert any(
                    "scripts/pulumi-cli.sh --version" in other.get("run", "")
                    for other in job["steps"]
                ), name


def test_deploy_runs_on_main_through_the_production_environment_one_at_a_time() -> None:
    deploy = load("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert deploy["jobs"]["deploy"]["environment"]["name"] == "production"
    assert deploy["concurrency"]["cancel-in-progress"] is False


def test_permissions_are_least_privilege() -> None:
    for name, workflow in all_workflows().items():
        assert workflow["permissions"] == {"contents": "read"}, name
        for job_name, job in workflow["jobs"].items():
            permissions = job.get("permissions", {})
            uses_wif = bool(steps_using(job, GCP_AUTH))
            assert (permissions.get("id-token") == "write") == uses_wif, f"{name}:{job_name}"
            assert set(permissions.values()) <= {"read", "write"}
            writes = {k for k, v in permissions.items() if v == "write"}
            # pull-requests: write only where a preview is posted as a comment.
            allowed = {"id-token", "pull-requests"} if name == "preview.yml" else {"id-token"}
            assert writes <= allowed, f"{name}:{job_name}"


def test_every_workflow_has_a_concurrency_group() -> None:
    for name, workflow in all_workflows().items():
        assert workflow["concurrency"]["group"], name


def test_actions_are_pinned_to_a_release() -> None:
    for name, workflow in all_workflows().items():
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                if "uses" not in step:
                    continue
                _, _, ref = step["uses"].partition("@")
                is_major = ref.startswith("v") and ref[1:].split(".")[0].isdigit()
                is_sha = len(ref) == 40 and all(c in "0123456789abcdef" for c in ref)
                assert is_major or is_sha, f"{name}: {step['uses']} is not pinned"


def test_no_secret_is_expanded_inside_a_shell_script() -> None:
    # Secrets reach scripts through env: only, so they are never spliced into shell source
    # (where they could be logged or break quoting).
    for name, workflow in all_workflows().items():
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                assert "secrets." not in step.get("run", ""), f"{name}: {step.get('name')}"
