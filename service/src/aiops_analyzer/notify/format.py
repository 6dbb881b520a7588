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


# --- resolution follow-ups ------------------------------------------------------------------
FIRING_CAUSE_LIMIT = 200
NOT_ANALYSED = (
    "Not analysed after recovery (AIOPS_ANALYZE_RESOLVED is off): whether the cause is "
    "still there is unknown."
)


def resolution_title(alert: Alert, resolved: AnalysisResult | None) -> str:
    """✅ RESOLVED [INFO] Name; the resolved analysis's severity, and a warning when the
    cause is still there."""
    name = alert.alertname or "Alert"
    if resolved is None:
        return f"{RESOLVED_ICON} RESOLVED {name}"
    text = f"{RESOLVED_ICON} RESOLVED [{resolved.severity.upper()}] {name}"
    if cause_persists(resolved):
        text += " (cause still present)"
    return text


def cause_persists(resolved: AnalysisResult | None) -> bool | None:
    """None when unknown (no resolved analysis, or one without recovery facts)."""
    if resolved is None or resolved.recovery is None:
        return None
    return resolved.recovery.cause_persists


def recovered_at(alert: Alert, resolved: AnalysisResult | None) -> str:
    when = resolved.recovery.recovered_at if resolved and resolved.recovery else alert.ends_at
    return when.strftime("%H:%M:%S UTC on %Y-%m-%d") if when else "an unknown time"


def resolution_lead(
    alert: Alert, duration_seconds: float | None, resolved: AnalysisResult | None
) -> str:
    return (
        f"{alert.alertname or 'Alert'} on {where(alert)} resolved after "
        f"{human_duration(duration_seconds)}; recovered at {recovered_at(alert, resolved)}."
    )


def recovery_text(resolved: AnalysisResult | None) -> str:
    """Whether the cause is still there, in the resolved analysis's words."""
    if resolved is None:
        return NOT_ANALYSED
    if resolved.recovery is not None:
        return resolved.recovery.detail
    return resolved.summary


def persists_word(resolved: AnalysisResult | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[cause_persists(resolved)]


def firing_cause(firing: AnalysisResult) -> str:
    """The firing analysis in brief: its most likely cause, else its summary."""
    best = max(firing.probable_causes, key=lambda c: c.confidence, default=None)
    return clip(best.cause if best else firing.summary, FIRING_CAUSE_LIMIT)
