"""The policy pack as the Pulumi CLI runs it.

`policy/__main__.py` is parsed, never imported (constructing PolicyPack starts a server). The
pack is then started the way the CLI's Python host starts it (`python policy/`) and asked over
its real gRPC interface, with resource inputs encoded as the engine encodes them, secret markers
included: this is the path `pulumi preview --policy-pack policy` takes, minus the CLI.
"""

from __future__ import annotations

import ast
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

from policy import policies
from policy.policies import SECRET_SIG, SIG_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]
PACK_DIR = REPO_ROOT / "policy"
FAKE_OPENAI_KEY = "sk-proj-" + "Z9y8X7w6" * 4


def _defined_policies() -> set[str]:
    """Names of the module-level ResourceValidationPolicy objects in policies.py."""
    return {
        name
        for name, value in vars(policies).items()
        if isinstance(value, ResourceValidationPolicy) and not name.startswith("_")
    }


def _pack_call() -> ast.Call:
    tree = ast.parse((PACK_DIR / "__main__.py").read_text())
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "PolicyPack"
    ]
    assert len(calls) == 1, "policy/__main__.py must construct PolicyPack exactly once"
    return calls[0]


def test_main_constructs_the_pack_with_every_policy_mandatory() -> None:
    keywords = {keyword.arg: keyword.value for keyword in _pack_call().keywords}
    listed = keywords["policies"]
    assert isinstance(listed, ast.List)
    names = [element.id for element in listed.elts if isinstance(element, ast.Name)]
    assert len(names) == len(listed.elts) == len(set(names))
    assert set(names) == _defined_policies()
    assert ast.unparse(keywords["enforcement_level"]) == "EnforcementLevel.MANDATORY"


def test_main_holds_only_imports_and_the_constructor() -> None:
    tree = ast.parse((PACK_DIR / "__main__.py").read_text())
    body = [node for node in tree.body if not isinstance(node, ast.Import | ast.ImportFrom)]
    docstring, constructor = body
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    assert isinstance(constructor, ast.Expr) and isinstance(constructor.value, ast.Call)
    assert ast.unparse(constructor.value.func) == "PolicyPack"


def test_every_check_has_one_mandatory_policy_with_a_unique_name() -> None:
    defined = [getattr(policies, name) for name in _defined_policies()]
    assert len({policy.name for policy in defined}) == len(defined) == len(policies.CHECKS)
    assert all(policy.enforcement_level is EnforcementLevel.MANDATORY for policy in defined)


def test_pack_project_file_uses_the_locked_environment() -> None:
    project = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    venv = (PACK_DIR / project["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == REPO_ROOT / ".venv"
    assert list(venv.glob("lib/python3*/site-packages/pulumi_policy/__init__.py"))


# ---- the running pack ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pack() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The pack process, started as the CLI starts it; stopped by its PID afterwards."""
    process = subprocess.Popen(
        [sys.executable, str(PACK_DIR)],
        cwd=PACK_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        first_line = process.stdout.readline() if ready else b""
        if not first_line.strip().isdigit():
            process.kill()
            _, stderr = process.communicate(timeout=10)
            pytest.fail(f"policy pack did not print its port: {first_line!r} {stderr.decode()}")
        channel = grpc.insecure_channel(f"127.0.0.1:{int(first_line)}")
        try:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
        finally:
            channel.close()
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def analyze(
    stub: analyzer_pb2_grpc.AnalyzerStub, resource_type: str, name: str, props: dict[str, Any]
) -> dict[str, list[str]]:
    """Violations per policy name for one resource, as the engine would receive them."""
    properties = struct_pb2.Struct()
    json_format.ParseDict(props, properties)
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type,
        name=name,
        urn=f"urn:pulumi:test::aiops::{resource_type}::{name}",
        properties=properties,
    )
    found: dict[str, list[str]] = {}
    for diagnostic in stub.Analyze(request, timeout=30).diagnostics:
        found.setdefault(diagnostic.policyName, []).append(diagnostic.message)
    return found


def secret(value: Any) -> dict[str, Any]:
    return {SIG_KEY: SECRET_SIG, "value": value}


def test_pack_announces_its_policies_as_mandatory(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = pack.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "aiops-guardrails"
    assert {p.name for p in info.policies} == {
        getattr(policies, name).name for name in _defined_policies()
    }
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}


def test_pack_reports_a_bad_container(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    found = analyze(
        pack,
        policies.DOCKER_CONTAINER,
        "grafana",
        {
            "image": "grafana/grafana:latest",
            "envs": [f"AIOPS_OPENAI_API_KEY={FAKE_OPENAI_KEY}"],
            "ports": [{"internal": 3000, "external": 3000, "ip": "0.0.0.0"}],
        },
    )
    assert set(found) == {"image-pinned", "no-plain-secret-env", "local-ports-not-public"}
    assert "AIOPS_OPENAI_API_KEY" in found["no-plain-secret-env"][0]
    assert FAKE_OPENAI_KEY not in str(found)


def test_pack_sees_secret_markers_the_engine_sends(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    # pulumi-policy alone would hand `validate` these values unmarked, and the secret token
    # would be reported as a plain credential; keep_secret_markers() prevents that.
    found = analyze(
        pack,
        policies.DOCKER_CONTAINER,
        "analyzer",
        {
            "image": "sha256:" + "ef" * 32,
            "envs": [
                secret("AIOPS_WEBHOOK_TOKEN=generated-token"),
                secret(f"AIOPS_OPENAI_API_KEY={FAKE_OPENAI_KEY}"),
                "AIOPS_LLM_MODEL=gpt-4o-mini",
            ],
            "ports": [{"internal": 8080, "external": 8080, "ip": "127.0.0.1"}],
        },
    )
    assert found == {}


def test_pack_judges_preview_unknowns_as_unknown(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown-string sentinel
    found = analyze(
        pack,
        policies.CLOUD_RUN_SERVICE,
        "analyzer",
        {
            "template": {
                "serviceAccount": unknown,
                "scaling": {"maxInstanceCount": 1},
                "containers": [
                    {"image": unknown, "envs": [{"name": "AIOPS_WEBHOOK_TOKEN", "value": "x"}]}
                ],
            }
        },
    )
    # Only the literal credential is judged; the computed image and account are not guessed.
    assert set(found) == {"no-plain-secret-env"}


def test_pack_reports_gcp_misconfigurations(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    service = analyze(
        pack,
        policies.CLOUD_RUN_SERVICE,
        "analyzer",
        {
            "template": {
                "serviceAccount": "123-compute@developer.gserviceaccount.com",
                "containers": [{"image": "europe-docker.pkg.dev/p/r/analyzer:latest"}],
            }
        },
    )
    assert set(service) == {"cloud-run-dedicated-service-account", "image-pinned"}
    registry = analyze(pack, policies.ARTIFACT_REPOSITORY, "registry", {"format": "DOCKER"})
    assert set(registry) == {"registry-cleanup-policy"}
