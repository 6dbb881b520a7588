"""Typed configuration of the `local` target (Docker), read from `pulumi.Config("aiops")`.

Every key is also declared in `Pulumi.yaml` (type, description, default); mocks do not apply
those defaults, so they live here too and tests/infra/test_config_schema.py keeps both equal.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pulumi

from stacks.config import PROJECT, ConfigError, optional_secret

WEBHOOK_PATH = "/webhook/alertmanager"
# Where the analyzer serves its runbooks (GET /runbooks/<AlertName>.md).
RUNBOOKS_PATH = "/runbooks"
# What a runbook base may contain: it is pasted into double-quoted YAML strings that Prometheus
# and Loki expand as Go templates, so no quote, backslash, brace or space can get in.
_RUNBOOK_BASE_CHARS = re.compile(r"[A-Za-z0-9._~:/%@!$&()*+,;=-]+")

# The analyzer's store in the local stack (aiops:localDatabase): SQLite on the analyzer's named
# volume, or a PostgreSQL container on the stack's network.
LOCAL_DATABASES = ("sqlite", "postgresql")

# Host ports the platform's user interfaces are published on: (config key, default).
PORT_KEYS: dict[str, tuple[str, int]] = {
    "grafana": ("grafanaPort", 3000),
    "prometheus": ("prometheusPort", 9090),
    "alertmanager": ("alertmanagerPort", 9093),
    "analyzer": ("analyzerPort", 8080),
    "loki": ("lokiPort", 3100),
    "alloy": ("alloyPort", 12345),
    "nginx": ("nginxPort", 8000),
}


def is_pinned(ref: str) -> bool:
    """True for an image reference with a digest or an explicit tag other than `latest`."""
    if "@sha256:" in ref:
        return True
    last_segment = ref.rsplit("/", 1)[-1]
    if ":" not in last_segment:
        return False
    tag = last_segment.rsplit(":", 1)[1]
    return bool(tag) and tag != "latest"


def _int(config: pulumi.Config, key: str, default: int) -> int:
    try:
        value = config.get_int(key)
    except pulumi.ConfigTypeError as error:
        raise ConfigError(f"{PROJECT}:{key} must be an integer, got {error.value!r}") from error
    return default if value is None else value


def _bool(config: pulumi.Config, key: str, default: bool) -> bool:
    try:
        value = config.get_bool(key)
    except pulumi.ConfigTypeError as error:
        raise ConfigError(f"{PROJECT}:{key} must be true or false, got {error.value!r}") from error
    return default if value is None else value


def _string_list(config: pulumi.Config, key: str) -> list[str]:
    try:
        value: Any = config.get_object(key)
    except pulumi.ConfigTypeError as error:
        raise ConfigError(f"{PROJECT}:{key} must be a list of strings") from error
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{PROJECT}:{key} must be a list of strings, got {value!r}")
    return value


def _bind_address(config: pulumi.Config) -> str:
    value = config.get("bindAddress") or "127.0.0.1"
    try:
        ipaddress.ip_address(value)
    except ValueError as error:
        raise ConfigError(
            f"{PROJECT}:bindAddress must be an IP address such as 127.0.0.1, got {value!r}"
        ) from error
    return value


def _external_analyzer_url(config: pulumi.Config) -> str | None:
    """The external analyzer's base URL; a full webhook URL is accepted and trimmed."""
    value = (config.get("externalAnalyzerUrl") or "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{PROJECT}:externalAnalyzerUrl must be an http(s) URL such as the gcp stack's "
            f"serviceUrl output, got {value!r}"
        )
    value = value.rstrip("/")
    if value.endswith(WEBHOOK_PATH):
        value = value[: -len(WEBHOOK_PATH)]
    return value


def _runbook_base_url(config: pulumi.Config) -> str | None:
    """The base of the alerts' runbook links (then `<AlertName>.md`); None: the analyzer's."""
    value = (config.get("runbookBaseUrl") or "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
        or not _RUNBOOK_BASE_CHARS.fullmatch(value)
    ):
        raise ConfigError(
            f"{PROJECT}:runbookBaseUrl must be an http(s) URL without query, fragment, quotes, "
            f"braces or spaces, such as https://github.com/you/aiops/blob/main/monitoring/"
            f"runbooks, got {value!r}"
        )
    return value.rstrip("/")


def _local_database(config: pulumi.Config, external_analyzer: bool) -> str:
    value = (config.get("localDatabase") or "sqlite").strip()
    if value not in LOCAL_DATABASES:
        raise ConfigError(
            f"{PROJECT}:localDatabase must be one of {', '.join(LOCAL_DATABASES)}, got {value!r}"
        )
    if value == "postgresql" and external_analyzer:
        # Nothing in this stack would use it: the external analyzer keeps its own store.
        raise ConfigError(
            f"{PROJECT}:localDatabase postgresql needs the analyzer in this stack; unset "
            f"{PROJECT}:externalAnalyzerUrl or set {PROJECT}:localDatabase sqlite"
        )
    return value


def _image_overrides(config: pulumi.Config) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in _string_list(config, "imageOverrides"):
        name, sep, ref = item.partition("=")
        if not sep or not name.strip() or not ref.strip():
            raise ConfigError(
                f"{PROJECT}:imageOverrides entries look like name=repo:tag, got {item!r}"
            )
        ref = ref.strip()
        if not is_pinned(ref):
            raise ConfigError(
                f"{PROJECT}:imageOverrides: {ref!r} for {name.strip()!r} must carry a tag other "
                "than latest or a sha256 digest"
            )
        overrides[name.strip()] = ref
    return overrides


@dataclass(frozen=True)
class PublishedPorts:
    """Host ports of the user-facing services (published on `bindAddress` only)."""

    grafana: int
    prometheus: int
    alertmanager: int
    analyzer: int
    loki: int
    alloy: int
    nginx: int

    @classmethod
    def load(cls, config: pulumi.Config | None = None) -> PublishedPorts:
        config = config or pulumi.Config(PROJECT)
        ports: dict[str, int] = {}
        owner: dict[int, str] = {}
        for service, (key, default) in PORT_KEYS.items():
            port = _int(config, key, default)
            if not 1 <= port <= 65535:
                raise ConfigError(f"{PROJECT}:{key} must be a port between 1 and 65535, got {port}")
            if port in owner:
                raise ConfigError(
                    f"{PROJECT}:{key} and {PROJECT}:{owner[port]} both use host port {port}"
                )
            owner[port] = key
            ports[service] = port
        return cls(**ports)


@dataclass(frozen=True)
class LocalConfig:
    """Settings of the `local` target."""

    bind_address: str
    enable_cadvisor: bool
    enable_host_journal: bool
    external_analyzer_url: str | None
    external_webhook_token: pulumi.Output[str] | None
    image_overrides: dict[str, str]
    local_database: str  # one of LOCAL_DATABASES
    ports: PublishedPorts
    runbook_base_url: str | None  # None: the analyzer's own /runbooks (see runbook_base)

    @property
    def uses_postgresql(self) -> bool:
        return self.local_database == "postgresql"

    @property
    def uses_external_analyzer(self) -> bool:
        return self.external_analyzer_url is not None

    def runbook_base(self, analyzer_url: str) -> str:
        """Where the alerts' runbook links point: the configured base, else the runbooks the
        analyzer receiving the alerts serves (built from this checkout, so a fork's own)."""
        return self.runbook_base_url or f"{analyzer_url.rstrip('/')}{RUNBOOKS_PATH}"

    @classmethod
    def load(cls, config: pulumi.Config | None = None) -> LocalConfig:
        config = config or pulumi.Config(PROJECT)
        external_url = _external_analyzer_url(config)
        # Read unconditionally so a token set without a URL is still a declared, typed key.
        token = optional_secret(config, "externalWebhookToken")
        if external_url and token is None:
            raise ConfigError(
                f"{PROJECT}:externalWebhookToken is required when {PROJECT}:externalAnalyzerUrl "
                "is set (the external analyzer's bearer token; set it with --secret)"
            )
        return cls(
            bind_address=_bind_address(config),
            enable_cadvisor=_bool(config, "enableCadvisor", True),
            enable_host_journal=_bool(config, "enableHostJournal", True),
            external_analyzer_url=external_url,
            external_webhook_token=token if external_url else None,
            image_overrides=_image_overrides(config),
            local_database=_local_database(config, external_url is not None),
            ports=PublishedPorts.load(config),
            runbook_base_url=_runbook_base_url(config),
        )
