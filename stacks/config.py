"""Typed configuration shared by every target, read from `pulumi.Config("aiops")`.

Mocks do not apply the defaults of the `Pulumi.yaml` schema, so the defaults live here too and a
test keeps both in agreement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi.runtime

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


# The optional secret settings, with what each one is. They are deliberately NOT declared in
# Pulumi.yaml's `config:` schema: since Pulumi 3.202 the engine refuses a declared `secret: true`
# key with a default on every stack that does not set it encrypted (pulumi/pulumi#21865), and a
# declared key without a default is required. Undeclared keys are optional, so the plain-text
# guard the schema gave moves here: `optional_secret` refuses a value not set with --secret.
SECRET_KEYS: dict[str, str] = {
    "openaiApiKey": "OpenAI API key; without it the rules engine answers.",
    "slackWebhookUrl": "Slack incoming-webhook URL for analyses.",
    "discordWebhookUrl": "Discord webhook URL for analyses.",
    "notifyWebhookUrl": "Generic JSON webhook URL for analyses.",
    "externalWebhookToken": "Bearer token of the external analyzer (local target, with "
    "externalAnalyzerUrl).",
}


def optional_secret(config: pulumi.Config, key: str) -> pulumi.Output[str] | None:
    """A secret setting, or None when unset or empty (so nothing empty is stored as a secret).

    A value stored in plain text in `Pulumi.<stack>.yaml` is refused, naming the key.
    """
    if not config.get(key):
        return None
    full_key = f"{config.name}:{key}"
    if not pulumi.runtime.is_config_secret(full_key):
        raise ConfigError(
            f"{full_key} is stored in plain text; remove it and set it encrypted with "
            f"`pulumi config set --secret {full_key} VALUE`"
        )
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
            openai_api_key=optional_secret(config, "openaiApiKey"),
            slack_webhook_url=optional_secret(config, "slackWebhookUrl"),
            discord_webhook_url=optional_secret(config, "discordWebhookUrl"),
            notify_webhook_url=optional_secret(config, "notifyWebhookUrl"),
        )


def load_target(config: pulumi.Config | None = None) -> Literal["local", "gcp"]:
    config = config or pulumi.Config(PROJECT)
    target = _choice(config, "target", TARGETS, "local")
    return "gcp" if target == "gcp" else "local"
