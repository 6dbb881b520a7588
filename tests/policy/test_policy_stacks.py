"""Every policy over every shipped stack, as the mocks record it, and over deliberately bad ones.

The harness runs the whole Pulumi program per stack and records each resource's inputs the
way the engine would send them to the policy pack (secret envelopes included), so a stack that
passes here passes `pulumi preview --policy-pack policy` on the same inputs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from policy.policies import (
    ARTIFACT_REPOSITORY,
    CLOUD_RUN_SERVICE,
    DOCKER_BUILD_IMAGE,
    DOCKER_CONTAINER,
    DOCKER_REMOTE_IMAGE,
    violations_of,
)
from tests.infra.harness import (
    SECRET_SIG_KEY,
    SECRET_SIG_VALUE,
    RecordedResource,
    StackRun,
    is_secret,
    run_stack,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FAKE_OPENAI_KEY = "sk-proj-" + "Q1w2E3r4" * 4
STACK_TARGETS = {"local": "local", "gcp": "gcp", "dev": "gcp"}


def _require_target(stack: str) -> None:
    module = f"stacks/{STACK_TARGETS[stack]}.py"
    if not (REPO_ROOT / module).exists():
        pytest.skip(f"{module} not yet written")


def stack_violations(run: StackRun) -> list[str]:
    return [
        f"{resource.type} {message}"
        for resource in run.resources
        for message in violations_of(resource.type, resource.name, resource.inputs)
    ]


_SHIPPED: dict[str, StackRun] = {}


def recorded(
    stack: str, overrides: dict[str, Any] | None = None, secrets: dict[str, str] | None = None
) -> StackRun:
    """The stack's recorded run; the plain shipped run is made once (tests copy before editing)."""
    _require_target(stack)
    if overrides or secrets:
        return run_stack(stack, overrides=overrides, secrets=secrets)
    if stack not in _SHIPPED:
        _SHIPPED[stack] = run_stack(stack)
    return _SHIPPED[stack]


def _only(
    run: StackRun, resource_type: str, where: Callable[[RecordedResource], bool]
) -> RecordedResource:
    matches = [r for r in run.of_type(resource_type) if where(r)]
    assert matches, f"the {run.stack} stack registers no matching {resource_type}"
    return matches[0]


def _is_analyzer(resource: RecordedResource) -> bool:
    return "analyzer" in resource.name


def _entries_kept_secret(envs: Any) -> list[Any]:
    """A recorded env list as separate entries, each as secret as the list was."""
    if is_secret(envs):
        return [{SECRET_SIG_KEY: SECRET_SIG_VALUE, "value": entry} for entry in envs["value"]]
    return list(envs)


# ---- the shipped stacks pass --------------------------------------------------------------


@pytest.mark.parametrize("stack", sorted(STACK_TARGETS))
def test_shipped_stack_passes_every_policy(stack: str) -> None:
    run = recorded(stack)
    assert stack_violations(run) == []


@pytest.mark.parametrize("stack", sorted(STACK_TARGETS))
def test_shipped_stack_with_every_secret_set_passes(stack: str) -> None:
    # Secrets change what reaches the containers (keys, notification URLs): still no plain one.
    run = recorded(
        stack,
        secrets={
            "aiops:openaiApiKey": FAKE_OPENAI_KEY,
            "aiops:slackWebhookUrl": "https://hooks.slack.com/services/T1/B2/" + "s" * 24,
            "aiops:discordWebhookUrl": "https://discord.com/api/webhooks/1/" + "d" * 24,
            "aiops:notifyWebhookUrl": "https://hooks.example.test/aiops?token=" + "n" * 24,
        },
    )
    assert stack_violations(run) == []


def test_the_policies_have_something_to_judge_in_each_target() -> None:
    # Guards against a vacuous pass: the checked resource types are really there.
    local = recorded("local")
    assert local.of_type(DOCKER_REMOTE_IMAGE)
    assert any(r.inputs.get("ports") for r in local.of_type(DOCKER_CONTAINER))
    assert any(r.inputs.get("envs") for r in local.of_type(DOCKER_CONTAINER))
    gcp = recorded("gcp")
    for resource_type in (CLOUD_RUN_SERVICE, ARTIFACT_REPOSITORY, DOCKER_BUILD_IMAGE):
        assert gcp.of_type(resource_type), resource_type


# ---- deliberately bad stacks are reported -------------------------------------------------


def test_local_stack_bound_to_every_interface_is_reported() -> None:
    run = recorded("local", overrides={"aiops:bindAddress": "0.0.0.0"})
    reported = [v for v in stack_violations(run) if "is published on '0.0.0.0'" in v]
    published = [r for r in run.of_type(DOCKER_CONTAINER) if r.inputs.get("ports")]
    assert published and len(reported) >= len(published)


def test_local_image_moved_to_latest_is_reported() -> None:
    # The stack's own config refuses `:latest` overrides; the pack is the second line for an
    # image set any other way (a code change, another program), judged on the same inputs.
    run = recorded("local")
    image = copy.deepcopy(run.of_type(DOCKER_REMOTE_IMAGE)[0])
    repository = str(image.plain("name")).split("@")[0].rsplit(":", 1)[0]
    image.inputs["name"] = f"{repository}:latest"
    [message] = violations_of(image.type, image.name, image.inputs)
    assert "'latest'" in message and image.name in message


def test_local_analyzer_with_a_plain_openai_key_is_reported() -> None:
    run = recorded("local")
    analyzer = copy.deepcopy(
        _only(run, DOCKER_CONTAINER, lambda r: _is_analyzer(r) and bool(r.inputs.get("envs")))
    )
    analyzer.inputs["envs"] = [
        *_entries_kept_secret(analyzer.inputs["envs"]),
        f"AIOPS_OPENAI_API_KEY={FAKE_OPENAI_KEY}",
    ]
    messages = violations_of(analyzer.type, analyzer.name, analyzer.inputs)
    assert len(messages) == 1 and "AIOPS_OPENAI_API_KEY" in messages[0]
    assert FAKE_OPENAI_KEY not in messages[0]


def test_gcp_service_misconfigurations_are_reported() -> None:
    run = recorded("gcp")
    service = copy.deepcopy(_only(run, CLOUD_RUN_SERVICE, lambda r: True))
    template = service.inputs["template"]
    template.pop("serviceAccount", None)
    template["containers"][0]["envs"] = [
        *(template["containers"][0].get("envs") or []),
        {"name": "AIOPS_OPENAI_API_KEY", "value": FAKE_OPENAI_KEY},
    ]
    messages = violations_of(service.type, service.name, service.inputs)
    assert len(messages) == 2
    assert any("serviceAccount is not set" in m for m in messages)
    assert any("AIOPS_OPENAI_API_KEY" in m for m in messages)


def test_gcp_registry_without_cleanup_is_reported() -> None:
    run = recorded("dev")
    repository = copy.deepcopy(_only(run, ARTIFACT_REPOSITORY, lambda r: True))
    repository.inputs.pop("cleanupPolicies", None)
    [message] = violations_of(repository.type, repository.name, repository.inputs)
    assert "cleanup" in message


def test_the_gcp_stack_scales_out_on_cloud_sql_and_the_rule_guards_it() -> None:
    run = recorded("gcp")
    service = copy.deepcopy(_only(run, CLOUD_RUN_SERVICE, lambda r: True))
    template = service.inputs["template"]
    # The shipped stack really scales past one instance, on its Cloud SQL URL.
    assert template["scaling"]["maxInstanceCount"] > 1
    names = [env["name"] for env in template["containers"][0]["envs"]]
    assert "AIOPS_DATABASE_URL" in names
    assert violations_of(service.type, service.name, service.inputs) == []
    # Without the database URL the same service breaks the rule.
    template["containers"][0]["envs"] = [
        env for env in template["containers"][0]["envs"] if env["name"] != "AIOPS_DATABASE_URL"
    ]
    [message] = violations_of(service.type, service.name, service.inputs)
    assert "maxInstanceCount" in message and "AIOPS_DATABASE_URL" in message
