"""Discord webhook messages with one embed."""

from __future__ import annotations

import re
from typing import Any

from aiops_analyzer.notify.format import (
    RESOLVED_COLOR,
    SEVERITY_COLOR,
    cause_lines,
    cause_persists,
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

# Discord limits: title 256, description 4096, field value 1024 characters.
USERNAME = "AIOps analyzer"
# Alert text must never ping anyone (@everyone, roles, users).
NO_MENTIONS: dict[str, list[str]] = {"parse": []}


_MARKDOWN = re.compile(r"([\\\[\]()*_~`|<>]|^[#-])")


def _text(value: str) -> str:
    """Untrusted text for Discord markdown: every markup character backslash-escaped (no
    masked link [label](url), no formatting, no quote or heading), on one line, and
    @mentions broken by a zero-width space (allowed_mentions already stops the ping)."""
    escaped = _MARKDOWN.sub(r"\\\1", one_line(value))
    return escaped.replace("@", "@\u200b")


def _link(url: str | None, label: str) -> str | None:
    target = safe_url(url)
    return f"[{label}]({target})" if target else None


def _field(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": clip(value, 1024), "inline": False}


def analysis_message(
    alert: Alert, result: AnalysisResult, analysis_id: int, page_url: str | None = None
) -> dict[str, Any]:
    fields = [
        {"name": "Severity", "value": _text(result.severity), "inline": True},
        {"name": "Category", "value": clip(_text(result.category), 100), "inline": True},
        {"name": "Target", "value": clip(_text(where(alert)), 200), "inline": True},
    ]
    causes = cause_lines(result)
    if causes:
        fields.append(_field("Probable causes", "\n".join(f"• {_text(c)}" for c in causes)))
    if result.remediation:
        fields.append(
            _field(
                "Remediation",
                "\n".join(f"{n}. {_text(s)}" for n, s in enumerate(result.remediation, 1)),
            )
        )
    candidates = [_link(page_url, "Open the analysis"), _link(alert.generator_url, "Source")]
    candidates += [_link(u, "Runbook") or f"Runbook: {_text(u)}" for u in result.runbook_urls]
    links = [link for link in candidates if link]
    if links:
        fields.append(_field("Links", " · ".join(links)))
    embed: dict[str, Any] = {
        "title": clip(_text(f"{title(alert, result)} ({alert.status})"), 256),
        "description": clip(_text(result.summary), 4096),
        "color": SEVERITY_COLOR.get(result.severity, SEVERITY_COLOR["none"]),
        "fields": fields,
        "footer": {
            "text": clip(one_line(f"analysis #{analysis_id} · {engine_note(result)}"), 2048)
        },
        "timestamp": alert.starts_at.isoformat(),
    }
    if safe_url(page_url):
        embed["url"] = safe_url(page_url)  # the title becomes the link
    return {"username": USERNAME, "allowed_mentions": NO_MENTIONS, "embeds": [embed]}


def resolution_message(
    alert: Alert,
    firing: AnalysisResult | None,
    duration_seconds: float | None,
    analysis_id: int,
    page_url: str | None = None,
    resolved: AnalysisResult | None = None,
) -> dict[str, Any]:
    severity = resolved.severity if resolved else "unknown"
    fields = [
        {"name": "Severity", "value": _text(severity), "inline": True},
        {"name": "Cause still present", "value": persists_word(resolved), "inline": True},
        _field("Recovery", _text(recovery_text(resolved))),
    ]
    if firing is not None:
        fields.append(
            _field(
                "Firing analysis",
                f"({_text(firing.category)}) {_text(firing_cause(firing))}",
            )
        )
    footer = f"analysis #{analysis_id}"
    if resolved is not None:
        footer += f" · {engine_note(resolved)}"
    persists = cause_persists(resolved)
    embed: dict[str, Any] = {
        "title": clip(_text(resolution_title(alert, resolved)), 256),
        "description": clip(_text(resolution_lead(alert, duration_seconds, resolved)), 4096),
        "color": SEVERITY_COLOR.get(severity, RESOLVED_COLOR) if persists else RESOLVED_COLOR,
        "fields": fields,
        "footer": {"text": clip(one_line(footer), 2048)},
    }
    if alert.ends_at is not None:
        embed["timestamp"] = alert.ends_at.isoformat()
    if safe_url(page_url):
        embed["url"] = safe_url(page_url)
    return {"username": USERNAME, "allowed_mentions": NO_MENTIONS, "embeds": [embed]}
