"""The stacks on the REAL Pulumi engine: config validation, preview, up, a second preview,
destroy, the checkpoint and the policy pack, for `local`, `gcp` and `dev`.

Each scenario is one `python -m tests.engine.offline` run (the pinned CLI, a throwaway file
backend, stand-in providers for docker/random/gcp, see offline.py). The runs are started
together, a few at a time, by one session fixture: each spends most of its time waiting on
process start-ups, so overlapping them keeps the module near a minute and a half.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.engine.offline import REPO_ROOT
from tests.support.tools import in_ci

STACKS = ("local", "gcp", "dev")
# Values set encrypted in the lifecycle runs; none may appear in plain text in the state.
FAKE_OPENAI_KEY = "sk-engine-test-0123456789abcdefABCDEF"
FAKE_SLACK_URL = "https://hooks.slack.com/services/T0ENGINE/B0ENGINE/engine0secret0value"
# What docs/getting-started.md and docs/deploy-gcp.md promise as outputs (secret or not); a
# test keeps this table and the docs' lists the same.
DOCUMENTED_OUTPUTS = {
    "local": {
        "grafanaAdminUser": False,
        "grafanaUrl": False,
        "prometheusUrl": False,
        "alertmanagerUrl": False,
        "analyzerUrl": False,
        "webhookUrl": False,
        "lokiUrl": False,
        "nginxUrl": False,
        "grafanaAdminPassword": True,
        "webhookToken": True,
    },
    "gcp": {
        "serviceUrl": False,
        "webhookUrl": False,
        "imageRef": False,
        "webhookToken": True,
        "alertmanagerConfig": False,
    },
}
# Where the docs list each target's outputs: the paragraph starting with this text.
OUTPUT_DOCS = {
    "local": ("docs/getting-started.md", "`pulumi stack output --stack local` prints them"),
    "gcp": ("docs/deploy-gcp.md", "Outputs: "),
}
RUNTIME_ACCOUNT = "aiops-runtime@offline-project.iam.gserviceaccount.com"
PARALLEL_RUNS = 3
SQL_USER = "gcp:sql/user:User"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"


@dataclass
class Scenario:
    name: str
    args: list[str]
    report: dict[str, Any] | None = None
    output: str = ""
    sandbox: Path | None = None
    # Run as a user does, `make preview-offline STACK=<make_stack>`, instead of the module.
    make_stack: str | None = None
    returncode: int | None = None

    def step(self, name: str, index: int = 0) -> dict[str, Any]:
        assert self.report is not None, self.output[-3000:]
        steps = [step for step in self.report["steps"] if step["step"] == name]
        return steps[index]

    def requests(self) -> list[dict[str, Any]]:
        assert self.sandbox is not None
        log = self.sandbox / "standin-requests.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()]


def _scenarios() -> list[Scenario]:
    scenarios = []
    for stack in STACKS:
        # As a user runs it: the shipped stack file, no optional secret, the real docker-build.
        scenarios.append(Scenario(f"preview-{stack}", ["--stack", stack, "--step", "preview"]))
        scenarios.append(
            Scenario(
                f"lifecycle-{stack}",
                [
                    "--stack",
                    stack,
                    "--standin-docker-build",
                    "--secret",
                    f"aiops:openaiApiKey={FAKE_OPENAI_KEY}",
                    "--secret",
                    f"aiops:slackWebhookUrl={FAKE_SLACK_URL}",
                    *("--step", "up", "--step", "preview", "--step", "destroy"),
                ],
            )
        )
    scenarios += [
        # The optional local PostgreSQL (aiops:localDatabase): its resources pass the same checks.
        Scenario(
            "preview-local-postgresql",
            ["--stack", "local", "--set", "aiops:localDatabase=postgresql", "--step", "preview"],
        ),
        Scenario(
            "wrong-type",
            ["--stack", "local", "--set", "aiops:grafanaPort=three-thousand", "--step", "preview"],
        ),
        Scenario(
            "plain-secret",
            [
                "--stack",
                "gcp",
                "--set",
                f"aiops:openaiApiKey={FAKE_OPENAI_KEY}",
                "--step",
                "preview",
            ],
        ),
        Scenario(
            "bad-program",
            ["--stack", "local", "--program", "bad-secret-env", "--step", "preview"],
        ),
        Scenario(
            "bad-input",
            ["--stack", "local", "--program", "bad-input", "--step", "preview"],
        ),
        Scenario("make-preview-offline-gcp", [], make_stack="gcp"),
        # The switches the mock tests cover, through the provider schemas: Cloud Run without
        # the invoker IAM check, evidence URLs and the two other notification secrets...
        Scenario(
            "preview-gcp-switches",
            [
                "--stack",
                "gcp",
                *("--set", "aiops:cloudRunInvokerIamDisabled=true"),
                *("--set", f"aiops:runtimeServiceAccount={RUNTIME_ACCOUNT}"),
                *("--set", "aiops:cloudRunPrometheusUrl=https://prometheus.example.com"),
                *("--set", "aiops:cloudRunLokiUrl=https://loki.example.com"),
                *("--secret", "aiops:discordWebhookUrl=https://discord.com/api/webhooks/1/a"),
                *("--secret", "aiops:notifyWebhookUrl=https://hooks.example.com/aiops"),
                *("--step", "preview"),
            ],
        ),
        # ...and a local stack sending to an external analyzer, without cAdvisor or journal.
        Scenario(
            "preview-local-switches",
            [
                "--stack",
                "local",
                *("--set", "aiops:externalAnalyzerUrl=https://analyzer.example.com"),
                *("--secret", "aiops:externalWebhookToken=external-token-0123456789"),
                *("--set", "aiops:enableCadvisor=false"),
                *("--set", "aiops:enableHostJournal=false"),
                *("--step", "preview"),
            ],
        ),
    ]
    return scenarios


def _cli_available() -> None:
    """The CLI comes from scripts/pulumi-cli.sh (PATH, cache, or a Go build `make test` ran)."""
    try:
        subprocess.run(
            [str(REPO_ROOT / "scripts" / "pulumi-cli.sh")],
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        message = f"the pinned Pulumi CLI is not available ({detail.strip()[-300:]})"
        if in_ci():
            pytest.fail(message + "; `make test` runs `make pulumi-cli` first")
        pytest.skip(message + "; run `make pulumi-cli` (needs Go)")


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Scenario]]:
    _cli_available()
    base = tmp_path_factory.mktemp("engine")
    scenarios = _scenarios()
    pending = list(scenarios)
    running: list[tuple[Scenario, subprocess.Popen[str], Path]] = []
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    while pending or running:
        while pending and len(running) < PARALLEL_RUNS:
            scenario = pending.pop(0)
            scenario.sandbox = base / scenario.name
            report = base / f"{scenario.name}.json"
            command = [
                sys.executable,
                "-m",
                "tests.engine.offline",
                *scenario.args,
                "--keep",
                str(scenario.sandbox),
                "--report",
                str(report),
            ]
            if scenario.make_stack:
                command = ["make", "-s", "preview-offline", f"STACK={scenario.make_stack}"]
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            running.append((scenario, process, report))
        for item in list(running):
            scenario, process, report = item
            if process.poll() is None:
                continue
            scenario.output = process.stdout.read() if process.stdout else ""
            scenario.returncode = process.returncode
            if report.exists():
                scenario.report = json.loads(report.read_text())
            running.remove(item)
        time.sleep(0.2)
    yield {scenario.name: scenario for scenario in scenarios}


def _changes(step: dict[str, Any]) -> dict[str, int]:
    return {key: value for key, value in (step.get("changes") or {}).items() if value}


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipped_stack_previews_with_no_optional_secret_set(
    runs: dict[str, Scenario], stack: str
) -> None:
    """Config validation, every provider's input check and the policy pack all pass."""
    run = runs[f"preview-{stack}"]
    preview = run.step("preview")
    assert preview["ok"], preview.get("error", run.output[-3000:])
    changes = _changes(preview)
    assert set(changes) == {"create"} and changes["create"] > 5, changes
    assert "aiops-guardrails" in run.output  # the engine loaded and ran the pack
    checks = [r for r in run.requests() if r["method"] == "Check"]
    assert checks, "the stand-ins were never asked to check an input"
    assert [c for c in checks if c["failures"]] == []


def test_the_local_postgresql_switch_previews_through_every_check(
    runs: dict[str, Scenario],
) -> None:
    run = runs["preview-local-postgresql"]
    preview = run.step("preview")
    assert preview["ok"], preview.get("error", run.output[-3000:])
    assert "aiops-guardrails" in run.output
    checks = [r for r in run.requests() if r["method"] == "Check"]
    assert [c for c in checks if c["failures"]] == []
    checked = {c["urn"].rsplit("::", 1)[-1] for c in checks}
    assert {"postgres", "postgres-data", "postgres-image", "postgres-password"} <= checked


@pytest.mark.parametrize("stack", STACKS)
def test_up_then_a_second_preview_shows_no_changes_then_destroy(
    runs: dict[str, Scenario], stack: str
) -> None:
    run = runs[f"lifecycle-{stack}"]
    up, again, destroy = run.step("up"), run.step("preview"), run.step("destroy")
    for step in (up, again, destroy):
        assert step["ok"], step.get("error", run.output[-3000:])
    created = _changes(up)["create"]
    # No perpetual diff: everything the first update wrote is "same" the second time.
    assert _changes(again) == {"same": created}
    assert _changes(destroy) == {"delete": created}
    # The stand-ins were asked to delete what they created.
    requests = run.requests()
    created_urns = {r["urn"] for r in requests if r["method"] == "Create" and not r["preview"]}
    deleted_urns = {r["urn"] for r in requests if r["method"] == "Delete"}
    assert created_urns and created_urns == deleted_urns


def _listed_in_docs(target: str) -> set[str]:
    """The output names (`camelCase` in backticks) of the docs' paragraph for `target`."""
    path, start = OUTPUT_DOCS[target]
    text = (REPO_ROOT / path).read_text()
    assert start in text, f"{path} no longer lists the outputs after {start!r}"
    paragraph = text[text.index(start) :].split("\n\n", 1)[0]
    return set(re.findall(r"`([a-z]+[A-Z][A-Za-z]*)`", paragraph))


@pytest.mark.parametrize("stack", STACKS)
def test_outputs_are_the_documented_ones(runs: dict[str, Scenario], stack: str) -> None:
    outputs = runs[f"lifecycle-{stack}"].step("up")["outputs"]
    target = "local" if stack == "local" else "gcp"
    documented = DOCUMENTED_OUTPUTS[target]
    # Every output the engine reports is documented, and nothing the docs list is missing.
    assert set(outputs) == set(documented) == _listed_in_docs(target)
    for name, secret in documented.items():
        assert name in outputs, f"{stack}: output {name} missing"
        assert outputs[name]["secret"] is secret, f"{stack}: output {name} secrecy"
        assert outputs[name]["value"], f"{stack}: output {name} empty"
    webhook = outputs["webhookUrl"]["value"]
    assert webhook.endswith("/webhook/alertmanager")
    if stack != "local":
        assert webhook.startswith(outputs["serviceUrl"]["value"])


@pytest.mark.parametrize("stack", STACKS)
def test_the_checkpoint_holds_no_plaintext_secret(runs: dict[str, Scenario], stack: str) -> None:
    """Every file the file backend wrote (current state, history of the update, backups) and
    the stack file the secrets were set in."""
    run = runs[f"lifecycle-{stack}"]
    up = run.step("up")
    assert run.sandbox is not None
    files = [path for path in (run.sandbox / "state").rglob("*") if path.is_file()]
    files.append(run.sandbox / "project" / f"Pulumi.{stack}.yaml")
    stored = "\n".join(path.read_text(errors="replace") for path in files)
    secrets = [FAKE_OPENAI_KEY, FAKE_SLACK_URL]
    secrets += [value["value"] for value in up["outputs"].values() if value["secret"]]
    # Secrets that are no output: the Cloud SQL user's generated password and the database
    # URL built from it, as the stand-in providers received them in plain text.
    created = [r for r in run.requests() if r["method"] == "Create" and not r["preview"]]
    database_secrets = [r["inputs"]["password"] for r in created if r["type"] == SQL_USER]
    database_secrets += [
        r["inputs"]["secretData"]
        for r in created
        if r["type"] == SECRET_VERSION and r["urn"].endswith("-database-url-version")
    ]
    assert len(database_secrets) == (2 if stack == "gcp" else 0), stack
    secrets += database_secrets
    assert len(secrets) >= 3
    for secret in secrets:
        assert secret not in stored, f"{stack}: a secret is stored in plain text"
    # The search is meaningful: the update's checkpoint is among the files, with its plain
    # outputs as written and its secrets as ciphertext.
    assert up["outputs"]["webhookUrl"]["value"] in stored
    assert '"ciphertext"' in stored


def test_a_wrongly_typed_value_is_refused_by_config_validation(
    runs: dict[str, Scenario],
) -> None:
    run = runs["wrong-type"]
    preview = run.step("preview")
    assert not preview["ok"]
    assert "aiops:grafanaPort" in preview["error"]
    assert "must be of type 'integer'" in preview["error"]
    # Refused before any provider started.
    log = run.sandbox / "standin-requests.jsonl" if run.sandbox else None
    assert log is not None and not log.exists()


def test_a_secret_stored_in_plain_text_is_refused_naming_the_key(
    runs: dict[str, Scenario],
) -> None:
    preview = runs["plain-secret"].step("preview")
    assert not preview["ok"]
    assert "aiops:openaiApiKey is stored in plain text" in preview["error"]


def test_the_policy_pack_run_by_the_engine_blocks_a_plain_text_secret_env(
    runs: dict[str, Scenario],
) -> None:
    run = runs["bad-program"]
    preview = run.step("preview")
    assert not preview["ok"]
    assert "no-plain-secret-env" in preview["error"]
    assert "AIOPS_WEBHOOK_TOKEN" in preview["error"]


def test_an_input_the_provider_schema_refuses_fails_the_preview_naming_it(
    runs: dict[str, Scenario],
) -> None:
    """The stand-ins' schema check reaches the user through the engine, as a real provider's
    Check failure does: the preview fails naming the resource and the property."""
    run = runs["bad-input"]
    preview = run.step("preview")
    assert not preview["ok"]
    assert "mistyped" in preview["error"]
    assert "ports[0].internal" in preview["error"]
    assert "expected integer" in preview["error"]
    [check] = [r for r in run.requests() if r["method"] == "Check"]
    assert check["failures"] == [["ports[0].internal", "expected integer, got str '80'"]]
    assert not [r for r in run.requests() if r["method"] == "Create"]


def test_make_preview_offline_exits_0_and_prints_the_plan(runs: dict[str, Scenario]) -> None:
    """As a user runs it (docs/deploy-gcp.md): the plan, the policy pack's verdict, the outputs."""
    run = runs["make-preview-offline-gcp"]
    assert run.returncode == 0, run.output[-3000:]
    assert "Previewing update (gcp)" in run.output
    assert "+  gcp:cloudrunv2:Service aiops-gcp-analyzer create" in run.output
    assert re.search(r"aiops-guardrails@v[0-9.]+", run.output)
    assert re.search(r"\+ [0-9]+ to create", run.output)
    assert "webhookToken      : [secret]" in run.output


def _checked(run: Scenario) -> dict[str, dict[str, Any]]:
    """The inputs each resource was checked with, by resource name; no check failed."""
    preview = run.step("preview")
    assert preview["ok"], preview.get("error", run.output[-3000:])
    checks = [r for r in run.requests() if r["method"] == "Check"]
    assert [c for c in checks if c["failures"]] == []
    return {c["urn"].rsplit("::", 1)[-1]: c["inputs"] for c in checks}


def test_the_gcp_switches_pass_the_provider_schema(runs: dict[str, Scenario]) -> None:
    checked = _checked(runs["preview-gcp-switches"])
    service = checked["aiops-gcp-analyzer"]
    assert service["invokerIamDisabled"] is True
    assert "aiops-gcp-analyzer-public-invoker" not in checked
    # An existing runtime account: none created, the service and every binding use it.
    assert service["template"]["serviceAccount"] == RUNTIME_ACCOUNT
    assert "aiops-gcp-run" not in checked
    members = {i["member"] for i in checked.values() if "member" in i}
    assert members == {f"serviceAccount:{RUNTIME_ACCOUNT}"}
    envs = {e["name"] for e in service["template"]["containers"][0]["envs"]}
    assert {"AIOPS_PROMETHEUS_URL", "AIOPS_LOKI_URL"} <= envs
    assert {"AIOPS_DISCORD_WEBHOOK_URL", "AIOPS_NOTIFY_WEBHOOK_URL"} <= envs
    assert {"aiops-gcp-discord-webhook-url-version", "aiops-gcp-notify-webhook-url-version"} <= set(
        checked
    )


def test_the_local_switches_pass_the_provider_schema(runs: dict[str, Scenario]) -> None:
    checked = _checked(runs["preview-local-switches"])
    assert {"analyzer", "cadvisor"}.isdisjoint(checked)
    assert {"alertmanager", "alloy", "prometheus", "grafana"} <= set(checked)
