"""Pieces of text every channel shows the same way, and the rules that make them safe.

Everything in a chat message that comes from an alert or an engine (labels, annotations,
``generatorURL``, ``runbook_url``, summaries, causes, steps) is untrusted: whoever can make an
alert fire can write it. So messages are built from escaped parts only: each channel escapes
text with its own ``text()`` (Slack mrkdwn, Discord markdown), every link target goes through
``safe_url`` (http/https only, characters that could end or re-open markup percent-encoded)
and every link label is the analyzer's own fixed word. Line breaks in one-line values are
collapsed, so a summary cannot draw a fake "Remediation" section below itself.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from aiops_analyzer.schemas import Alert, AnalysisResult

# Kept as they are in a link target; everything else (space, | < > ( ) [ ] ` " ' * _ ~ \,
# control and non-ASCII characters) is percent-encoded. '%' stays: targets are often encoded.
_URL_SAFE = "/:?#&=+%,;@!$.-~"
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")

SEVERITY_ICON = {"critical": "🔴", "warning": "🟠", "info": "🔵", "none": "⚪"}
# Discord embed colours (0xRRGGBB) matching the icons.
SEVERITY_COLOR = {"critical": 0xD62828, "warning": 0xF77F00, "info": 0x1D70B8, "none": 0x9E9E9E}
RESOLVED_ICON = "✅"
RESOLVED_COLOR = 0x2A9D44


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def title(alert: Alert, result: AnalysisResult) -> str:
    name = alert.alertname or "Alert"
    return f"{SEVERITY_ICON.get(result.severity, '')} [{result.severity.upper()}] {name}".strip()


def where(alert: Alert) -> str:
    labels = alert.labels
    for key in ("name", "container", "pod", "service", "instance", "job"):
        if labels.get(key):
            return f"{key}={labels[key]}"
    return "-"


def cause_lines(result: AnalysisResult, limit: int = 5) -> list[str]:
    lines = []
    for cause in result.probable_causes[:limit]:
        cited = f"; evidence {', '.join(cause.evidence_ids)}" if cause.evidence_ids else ""
        lines.append(f"{cause.cause} ({cause.confidence:.0%}{cited})")
    return lines


def engine_note(result: AnalysisResult) -> str:
    note = f"engine {result.engine}"
    if result.model:
        note += f" ({result.model})"
    if result.fallback_reason:
        note += f", fallback: {result.fallback_reason}"
    if result.inconclusive:
        note += ", inconclusive"
    return note


def safe_url(url: str | None) -> str | None:
    """An http(s) URL fit to be a link target in any markup, or None (shown as text instead)."""
    if not url or len(url) > 2048:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return quote(url.strip(), safe=_URL_SAFE)


def one_line(text: str) -> str:
    """Line breaks (and Unicode line separators) become spaces."""
    return _LINE_BREAKS.sub(" ", text)
