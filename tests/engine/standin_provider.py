"""A stand-in resource provider plugin for docker, random, gcp (and docker-build for `up`).

The real providers cannot be built here (their code depends on patched git submodules) and
would need a Docker engine or a cloud anyway. This is a real plugin the Pulumi engine starts
(`pulumi-resource-<package>` on PATH runs `python -m tests.engine.standin_provider <package>`):
it speaks the provider gRPC protocol, checks every input of every resource against the schema
subset of that provider (tests/engine/schemas/<package>.json: unknown properties, required
inputs, types, enums), answers previews and creates with plausible outputs (ids, computed
fields, unknown during preview as a real provider's are) and appends each request it was asked
to answer to $AIOPS_STANDIN_LOG (JSON lines), which the engine tests read back.

Used only by tests/engine and `make preview-offline`; never by the stacks themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import string
import sys
import threading
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from tests.engine import schema_subset

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's "computed" sentinel
FAKE_PROJECT = "offline-project"
FAKE_REGION = "europe-west1"
FAKE_NUMBER = "000000000000"
_LOG_LOCK = threading.Lock()


def _to_dict(message: struct_pb2.Struct) -> dict[str, Any]:
    value: dict[str, Any] = json_format.MessageToDict(message)
    return value


def _to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(value)
    return message


def _type_token(urn: str) -> str:
    # urn:pulumi:<stack>::<project>::<parent types$>...<type>::<name>
    return urn.split("::")[2].split("$")[-1]


def _name(urn: str) -> str:
    return urn.split("::")[-1]


def record(entry: dict[str, Any]) -> None:
    path = os.environ.get("AIOPS_STANDIN_LOG")
    if not path:
        return
    with _LOG_LOCK, open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry, sort_keys=True) + "\n")


class SchemaChecker:
    """Check inputs against the schema subset; a list of (property path, reason)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema

    def check(self, token: str, inputs: dict[str, Any]) -> list[tuple[str, str]]:
        resource = self.schema["resources"].get(token)
        if resource is None:
            return [("", f"resource type {token} is not in the {self.schema['name']} schema")]
        described = {
            "properties": resource["inputProperties"],
            "required": resource["requiredInputs"],
        }
        return self._object(described, inputs, "")

    def _object(
        self, described: dict[str, Any], value: dict[str, Any], path: str
    ) -> list[tuple[str, str]]:
        failures: list[tuple[str, str]] = []
        properties = described["properties"]
        for key in described["required"]:
            if value.get(key) is None:
                failures.append((f"{path}{key}", "missing required property"))
        for key, item in value.items():
            if key.startswith("__"):
                continue  # engine/SDK bookkeeping (__defaults, __meta)
            if key not in properties:
                failures.append((f"{path}{key}", "unknown property"))
                continue
            failures += self._value(properties[key], item, f"{path}{key}")
        return failures

    def _value(self, prop: dict[str, Any], value: Any, path: str) -> list[tuple[str, str]]:
        if value is None or value == UNKNOWN:
            return []
        if "$ref" in prop:
            if not isinstance(value, dict):
                return [(path, f"expected an object, got {type(value).__name__}")]
            described = self.schema["types"][prop["$ref"].removeprefix("#/types/")]
            return self._object(described, value, f"{path}.")
        kind = prop.get("type")
        checks = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int | float)
            and not isinstance(value, bool)
            and float(value).is_integer(),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
            "array": isinstance(value, list),
            "object": isinstance(value, dict),
        }
        if kind is None:
            return []
        if not checks[kind]:
            return [(path, f"expected {kind}, got {type(value).__name__} {value!r:.40}")]
        if "enum" in prop and value not in prop["enum"]:
            return [(path, f"{value!r} is not one of {', '.join(prop['enum'])}")]
        failures: list[tuple[str, str]] = []
        if kind == "array":
            for index, item in enumerate(value):
                failures += self._value(prop["items"], item, f"{path}[{index}]")
        if kind == "object" and "additionalProperties" in prop:
            for key, item in value.items():
                failures += self._value(prop["additionalProperties"], item, f"{path}.{key}")
        return failures


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def computed_outputs(token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """What the real provider computes for the types the project uses (deterministic where
    the real one is, random where the real one is: passwords)."""
    project = inputs.get("project") or FAKE_PROJECT
    if token == "random:index/randomPassword:RandomPassword":
        alphabet = string.ascii_letters + string.digits
        length = int(inputs.get("length", 16))
        return {"result": "".join(secrets.choice(alphabet) for _ in range(length))}
    if token == "docker:index/remoteImage:RemoteImage":
        digest = _digest(inputs.get("name"))
        return {
            "imageId": f"sha256:{digest}",
            "repoDigest": f"{inputs.get('name')}@sha256:{digest}",
        }
    if token == "docker:index/network:Network":
        return {"driver": "bridge", "scope": "local"}
    if token == "docker:index/volume:Volume":
        return {
            "driver": "local",
            "mountpoint": f"/var/lib/docker/volumes/{inputs.get('name')}/_data",
        }
    if token == "docker:index/container:Container":
        return {"hostname": _digest(name)[:12], "exitCode": 0}
    if token == "docker-build:index:Image":
        digest = f"sha256:{_digest(inputs.get('tags'), inputs.get('context'))}"
        tags = inputs.get("tags") or [name]
        repo = str(tags[0]).rsplit(":", 1)[0]
        return {"digest": digest, "ref": f"{repo}@{digest}" if inputs.get("push") else tags[0]}
    if token == "gcp:serviceaccount/account:Account":
        email = f"{inputs.get('accountId')}@{project}.iam.gserviceaccount.com"
        return {"email": email, "member": f"serviceAccount:{email}", "uniqueId": "1" * 21}
    if token == "gcp:cloudrunv2/service:Service":
        service = inputs.get("name", name)
        return {"uri": f"https://{service}-abc123xyz-ew.a.run.app", "uid": _digest(service)[:32]}
    if token == "gcp:artifactregistry/repository:Repository":
        repository = inputs.get("repositoryId", name)
        location = inputs.get("location") or FAKE_REGION
        return {"name": f"projects/{project}/locations/{location}/repositories/{repository}"}
    if token == "gcp:secretmanager/secret:Secret":
        return {"name": f"projects/{project}/secrets/{inputs.get('secretId', name)}"}
    if token == "gcp:sql/databaseInstance:DatabaseInstance":
        instance = inputs.get("name", name)
        region = inputs.get("region") or FAKE_REGION
        return {
            "connectionName": f"{project}:{region}:{instance}",
            "selfLink": f"https://sqladmin.googleapis.com/sql/v1beta4/projects/{project}"
            f"/instances/{instance}",
        }
    if token == "gcp:secretmanager/secretVersion:SecretVersion":
        return {"version": "1", "name": f"{inputs.get('secret')}/versions/1"}
    if token.endswith("IamMember"):
        return {"etag": f"BwY{_digest(inputs)[:8]}="}
    return {}


def _id_for(token: str, name: str, inputs: dict[str, Any]) -> str:
    if token == "gcp:secretmanager/secret:Secret":
        return f"projects/{FAKE_PROJECT}/secrets/{inputs.get('secretId', name)}"
    if token.startswith("docker:"):
        return _digest(token, name)[:64]
    return f"{name}-{_digest(token, name)[:8]}"


class StandinProvider(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, package: str, schema: dict[str, Any]) -> None:
        self.package = package
        self.schema = schema
        self.checker = SchemaChecker(schema)

    def _record(self, method: str, urn: str, **fields: Any) -> None:
        record({"package": self.package, "method": method, "urn": urn, **fields})

    # ---- plugin life cycle --------------------------------------------------------------
    def GetPluginInfo(self, request: Any, context: Any) -> Any:
        return plugin_pb2.PluginInfo(version=self.schema["version"])

    def Handshake(self, request: Any, context: Any) -> Any:
        return provider_pb2.ProviderHandshakeResponse(
            accept_secrets=False, accept_resources=True, accept_outputs=False
        )

    def GetSchema(self, request: Any, context: Any) -> Any:
        return provider_pb2.GetSchemaResponse(schema=json.dumps(self.schema))

    def CheckConfig(self, request: Any, context: Any) -> Any:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: Any, context: Any) -> Any:
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(self, request: Any, context: Any) -> Any:
        self._record("Configure", "", config=dict(request.variables))
        return provider_pb2.ConfigureResponse(
            acceptSecrets=False, supportsPreview=True, acceptResources=True
        )

    def Attach(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()

    def Cancel(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()

    # ---- resources -----------------------------------------------------------------------
    def Check(self, request: Any, context: Any) -> Any:
        token = _type_token(request.urn)
        news = _to_dict(request.news)
        failures = self.checker.check(token, news)
        self._record(
            "Check", request.urn, type=token, inputs=news, failures=[list(f) for f in failures]
        )
        return provider_pb2.CheckResponse(
            inputs=request.news,
            failures=[
                provider_pb2.CheckFailure(property=prop, reason=f"{self.package}: {reason}")
                for prop, reason in failures
            ],
        )

    def Diff(self, request: Any, context: Any) -> Any:
        olds = _to_dict(request.old_inputs) if request.HasField("old_inputs") else {}
        news = _to_dict(request.news)
        changed = sorted(k for k in set(olds) | set(news) if olds.get(k) != news.get(k))
        self._record("Diff", request.urn, type=_type_token(request.urn), changed=changed)
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME
            if changed
            else provider_pb2.DiffResponse.DIFF_NONE,
            diffs=changed,
        )

    def _outputs(self, urn: str, inputs: dict[str, Any], preview: bool) -> dict[str, Any]:
        token = _type_token(urn)
        computed = computed_outputs(token, _name(urn), inputs)
        if preview:
            computed = {key: UNKNOWN for key in computed}
        return {**inputs, **computed}

    def Create(self, request: Any, context: Any) -> Any:
        token = _type_token(request.urn)
        inputs = _to_dict(request.properties)
        outputs = self._outputs(request.urn, inputs, request.preview)
        self._record("Create", request.urn, type=token, inputs=inputs, preview=request.preview)
        resource_id = "" if request.preview else _id_for(token, _name(request.urn), inputs)
        return provider_pb2.CreateResponse(id=resource_id, properties=_to_struct(outputs))

    def Read(self, request: Any, context: Any) -> Any:
        self._record("Read", request.urn, type=_type_token(request.urn))
        return provider_pb2.ReadResponse(
            id=request.id, properties=request.properties, inputs=request.inputs
        )

    def Update(self, request: Any, context: Any) -> Any:
        token = _type_token(request.urn)
        inputs = _to_dict(request.news)
        olds = _to_dict(request.olds)
        outputs = self._outputs(request.urn, inputs, request.preview)
        # Keep what was computed at creation (ids, generated passwords) across updates.
        for key, value in olds.items():
            if outputs.get(key) == UNKNOWN or (key not in inputs and key in outputs):
                outputs[key] = value
        self._record("Update", request.urn, type=token, inputs=inputs, preview=request.preview)
        return provider_pb2.UpdateResponse(properties=_to_struct(outputs))

    def Delete(self, request: Any, context: Any) -> Any:
        self._record("Delete", request.urn, type=_type_token(request.urn))
        return empty_pb2.Empty()

    def Invoke(self, request: Any, context: Any) -> Any:
        args = _to_dict(request.args)
        self._record("Invoke", "", token=request.tok, args=args)
        if request.tok == "gcp:organizations/getClientConfig:getClientConfig":
            result = {
                "accessToken": "ya29.offline-stand-in-token",
                "id": "client-config",
                "project": FAKE_PROJECT,
                "region": FAKE_REGION,
                "zone": f"{FAKE_REGION}-b",
            }
            return provider_pb2.InvokeResponse(**{"return": _to_struct(result)})
        if request.tok == "gcp:organizations/getProject:getProject":
            project = args.get("projectId") or FAKE_PROJECT
            result = {"id": f"projects/{project}", "projectId": project, "number": FAKE_NUMBER}
            return provider_pb2.InvokeResponse(**{"return": _to_struct(result)})
        return provider_pb2.InvokeResponse(
            failures=[provider_pb2.CheckFailure(reason=f"{request.tok} is not stood in")]
        )


def serve(package: str) -> None:
    provider = StandinProvider(package, schema_subset.load(package))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(provider, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The engine reads the port from the first line of stdout.
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()
    server.wait_for_termination()


if __name__ == "__main__":
    serve(sys.argv[1])
