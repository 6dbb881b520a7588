"""Analyzer settings: environment variables with the prefix ``AIOPS_`` (and ``.env``).

Validated once at start; a bad value fails with the variable's name in the message.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EngineChoice = Literal["auto", "llm", "rules"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AIOPS_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- HTTP and auth -------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `serve` binds to.")
    port: int = Field(
        8080,
        ge=1,
        le=65535,
        validation_alias=AliasChoices("AIOPS_PORT", "PORT"),
        description="Port `serve` listens on; Cloud Run's PORT is honoured.",
    )
    webhook_token: SecretStr | None = Field(
        None, description="Bearer token Alertmanager must send. Required unless auth_disabled."
    )
    auth_disabled: bool = Field(
        False, description="Accept unauthenticated webhooks. Local development only."
    )
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest accepted body.")
    header_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=600,
        description="A request's headers must arrive within this time of their first byte "
        "(or of the connection); else 408 and the connection is closed.",
    )
    body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=600,
        description="A request's body must arrive within this time of its headers; else 408.",
    )
    keepalive_timeout_seconds: int = Field(
        5, ge=1, le=600, description="An idle keep-alive connection is closed after this time."
    )
    max_requests_per_connection: int = Field(
        1000, ge=1, description="Requests one keep-alive connection may carry before it closes."
    )
    max_connections: int = Field(
        1000,
        ge=16,
        description="Open connections at most (lowered to fit the open-files limit); one more "
        "is closed at once, requests on the last ones are answered 503.",
    )
    docs_enabled: bool = Field(
        True,
        description="Serve /docs, /redoc and /openapi.json. Turn off on a public deployment.",
    )
    metrics_require_token: bool = Field(
        False, description="/metrics requires the bearer token (AIOPS_WEBHOOK_TOKEN)."
    )

    # --- Web pages -------------------------------------------------------------------------
    public_url: str | None = Field(
        None,
        description="Base URL users reach the analyzer at (e.g. https://aiops.example.com); "
        "notifications and the API's page_url link to analysis pages under it. Unset: no links.",
    )
    page_signing_key: SecretStr | None = Field(
        None,
        description="Key that signs page links (HMAC). Default: derived from the webhook "
        "token, so rotating the token also invalidates every link.",
    )
    page_signing_previous_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Earlier signing keys still accepted for links (JSON list), for a rotation "
        "without breaking links already sent.",
    )
    page_link_ttl_hours: float = Field(
        168.0, gt=0, le=24 * 366, description="How long a page link opens without the token."
    )
    ui_session_hours: float = Field(
        12.0, gt=0, le=24 * 31, description="How long a login to the list page lasts."
    )
    grafana_public_url: str | None = Field(
        None,
        description="Grafana as users' browsers reach it, for links from pages to Explore and "
        "dashboards. Default: AIOPS_GRAFANA_URL.",
    )

    # --- Store and workers ---------------------------------------------------------------
    data_dir: Path = Field(Path("./data"), description="Where the SQLite store lives.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/analyzer.db."
    )
    workers: int = Field(4, ge=1, le=64, description="Concurrent analysis jobs.")
    job_max_attempts: int = Field(3, ge=1, description="Attempts before a job is failed.")
    job_timeout_seconds: float = Field(
        300.0, gt=0, description="Longest one analysis job may run (evidence, engine, notify)."
    )
    job_lease_seconds: float = Field(
        30.0,
        ge=1,
        description="Lease of a running job; its worker renews it every third of this. A job "
        "whose worker died returns to the queue (any replica) after at most about 1.5x this.",
    )
    analyze_resolved: bool = Field(
        True,
        description="Analyse resolved alerts too: the resolution notification then says when "
        "it recovered, whether the cause is still there, with the resolved analysis's severity "
        "(info unless the cause persists). Off: resolutions are recorded and notified with "
        "the firing analysis only (no engine call, so no LLM tokens).",
    )

    # --- Engines ---------------------------------------------------------------------------
    engine: EngineChoice = Field(
        "auto", description="auto: llm when an API key is set, else rules."
    )
    openai_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("AIOPS_OPENAI_API_KEY", "OPENAI_API_KEY"),
        description="API key of the OpenAI-compatible server.",
    )
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL (Ollama, vLLM, LiteLLM...)."
    )
    llm_model: str = Field("gpt-4o-mini", description="Model name.")
    llm_timeout_seconds: float = Field(30.0, gt=0, description="Per-request LLM timeout.")
    llm_max_retries: int = Field(2, ge=0, le=10, description="Retries of a failed LLM call.")
    llm_max_prompt_tokens: int = Field(
        6000, ge=500, description="Token budget of one prompt; evidence is trimmed to fit."
    )
    llm_daily_token_budget: int = Field(
        2_000_000,
        ge=0,
        description="Tokens per UTC day; past it the rules engine answers. 0 = off.",
    )
    llm_price_input_per_mtok: float = Field(
        0.15, ge=0, description="USD per million prompt tokens, for the cost estimate."
    )
    llm_price_output_per_mtok: float = Field(
        0.60, ge=0, description="USD per million completion tokens, for the cost estimate."
    )

    # --- Evidence --------------------------------------------------------------------------
    prometheus_url: str | None = Field(None, description="Prometheus base URL for evidence.")
    loki_url: str | None = Field(None, description="Loki base URL for evidence.")
    evidence_timeout_seconds: float = Field(5.0, gt=0, description="Timeout per source.")
    evidence_window_minutes: int = Field(30, ge=1, description="Look-back around startsAt.")
    loki_max_lines: int = Field(20, ge=1, le=500, description="Log lines kept as evidence.")
    runbook_base_url: str | None = Field(
        None,
        description="Where runbook links in analyses and notifications point: <base>/<AlertName>.md"
        " (e.g. your fork's https://github.com/you/aiops/blob/main/monitoring/runbooks). Default:"
        " the analyzer's own /runbooks under AIOPS_PUBLIC_URL when that is set, else the alert's"
        " runbook_url annotation as sent.",
    )
    runbooks_dir: Path | None = Field(
        None, description="Directory of <AlertName>.md runbooks; default: the bundled ones."
    )
    scrub_extra_patterns: list[str] = Field(
        default_factory=list, description="Extra regexes whose matches are masked (JSON list)."
    )

    # --- Notifications ---------------------------------------------------------------------
    slack_webhook_url: SecretStr | None = Field(None, description="Slack incoming webhook.")
    discord_webhook_url: SecretStr | None = Field(None, description="Discord webhook.")
    notify_webhook_url: SecretStr | None = Field(None, description="Generic JSON webhook.")
    grafana_url: str | None = Field(None, description="Grafana base URL for annotations.")
    grafana_api_token: SecretStr | None = Field(None, description="Grafana service-account token.")
    grafana_basic_auth: SecretStr | None = Field(
        None,
        description="user:password for Grafana's API when there is no service-account token "
        "(the local stack uses its generated admin). The token wins when both are set.",
    )
    notify_timeout_seconds: float = Field(5.0, gt=0, description="Timeout per notification.")
    notify_max_attempts: int = Field(4, ge=1, le=10, description="Attempts per channel.")

    # --- Logging ---------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Least severe level logged (DEBUG, INFO, WARNING, ERROR)."
    )
    log_format: Literal["json", "text"] = Field(
        "json",
        description="json: one JSON object per line (for Loki, Cloud Logging); text: one readable"
        " line per event, for a terminal.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _require_token(self) -> Settings:
        if not self.auth_disabled and not (
            self.webhook_token and self.webhook_token.get_secret_value()
        ):
            raise ValueError(
                "AIOPS_WEBHOOK_TOKEN is required "
                "(set AIOPS_AUTH_DISABLED=true to run without auth, for local development only)"
            )
        return self

    @field_validator("public_url", "grafana_public_url")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_values(self) -> Settings:
        # URLs, regexes and directories: one line per problem, each naming its variable.
        from aiops_analyzer.core.config_checks import problems

        found = list(problems(self))
        if found:
            raise ValueError("\n".join(found))
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'analyzer.db').resolve()}"

    @property
    def llm_enabled(self) -> bool:
        """True when the llm engine should be tried first."""
        if self.engine == "rules":
            return False
        has_key = bool(self.openai_api_key and self.openai_api_key.get_secret_value())
        return self.engine == "llm" or has_key


@lru_cache
def get_settings() -> Settings:
    # Every field has a default or comes from the environment; mypy cannot see that here.
    return Settings()  # type: ignore[call-arg]
