"""Logs: one event per line, JSON (default) or readable text, with known secret values masked.

Times are UTC in ISO 8601 (`2026-12-02T15:09:12.615Z`), whatever the host's zone. uvicorn's
`color_message` (the same text with ANSI colours) is dropped, and Alembic's per-connection
chatter ("Context impl SQLiteImpl") is kept out, so each migration appears once.

Secrets are kept out of log calls by design; the redaction filter is the safety net for a value
that slips into a message anyway (an exception text quoting a webhook URL, for instance).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter

from aiops_analyzer.core.config import Settings

REDACTED = "[REDACTED]"


class SecretRedactingFilter(logging.Filter):
    """Replaces any configured secret value found in a record's message or arguments."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Very short values would mask ordinary words; real tokens are long.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        masked = self._mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self._mask(value))
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now so the formatter prints the masked text.
            record.exc_text = self._mask(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, including the secret path of webhook URLs."""
    values: list[str] = []
    for secret in (
        settings.webhook_token,
        settings.openai_api_key,
        settings.slack_webhook_url,
        settings.discord_webhook_url,
        settings.notify_webhook_url,
        settings.grafana_api_token,
    ):
        if secret is not None:
            value = secret.get_secret_value()
            values.append(value)
            # A webhook URL's secret is its path: mask the path on its own as well.
            if "://" in value:
                path = value.split("://", 1)[1].partition("/")[2]
                if path:
                    values.append("/" + path)
    return values


def utc_iso(created: float) -> str:
    """A record's time as UTC ISO 8601 with milliseconds and a Z."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


class UtcJsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_iso(record.created)


class TextFormatter(logging.Formatter):
    """`TIME LEVEL logger: message key=value ...` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_") and value is not None
        )
        line = f"{utc_iso(record.created)} {record.levelname:<7} {record.name}: "
        line += record.getMessage() + (f"  [{extras}]" if extras else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        return line


class DropNoise(logging.Filter):
    """Removes uvicorn's ANSI-coloured duplicate of each message and Alembic's chatter."""

    ALEMBIC_CHATTER = ("Context impl ", "Will assume ")

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        if record.name == "alembic.runtime.migration" and isinstance(record.msg, str):
            return not record.msg.startswith(self.ALEMBIC_CHATTER)
        return True


def configure_logging(settings: Settings, *, stream: object = None) -> None:
    """Route the root logger (and uvicorn's) to one line per event on stderr."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    formatter: logging.Formatter
    if settings.log_format == "text":
        formatter = TextFormatter()
    else:
        formatter = UtcJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    handler.setFormatter(formatter)
    handler.addFilter(DropNoise())
    handler.addFilter(SecretRedactingFilter(secret_values(settings)))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # httpx logs every request URL at INFO, which would include webhook URLs' secret paths.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
