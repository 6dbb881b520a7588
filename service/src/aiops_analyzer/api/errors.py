"""Error responses: every failure answers JSON with a message, never a traceback."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from aiops_analyzer.core.storage_health import RETRY_AFTER_SECONDS, is_storage_error

logger = logging.getLogger(__name__)


class FieldError(BaseModel):
    field: str = Field(description="Where: body, a dotted path into it, or a query parameter.")
    message: str


class ErrorResponse(BaseModel):
    """Every error the API answers (4xx and 5xx) has this shape."""

    detail: str = Field(description="One readable sentence naming the problem.")
    errors: list[FieldError] | None = Field(None, description="422: one entry per field.")
    error_id: str | None = Field(None, description="500: the id of the log line.")


_MAX_LISTED_ERRORS = 5


def _location(loc: Sequence[Any]) -> str:
    # FastAPI prefixes "body"/"query"/"path"; keep it for query and path, it helps the caller.
    return ".".join(str(part) for part in loc) or "body"


def describe_errors(errors: Sequence[Any]) -> tuple[str, list[dict[str, str]]]:
    """One readable line naming each invalid field, plus a compact list for programs."""
    compact = [
        {"field": _location(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in errors
    ]
    listed = "; ".join(f"{e['field']}: {e['message']}" for e in compact[:_MAX_LISTED_ERRORS])
    more = len(compact) - _MAX_LISTED_ERRORS
    if more > 0:
        listed += f"; and {more} more"
    return listed, compact


def validation_response(exc: ValidationError | RequestValidationError, prefix: str) -> JSONResponse:
    errors = (
        exc.errors(include_url=False, include_context=False, include_input=False)
        if isinstance(exc, ValidationError)
        else exc.errors()
    )
    message, compact = describe_errors(errors)
    return JSONResponse(
        status_code=422, content={"detail": f"{prefix}{message}", "errors": compact}
    )


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_response(exc, "invalid request: ")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if is_storage_error(exc):
        return storage_unavailable(request, exc)
    error_id = uuid.uuid4().hex[:12]
    logger.error(
        "unhandled error",
        exc_info=exc,
        extra={"event": "unhandled_error", "error_id": error_id, "path": request.url.path},
    )
    return JSONResponse(
        status_code=500,
        content={"detail": "internal error; the service log has the details", "error_id": error_id},
    )


def storage_unavailable(request: Request, exc: BaseException) -> JSONResponse:
    """503 with Retry-After: the store cannot take the request now; nothing was acknowledged."""
    cause = request.app.state.workers.storage.failed(exc)
    return JSONResponse(
        status_code=503,
        content={"detail": f"the store is unavailable ({cause}); retry later"},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def document_errors(schema: dict[str, Any]) -> None:
    """Declare ErrorResponse as the body of every error the schema lists (FastAPI's default
    HTTPValidationError is not what the API answers) and drop the unused defaults."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error.pop("$defs", {}))
    components["ErrorResponse"] = error
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            for code, response in operation.get("responses", {}).items():
                if code[0] in "45" and path != "/readyz":
                    response["content"] = body
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(Exception, _unexpected)
