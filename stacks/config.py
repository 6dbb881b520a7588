"""Typed configuration shared by every target, read from `pulumi.Config("aiops")`.

Mocks do not apply the defaults of the `Pulumi.yaml` schema, so the defaults live here too and a
test keeps both in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi

PROJECT = "aiops"
TARGETS = ("local", "gcp")
ENGINES = ("auto", "llm", "rules")


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the `aiops:` key."""


def _choice(config: pulumi.Config, key: str, allowed: tuple[str, ...], default: str) -> str:
    value = config.get(key) or default
    if value not in allowed:
        raise ConfigError(f"{PROJECT}:{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _optional_secret(config: pulumi.Config, key: str) -> pulumi.Output[str] | None:
    """A secret setting, or None when unset or empty (so nothing empty is stored as a secret)."""
    if not config.get(key):
        return None
    return config.require_secret(key)


@dataclass(frozen=True)
class AnalyzerConfig:
    """Settings of the analyzer, whichever target runs it."""

    engine: str
    llm_model: str
    llm_base_url: str
    log_level: str
    openai_api_key: pulumi.Output[str] | None
    slack_webhook_url: pulumi.Output[str] | None
    discord_webhook_url: pulumi.Output[str] | None
    notify_webhook_url: pulumi.Output[str] | None

    @classmethod
    def load(cls, config: pulumi.Config | None = None) -> AnalyzerConfig:
        config = config or pulumi.Config(PROJECT)
        return cls(
            engine=_choice(config, "analyzerEngine", ENGINES, "auto"),
            llm_model=config.get("llmModel") or "gpt-4o-mini",
            llm_base_url=config.get("llmBaseUrl") or "",
            log_level=_choice(config, "logLevel", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
            openai_api_key=_optional_secret(config, "openaiApiKey"),
            slack_webhook_url=_optional_secret(config, "slackWebhookUrl"),
            discord_webhook_url=_optional_secret(config, "discordWebhookUrl"),
            notify_webhook_url=_optional_secret(config, "notifyWebhookUrl"),
        )


def load_target(config: pulumi.Config | None = None) -> Literal["local", "gcp"]:
    config = config or pulumi.Config(PROJECT)
    target = _choice(config, "target", TARGETS, "local")
    return "gcp" if target == "gcp" else "local"
