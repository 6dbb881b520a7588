"""The platform's guardrails: plain check functions and the CrossGuard policies that run them.

Every check has the shape ``check_xxx(resource_type, name, props) -> list[str]`` and returns the
violation messages for one resource. ``props`` are the resource's inputs in camelCase, as the
Pulumi engine sends them to a policy pack and as the test harness records them under mocks, so
the same code judges a real ``pulumi preview --policy-pack policy`` and a mocked program run.

In ``props`` a Pulumi secret appears either as the engine's wire envelope (a dict carrying the
secret signature; this is what the mocks record) or as ``pulumi_policy.Secret`` (what the pack
sees at run time, see ``keep_secret_markers``). A value computed during preview is one of
pulumi-policy's "unknown" sentinel strings; checks never judge an unknown value.

Messages name the resource and the setting, never a secret's value.

This module imports nothing from its own directory: the CLI runs the pack as ``python policy/``
(so it is imported as ``policies``) while the tests import it as ``policy.policies``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pulumi_policy.policy as pulumi_policy_module
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

Props = Mapping[str, Any]
Check = Callable[[str, str, Props], list[str]]

# Pulumi's wire format marks special values with this key; the secret signature is fixed by
# the engine (sdk/go/common/resource/properties.go).
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (a type tag, not a password)
_UNKNOWNS = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)

# Resource types the checks look at (Pulumi type tokens).
DOCKER_CONTAINER = "docker:index/container:Container"
DOCKER_REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
DOCKER_IMAGE = "docker:index/image:Image"
DOCKER_BUILD_IMAGE = "docker-build:index:Image"
CLOUD_RUN_SERVICE = "gcp:cloudrunv2/service:Service"
CLOUD_RUN_JOB = "gcp:cloudrunv2/job:Job"
ARTIFACT_REPOSITORY = "gcp:artifactregistry/repository:Repository"


# ---- values as the engine or the mocks present them ----------------------------------------


def is_secret(value: Any) -> bool:
    """True for a Pulumi secret, in the wire envelope or as pulumi-policy's `Secret`."""
    if isinstance(value, Secret):
        return True
    return isinstance(value, Mapping) and value.get(SIG_KEY) == SECRET_SIG


def is_unknown(value: Any) -> bool:
    """True for a value Pulumi cannot know during preview (computed by a provider)."""
    return isinstance(value, str) and value in _UNKNOWNS


def reveal(value: Any) -> Any:
    """The value with secret markers removed, recursively (for checks that ignore secrecy)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, Mapping):
        return {key: reveal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [reveal(item) for item in value]
    return value


def _unwrap_once(value: Any) -> Any:
    """The value inside one secret marker; markers nested deeper stay for the checks to see."""
    if isinstance(value, Secret):
        return value.value
    if is_secret(value):
        return value.get("value")
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    value = _unwrap_once(value)
    return value if isinstance(value, Mapping) else {}


def _items(value: Any) -> list[Any]:
    """A list input as a list (None, unknown or a non-list count as empty)."""
    value = _unwrap_once(value)
    return list(value) if isinstance(value, list | tuple) else []


def _text(value: Any) -> str | None:
    """A known string input (secrets revealed), or None when unset, unknown or not a string."""
    value = reveal(value)
    if not isinstance(value, str) or is_unknown(value):
        return None
    return value


# ---- image references ---------------------------------------------------------------------


def image_pin_problem(ref: str) -> str | None:
    """Why an image reference is not pinned, or None for a digest or an explicit non-latest tag."""
    if not ref.strip():
        return "is empty"
    if "@" in ref or ref.startswith("sha256:"):
        return None  # a digest (repo@sha256:...) or an image ID: immutable
    last_segment = ref.rsplit("/", 1)[-1]  # a registry port (host:5000/...) is not a tag
    if ":" not in last_segment:
        return "has no tag, so Docker resolves it to the moving tag 'latest'"
    tag = last_segment.rsplit(":", 1)[1]
    if not tag or tag.lower() == "latest":
        return "uses the moving tag 'latest'"
    return None


def _cloud_run_templates(resource_type: str, props: Props) -> list[Mapping[str, Any]]:
    """The revision/task templates of a Cloud Run v2 service or job."""
    template = _mapping(props.get("template"))
    if resource_type == CLOUD_RUN_SERVICE:
        return [template]
    if resource_type == CLOUD_RUN_JOB:
        return [_mapping(template.get("template"))]
    return []


def _image_refs(resource_type: str, props: Props) -> list[tuple[str, Any]]:
    """(setting path, value) of every image reference a resource deploys or publishes."""
    if resource_type == DOCKER_REMOTE_IMAGE:
        return [("name", props.get("name"))]
    if resource_type == DOCKER_CONTAINER:
        return [("image", props.get("image"))]
    if resource_type == DOCKER_IMAGE:
        return [("imageName", props.get("imageName"))]
    if resource_type == DOCKER_BUILD_IMAGE:
        return [(f"tags[{i}]", tag) for i, tag in enumerate(_items(props.get("tags")))]
    refs: list[tuple[str, Any]] = []
    for template in _cloud_run_templates(resource_type, props):
        for i, container in enumerate(_items(template.get("containers"))):
            refs.append((f"containers[{i}].image", _mapping(container).get("image")))
    return refs


def check_image_pinned(resource_type: str, name: str, props: Props) -> list[str]:
    """No image is deployed or published by the moving tag `latest` or without any tag."""
    violations = []
    for path, value in _image_refs(resource_type, props):
        ref = _text(value)
        if ref is None:
            continue  # computed (e.g. a build's digest ref during preview): not a literal tag
        problem = image_pin_problem(ref)
        if problem:
            violations.append(
                f"{name}: {path} = {ref!r} {problem}; pin a version tag or a digest (@sha256:...)"
            )
    return violations


# ---- secrets in plain environment variables -----------------------------------------------

# The last word of a variable name that holds a credential (AIOPS_WEBHOOK_TOKEN,
# OPENAI_API_KEY); a name merely containing such a word (AIOPS_LLM_DAILY_TOKEN_BUDGET) is not.
_CREDENTIAL_LAST_WORDS = frozenset(
    {"TOKEN", "KEY", "APIKEY", "PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "CREDENTIALS"}
)
# Words that mark a credential anywhere in the name (DB_PASSWORD_PRIMARY, SECRET_KEY_BASE).
_CREDENTIAL_ANY_WORDS = frozenset({"PASSWORD", "PASSWD", "SECRET"})

# Well-known credential formats, each named so a message can say what was found without
# repeating the value.
_CREDENTIAL_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an OpenAI-style API key", re.compile(r"\bsk-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Slack webhook URL", re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/\S+")),
    (
        "a Discord webhook URL",
        re.compile(r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\S+"),
    ),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{20,})")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("a Google OAuth access token", re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a URL with an embedded password", re.compile(r"://[^/\s:@]+:[^/\s@]+@")),
)


def is_credential_name(env_name: str) -> bool:
    """True when an environment variable's name says it holds a credential."""
    words = [word for word in re.split(r"[^A-Za-z0-9]+", env_name.upper()) if word]
    if not words:
        return False
    return words[-1] in _CREDENTIAL_LAST_WORDS or bool(_CREDENTIAL_ANY_WORDS.intersection(words))


def credential_format(value: str) -> str | None:
    """The kind of well-known credential the text contains, or None."""
    for kind, pattern in _CREDENTIAL_FORMATS:
        if pattern.search(value):
            return kind
    return None


# Switch values: AIOPS_METRICS_REQUIRE_TOKEN=true names a token but holds none.
_FLAG_VALUES = frozenset({"true", "false", "0", "1", "yes", "no", "on", "off"})


def _plain_credential_reason(env_name: str, value: str) -> str | None:
    kind = credential_format(value)
    if kind:
        return f"its value looks like {kind}"
    if value and value.lower() not in _FLAG_VALUES and is_credential_name(env_name):
        return "its name says it holds a credential"
    return None


def _check_docker_envs(name: str, props: Props) -> list[str]:
    envs = props.get("envs")
    if is_secret(envs):
        return []  # the whole list is a Pulumi secret
    violations = []
    for entry in _items(envs):
        if is_secret(entry) or is_unknown(entry) or not isinstance(entry, str):
            continue  # a Pulumi secret stays encrypted in the state; a computed value is no literal
        env_name, _, value = entry.partition("=")
        reason = _plain_credential_reason(env_name, value)
        if reason:
            violations.append(
                f"{name}: env {env_name} is a plain value but {reason}; pass it as a Pulumi "
                "secret (config set --secret, pulumi.Output.secret) so state and previews hide it"
            )
    return violations


def _check_cloud_run_envs(resource_type: str, name: str, props: Props) -> list[str]:
    violations = []
    for template in _cloud_run_templates(resource_type, props):
        for container in _items(template.get("containers")):
            envs = _mapping(container).get("envs")
            for env in _items(envs):
                # A secret around the list or the entry makes its value a secret as well.
                inherited_secret = is_secret(container) or is_secret(envs) or is_secret(env)
                env = _mapping(env)
                env_name = _text(env.get("name")) or "?"
                raw = env.get("value")
                if raw is None or is_unknown(raw):
                    continue
                if inherited_secret or is_secret(raw):
                    reason: str | None = "it carries a Pulumi secret"
                else:
                    reason = _plain_credential_reason(env_name, str(raw))
                if reason:
                    # Cloud Run stores env values readable by anyone who can view the service.
                    violations.append(
                        f"{name}: env {env_name} is a plain Cloud Run value but {reason}; "
                        "read it from Secret Manager with value_source.secret_key_ref"
                    )
    return violations


def check_no_plain_secret_env(resource_type: str, name: str, props: Props) -> list[str]:
    """No credential-looking value in a plain container environment variable."""
    if resource_type == DOCKER_CONTAINER:
        return _check_docker_envs(name, props)
    if resource_type in (CLOUD_RUN_SERVICE, CLOUD_RUN_JOB):
        return _check_cloud_run_envs(resource_type, name, props)
    return []


# ---- Cloud Run identity -------------------------------------------------------------------

# Google-managed default identities that carry broad project roles.
_DEFAULT_SERVICE_ACCOUNT_SUFFIXES = (
    "-compute@developer.gserviceaccount.com",
    "@appspot.gserviceaccount.com",
)


def check_dedicated_service_account(resource_type: str, name: str, props: Props) -> list[str]:
    """Cloud Run runs as a dedicated service account, never the default compute identity."""
    violations = []
    for template in _cloud_run_templates(resource_type, props):
        raw = template.get("serviceAccount")
        if is_unknown(reveal(raw)):
            continue  # the email of a service account created in the same update
        account = _text(raw) or ""
        if not account:
            violations.append(
                f"{name}: template.serviceAccount is not set, so Cloud Run runs as the default "
                "compute service account (Editor on the project); set a dedicated account"
            )
        elif account.endswith(_DEFAULT_SERVICE_ACCOUNT_SUFFIXES):
            violations.append(
                f"{name}: template.serviceAccount = {account!r} is a default service account; "
                "use a dedicated account holding only the roles the service needs"
            )
    return violations


# ---- published ports ----------------------------------------------------------------------

_ALL_INTERFACES = frozenset({"", "0.0.0.0", "::", "[::]"})


def check_ports_not_public(resource_type: str, name: str, props: Props) -> list[str]:
    """Local containers publish their ports on a loopback address, not on every interface."""
    if resource_type != DOCKER_CONTAINER:
        return []
    violations = []
    if _text(props.get("networkMode")) == "host":
        violations.append(
            f"{name}: networkMode = 'host' exposes every port the container listens on; "
            "use a bridge network and publish ports on 127.0.0.1"
        )
    for i, port in enumerate(_items(props.get("ports"))):
        port = _mapping(port)
        raw_ip = port.get("ip")
        if is_unknown(reveal(raw_ip)):
            continue
        ip = (_text(raw_ip) or "").strip()
        if ip in _ALL_INTERFACES:
            shown = repr(ip) if ip else "unset (Docker binds 0.0.0.0)"
            external = reveal(port.get("external"))
            if isinstance(external, float) and external.is_integer():
                external = int(external)  # protobuf carries every number as a float
            violations.append(
                f"{name}: ports[{i}] (external {external}) is published on "
                f"{shown}; bind it to 127.0.0.1 (aiops:bindAddress) unless exposure is intended"
            )
    return violations


# ---- Artifact Registry --------------------------------------------------------------------


def check_registry_cleanup(resource_type: str, name: str, props: Props) -> list[str]:
    """An Artifact Registry repository deletes old images by an enforced cleanup policy."""
    if resource_type != ARTIFACT_REPOSITORY:
        return []
    policies = [_mapping(policy) for policy in _items(props.get("cleanupPolicies"))]
    violations = []
    if not any(str(policy.get("action", "")).upper() == "DELETE" for policy in policies):
        violations.append(
            f"{name}: no cleanup policy with action DELETE, so every pushed image is stored "
            "(and billed) forever; add cleanup_policies (keep the N most recent, delete the rest)"
        )
    if reveal(props.get("cleanupPolicyDryRun")) is True:
        violations.append(
            f"{name}: cleanupPolicyDryRun is true, so the cleanup policies only log what they "
            "would delete; set cleanup_policy_dry_run=False"
        )
    return violations


# ---- scaling out needs a shared store -----------------------------------------------------

# Cloud Run's own ceiling when a service sets none.
_CLOUD_RUN_DEFAULT_MAX_INSTANCES = 100


def _is_analyzer(container: Mapping[str, Any]) -> bool:
    return any(
        (_text(_mapping(env).get("name")) or "").startswith("AIOPS_")
        for env in _items(container.get("envs"))
    )


def _has_shared_store(container: Mapping[str, Any]) -> bool:
    """AIOPS_DATABASE_URL from Secret Manager, or a plain PostgreSQL URL (no password)."""
    for env in map(_mapping, _items(container.get("envs"))):
        if _text(env.get("name")) != "AIOPS_DATABASE_URL":
            continue
        if env.get("valueSource"):
            return True
        return (_text(env.get("value")) or "").startswith(("postgresql", "postgres://"))
    return False


def check_shared_store_to_scale(resource_type: str, name: str, props: Props) -> list[str]:
    """The analyzer runs on more than one Cloud Run instance only with a PostgreSQL store."""
    if resource_type != CLOUD_RUN_SERVICE:
        return []
    template = _mapping(props.get("template"))
    containers = [_mapping(c) for c in _items(template.get("containers"))]
    analyzers = [c for c in containers if _is_analyzer(c)]
    if not analyzers or any(_has_shared_store(c) for c in analyzers):
        return []
    raw = reveal(_mapping(template.get("scaling")).get("maxInstanceCount"))
    if is_unknown(raw):
        return []
    ceiling = _CLOUD_RUN_DEFAULT_MAX_INSTANCES if raw is None else int(raw)
    if ceiling <= 1:
        return []
    return [
        f"{name}: template.scaling.maxInstanceCount = {ceiling} without AIOPS_DATABASE_URL: "
        "each instance would keep its own SQLite store (split history, duplicate analyses); "
        "set the maximum to 1 or give the analyzer a PostgreSQL database"
    ]


CHECKS: tuple[Check, ...] = (
    check_image_pinned,
    check_no_plain_secret_env,
    check_dedicated_service_account,
    check_ports_not_public,
    check_registry_cleanup,
    check_shared_store_to_scale,
)


def violations_of(resource_type: str, name: str, props: Props) -> list[str]:
    """Every check's messages for one resource."""
    return [message for check in CHECKS for message in check(resource_type, name, props)]


# ---- the CrossGuard side ------------------------------------------------------------------


def materialize(value: Any) -> Any:
    """pulumi-policy's proxies as plain dicts/lists; an unknown element becomes its sentinel.

    The engine's proxies raise `UnknownValueError` on reading an unknown value, which would
    abort the whole policy for the resource; reading element by element keeps the other
    settings checkable.
    """
    if isinstance(value, Secret):
        return Secret(materialize(value.value))
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Mapping):
        plain = {}
        for key in value:
            try:
                plain[key] = materialize(value[key])
            except UnknownValueError as unknown:
                plain[key] = unknown.unknown_type_sentinel
        return plain
    if isinstance(value, Sequence):
        items = []
        for index in range(len(value)):
            try:
                items.append(materialize(value[index]))
            except UnknownValueError as unknown:
                items.append(unknown.unknown_type_sentinel)
        return items
    return value


def _keep_secret(value: Any) -> Any:
    if isinstance(value, list):
        return [_keep_secret(item) for item in value]
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return Secret(_keep_secret(value.get("value")))
        if SIG_KEY in value:  # an asset or archive: decode it as pulumi-policy does
            return _ORIGINAL_DESERIALIZE({"value": value})["value"]
        return {key: _keep_secret(item) for key, item in value.items()}
    return value


def _deserialize_keeping_secrets(props: dict[str, Any], proxy_secrets: bool = False) -> Any:
    if proxy_secrets:  # the remediation path relies on pulumi-policy's own secret proxies
        return _ORIGINAL_DESERIALIZE(props, proxy_secrets)
    return {key: _keep_secret(item) for key, item in props.items()}


# Kept on the SDK module so a second import of this file (as `policies` and as
# `policy.policies`) still finds pulumi-policy's own function, not the replacement.
_ORIGINAL_DESERIALIZE = getattr(
    pulumi_policy_module, "_aiops_original_deserialize", pulumi_policy_module.deserialize_properties
)


def keep_secret_markers() -> None:
    """Let validations see which inputs are Pulumi secrets.

    The engine sends a pack the resource inputs with their secret markers, but pulumi-policy
    1.21 drops the markers before calling `validate`, so a secret and a literal look alike.
    This decodes the inputs keeping each secret as `pulumi_policy.Secret`; everything else is
    decoded exactly as before. Idempotent; tests/policy/test_policy_pack.py checks the effect
    through the real gRPC Analyze call, so an SDK change that defeats it fails a test.
    """
    pulumi_policy_module._aiops_original_deserialize = _ORIGINAL_DESERIALIZE  # type: ignore[attr-defined]
    pulumi_policy_module.deserialize_properties = _deserialize_keeping_secrets


def _validation(check: Check) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        props = materialize(args.props)
        for message in check(args.resource_type, args.name, props):
            report_violation(message, None)

    validate.__name__ = f"validate_{check.__name__}"
    return validate


def _policy(name: str, check: Check) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name,
        description=(check.__doc__ or name).strip().splitlines()[0],
        validate=_validation(check),
        enforcement_level=EnforcementLevel.MANDATORY,
    )


keep_secret_markers()

image_pinned = _policy("image-pinned", check_image_pinned)
no_plain_secret_env = _policy("no-plain-secret-env", check_no_plain_secret_env)
dedicated_service_account = _policy(
    "cloud-run-dedicated-service-account", check_dedicated_service_account
)
ports_not_public = _policy("local-ports-not-public", check_ports_not_public)
registry_cleanup = _policy("registry-cleanup-policy", check_registry_cleanup)
shared_store_to_scale = _policy("analyzer-scale-needs-postgresql", check_shared_store_to_scale)
