"""The stand-in providers' input checks are real: the schema subset matches the installed SDKs,
and a missing required input, an unknown property, a wrong type or a value outside an enum is
refused (the engine turns these into a failed preview, as with the real provider)."""

from __future__ import annotations

import pytest

from tests.engine import schema_subset
from tests.engine.standin_provider import UNKNOWN, SchemaChecker, computed_outputs


@pytest.mark.parametrize("package", sorted(schema_subset.USED))
def test_the_kept_schema_subset_is_what_the_installed_sdk_says(package: str) -> None:
    kept = schema_subset.load(package)
    assert kept == schema_subset.extract(package), (
        f"tests/engine/schemas/{package}.json is stale: `python -m tests.engine.schema_subset`"
    )
    assert kept["version"] and kept["resources"]


def test_every_resource_type_of_the_stacks_is_in_a_subset() -> None:
    """The token of every resource class the stacks construct is covered (else the stand-in
    would refuse it as unknown, which the engine tests would show)."""
    tokens = {
        token
        for package in schema_subset.USED
        for token in schema_subset.load(package)["resources"]
    }
    assert "docker:index/container:Container" in tokens
    assert "gcp:cloudrunv2/service:Service" in tokens
    assert "random:index/randomPassword:RandomPassword" in tokens


@pytest.fixture
def docker() -> SchemaChecker:
    return SchemaChecker(schema_subset.load("docker"))


def test_valid_container_inputs_pass(docker: SchemaChecker) -> None:
    inputs = {
        "image": "sha256:abc",
        "name": "aiops-local-grafana",
        "envs": ["A=1"],
        "ports": [{"internal": 3000, "external": 3000, "ip": "127.0.0.1"}],
        "healthcheck": {"tests": ["CMD", "true"], "interval": "15s"},
        "logOpts": {"max-size": "10m"},
        "restart": "unless-stopped",
        "wait": True,
        "waitTimeout": 120,
    }
    assert docker.check("docker:index/container:Container", inputs) == []


@pytest.mark.parametrize(
    ("inputs", "path", "reason"),
    [
        ({"name": "x"}, "image", "missing required property"),
        ({"image": "i", "imagee": "typo"}, "imagee", "unknown property"),
        ({"image": "i", "ports": [{"internal": "3000"}]}, "ports[0].internal", "expected integer"),
        ({"image": "i", "ports": [{"external": 1}]}, "ports[0].internal", "missing required"),
        ({"image": "i", "healthcheck": ["CMD"]}, "healthcheck", "expected an object"),
        ({"image": "i", "logOpts": {"max-size": 10}}, "logOpts.max-size", "expected string"),
        ({"image": "i", "wait": "yes"}, "wait", "expected boolean"),
    ],
)
def test_bad_container_inputs_are_refused_naming_the_property(
    docker: SchemaChecker, inputs: dict[str, object], path: str, reason: str
) -> None:
    failures = docker.check("docker:index/container:Container", inputs)
    assert any(prop == path and reason in why for prop, why in failures), failures


def test_unknown_values_of_a_preview_are_not_judged(docker: SchemaChecker) -> None:
    assert docker.check("docker:index/container:Container", {"image": UNKNOWN}) == []


def test_an_enum_outside_its_values_is_refused() -> None:
    checker = SchemaChecker(schema_subset.load("docker-build"))
    failures = checker.check("docker-build:index:Image", {"push": False, "network": "bridge"})
    assert ("network", "'bridge' is not one of default, host, none") in failures


def test_a_resource_type_outside_the_subset_is_refused(docker: SchemaChecker) -> None:
    assert docker.check("docker:index/service:Service", {}) != []


def test_computed_outputs_are_plausible() -> None:
    account = computed_outputs(
        "gcp:serviceaccount/account:Account", "run", {"accountId": "aiops-gcp-run"}
    )
    assert account["email"] == "aiops-gcp-run@offline-project.iam.gserviceaccount.com"
    first = computed_outputs("random:index/randomPassword:RandomPassword", "p", {"length": 24})
    second = computed_outputs("random:index/randomPassword:RandomPassword", "p", {"length": 24})
    assert len(first["result"]) == 24 and first != second
