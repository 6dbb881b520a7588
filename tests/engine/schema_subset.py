"""The provider schema subset the stand-in providers check inputs against.

Kept as test data in tests/engine/schemas/<package>.json, one file per provider, holding only
the resource types (and the object types they reach) this project uses, with the provider
version it came from. It is extracted from the installed Python SDK of that provider: the SDK
is generated from the provider's published schema, so its argument classes carry the schema's
property names, types, required inputs and enums. `python -m tests.engine.schema_subset`
rewrites the files after an SDK upgrade; a test fails while they disagree with the SDK.

Format (a subset of Pulumi's package schema): {"name", "version", "resources": {token:
{"inputProperties": {...}, "requiredInputs": [...]}}, "types": {name: {"properties", "required"}},
"functions": {token: {...}}}, where a property is {"type": string|integer|number|boolean|array|
object, "items"?, "additionalProperties"?, "enum"?} or {"$ref": "#/types/<name>"}.
"""

from __future__ import annotations

import collections.abc
import enum
import importlib
import inspect
import json
import re
import sys
import typing
from pathlib import Path
from typing import Any

import pulumi
from pulumi import _types

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

# Every resource type and function the stacks use, by provider package (Python class paths).
USED: dict[str, dict[str, list[str]]] = {
    "docker": {
        "module": ["pulumi_docker"],
        "resources": ["Container", "Network", "RemoteImage", "Volume"],
        "functions": [],
    },
    "docker-build": {"module": ["pulumi_docker_build"], "resources": ["Image"], "functions": []},
    "random": {"module": ["pulumi_random"], "resources": ["RandomPassword"], "functions": []},
    "gcp": {
        "module": ["pulumi_gcp"],
        "resources": [
            "projects.Service",
            "artifactregistry.Repository",
            "serviceaccount.Account",
            "secretmanager.Secret",
            "secretmanager.SecretVersion",
            "secretmanager.SecretIamMember",
            "cloudrunv2.Service",
            "cloudrunv2.ServiceIamMember",
            "sql.DatabaseInstance",
            "sql.Database",
            "sql.User",
            "projects.IAMMember",
        ],
        "functions": ["organizations.get_client_config", "organizations.get_project"],
    },
}

_TOKEN = re.compile(r"__init__\(\s*'([a-z-]+:[^']+)'")
_INVOKE_TOKEN = re.compile(r"invoke(?:_output)?\('([a-z-]+:[^']+)'")


def _resolve(cls_path: str, root: Any) -> Any:
    target = root
    for part in cls_path.split("."):
        target = getattr(target, part)
    return target


class _Extractor:
    def __init__(self) -> None:
        self.types: dict[str, dict[str, Any]] = {}

    def prop(self, hint: Any, scope: dict[str, Any]) -> dict[str, Any]:
        hint = _strip_input(hint, scope)
        origin = typing.get_origin(hint)
        if hint is str:
            return {"type": "string"}
        if hint is bool:
            return {"type": "boolean"}
        if hint is int:
            return {"type": "integer"}
        if hint is float:
            return {"type": "number"}
        if hint is Any or hint is object:
            return {}
        if inspect.isclass(hint) and issubclass(hint, enum.Enum):
            return {"type": "string", "enum": sorted(str(member.value) for member in hint)}
        if origin in (collections.abc.Sequence, list):
            return {"type": "array", "items": self.prop(typing.get_args(hint)[0], scope)}
        if origin in (collections.abc.Mapping, dict):
            return {
                "type": "object",
                "additionalProperties": self.prop(typing.get_args(hint)[1], scope),
            }
        if origin is typing.Union:
            members = [self.prop(arg, scope) for arg in typing.get_args(hint)]
            return {"oneOf": members}
        if inspect.isclass(hint) and _types.is_input_type(hint):
            parts = hint.__module__.split(".")  # pulumi_gcp.cloudrunv2._inputs -> cloudrunv2.
            name = f"{parts[1]}.{hint.__name__}" if len(parts) > 2 else hint.__name__
            if name not in self.types:
                self.types[name] = {}  # break cycles first
                self.types[name] = self.object(hint)
            return {"$ref": f"#/types/{name}"}
        raise TypeError(f"unsupported type hint {hint!r}")

    def object(self, args_cls: type) -> dict[str, Any]:
        names = _types.input_type_py_to_pulumi_names(args_cls)
        hints = args_cls.__init__.__annotations__
        scope = vars(sys.modules[args_cls.__module__])
        parameters = inspect.signature(args_cls.__init__).parameters
        properties = {names[py]: self.prop(hints[py], scope) for py in names if py in hints}
        required = sorted(
            names[py]
            for py, parameter in parameters.items()
            if py in names and parameter.default is inspect.Parameter.empty
        )
        return {"properties": dict(sorted(properties.items())), "required": required}


def _strip_input(hint: Any, scope: dict[str, Any]) -> Any:
    """pulumi.Input[T] / Optional[T] -> T (the Awaitable, Output and None members go); a
    forward reference ('ContainerHealthcheckArgs') -> the class it names in the SDK module."""
    if isinstance(hint, typing.ForwardRef):
        hint = hint.__forward_arg__
    if isinstance(hint, str):
        return scope[hint.strip("'\"")]
    if typing.get_origin(hint) is typing.Union:
        members = [
            arg
            for arg in typing.get_args(hint)
            if arg is not type(None)
            and typing.get_origin(arg) not in (collections.abc.Awaitable,)
            and not _is_output(arg)
        ]
        if len(members) == 1:
            return _strip_input(members[0], scope)
        return typing.Union[tuple(members)]  # noqa: UP007 -- built at run time
    return hint


def _is_output(hint: Any) -> bool:
    if isinstance(hint, typing.ForwardRef):
        return hint.__forward_arg__.startswith("Output[")
    origin = typing.get_origin(hint) or hint
    return inspect.isclass(origin) and issubclass(origin, pulumi.Output)


def extract(package: str) -> dict[str, Any]:
    spec = USED[package]
    module = importlib.import_module(spec["module"][0])
    plugin = json.loads(Path(module.__file__).with_name("pulumi-plugin.json").read_text())
    extractor = _Extractor()
    resources: dict[str, Any] = {}
    for path in spec["resources"]:
        resource_cls = _resolve(path, module)
        token = _TOKEN.search(inspect.getsource(resource_cls._internal_init))
        if token is None:
            raise ValueError(f"no type token in {path}")
        args_cls = getattr(sys.modules[resource_cls.__module__], f"{resource_cls.__name__}Args")
        described = extractor.object(args_cls)
        resources[token.group(1)] = {
            "inputProperties": described["properties"],
            "requiredInputs": described["required"],
        }
    functions: dict[str, Any] = {}
    for path in spec["functions"]:
        function = _resolve(path, module)
        token = _INVOKE_TOKEN.search(inspect.getsource(function))
        if token is None:
            raise ValueError(f"no invoke token in {path}")
        functions[token.group(1)] = {"python": path}
    return {
        "name": plugin["name"],
        "version": plugin["version"],
        "source": f"Python SDK {spec['module'][0]} {plugin['version']} (generated from the "
        "provider's published schema)",
        "resources": dict(sorted(resources.items())),
        "functions": functions,
        "types": dict(sorted(extractor.types.items())),
    }


def schema_path(package: str) -> Path:
    return SCHEMA_DIR / f"{package}.json"


def load(package: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(schema_path(package).read_text())
    return loaded


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=1, sort_keys=False) + "\n"


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for package in USED:
        schema_path(package).write_text(render(extract(package)))
        print(f"wrote {schema_path(package)}")


if __name__ == "__main__":
    main()
