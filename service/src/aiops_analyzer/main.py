"""The FastAPI application: ``create_app(settings)`` wires settings, store, workers and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiops_analyzer.api.errors import document_errors, install_error_handlers
from aiops_analyzer.api.payload import AlertmanagerPayload
from aiops_analyzer.api.routes import analyses, health, runbooks, webhook
from aiops_analyzer.api.strictness import TrailingSlashTolerance
from aiops_analyzer.api.webhook_fast_path import WebhookFastPath
from aiops_analyzer.core.config import Settings, get_settings
from aiops_analyzer.core.metrics import Metrics
from aiops_analyzer.scrub import Scrubber
from aiops_analyzer.store import Store
from aiops_analyzer.web import routes as web
from aiops_analyzer.worker import WorkerPool

VERSION = "0.1.0"


class WebhookStatusCounter:
    """Counts every answer of the webhook by status code, including 401/413/415/422/5xx."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != webhook.WEBHOOK_PATH:
            await self.app(scope, receive, send)
            return
        code = 500

        async def send_counting(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            self.metrics.webhook_requests.labels(str(code)).inc()


def create_app(settings: Settings | None = None, *, start_workers: bool = True) -> FastAPI:
    """Build the app. The store is migrated and workers started by the app's lifespan."""
    settings = settings or get_settings()
    metrics = Metrics()
    store = Store(settings.effective_database_url)
    workers = WorkerPool(settings, store, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(store.migrate)
        metrics.track_queue_depth(store.analyses.count_active)
        if start_workers:
            await workers.start()
        try:
            yield
        finally:
            await workers.stop()
            store.dispose()

    about: dict[str, Any] = {
        "title": "aiops-analyzer",
        "version": VERSION,
        "description": (
            "Receives Alertmanager webhooks, stores each alert once, and explains it with "
            "evidence (Prometheus, Loki, runbooks) using an LLM or offline rules."
        ),
        "lifespan": lifespan,
    }
    if settings.docs_enabled:
        # /docs and /redoc with their JavaScript and CSS served by the analyzer itself (the
        # stock pages load them from a CDN and stay blank on a machine without internet).
        app = FastAPIOffline(**about)
    else:
        # A public deployment need not describe itself: no /docs, /redoc or /openapi.json.
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **about)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.store = store
    app.state.workers = workers
    app.state.scrubber = Scrubber(settings.scrub_extra_patterns)

    install_error_handlers(app)
    app.include_router(webhook.router)
    app.include_router(analyses.router)
    app.include_router(health.router)
    app.include_router(runbooks.router)
    app.include_router(web.router)
    app.mount(web.STATIC_PATH, web.static, name="static")
    app.add_middleware(WebhookFastPath)  # inside the counter: its answers are counted too
    app.add_middleware(WebhookStatusCounter, metrics=metrics)
    app.add_middleware(TrailingSlashTolerance)  # outermost: the counter sees the clean path
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema plus the webhook payload (read by hand, so FastAPI cannot see it)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    payload = AlertmanagerPayload.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(payload.pop("$defs", {}))
    components["AlertmanagerPayload"] = payload
    document_errors(schema)
    app.openapi_schema = schema
    return schema
