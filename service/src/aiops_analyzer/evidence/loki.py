"""Loki evidence: the latest log lines of the affected container or job, errors first.

The stream selector comes from the alert's labels (container/name, compose_service, service,
service_name, job), the window runs from one evidence window before startsAt to one after
(or now), and at most ``loki_max_lines`` lines are kept: lines that look like errors
(error|fail|panic|fatal|exception) become ``loki-1``, the newest other lines the next item.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from aiops_analyzer.core.config import Settings
from aiops_analyzer.evidence.common import alert_window, describe_error, unavailable
from aiops_analyzer.schemas import Alert, EvidenceItem

# Syslog levels crit/emerg count; the word "alert" does not (too common in ordinary lines).
ERROR_LINE = re.compile(r"(?i)error|fail|panic|fatal|exception|\b(?:crit|emerg)\b")
MAX_LINE_CHARS = 300
# Fetch more than we keep so that error lines further back can still be found.
FETCH_FACTOR = 5

# (alert label, Loki stream label) in order of preference.
_SELECTOR_LABELS = (
    ("container", "container"),
    ("name", "container"),  # cAdvisor calls the Docker container "name"
    ("compose_service", "compose_service"),
    ("container_label_com_docker_compose_service", "compose_service"),
    ("service", "service"),  # the local stack's Alloy sets `service` on every stream
    ("service_name", "service_name"),
    ("job", "job"),
)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def stream_selector(alert: Alert) -> str | None:
    for alert_label, stream_label in _SELECTOR_LABELS:
        value = alert.labels.get(alert_label)
        if value:
            return "{" + f"{stream_label}={_quote(value)}" + "}"
    return None


async def collect(alert: Alert, settings: Settings, http: httpx.AsyncClient) -> list[EvidenceItem]:
    selector = stream_selector(alert)
    if not settings.loki_url:
        return [unavailable("loki-1", "loki", selector or "", "AIOPS_LOKI_URL is not set")]
    if selector is None:
        return [
            EvidenceItem(
                id="loki-1",
                source="loki",
                status="empty",
                detail="no container, name, compose_service, service_name or job label "
                "to select log streams by",
            )
        ]
    window = alert_window(alert, settings)
    # Logs *around* startsAt: an alert analysed hours later (a backlog, a long outage) must
    # not get only the newest lines, which say nothing about how it began.
    end = min(window.end, window.start + 2 * timedelta(minutes=settings.evidence_window_minutes))
    limit = settings.loki_max_lines * FETCH_FACTOR
    params = {
        "query": selector,
        "start": str(int(window.start.timestamp() * 1e9)),
        "end": str(int(end.timestamp() * 1e9)),
        "limit": str(limit),
        "direction": "backward",
    }
    timeout = settings.evidence_timeout_seconds
    url = settings.loki_url.rstrip("/") + "/loki/api/v1/query_range"
    try:
        async with asyncio.timeout(timeout):
            response = await http.get(url, params=params, timeout=timeout)
            body = response.json() if "json" in response.headers.get("content-type", "") else None
    except Exception as exc:
        return [unavailable("loki-1", "loki", selector, f"loki {describe_error(exc)}")]
    if not isinstance(body, dict) or body.get("status") != "success":
        error = body.get("error") if isinstance(body, dict) else None
        return [
            unavailable(
                "loki-1",
                "loki",
                selector,
                f"loki query failed: {error or f'HTTP {response.status_code}'}",
            )
        ]
    lines = _lines((body.get("data") or {}).get("result") or [])
    if not lines:
        return [
            EvidenceItem(
                id="loki-1",
                source="loki",
                query=selector,
                status="empty",
                text=f"no log lines for {selector} in the window",
            )
        ]
    return split_errors_first(lines, selector, settings.loki_max_lines)


def _lines(result: list[Any]) -> list[tuple[int, str]]:
    """(timestamp ns, line) of every stream, newest first."""
    out: list[tuple[int, str]] = []
    for stream in result:
        if not isinstance(stream, dict):
            continue
        for pair in stream.get("values") or []:
            if isinstance(pair, list | tuple) and len(pair) >= 2:
                try:
                    ts = int(pair[0])
                except (TypeError, ValueError):
                    continue
                out.append((ts, str(pair[1])))
    out.sort(key=lambda p: p[0], reverse=True)
    return out


def _render(ts_ns: int, line: str) -> str:
    when = datetime.fromtimestamp(ts_ns / 1e9, tz=UTC).strftime("%H:%M:%S")
    line = line.replace("\n", " ").strip()
    if len(line) > MAX_LINE_CHARS:
        line = line[: MAX_LINE_CHARS - 3] + "..."
    return f"{when} {line}"


def split_errors_first(
    lines: list[tuple[int, str]], selector: str, max_lines: int
) -> list[EvidenceItem]:
    errors = [p for p in lines if ERROR_LINE.search(p[1])][:max_lines]
    others = [p for p in lines if not ERROR_LINE.search(p[1])][: max_lines - len(errors)]
    items: list[EvidenceItem] = []
    if errors:
        items.append(
            EvidenceItem(
                id="loki-1",
                source="loki",
                query=selector,
                text=f"{len(errors)} error-like log lines (newest first):\n"
                + "\n".join(_render(*p) for p in errors),
            )
        )
    if others:
        items.append(
            EvidenceItem(
                id=f"loki-{len(items) + 1}",
                source="loki",
                query=selector,
                text=f"{len(others)} most recent other log lines (newest first):\n"
                + "\n".join(_render(*p) for p in others),
            )
        )
    return items
