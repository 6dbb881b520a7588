"""POST a JSON message with retries: the one delivery loop every channel uses.

Retried: connection errors, timeouts, 429 and 5xx, with exponential backoff; a Retry-After
header (seconds or an HTTP date) is honoured up to ``MAX_RETRY_AFTER_SECONDS``. Any other
4xx is permanent (the message or the credentials are wrong) and is not retried. Errors never
include the URL: for Slack and Discord the URL *is* the secret.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from aiops_analyzer.schemas import NotificationOutcome
from aiops_analyzer.scrub import default_scrubber

MAX_RETRY_AFTER_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 20.0


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))


async def post_json(
    http: httpx.AsyncClient,
    channel: str,
    url: str,
    payload: dict[str, Any],
    *,
    max_attempts: int,
    request_timeout: float,
    backoff_seconds: float,
    headers: dict[str, str] | None = None,
) -> NotificationOutcome:
    status: int | None = None
    error: str | None = None
    for attempt in range(1, max_attempts + 1):
        wait: float | None = None
        try:
            response = await http.post(url, json=payload, headers=headers, timeout=request_timeout)
        except httpx.TimeoutException:
            status, error = None, "timed out"
        except httpx.HTTPError as exc:
            status, error = None, f"connection failed: {type(exc).__name__}"
        else:
            status = response.status_code
            if 200 <= status < 300:
                return NotificationOutcome(
                    channel=channel, ok=True, attempts=attempt, status_code=status, error=None
                )
            body = default_scrubber.scrub(response.text[:200].strip())
            error = f"HTTP {status}: {body}" if body else f"HTTP {status}"
            if status != 429 and status < 500:
                return NotificationOutcome(
                    channel=channel, ok=False, attempts=attempt, status_code=status, error=error
                )
            wait = retry_after_seconds(response.headers.get("retry-after"))
        if attempt < max_attempts:
            backoff = min(MAX_BACKOFF_SECONDS, backoff_seconds * 2 ** (attempt - 1))
            await asyncio.sleep(max(backoff, wait or 0.0))
    return NotificationOutcome(
        channel=channel, ok=False, attempts=max_attempts, status_code=status, error=error
    )
