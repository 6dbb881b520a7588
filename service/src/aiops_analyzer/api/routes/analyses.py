"""GET /analyses and GET /analyses/{id}: what the workers concluded, newest first."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, HTTPException, Path, Query, status

from aiops_analyzer.api.deps import SettingsDep, StoreDep, require_token
from aiops_analyzer.api.models import AnalysisOut, AnalysisPage, analysis_out
from aiops_analyzer.api.payload import Timestamp
from aiops_analyzer.api.strictness import reject_unknown_query_params
from aiops_analyzer.store import JobState
from aiops_analyzer.web.links import page_url

# Analyses quote alert labels and logs: the same token as the webhook protects them.
router = APIRouter(
    tags=["analyses"],
    dependencies=[Depends(require_token), Depends(reject_unknown_query_params)],
    responses={401: {"description": "Missing or wrong bearer token."}},
)
# A list item carries each runbook's first lines only; GET /analyses/{id} has the whole text.
LIST_RUNBOOK_CHARS = 300

# SQLite integers are 64-bit; larger values would fail in the driver, not as a clean 4xx.
_MAX_ID = 2**62


def list_item(analysis: AnalysisOut) -> AnalysisOut:
    """The analysis without the bulk of its runbook text (kilobytes per item in a page)."""
    evidence = []
    for item in analysis.evidence:
        if item.source == "runbook" and len(item.text) > LIST_RUNBOOK_CHARS:
            cut = item.text[:LIST_RUNBOOK_CHARS].rsplit(" ", 1)[0]
            item = item.model_copy(
                update={"text": f"{cut} ... [shortened in the list; GET /analyses/{analysis.id}]"}
            )
        evidence.append(item)
    return analysis.model_copy(update={"evidence": evidence})


@router.get("/analyses", response_model=AnalysisPage)
async def list_analyses(
    store: StoreDep,
    settings: SettingsDep,
    status_: Annotated[
        Literal["firing", "resolved"] | None, Query(alias="status", description="Alert status.")
    ] = None,
    state: Annotated[JobState | None, Query(description="Job state.")] = None,
    alertname: Annotated[str | None, Query(max_length=255)] = None,
    since: Annotated[
        Timestamp | None,
        Query(
            description="Only alerts received at or after this RFC 3339 time with an offset "
            "(2026-11-28T10:00:00Z); a number is refused, not read as a Unix time."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=_MAX_ID)] = 0,
) -> AnalysisPage:
    records, total = await anyio.to_thread.run_sync(
        lambda: store.analyses.list(
            status=status_,
            state=state,
            alertname=alertname,
            since=since,
            limit=limit,
            offset=offset,
        )
    )
    next_offset = offset + len(records) if offset + len(records) < total else None
    return AnalysisPage(
        items=[
            list_item(analysis_out(record, page_url(settings, record.id))) for record in records
        ],
        total=total,
        limit=limit,
        offset=offset,
        next_offset=next_offset,
    )


@router.get(
    "/analyses/{analysis_id}",
    response_model=AnalysisOut,
    responses={404: {"description": "No analysis with this id."}},
)
async def get_analysis(
    store: StoreDep, settings: SettingsDep, analysis_id: Annotated[int, Path(ge=1, le=_MAX_ID)]
) -> AnalysisOut:
    record = await anyio.to_thread.run_sync(store.analyses.get, analysis_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"analysis {analysis_id} not found")
    return analysis_out(record, page_url(settings, analysis_id))
