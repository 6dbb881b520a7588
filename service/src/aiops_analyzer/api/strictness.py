"""Requests that are almost right get a precise answer instead of a silent surprise.

- An unknown query parameter (`/analyses?stauts=firing`) is a 422 naming it, not ignored, so a
  typo never returns an unfiltered page that looks filtered.
- A trailing slash on an API path (`/webhook/alertmanager/`, a common copy-paste in
  alertmanager.yml) reaches the same endpoint instead of a bare 307 redirect, which
  Alertmanager would follow without being told why.
"""

from __future__ import annotations

from fastapi import HTTPException, Request, status
from fastapi.dependencies.models import Dependant
from starlette.types import ASGIApp, Receive, Scope, Send

# Paths whose trailing-slash variant is served as the path itself.
SLASH_TOLERANT_PREFIXES = ("/webhook/", "/analyses")


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query_params(request: Request) -> None:
    """A router dependency: 422 when the query holds a parameter the endpoint does not read."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    unknown = sorted({name for name in request.query_params if name not in known})
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"unknown query parameter{'s' if len(unknown) > 1 else ''}: "
            f"{', '.join(unknown)} (accepted: {', '.join(sorted(known)) or 'none'})",
        )


class TrailingSlashTolerance:
    """Serves `/webhook/alertmanager/` and `/analyses/` as the paths without the slash."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and len(path) > 1
            and path.endswith("/")
            and path.startswith(SLASH_TOLERANT_PREFIXES)
        ):
            scope = dict(scope, path=path.rstrip("/"))
            if scope.get("raw_path"):
                scope["raw_path"] = scope["raw_path"].rstrip(b"/")
        await self.app(scope, receive, send)
