"""Helpers every evidence source shares: the time window, text caps, failure items."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import httpx

from aiops_analyzer.core.config import Settings
from aiops_analyzer.schemas import Alert, EvidenceItem
from aiops_analyzer.scrub import Scrubber

Source = Literal["prometheus", "loki", "runbook"]

# One item must stay small: an engine sees several, and a prompt has a token budget.
MAX_ITEM_CHARS = 2500
MAX_RUNBOOK_CHARS = 4000


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def alert_window(alert: Alert, settings: Settings, now: datetime | None = None) -> Window:
    """[startsAt - window, min(now, endsAt or now)], never empty or inverted; for a resolved
    alert up to a third of a window past endsAt (still no later than now).

    Alertmanager sends a firing alert's endsAt in the future (its resolve timeout) and some
    senders use the zero time "0001-01-01": both mean "still going", i.e. now.
    """
    now = now or datetime.now(UTC)
    starts = _aware(alert.starts_at)
    span = timedelta(minutes=settings.evidence_window_minutes)
    start = starts - span
    end = now
    if alert.ends_at is not None:
        ends = _aware(alert.ends_at)
        if starts <= ends < now:
            # A resolved alert: look a little past its end, to tell whether the cause is
            # still there; a firing one that ended (as Alertmanager says): stop at the end.
            end = min(now, ends + span / 3) if alert.status == "resolved" else ends
    if end <= start:  # a startsAt in the future (clock skew): still look back one window
        start = end - timedelta(minutes=settings.evidence_window_minutes)
    return Window(start=start, end=end)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cap(text: str, limit: int = MAX_ITEM_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 20].rstrip() + "\n... [truncated]"


def finish(item: EvidenceItem, scrubber: Scrubber, limit: int = MAX_ITEM_CHARS) -> EvidenceItem:
    """Scrub and cap every free-text field of an item (the last step of every source).

    The typed fields are scrubbed too: label values and log lines reach the store, the web
    page and the prompt as much as the text does.
    """
    return item.model_copy(
        update={
            "query": cap(scrubber.scrub(item.query), 1000),
            "text": cap(scrubber.scrub(item.text), limit),
            "detail": cap(scrubber.scrub(item.detail), 500),
            "series": [
                s.model_copy(update={"labels": scrubber.scrub_mapping(dict(s.labels))})
                for s in item.series
            ],
            "templates": [
                t.model_copy(
                    update={
                        "template": scrubber.scrub(t.template),
                        "example": scrubber.scrub(t.example),
                    }
                )
                for t in item.templates
            ],
        }
    )


def unavailable(item_id: str, source: Source, query: str, detail: str) -> EvidenceItem:
    return EvidenceItem(id=item_id, source=source, query=query, status="unavailable", detail=detail)


def describe_error(exc: BaseException) -> str:
    """A short reason that never echoes a URL (it may carry credentials)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or unreachable"
    if isinstance(exc, httpx.HTTPError):
        return type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"[:200]
