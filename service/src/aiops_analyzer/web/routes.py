"""The analyzer's web pages: the list (after a login), one page per analysis (by signed link).

Every response carries a strict Content-Security-Policy (no script at all, styles only from
the analyzer), ``Referrer-Policy: no-referrer`` (a signed link must not leak to the Grafana or
Prometheus a page links to) and ``Cache-Control: no-store``. Jinja2 escapes every value.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from aiops_analyzer.api.deps import SettingsDep, StoreDep, token_matches
from aiops_analyzer.api.models import analysis_out
from aiops_analyzer.core.config import Settings
from aiops_analyzer.notify.format import human_duration
from aiops_analyzer.web import links
from aiops_analyzer.web.view import build_page

HERE = Path(__file__).parent
SESSION_COOKIE = "aiops_session"
LOGIN_PATH = "/ui/login"
LIST_PATH = links.PAGE_PATH
STATIC_PATH = "/ui/static"
PAGE_SIZES = (20, 50, 100)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters["when"] = lambda v: v.strftime("%Y-%m-%d %H:%M:%S UTC") if v else "-"
templates.env.filters["pct"] = lambda v: f"{v:.0%}"
templates.env.globals["duration"] = human_duration

router = APIRouter(include_in_schema=False)
static = StaticFiles(directory=HERE / "static")


def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return _secure(
        templates.TemplateResponse(request, name, {"static": STATIC_PATH, **context}, status)
    )


def _problem(
    request: Request, status: int, title: str, message: str, login: str | None = None
) -> Response:
    """An error page; ``login`` is where a login should lead back to, if one can help."""
    context = {"title": title, "message": message, "login": _login_link(login) if login else None}
    return _render(request, "message.html", context, status)


def _back_to(target: str | None) -> str:
    """Where to go after the login: a page of ours only (no open redirect), else the list."""
    if target and target.startswith("/ui/") and "//" not in target and "\\" not in target:
        return target
    return LIST_PATH


def _login_link(back: str) -> str:
    return f"{LOGIN_PATH}?{urlencode({'next': back})}"


def logged_in(request: Request, settings: Settings) -> bool:
    return settings.auth_disabled or links.session_valid(
        settings, request.cookies.get(SESSION_COOKIE)
    )


@router.get("/")
async def home() -> Response:
    return _secure(RedirectResponse(LIST_PATH, status_code=303))


@router.get(LOGIN_PATH)
async def login_form(request: Request) -> Response:
    back = _back_to(request.query_params.get("next"))
    return _render(request, "login.html", {"error": None, "next": back})


@router.post(LOGIN_PATH)
async def login(
    request: Request,
    settings: SettingsDep,
    token: Annotated[str, Form(max_length=4096)] = "",
    next_: Annotated[str, Form(alias="next", max_length=2048)] = "",
) -> Response:
    back = _back_to(next_)
    expected = settings.webhook_token.get_secret_value() if settings.webhook_token else ""
    if not settings.auth_disabled and not (expected and token_matches(token, expected)):
        context = {"error": "That token is not valid.", "next": back}
        return _render(request, "login.html", context, 401)
    response = RedirectResponse(back, status_code=303)
    secure = (settings.public_url or str(request.url)).startswith("https://")
    response.set_cookie(
        SESSION_COOKIE,
        links.new_session(settings),
        max_age=round(settings.ui_session_hours * 3600),
        path="/ui",
        httponly=True,
        secure=secure,
        samesite="lax",
    )
    return _secure(response)


@router.post("/ui/logout")
async def logout() -> Response:
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return _secure(response)


class BadFilter(ValueError):
    pass


def _filters(request: Request) -> dict[str, Any]:
    """The list's filters from the query string; empty fields (a submitted form) are unset."""
    q = {k: v.strip() for k, v in request.query_params.items() if v.strip()}
    out: dict[str, Any] = {
        "status": q.get("status"),
        "state": q.get("state"),
        "alertname": q.get("alertname"),
        "since": None,
        "limit": 20,
        "offset": 0,
    }
    if out["status"] not in (None, "firing", "resolved"):
        raise BadFilter("status must be firing or resolved")
    if out["state"] not in (None, "pending", "running", "done", "failed"):
        raise BadFilter("state must be pending, running, done or failed")
    if out["alertname"] and len(out["alertname"]) > 255:
        raise BadFilter("alertname is longer than 255 characters")
    if "since" in q:
        try:
            since = datetime.fromisoformat(q["since"].replace("Z", "+00:00"))
        except ValueError:
            raise BadFilter("since must be a date and time like 2026-11-28T10:00") from None
        out["since"] = since if since.tzinfo else since.replace(tzinfo=UTC)
    for key, low, high in (("limit", 1, 500), ("offset", 0, 2**62)):
        if key in q:
            if not q[key].isdigit() or not low <= int(q[key]) <= high:
                raise BadFilter(f"{key} must be a whole number from {low} to {high}")
            out[key] = int(q[key])
    return out


@router.get(LIST_PATH)
async def list_page(request: Request, settings: SettingsDep, store: StoreDep) -> Response:
    if not logged_in(request, settings):
        return _secure(RedirectResponse(LOGIN_PATH, status_code=303))
    try:
        f = _filters(request)
    except BadFilter as exc:
        return _problem(request, 400, "Bad filter", str(exc))
    records, total = await anyio.to_thread.run_sync(lambda: store.analyses.list(**f))
    items = [analysis_out(record) for record in records]

    def page_link(offset: int) -> str:
        params = {k: v for k, v in request.query_params.items() if v and k != "offset"}
        return f"{LIST_PATH}?{urlencode({**params, 'offset': offset})}"

    end = f["offset"] + len(items)
    return _render(
        request,
        "list.html",
        {
            "items": items,
            "total": total,
            "filters": f,
            "since_text": request.query_params.get("since", ""),
            "first": f["offset"] + 1 if items else 0,
            "last": end,
            "next_link": page_link(end) if end < total else None,
            "prev_link": page_link(max(0, f["offset"] - f["limit"])) if f["offset"] else None,
            "page_sizes": PAGE_SIZES,
            "auth_disabled": settings.auth_disabled,
        },
    )


@router.get(LIST_PATH + "/{analysis_id}")
async def analysis_page(
    request: Request, analysis_id: str, settings: SettingsDep, store: StoreDep
) -> Response:
    if not analysis_id.isdigit() or not 1 <= int(analysis_id) < 2**62:
        return _problem(request, 404, "Not found", "There is no analysis with this id.")
    number = int(analysis_id)
    check = links.check_page(settings, number, request.query_params.get("sig"))
    if not check.ok and not logged_in(request, settings):
        if check.problem is links.LinkProblem.EXPIRED:
            return _problem(
                request,
                403,
                "This link has expired",
                f"Links to analyses open for {settings.page_link_ttl_hours:g} hours. "
                "Log in to see this analysis.",
                login=request.url.path,
            )
        if check.problem is links.LinkProblem.INVALID:
            return _problem(
                request,
                403,
                "This link is not valid",
                "The link was changed or was signed with another key. "
                "Open it again from the notification, or log in.",
                login=request.url.path,
            )
        return _secure(RedirectResponse(_login_link(request.url.path), status_code=303))
    record = await anyio.to_thread.run_sync(store.analyses.get, number)
    if record is None:
        return _problem(request, 404, "Not found", f"There is no analysis {number}.")
    analysis = analysis_out(record)
    resolved_at = analysis.ends_at if analysis.status == "resolved" else None
    if analysis.resolved_by is not None:
        resolution = await anyio.to_thread.run_sync(store.analyses.get, analysis.resolved_by)
        if resolution is not None:
            resolved_at = resolution.alert.ends_at
    related = {
        other: links.page_path(settings, other)
        for other in (
            analysis.resolved_by,
            analysis.resolution and analysis.resolution.firing_analysis_id,
        )
        if other
    }
    return _render(
        request,
        "analysis.html",
        {
            "a": analysis,
            "r": analysis.result,
            "view": build_page(analysis, settings, resolved_at),
            "related": related,
            "list_link": LIST_PATH if logged_in(request, settings) else None,
        },
    )
