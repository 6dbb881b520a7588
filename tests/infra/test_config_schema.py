"""Pulumi.yaml's `config:` schema agrees with every typed config dataclass of stacks/.

The CLI applies the schema's defaults; mocks do not, so the dataclasses repeat them. Rather
than listing keys here, the test discovers every frozen dataclass with a `load` classmethod in
the stacks package (shared, local, gcp and whatever comes next), loads it while recording
which `pulumi.Config` getter reads which `aiops:` key, and checks:
- every key read is declared, every declared key is read;
- the declared type matches the getter (get -> string, get_int -> integer, get_bool ->
  boolean, get_object -> array);
- the optional secrets (stacks.config.SECRET_KEYS) are read as secrets and are NOT declared:
  the engine refuses a declared secret with a default unless every stack sets it (see
  stacks/config.py); a plain-text value of one is refused by the program instead;
- loading with nothing set equals loading with every key set to its schema default, i.e. the
  code's fallbacks are the schema's defaults.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pulumi.runtime
import pytest
import yaml

import stacks
from stacks.config import PROJECT, SECRET_KEYS, ConfigError, load_target
from tests.infra.harness import FAKE_GCP_PROJECT, REPO_ROOT

GETTER_TYPES = {
    "get": "string",
    "require": "string",
    "get_secret": "string",
    "require_secret": "string",
    "get_int": "integer",
    "require_int": "integer",
    "get_secret_int": "integer",
    "require_secret_int": "integer",
    "get_bool": "boolean",
    "require_bool": "boolean",
    "get_secret_bool": "boolean",
    "require_secret_bool": "boolean",
    "get_float": "number",
    "require_float": "number",
    "get_object": "array",
    "require_object": "array",
    "get_secret_object": "array",
    "require_secret_object": "array",
}
# Provider settings some loaders need to get past their own checks (not in the aiops schema).
PROVIDER_CONFIG = {"gcp:project": FAKE_GCP_PROJECT, "gcp:region": "europe-west1"}
STACK_FOR_LOADERS = "schema-check"


def schema() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())
    return {
        key.removeprefix(f"{PROJECT}:"): spec
        for key, spec in (document.get("config") or {}).items()
        if key.startswith(f"{PROJECT}:")
    }


def config_dataclasses() -> list[type]:
    """Every frozen dataclass of the stacks package that loads itself from pulumi.Config."""
    found: dict[str, type] = {}
    for module_info in pkgutil.walk_packages(stacks.__path__, prefix="stacks."):
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not dataclasses.is_dataclass(cls):
                continue
            if isinstance(inspect.getattr_static(cls, "load", None), classmethod):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[name] for name in sorted(found)]


def loaders() -> list[tuple[str, Callable[[], Any]]]:
    def bind(cls: type) -> Callable[[], Any]:
        load = cls.load  # type: ignore[attr-defined]
        parameters = inspect.signature(load).parameters
        # Loaders may take the stack name (per-stack naming); nothing else is required.
        if "stack" in parameters:
            return lambda: load(stack=STACK_FOR_LOADERS)
        return lambda: load()

    found = [(f"{c.__module__}.{c.__qualname__}", bind(c)) for c in config_dataclasses()]
    return [("stacks.config.load_target", load_target), *found]


class ConfigSpy:
    """Records (getter, key) for every read of the `aiops` config bag, outermost call only."""

    def __init__(self) -> None:
        self.reads: dict[str, set[str]] = defaultdict(set)
        self._depth = 0

    def wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        spy = self

        def recording(config: pulumi.Config, key: str, *args: Any, **kwargs: Any) -> Any:
            if spy._depth == 0 and config.name == PROJECT:
                spy.reads[key].add(name)
            spy._depth += 1
            try:
                return original(config, key, *args, **kwargs)
            finally:
                spy._depth -= 1

        return recording


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConfigSpy]:
    recorder = ConfigSpy()
    for name in GETTER_TYPES:
        original = getattr(pulumi.Config, name, None)
        if original is not None:
            monkeypatch.setattr(pulumi.Config, name, recorder.wrap(name, original))
    yield recorder


def load_all(config: dict[str, str], secret_keys: list[str] | None = None) -> dict[str, Any]:
    pulumi.runtime.set_all_config({**PROVIDER_CONFIG, **config}, secret_keys=secret_keys or [])
    try:
        return {name: normalise(load()) for name, load in loaders()}
    finally:
        pulumi.runtime.set_all_config({})


def normalise(value: Any) -> Any:
    """Comparable form of a loaded config: Outputs (secrets) compare as 'an Output'."""
    if isinstance(value, pulumi.Output):
        return "<Output>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: normalise(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    return value


def as_config_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def test_the_discovery_finds_every_target_config() -> None:
    names = {f"{c.__module__}.{c.__qualname__}" for c in config_dataclasses()}
    assert "stacks.config.AnalyzerConfig" in names
    assert "stacks.local_config.LocalConfig" in names
    gcp_module = REPO_ROOT / "stacks" / "gcp_config.py"
    if gcp_module.exists():
        assert any(name.startswith("stacks.gcp_config.") for name in names)


def test_every_declared_key_is_typed_and_described() -> None:
    for key, spec in schema().items():
        assert isinstance(spec, dict), f"{PROJECT}:{key} needs a typed declaration"
        assert spec.get("type") in ("string", "integer", "boolean", "array"), key
        assert spec.get("description"), f"{PROJECT}:{key} has no description"
        assert "default" in spec, f"{PROJECT}:{key} has no default (mocks need one in code)"
        if spec["type"] == "array":
            assert "items" in spec, f"{PROJECT}:{key} is an array without items"


def test_keys_types_and_secrecy_agree(spy: ConfigSpy) -> None:
    declared = schema()
    defaults = {f"{PROJECT}:{k}": as_config_value(s["default"]) for k, s in declared.items()}
    load_all({})
    # Again with every default set, then with the secrets filled in: loaders may read a key
    # (or read it as a secret) only once it, or another key, has a value.
    load_all(defaults)
    secrets = {f"{PROJECT}:{k}": "sample-secret" for k in SECRET_KEYS}
    # The external token is read only with the URL it belongs to.
    secrets[f"{PROJECT}:externalAnalyzerUrl"] = "https://analyzer.example.com"
    load_all({**defaults, **secrets}, secret_keys=[f"{PROJECT}:{k}" for k in SECRET_KEYS])
    reads = dict(spy.reads)

    assert sorted(set(SECRET_KEYS) & set(declared)) == [], "secrets must stay undeclared"
    known = set(declared) | set(SECRET_KEYS)
    assert sorted(set(reads) - known) == [], "read by the code but not in Pulumi.yaml"
    assert sorted(known - set(reads)) == [], "in Pulumi.yaml/SECRET_KEYS but read by no loader"
    for key, getters in reads.items():
        reads_secret = any("secret" in getter for getter in getters)
        assert reads_secret == (key in SECRET_KEYS), f"{PROJECT}:{key} secrecy"
        if key in SECRET_KEYS:
            continue
        types = {GETTER_TYPES[g] for g in getters if g not in ("get", "require")} or {"string"}
        assert types == {declared[key]["type"]}, f"{PROJECT}:{key} read via {sorted(getters)}"


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_a_secret_set_in_plain_text_is_refused_naming_the_key(key: str) -> None:
    plain = {f"{PROJECT}:{key}": "sk-plain-text-value"}
    if key == "externalWebhookToken":  # read only with the URL it belongs to
        plain[f"{PROJECT}:externalAnalyzerUrl"] = "https://analyzer.example.com"
    with pytest.raises(ConfigError, match=f"{PROJECT}:{key} is stored in plain text"):
        load_all(plain)
    # The same value set encrypted loads.
    load_all(plain, secret_keys=[f"{PROJECT}:{key}"])


def test_code_defaults_equal_schema_defaults() -> None:
    declared = schema()
    unset = load_all({})
    with_defaults = load_all(
        {f"{PROJECT}:{k}": as_config_value(s["default"]) for k, s in declared.items()}
    )
    for name in unset:
        assert unset[name] == with_defaults[name], f"{name}: code fallbacks != Pulumi.yaml defaults"


def test_the_check_catches_a_drifted_default() -> None:
    """The comparison above is sensitive: a schema default the code does not share shows."""
    declared = schema()
    drifted = {f"{PROJECT}:{k}": as_config_value(s["default"]) for k, s in declared.items()}
    drifted[f"{PROJECT}:grafanaPort"] = "3001"
    assert load_all({}) != load_all(drifted)


def test_stack_files_hold_no_secrets_and_only_declared_keys() -> None:
    declared = schema()
    for path in sorted(REPO_ROOT.glob("Pulumi.*.yaml")):
        config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        for key, value in config.items():
            namespace, _, name = key.partition(":")
            if namespace != PROJECT:
                continue
            assert name in declared or name in SECRET_KEYS, f"{path.name}: {key} undeclared"
            if name in SECRET_KEYS:
                assert isinstance(value, dict) and "secure" in value, f"{path.name}: {key} plain"
