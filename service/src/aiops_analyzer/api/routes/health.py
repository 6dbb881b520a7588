"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aiops_analyzer.api.deps import (
    MetricsDep,
    SettingsDep,
    StoreDep,
    WorkersDep,
    bearer_scheme,
    require_token,
)

router = APIRouter(tags=["health"])

READY_STORE_TIMEOUT_SECONDS = 2.0


@router.get("/healthz")
# The same at /health: Cloud Run's front end reserves some paths ending in `z`.
@router.get("/health")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers. Cheap on purpose; checks nothing else."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={503: {"description": "Store unreachable or failing writes, or workers down."}},
)
async def readyz(store: StoreDep, workers: WorkersDep, settings: SettingsDep) -> JSONResponse:
    """Readiness: the store answers and every worker task is alive. Also reports what the
    workers last saw of the LLM, Prometheus, Loki and each notification channel."""
    store_ok = False
    detail = ""
    try:
        with anyio.fail_after(READY_STORE_TIMEOUT_SECONDS):
            store_ok = await anyio.to_thread.run_sync(store.ping, abandon_on_cancel=True)
    except TimeoutError:
        detail = "store did not answer in time"
    except Exception as exc:
        detail = f"store unreachable: {type(exc).__name__}"
    alive = workers.alive
    write_failure = workers.storage.failing
    if store_ok and write_failure:
        store_ok, detail = False, f"writes failing: {write_failure}"
    ready = store_ok and alive == settings.workers
    body = {
        "status": "ready" if ready else "not ready",
        "store": "ok" if store_ok else detail or "unreachable",
        "workers_alive": alive,
        "workers_expected": settings.workers,
        # Reported, not required: without them alerts are still stored and analysed by rules.
        "dependencies": workers.health.snapshot(),
    }
    code = status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(status_code=code, content=body)


async def _metrics_token(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """The bearer token, when AIOPS_METRICS_REQUIRE_TOKEN is set (a public deployment)."""
    if settings.metrics_require_token:
        await require_token(request, settings, credentials)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(_metrics_token)],
    responses={401: {"description": "AIOPS_METRICS_REQUIRE_TOKEN is set and the token is wrong."}},
)
def metrics_endpoint(metrics: MetricsDep) -> Response:
    """Prometheus text format (sync: the queue depth gauge reads the store)."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
