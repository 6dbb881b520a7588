"""POST /webhook/alertmanager: validate, store every alert, answer 202 at once.

Nothing slow happens here: evidence and engines run in the workers. The body is read by hand
so the size limit holds while reading (a huge body is refused before it is in memory) and so
each failure gets its own status: 401, 413, 415, 422.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import ClientDisconnect

from aiops_analyzer.api.deps import WebhookContextDep
from aiops_analyzer.api.errors import storage_unavailable, validation_response
from aiops_analyzer.api.payload import (
    AlertmanagerPayload,
    DuplicateKeyError,
    check_duplicate_keys,
)
from aiops_analyzer.core.metrics import Metrics
from aiops_analyzer.core.storage_health import is_storage_error
from aiops_analyzer.scrub import Scrubber
from aiops_analyzer.store import Delivery, Store
from aiops_analyzer.worker import WorkerPool

logger = logging.getLogger(__name__)

router = APIRouter(tags=["webhook"])

WEBHOOK_PATH = "/webhook/alertmanager"


class WebhookAccepted(BaseModel):
    delivery_id: int
    analysis_ids: list[int] = Field(description="One per alert, in the payload's order.")
    new: int = Field(description="Alerts stored for the first time (queued for analysis).")
    duplicates: int = Field(description="Alerts already stored under the same key.")
    truncated_alerts: int = Field(description="Alerts Alertmanager left out of this delivery.")


def is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, detail=f"body exceeds the limit of {limit} bytes"
        )
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HTTPException(
                    status.HTTP_413_CONTENT_TOO_LARGE,
                    detail=f"body exceeds the limit of {limit} bytes",
                )
    except ClientDisconnect:
        # The client left, or the server's body deadline closed the connection: nothing to
        # store and nobody to answer, but no "unhandled error" traceback either.
        raise HTTPException(
            status.HTTP_408_REQUEST_TIMEOUT, detail="the body did not arrive in full"
        ) from None
    return bytes(body)


# Bodies up to this size are parsed on the event loop (well under a millisecond).
INLINE_PARSE_MAX_BYTES = 64 * 1024


def parse_payload(body: bytes) -> AlertmanagerPayload:
    payload = AlertmanagerPayload.model_validate_json(body)
    # Only a valid payload is parsed again: pydantic has refused absurd nesting by then.
    check_duplicate_keys(body)
    return payload


@router.post(
    WEBHOOK_PATH,
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAccepted,
    openapi_extra={
        # The token is checked by WebhookContextDep (one dependency on the hot path).
        "security": [{"HTTPBearer": []}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AlertmanagerPayload"}}
            },
        },
    },
    responses={
        401: {"description": "Missing or wrong bearer token."},
        408: {"description": "Headers or body slower than the server's deadlines."},
        413: {"description": "Body over AIOPS_MAX_BODY_BYTES."},
        415: {"description": "Content type is not JSON."},
        503: {"description": "The store cannot take writes (disk full, database down)."},
        422: {"description": "Invalid payload; the message names the field."},
    },
)
async def receive_alerts(request: Request, context: WebhookContextDep) -> Any:
    """Store each alert of an Alertmanager (version 4) delivery and queue its analysis."""
    settings = context.settings
    content_type = request.headers.get("content-type", "")
    if not is_json(content_type):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"content type must be application/json, got {content_type[:100]!r}",
        )
    body = await _read_limited(request, settings.max_body_bytes)
    try:
        # Parsed and validated by pydantic's JSON parser, which also refuses lone surrogate
        # escapes (no UTF-8 store can hold them) and absurd nesting. A large body goes to a
        # thread, so a megabyte of payload cannot hold the event loop (health checks, other
        # clients); a typical delivery parses in ~30 us, far less than the ~200 us thread hop.
        if len(body) > INLINE_PARSE_MAX_BYTES:
            payload = await anyio.to_thread.run_sync(parse_payload, body)
        else:
            payload = parse_payload(body)
    except DuplicateKeyError as exc:
        return JSONResponse(
            status_code=422,
            content={
                "detail": f"body is not acceptable JSON: {exc}",
                "errors": [{"field": "body", "message": str(exc)}],
            },
        )
    except ValidationError as exc:
        syntax = [e for e in exc.errors(include_url=False) if e["type"] == "json_invalid"]
        if syntax:
            return JSONResponse(
                status_code=422,
                content={
                    "detail": f"body is not valid JSON: {str(syntax[0]['msg'])[:200]}",
                    "errors": [{"field": "body", "message": "invalid JSON"}],
                },
            )
        return validation_response(exc, "invalid Alertmanager payload: ")

    try:
        return await accept(payload, request.app.state, size=len(body))
    except Exception as exc:
        if is_storage_error(exc):
            return storage_unavailable(request, exc)
        raise


async def accept(payload: AlertmanagerPayload, state: Any, *, size: int) -> WebhookAccepted:
    """Store a valid delivery (``size`` bytes of body), queue its new alerts, count and log
    it: what a 202 means. Shared by the route and ``WebhookFastPath``; a store failure is
    raised to the caller."""
    scrubber: Scrubber = state.scrubber
    metrics: Metrics = state.metrics
    workers: WorkerPool = state.workers

    def scrubbed_delivery() -> Delivery:
        # Scrubbed once, here, where the data enters: the store, the API, the engines and
        # the notifications only ever see the masked text. In the writer (a thread unless the
        # batch is small): scrubbing a long payload takes real time (about 0.3 s per MB).
        return Delivery(
            receiver=scrubber.scrub(payload.receiver),
            status=payload.status,
            group_key=scrubber.scrub(payload.group_key),
            truncated_alerts=payload.truncated_alerts,
            alerts=[scrubber.scrub_alert(alert.to_alert()) for alert in payload.alerts],
        )

    # Built and stored by the store's writer, in one transaction (one fsync) with the
    # deliveries of concurrent requests.
    store: Store = state.store
    result = await store.ingest_grouped(scrubbed_delivery, size=size)
    workers.storage.succeeded()
    records = payload.alerts
    if result.new_ids:
        workers.wake(len(result.new_ids))

    for record in records:
        metrics.alerts_received.labels(record.status).inc()
    if result.duplicates:
        metrics.alerts_duplicate.inc(result.duplicates)
    if payload.truncated_alerts:
        metrics.alerts_truncated.inc(payload.truncated_alerts)
        logger.warning(
            "alertmanager truncated a delivery",
            extra={
                "event": "delivery_truncated",
                "delivery_id": result.delivery_id,
                "truncated_alerts": payload.truncated_alerts,
            },
        )
    logger.info(
        "delivery stored",
        extra={
            "event": "delivery_stored",
            "delivery_id": result.delivery_id,
            "alerts": len(records),
            "new": len(result.new_ids),
            "duplicates": result.duplicates,
        },
    )
    return WebhookAccepted(
        delivery_id=result.delivery_id,
        analysis_ids=result.analysis_ids,
        new=len(result.new_ids),
        duplicates=result.duplicates,
        truncated_alerts=payload.truncated_alerts,
    )
