"""Request dependencies: the app's settings, store, metrics and workers, and bearer auth.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread,
a hop that costs more than everything these do.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from aiops_analyzer.core.config import Settings
from aiops_analyzer.core.metrics import Metrics
from aiops_analyzer.store import Store
from aiops_analyzer.worker import WorkerPool

logger = logging.getLogger("aiops_analyzer.auth")
bearer_scheme = HTTPBearer(auto_error=False, description="The analyzer's AIOPS_WEBHOOK_TOKEN.")


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_workers(request: Request) -> WorkerPool:
    workers: WorkerPool = request.app.state.workers
    return workers


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
WorkersDep = Annotated[WorkerPool, Depends(get_workers)]


def token_matches(presented: str, expected: str) -> bool:
    """Constant-time comparison, so response timing reveals nothing about the token."""
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def missing_token_detail(header: str | None) -> str:
    """Why an Authorization header is not a bearer token, precisely enough to fix it."""
    expected = "Authorization: Bearer <AIOPS_WEBHOOK_TOKEN>"
    if not header or not header.strip():
        return f"missing bearer token ({expected})"
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return f"missing bearer token ({expected})"
    if not rest.strip():
        return f"the Authorization header has no scheme: send '{expected}', with the word Bearer"
    return f"unsupported authorization scheme {scheme[:20]!r}: send '{expected}'"


# A refused client is logged once per reason and minute, not once per request of a retry loop.
REFUSAL_LOG_INTERVAL_SECONDS = 60.0


def _refusal_log(request: Request) -> dict[tuple[str, str], float]:
    """When each (client, reason) was last logged: per app, so one app's history (a test's, or a
    second app in the same process) never silences another's."""
    state = request.app.state
    if not hasattr(state, "last_refusal_log"):
        state.last_refusal_log = {}
    last: dict[tuple[str, str], float] = state.last_refusal_log
    return last


def log_refusal(request: Request, reason: str) -> None:
    """WARNING naming the client address: a misconfigured Alertmanager shows up in the log."""
    client = request.client.host if request.client else "unknown"
    key = (client, reason)
    now = time.monotonic()
    last_logged = _refusal_log(request)
    if now - last_logged.get(key, -REFUSAL_LOG_INTERVAL_SECONDS) < REFUSAL_LOG_INTERVAL_SECONDS:
        return
    if len(last_logged) > 10_000:  # many clients: forget, never grow without bound
        last_logged.clear()
    last_logged[key] = now
    logger.warning(
        f"refused {request.method} {request.url.path} from {client}: {reason}",
        extra={"event": "auth_refused", "client": client, "path": request.url.path},
    )


def bearer_credentials(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, as HTTPBearer reads it."""
    header = request.headers.get("authorization")
    scheme, credentials = get_authorization_scheme_param(header)
    if not (scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


def check_token(request: Request, settings: Settings, presented: str | None) -> None:
    """401 unless ``presented`` is the webhook token (or auth is disabled)."""
    if settings.auth_disabled:
        return
    expected = settings.webhook_token.get_secret_value() if settings.webhook_token else ""
    if presented is None:
        detail = missing_token_detail(request.headers.get("authorization"))
        log_refusal(request, detail)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
        )
    if not expected or not token_matches(presented, expected):
        log_refusal(request, "invalid bearer token")
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def require_token(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    check_token(request, settings, credentials.credentials if credentials else None)


@dataclass(frozen=True)
class WebhookContext:
    settings: Settings
    store: Store
    metrics: Metrics
    workers: WorkerPool


async def authorized_webhook(request: Request) -> WebhookContext:
    """What the webhook needs, its bearer token checked first, as ONE dependency: FastAPI
    spends ~30 us solving each dependency, and seven of them were a fifth of the webhook's
    CPU under load (benchmarks/README.md). Its route declares the bearer scheme for OpenAPI."""
    state = request.app.state
    check_token(request, state.settings, bearer_credentials(request))
    return WebhookContext(state.settings, state.store, state.metrics, state.workers)


WebhookContextDep = Annotated[WebhookContext, Depends(authorized_webhook)]


Authenticated = Depends(require_token)
