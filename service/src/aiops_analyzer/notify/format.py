"""Pieces of text every channel shows the same way."""

from __future__ import annotations

from aiops_analyzer.schemas import Alert, AnalysisResult

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


def is_link(url: str) -> bool:
    return url.startswith(("http://", "https://"))
