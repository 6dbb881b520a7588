"""Run the real Pulumi engine on a stack with no cloud, no Docker and no Pulumi account.

`make preview-offline STACK=local|gcp|dev` and tests/engine use this:
- the pinned CLI from scripts/pulumi-cli.sh (from PATH, or built once from the Go module proxy);
- a throwaway sandbox: a file backend, a passphrase, PULUMI_HOME, and a project directory that
  mirrors the repository (symlinks) with its own copies of Pulumi.yaml and Pulumi.<stack>.yaml,
  so config set by a test never touches the repository's stack files;
- stand-in providers for docker, random and gcp (tests/engine/standin_provider.py) on PATH, the
  real docker-build provider (a stand-in for `up`: building needs Docker), and the policy pack
  in policy/ enforced by the engine (`--policy-pack`, started as an executable plugin);
- the program as an Automation API inline program: the engine runs it in this process through
  its `--client` language server, because the Python language host has no module on the Go
  proxy to build it from (docs/ci.md). Stack config is validated by the CLI against the
  project's Pulumi.yaml exactly as with `pulumi preview`.

Command line (one sandbox, several steps, a JSON report):
    python -m tests.engine.offline --stack gcp [--step preview|up|destroy ...] [--report F]
        [--set aiops:key=value ...] [--secret aiops:key=value ...] [--keep DIR]
        [--standin-docker-build] [--program stacks|bad-secret-env|bad-input] [--no-policy]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "aiops"
STANDIN_PACKAGES = ("docker", "random", "gcp")
# A throwaway sandbox's passphrase: it protects nothing beyond the sandbox's lifetime.
PASSPHRASE = "offline-preview-throwaway-passphrase"
OFFLINE_GCP_PROJECT = "offline-project"


def cli_home() -> Path:
    """Directory with the pinned bin/pulumi and plugins/pulumi-resource-docker-build (built
    from the Go module proxy the first time, see scripts/pulumi-cli.sh)."""
    out = subprocess.run(
        [str(REPO_ROOT / "scripts" / "pulumi-cli.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def _write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


@dataclass
class Sandbox:
    root: Path
    cli: Path
    standin_docker_build: bool = False
    policy: bool = True
    env: dict[str, str] = field(default_factory=dict)

    @property
    def project_dir(self) -> Path:
        return self.root / "project"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def standin_log(self) -> Path:
        return self.root / "standin-requests.jsonl"

    def build(self) -> None:
        bin_dir = self.root / "bin"
        for directory in (self.project_dir, self.state_dir, bin_dir, self.root / "home"):
            directory.mkdir(parents=True, exist_ok=True)
        for entry in REPO_ROOT.iterdir():
            if entry.name.startswith("Pulumi.") or entry.name in (".git", ".venv"):
                continue
            (self.project_dir / entry.name).symlink_to(entry)
        # The policy pack's PulumiPolicy.yaml points at ../.venv, as in the repository.
        (self.project_dir / ".venv").symlink_to(REPO_ROOT / ".venv")
        for stack_file in REPO_ROOT.glob("Pulumi*.yaml"):
            shutil.copy(stack_file, self.project_dir / stack_file.name)

        python = sys.executable
        packages = [*STANDIN_PACKAGES, *(["docker-build"] if self.standin_docker_build else [])]
        for package in packages:
            _write_executable(
                bin_dir / f"pulumi-resource-{package}",
                f'#!/bin/sh\nexec "{python}" -m tests.engine.standin_provider {package}\n',
            )
        if not self.standin_docker_build:
            (bin_dir / "pulumi-resource-docker-build").symlink_to(
                self.cli / "plugins" / "pulumi-resource-docker-build"
            )
        # A policy pack DIRECTORY is started through the Python language host, which cannot
        # be built here; an executable given as the pack is started directly (engine address
        # as its argument), and the pack serves the same policies, printing its port.
        self.policy_runner.parent.mkdir(exist_ok=True)
        _write_executable(
            self.policy_runner,
            f'#!/bin/sh\nexec "{python}" -u "{REPO_ROOT / "policy" / "__main__.py"}"\n',
        )
        self.env = {
            "PATH": f"{bin_dir}:{self.cli / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "PULUMI_HOME": str(self.root / "home"),
            "PULUMI_BACKEND_URL": f"file://{self.state_dir}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "AIOPS_STANDIN_LOG": str(self.standin_log),
            "PYTHONPATH": str(REPO_ROOT),
        }

    @property
    def policy_runner(self) -> Path:
        return self.root / "policy-pack" / "aiops-guardrails"

    def checkpoint(self, stack: str) -> Path:
        return self.state_dir / ".pulumi" / "stacks" / PROJECT / f"{stack}.json"


def bad_secret_env_program() -> None:
    """A deliberately bad program: a container with a plain-text token in its environment."""
    import pulumi_docker as docker

    docker.Container(
        "leaky",
        image="nginx:1.29.3@sha256:" + "0" * 64,
        envs=["AIOPS_WEBHOOK_TOKEN=plain-text-token-0123456789abcdef"],
    )


def bad_input_program() -> None:
    """A deliberately bad program the policy pack accepts but the provider refuses: a port
    number given as a string (the docker schema says integer)."""
    import pulumi_docker as docker

    docker.Container(
        "mistyped",
        image="nginx:1.29.3@sha256:" + "0" * 64,
        ports=[
            docker.ContainerPortArgs(internal="80", external=8080, ip="127.0.0.1")  # type: ignore[arg-type]
        ],
    )


def _program(name: str) -> Callable[[], None]:
    if name == "bad-secret-env":
        return bad_secret_env_program
    if name == "bad-input":
        return bad_input_program
    from stacks.program import deploy

    return deploy


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> dict[str, Any]:
    from pulumi import automation as auto

    report: dict[str, Any] = {"stack": args.stack, "steps": []}
    with _sandbox_dir(args.keep) as root:
        sandbox = Sandbox(
            root=root,
            cli=cli_home(),
            standin_docker_build=args.standin_docker_build,
            policy=not args.no_policy,
        )
        sandbox.build()
        report["sandbox"] = str(root)
        os.environ.update(sandbox.env)
        # The program's relative paths (build context ".") resolve against the project dir,
        # as they do for the provider plugins the engine starts there.
        os.chdir(sandbox.project_dir)
        workspace = auto.LocalWorkspaceOptions(
            work_dir=str(sandbox.project_dir),
            pulumi_home=sandbox.env["PULUMI_HOME"],
            env_vars=sandbox.env,
            pulumi_command=auto.PulumiCommand(root=str(sandbox.cli), skip_version_check=True),
        )
        stack = auto.create_or_select_stack(
            stack_name=args.stack,
            project_name=PROJECT,
            program=_program(args.program),
            opts=workspace,
        )
        if _targets_gcp(sandbox.project_dir, args.stack):
            stack.set_config("gcp:project", auto.ConfigValue(OFFLINE_GCP_PROJECT))
        for item in args.set:
            key, _, value = item.partition("=")
            stack.set_config(key, auto.ConfigValue(value), path=False)
        for item in args.secret:
            key, _, value = item.partition("=")
            stack.set_config(key, auto.ConfigValue(value, secret=True))
        policy = [str(sandbox.policy_runner)] if sandbox.policy else None
        for step in args.step:
            report["steps"].append(_step(stack, step, policy, emit))
            if not report["steps"][-1]["ok"]:
                break
        report["ok"] = all(step["ok"] for step in report["steps"])
    return report


def _step(stack: Any, step: str, policy: list[str] | None, emit: Callable[[str], None]) -> Any:
    from pulumi import automation as auto

    result: dict[str, Any] = {"step": step, "ok": False}
    try:
        if step == "preview":
            preview = stack.preview(policy_packs=policy, on_output=emit, diff=False)
            result["changes"] = preview.change_summary
        elif step == "up":
            up = stack.up(policy_packs=policy, on_output=emit)
            result["changes"] = up.summary.resource_changes
            result["outputs"] = {
                key: {"value": value.value, "secret": value.secret}
                for key, value in up.outputs.items()
            }
        elif step == "destroy":
            destroy = stack.destroy(on_output=emit)
            result["changes"] = destroy.summary.resource_changes
        else:
            raise ValueError(f"unknown step {step!r}")
        result["ok"] = True
    except auto.CommandError as error:
        result["error"] = str(error)
    return result


def _targets_gcp(project_dir: Path, stack: str) -> bool:
    import yaml

    path = project_dir / f"Pulumi.{stack}.yaml"
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {} if path.exists() else {}
    return config.get(f"{PROJECT}:target") == "gcp"


@contextlib.contextmanager
def _sandbox_dir(keep: str | None) -> Iterator[Path]:
    if keep:
        path = Path(keep)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="aiops-offline-") as directory:
        yield Path(directory)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--step", action="append", choices=("preview", "up", "destroy"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--report", help="write the JSON report here")
    parser.add_argument("--keep", help="sandbox directory to keep (default: a temporary one)")
    parser.add_argument("--standin-docker-build", action="store_true")
    parser.add_argument(
        "--program", default="stacks", choices=("stacks", "bad-secret-env", "bad-input")
    )
    parser.add_argument("--no-policy", action="store_true")
    parsed = parser.parse_args(argv)
    parsed.step = parsed.step or ["preview"]
    return parsed


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    report = run(args, emit=lambda line: print(line, end="" if line.endswith("\n") else "\n"))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=1, default=str))
    for step in report["steps"]:
        if not step["ok"]:
            # The engine's output was streamed above; repeat only what it wrote to stderr.
            error = step.get("error", "")
            stderr = error.partition("\n stderr: ")[2].strip()
            print(
                stderr or f"offline: `{step['step']}` failed (the engine's output is above)",
                file=sys.stderr,
            )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
