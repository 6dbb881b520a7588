"""Slack incoming webhook messages in Block Kit."""

from __future__ import annotations

import re
from typing import Any

from aiops_analyzer.notify.format import (
    cause_lines,
    clip,
    engine_note,
    firing_cause,
    one_line,
    persists_word,
    recovery_text,
    resolution_lead,
    resolution_title,
    safe_url,
    title,
    where,
)
from aiops_analyzer.schemas import Alert, AnalysisResult

# Block Kit limits: header text 150 characters, section text 3000.
HEADER_LIMIT = 150
SECTION_LIMIT = 3000
PAGE_LINK_TEXT = "Open the analysis: charts, logs, evidence"


# mrkdwn has no escape for *bold*, _italic_, ~strike~ and `code`: a delimiter only counts at
# the start of a word, so a zero-width space before such a one disarms it (nginx_exporter,
# inside a word, is left alone and still copies as written).
_FORMAT_START = re.compile(r"(?<![A-Za-z0-9])([*_~`])")


def _escape(text: str) -> str:
    """Untrusted text for mrkdwn: &, < and > as entities, so no <link|label>, <!channel>,
    <!here> or <@user> can be written; formatting disarmed; on one line, so no fake section
    can follow."""
    text = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _FORMAT_START.sub("\u200b\\1", text)


def _link(url: str | None, label: str) -> str | None:
    """<url|label> for a validated URL and one of the analyzer's own labels, else None."""
    target = safe_url(url)
    return f"<{target}|{label}>" if target else None


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}}


def _page_link(url: str) -> dict[str, Any]:
    """The analysis page, as the message's most visible link (phones open it in one tap)."""
    link = _link(url, PAGE_LINK_TEXT)
    return _section(f"*{link}*" if link else _escape(url))


def _links(alert: Alert, result: AnalysisResult, analysis_id: int) -> str:
    parts = []
    source = _link(alert.generator_url, "Source")
    if source:
        parts.append(source)
    for url in result.runbook_urls:
        parts.append(_link(url, "Runbook") or f"Runbook: {_escape(url)}")
    parts.append(f"analysis #{analysis_id}")
    parts.append(_escape(engine_note(result)))
    return " · ".join(parts)


def analysis_message(
    alert: Alert, result: AnalysisResult, analysis_id: int, page_url: str | None = None
) -> dict[str, Any]:
    heading = clip(f"{title(alert, result)} ({alert.status})", HEADER_LIMIT)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": one_line(heading), "emoji": True},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Severity*\n{_escape(result.severity)}"},
                {"type": "mrkdwn", "text": f"*Category*\n{_escape(result.category)}"},
                {"type": "mrkdwn", "text": f"*Target*\n{_escape(clip(where(alert), 500))}"},
                {"type": "mrkdwn", "text": f"*Started*\n{alert.starts_at.isoformat()}"},
            ],
        },
        _section(f"*Summary*\n{_escape(result.summary)}"),
    ]
    if page_url:
        blocks.append(_page_link(page_url))
    causes = cause_lines(result)
    if causes:
        blocks.append(
            _section("*Probable causes*\n" + "\n".join(f"• {_escape(c)}" for c in causes))
        )
    if result.remediation:
        steps = "\n".join(f"{n}. {_escape(s)}" for n, s in enumerate(result.remediation, 1))
        blocks.append(_section(f"*Remediation*\n{steps}"))
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _links(alert, result, analysis_id)}],
        }
    )
    # The top-level text (notifications, old clients) is mrkdwn too: escape it as well.
    fallback = _escape(f"{heading}: {result.summary}")
    return {"text": clip(fallback, SECTION_LIMIT), "blocks": blocks}


def resolution_message(
    alert: Alert,
    firing: AnalysisResult | None,
    duration_seconds: float | None,
    analysis_id: int,
    page_url: str | None = None,
    resolved: AnalysisResult | None = None,
) -> dict[str, Any]:
    heading = clip(resolution_title(alert, resolved), HEADER_LIMIT)
    lead = resolution_lead(alert, duration_seconds, resolved)
    severity = resolved.severity if resolved else "unknown"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": one_line(heading)}},
        _section(_escape(lead)),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Severity*\n{_escape(severity)}"},
                {"type": "mrkdwn", "text": f"*Cause still present*\n{persists_word(resolved)}"},
            ],
        },
        _section(f"*Recovery*\n{_escape(recovery_text(resolved))}"),
    ]
    if firing is not None:
        blocks.append(
            _section(
                f"*Firing analysis* ({_escape(firing.category)}): {_escape(firing_cause(firing))}"
            )
        )
    if page_url:
        blocks.append(_page_link(page_url))
    context = f"analysis #{analysis_id}"
    if resolved is not None:
        context += f" · {_escape(engine_note(resolved))}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    fallback = _escape(f"{heading}: {lead}")
    return {"text": clip(fallback, SECTION_LIMIT), "blocks": blocks}
