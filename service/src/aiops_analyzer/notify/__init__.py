"""Notifications: Slack, Discord, a generic JSON webhook and Grafana annotations.

Each channel is optional and configured by its URL. Channels are notified concurrently, each
with its own retries (``delivery.post_json``); the result has one outcome per configured
channel. Nothing here raises: a failing channel is an outcome with ``ok=False``, never a lost
analysis or a blocked neighbour. The alert was scrubbed where it entered (the webhook), so
what is sent here is already masked; it is not scrubbed a second time.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from aiops_analyzer.core.config import Settings
from aiops_analyzer.notify import discord, grafana, slack, webhook
from aiops_analyzer.notify.delivery import post_json
from aiops_analyzer.schemas import Alert, AnalysisResult, NotificationOutcome
from aiops_analyzer.web.links import page_url

__all__ = ["configured_channels", "notify_analysis", "notify_resolution"]


@dataclass(frozen=True)
class Channel:
    name: str
    url: str
    module: Any  # slack, discord, webhook or grafana: analysis_message / resolution_message
    headers: dict[str, str] | None = None


def configured_channels(settings: Settings) -> list[Channel]:
    channels: list[Channel] = []
    if settings.slack_webhook_url and settings.slack_webhook_url.get_secret_value():
        channels.append(Channel("slack", settings.slack_webhook_url.get_secret_value(), slack))
    if settings.discord_webhook_url and settings.discord_webhook_url.get_secret_value():
        channels.append(
            Channel("discord", settings.discord_webhook_url.get_secret_value(), discord)
        )
    if settings.notify_webhook_url and settings.notify_webhook_url.get_secret_value():
        channels.append(Channel("webhook", settings.notify_webhook_url.get_secret_value(), webhook))
    if settings.grafana_url:
        headers = {}
        if settings.grafana_api_token and settings.grafana_api_token.get_secret_value():
            headers["Authorization"] = f"Bearer {settings.grafana_api_token.get_secret_value()}"
        elif settings.grafana_basic_auth and settings.grafana_basic_auth.get_secret_value():
            pair = settings.grafana_basic_auth.get_secret_value().encode("utf-8")
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
        url = settings.grafana_url.rstrip("/") + "/api/annotations"
        channels.append(Channel("grafana", url, grafana, headers))
    return channels


async def _send_all(
    alert: Alert,
    settings: Settings,
    http: httpx.AsyncClient | None,
    build: Callable[[Any, Alert], dict[str, Any]],
    backoff_seconds: float,
) -> list[NotificationOutcome]:
    """Send `build(channel module, alert)` to every configured channel."""

    def body(channel: Channel) -> dict[str, Any]:
        return build(channel.module, alert)

    channels = configured_channels(settings)
    if not channels:
        return []
    own_client = http is None
    client = http or httpx.AsyncClient(timeout=settings.notify_timeout_seconds)
    try:
        return list(
            await asyncio.gather(
                *(_send(client, channel, body, settings, backoff_seconds) for channel in channels)
            )
        )
    finally:
        if own_client:
            await client.aclose()


async def _send(
    client: httpx.AsyncClient,
    channel: Channel,
    build: Callable[[Channel], dict[str, Any]],
    settings: Settings,
    backoff_seconds: float,
) -> NotificationOutcome:
    try:
        payload = build(channel)
        return await post_json(
            client,
            channel.name,
            channel.url,
            payload,
            headers=channel.headers,
            max_attempts=settings.notify_max_attempts,
            request_timeout=settings.notify_timeout_seconds,
            backoff_seconds=backoff_seconds,
        )
    except Exception as exc:  # a formatting bug in one channel must not touch the others
        return NotificationOutcome(
            channel=channel.name, ok=False, attempts=0, error=f"unexpected {type(exc).__name__}"
        )


async def notify_analysis(
    alert: Alert,
    result: AnalysisResult,
    settings: Settings,
    *,
    analysis_id: int,
    http: httpx.AsyncClient | None = None,
    backoff_seconds: float = 0.5,
) -> list[NotificationOutcome]:
    """One message per configured channel for a new analysis, linking to its page."""
    link = page_url(settings, analysis_id)
    return await _send_all(
        alert,
        settings,
        http,
        lambda module, clean: module.analysis_message(clean, result, analysis_id, link),
        backoff_seconds,
    )


async def notify_resolution(
    alert: Alert,
    firing: AnalysisResult | None,
    duration_seconds: float | None,
    settings: Settings,
    *,
    analysis_id: int,
    resolved: AnalysisResult | None = None,
    http: httpx.AsyncClient | None = None,
    backoff_seconds: float = 0.5,
) -> list[NotificationOutcome]:
    """The follow-up when the alert resolves: how long it fired, when it recovered, whether
    the cause is still there and the severity (from ``resolved``, the resolution's own
    analysis, when there is one), the firing analysis's cause in brief, and the page."""
    link = page_url(settings, analysis_id)
    return await _send_all(
        alert,
        settings,
        http,
        lambda module, clean: module.resolution_message(
            clean, firing, duration_seconds, analysis_id, link, resolved=resolved
        ),
        backoff_seconds,
    )
