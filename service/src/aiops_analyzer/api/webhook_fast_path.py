"""The webhook's everyday request, served without FastAPI's routing.

A valid, authorised Alertmanager delivery of ordinary size is what the webhook gets thousands
of times a second in a storm. Through FastAPI each one also pays for the exception and
exit-stack middlewares, the route table, dependency solving and response-model validation:
about a third of the process's CPU per request under wrk (benchmarks/README.md). This ASGI
middleware answers that request itself, with the route's own code for what a 202 means
(``webhook.accept``: the same store, metrics, wake-up and log line).

Anything else goes to the FastAPI route untouched, which answers it as documented: a missing or
wrong token, another content type, no Content-Length (chunked) or a body over the inline-parse
size, a client that leaves, a body that fails validation. Once the body is read, the route gets
it replayed, so it answers exactly as if it had read it itself. The route also stays the one
the OpenAPI schema describes.
"""

from __future__ import annotations

from typing import Any

from fastapi.security.utils import get_authorization_scheme_param
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiops_analyzer.api.deps import token_matches
from aiops_analyzer.api.errors import storage_unavailable
from aiops_analyzer.api.routes.webhook import (
    INLINE_PARSE_MAX_BYTES,
    WEBHOOK_PATH,
    accept,
    is_json,
    parse_payload,
)
from aiops_analyzer.core.config import Settings
from aiops_analyzer.core.storage_health import is_storage_error

_JSON = b"application/json"


def _authorised(headers: Headers, settings: Settings) -> bool:
    if settings.auth_disabled:
        return True
    scheme, presented = get_authorization_scheme_param(headers.get("authorization"))
    expected = settings.webhook_token.get_secret_value() if settings.webhook_token else ""
    if not (scheme and presented) or scheme.lower() != "bearer" or not expected:
        return False
    return token_matches(presented, expected)


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class WebhookFastPath:
    """Serves a valid delivery to POST /webhook/alertmanager; hands everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != WEBHOOK_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings: Settings = state.settings
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        if not (
            declared.isdigit()
            and int(declared) <= min(settings.max_body_bytes, INLINE_PARSE_MAX_BYTES)
            and is_json(headers.get("content-type", ""))
            and _authorised(headers, settings)
        ):
            await self.app(scope, receive, send)
            return

        read: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":  # the client left: the route says so
                await self.app(scope, _replaying(read, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            payload = parse_payload(body)
        except Exception:  # the route answers the precise 422
            replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
            await self.app(scope, _replaying(replay, receive), send)
            return

        try:
            accepted = await accept(payload, state, size=len(body))
        except Exception as exc:
            if not is_storage_error(exc):
                raise
            await storage_unavailable(Request(scope), exc)(scope, receive, send)
            return
        await _send_json(send, 202, accepted.model_dump_json().encode())


async def _send_json(send: Send, status: int, content: bytes) -> None:
    headers: list[tuple[bytes, bytes]] = [
        (b"content-length", str(len(content)).encode()),
        (b"content-type", _JSON),
    ]
    start: dict[str, Any] = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": content})
