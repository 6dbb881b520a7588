"""Run the Pulumi program under mocks, once per stack, and record what it registers.

No Pulumi CLI or cloud is involved: `pulumi.runtime.set_mocks` answers every resource
registration. What the mocks record is what a `pulumi preview` would send to the engine:
each resource's type, name, parent and inputs (camelCase; secrets still wrapped in Pulumi's
secret envelope, which is how tests prove secrecy). Stack outputs are resolved inside
`@pulumi.runtime.test`, so their values and secretness are real results of the program.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
import yaml

from stacks.config import PROJECT

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"
FAKE_GCP_PROJECT = "acme-aiops-test"
FAKE_ACCESS_TOKEN = "ya29.mock-access-token"


def is_secret(value: Any) -> bool:
    """True for a value wrapped in Pulumi's secret envelope, as the engine receives it."""
    return isinstance(value, dict) and value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE


def unwrap(value: Any) -> Any:
    """The plain value inside secret envelopes, recursively."""
    if is_secret(value):
        return unwrap(value.get("value"))
    if isinstance(value, dict):
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def contains_secret(value: Any) -> bool:
    """True when a secret envelope occurs anywhere inside the value."""
    if is_secret(value):
        return True
    if isinstance(value, dict):
        return any(contains_secret(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_secret(item) for item in value)
    return False


@dataclass
class RecordedResource:
    type: str
    name: str
    inputs: dict[str, Any]
    parent: str | None = None
    depends_on: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def plain(self, key: str, default: Any = None) -> Any:
        """An input with secret envelopes removed."""
        return unwrap(self.inputs.get(key, default))


@dataclass
class StackOutput:
    value: Any
    secret: bool


@dataclass
class StackRun:
    stack: str
    resources: list[RecordedResource]
    outputs: dict[str, StackOutput]

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> RecordedResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"expected one resource named {name!r}, found {len(matches)}")
        return matches[0]

    def inventory(self) -> list[tuple[str, str]]:
        return sorted((r.type, r.name) for r in self.resources)


def _computed_outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs a real provider would compute, so the program's Output plumbing is exercised."""
    if type_ in (
        "random:index/randomPassword:RandomPassword",
        "random:index/randomString:RandomString",
    ):
        length = int(inputs.get("length", 32))
        return {"result": ("m0ck" * length)[:length]}
    if type_ == "gcp:serviceaccount/account:Account":
        project = inputs.get("project") or FAKE_GCP_PROJECT
        return {"email": f"{inputs.get('accountId')}@{project}.iam.gserviceaccount.com"}
    if type_ == "gcp:cloudrunv2/service:Service":
        return {"uri": f"https://{inputs.get('name', name)}-abc123-ew.a.run.app"}
    if type_ == "gcp:artifactregistry/repository:Repository":
        return {"name": inputs.get("repositoryId", name)}
    if type_ == "gcp:secretmanager/secret:Secret":
        project = inputs.get("project") or FAKE_GCP_PROJECT
        secret_id = inputs.get("secretId", name)
        return {"name": f"projects/{project}/secrets/{secret_id}", "secretId": secret_id}
    if type_ == "gcp:secretmanager/secretVersion:SecretVersion":
        return {"version": "1", "name": f"{inputs.get('secret')}/versions/1"}
    if type_ == "gcp:sql/databaseInstance:DatabaseInstance":
        project = inputs.get("project") or FAKE_GCP_PROJECT
        instance = inputs.get("name", name)
        return {"connectionName": f"{project}:{inputs.get('region')}:{instance}"}
    if type_ == "docker-build:index:Image":
        tags = inputs.get("tags") or [f"{name}:mock"]
        repo = str(tags[0]).rsplit(":", 1)[0]
        return {"ref": f"{repo}@sha256:{'ab' * 32}", "digest": f"sha256:{'ab' * 32}"}
    if type_ == "docker:index/image:Image":
        image_name = inputs.get("imageName", name)
        return {"repoDigest": f"{image_name}@sha256:{'cd' * 32}", "imageId": f"sha256:{'cd' * 32}"}
    if type_ == "docker:index/remoteImage:RemoteImage":
        return {"repoDigest": f"{inputs.get('name')}", "imageId": f"sha256:{'ef' * 32}"}
    if type_ == "docker:index/network:Network":
        return {"name": inputs.get("name", name)}
    return {}


def _urn_name(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


def _urn_is_stack(urn: str) -> bool:
    return urn.split("::")[2].endswith("pulumi:pulumi:Stack")


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[RecordedResource] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        # The registration request being answered on this thread (see RecordingMonitor).
        self.pending = threading.local()

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        outputs = {**inputs, **_computed_outputs(args.typ, args.name, inputs)}
        request = getattr(self.pending, "request", None)
        parent = request.parent if request is not None and request.parent else None
        self.resources.append(
            RecordedResource(
                type=args.typ,
                name=args.name,
                inputs=inputs,
                outputs=outputs,
                parent=None if parent is None or _urn_is_stack(parent) else _urn_name(parent),
                depends_on=sorted(
                    {_urn_name(urn) for urn in (request.dependencies if request else [])}
                ),
            )
        )
        return f"{args.name}-id", outputs

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[Any]] | dict[str, Any]:
        self.calls.append((args.token, dict(args.args)))
        if args.token == "gcp:organizations/getClientConfig:getClientConfig":
            return {
                "accessToken": FAKE_ACCESS_TOKEN,
                "project": FAKE_GCP_PROJECT,
                "region": "europe-west1",
                "id": "client-config",
            }
        if args.token == "gcp:organizations/getProject:getProject":
            return {"projectId": FAKE_GCP_PROJECT, "number": "123456789012", "name": "acme"}
        return {}


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """Hands each registration request to the mocks, which record its dependencies (explicit
    `depends_on` plus those of its Output inputs, as logical names): MockResourceArgs does not
    carry them. Registrations run on a thread pool, hence the thread-local handoff."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(self, request: Any) -> Any:
        self.recording.pending.request = request
        try:
            return super().RegisterResource(request)
        finally:
            self.recording.pending.request = None


def stack_file_config(stack: str) -> dict[str, str]:
    """The plain settings of `Pulumi.<stack>.yaml` (mocks do not read stack files)."""
    path = REPO_ROOT / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    config: dict[str, str] = {}
    for key, value in (data.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            continue
        config[key] = value if isinstance(value, str) else json.dumps(value)
    return config


def run_stack(
    stack: str,
    overrides: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
) -> StackRun:
    """Run the whole program for `stack` with its stack file plus overrides; record it.

    `overrides` and `secrets` use full keys (`aiops:enableCadvisor`, `gcp:project`); secrets are
    passed as secret config, as `pulumi config set --secret` would.
    """
    from stacks.program import deploy

    ensure_event_loop()
    # A fresh root stack and config per run: both would otherwise leak between stacks.
    pulumi.runtime.settings.ROOT.set(None)
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=False, monitor=RecordingMonitor(mocks)
    )
    config = stack_file_config(stack)
    if stack_uses_gcp(config):
        config.setdefault("gcp:project", FAKE_GCP_PROJECT)
        config.setdefault("gcp:region", "europe-west1")
    for key, value in (overrides or {}).items():
        config[key] = value if isinstance(value, str) else json.dumps(value)
    config.update(secrets or {})
    pulumi.runtime.set_all_config(config, secret_keys=list((secrets or {}).keys()))

    resolved: dict[str, StackOutput] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        deploy()
        root = pulumi.runtime.get_root_resource()
        exported: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})

        async def resolve() -> None:
            for key, value in exported.items():
                output = pulumi.Output.from_input(value)
                resolved[key] = StackOutput(
                    value=await output.future(with_unknowns=False),
                    secret=bool(await output.is_secret()),
                )

        return pulumi.Output.from_input(resolve())

    program()
    return StackRun(stack=stack, resources=list(mocks.resources), outputs=resolved)


def ensure_event_loop() -> None:
    """Give Pulumi's synchronous runner a loop: async tests that ran before leave none behind."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def stack_uses_gcp(config: dict[str, str]) -> bool:
    return config.get(f"{PROJECT}:target") == "gcp"
