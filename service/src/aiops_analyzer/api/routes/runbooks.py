"""GET /runbooks/{alertname}: the runbooks the analyzer ships (or AIOPS_RUNBOOKS_DIR), as
Markdown, so runbook links work in every deployment and fork (see runbook_links.py)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import PlainTextResponse

from aiops_analyzer.api.deps import SettingsDep
from aiops_analyzer.evidence.runbooks import find_runbook
from aiops_analyzer.runbook_links import RUNBOOKS_PATH

router = APIRouter(tags=["runbooks"])


@router.get(
    RUNBOOKS_PATH + "/{alertname}",
    response_class=PlainTextResponse,
    responses={404: {"description": "No runbook for this alert name."}},
)
async def runbook(alertname: str, settings: SettingsDep) -> PlainTextResponse:
    """The runbook of an alert (`/runbooks/NginxDown` or `/runbooks/NginxDown.md`), Markdown.

    Runbooks are operating instructions, not alert data: served without the token, like the
    repository they come from."""
    name = alertname.removesuffix(".md")
    path = find_runbook(name, settings)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no runbook for alert {name!r}")
    return PlainTextResponse(
        path.read_text(encoding="utf-8"), media_type="text/markdown; charset=utf-8"
    )
