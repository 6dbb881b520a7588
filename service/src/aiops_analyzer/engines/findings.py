"""What the evidence says, read for the rules engine: numbers from the metric summaries and
telling lines from the logs.

Each reader looks for one well-known pattern and returns a ``Finding`` that quotes what it saw
and names the evidence item, so the rules engine can cite it. Nothing here guesses beyond the
text: no match, no finding.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from aiops_analyzer.evidence.series import SeriesStats, fmt, parse_summary
from aiops_analyzer.schemas import EvidenceItem

MEMORY_LIMIT_TITLE = "container memory working set / limit"
OOM_LINE = re.compile(
    r"(?i)OOMKilled|out of memory|\boom[-_ ]?kill|killed process"
    r"|exit(?:ed)? (?:code|status)[= ]?137"
)
SIGNAL_LINE = re.compile(
    r"(?i)\bSIG(?:TERM|INT|QUIT|KILL)\b|received signal|signal[=: ]+(?:terminated|interrupt)"
    r"|shutting down|shutdown complete|graceful(?:ly)? (?:shutdown|stop)"
)
# syslog style "program[pid]:" -- who is busy on a host
PROGRAM = re.compile(r"(?:^|\s)([A-Za-z][\w.-]{2,40})\[\d+\]:")
QUIET_PROGRAMS = frozenset({"systemd", "kernel", "sshd", "cron", "CRON", "rsyslogd"})
TIMESTAMP = re.compile(r"^\d\d:\d\d:\d\d ")
MAX_QUOTED = 160


@dataclass(frozen=True)
class Finding:
    cause: str
    confidence: float
    evidence_ids: tuple[str, ...]


def log_lines(item: EvidenceItem) -> list[str]:
    """The log lines of a Loki item, without the heading and the HH:MM:SS prefix."""
    return [TIMESTAMP.sub("", line) for line in item.text.splitlines()[1:] if line.strip()]


def _clip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= MAX_QUOTED else line[: MAX_QUOTED - 3] + "..."


def series_of(item: EvidenceItem) -> tuple[str, list[SeriesStats]]:
    return parse_summary(item.text) if item.source == "prometheus" else ("", [])


def intermittent_condition(prom: list[EvidenceItem]) -> Finding | None:
    """The alert expression (prom-1) held in several separate stretches: a flapping alert."""
    for item in prom:
        if item.id != "prom-1":
            continue
        _, series = series_of(item)
        runs = max((s.runs for s in series), default=1)
        if runs >= 3:
            return Finding(
                "The alert condition held only intermittently "
                f"({runs} separate stretches in the window): the value hovers around the "
                "threshold, so the alert flaps. This points to rule tuning (threshold or `for:`) "
                "rather than a sustained outage.",
                0.6,
                (item.id,),
            )
    return None


def memory_at_limit(prom: list[EvidenceItem]) -> Finding | None:
    """Memory working set climbing to the limit and then falling sharply: OOM kills."""
    for item in prom:
        title, series = series_of(item)
        if title != MEMORY_LIMIT_TITLE:
            continue
        for s in series:
            if s.max >= 0.9 and s.drops >= 1:
                return Finding(
                    f"Memory reached {s.max:.0%} of the container's memory limit and fell "
                    f"sharply {s.drops} time(s): the kernel most likely OOM-killed the process "
                    "at the limit and it restarted.",
                    0.7,
                    (item.id,),
                )
    return None


def oom_in_logs(logs: list[EvidenceItem]) -> Finding | None:
    for item in logs:
        for line in log_lines(item):
            if OOM_LINE.search(line):
                return Finding(
                    f"The logs report an out-of-memory kill: {_clip(line)}", 0.7, (item.id,)
                )
    return None


def clean_shutdown(logs: list[EvidenceItem]) -> Finding | None:
    """A termination signal and an orderly shutdown in the logs: stopped, not crashed."""
    for item in logs:
        for line in log_lines(item):
            if SIGNAL_LINE.search(line):
                return Finding(
                    "The process received a termination signal and shut down in an orderly "
                    f"way (stopped by an operator, a deploy or the orchestrator), not a crash: "
                    f"{_clip(line)}",
                    0.6,
                    (item.id,),
                )
    return None


def error_messages(logs: list[EvidenceItem], limit: int = 3) -> Finding | None:
    """Up to ``limit`` distinct error lines, newest first."""
    for item in logs:
        if "error-like" not in item.text.splitlines()[0]:
            continue
        distinct = list(dict.fromkeys(_clip(line) for line in log_lines(item)))[:limit]
        if distinct:
            quoted = "; ".join(f"'{line}'" for line in distinct)
            return Finding(
                f"The affected workload logged errors around the alert: {quoted}",
                0.5,
                (item.id,),
            )
    return None


def busy_programs(logs: list[EvidenceItem]) -> Finding | None:
    """Which programs fill a host's logs in the window (the likely consumer of a resource)."""
    counts: Counter[str] = Counter()
    cited: list[str] = []
    for item in logs:
        names = [m.group(1) for line in log_lines(item) for m in PROGRAM.finditer(line)]
        names = [n for n in names if n not in QUIET_PROGRAMS]
        if names:
            counts.update(names)
            cited.append(item.id)
    if not counts:
        return None
    top, lines = counts.most_common(1)[0]
    if lines < 2:
        return None
    others = ", ".join(f"{n} ({c})" for n, c in counts.most_common(3)[1:])
    text = f"The logs in the window are dominated by {top} ({lines} lines)"
    text += f", then {others}" if others else ""
    return Finding(text + f"; {top} is the likely consumer.", 0.45, tuple(cited))


def first_series_line(prom: list[EvidenceItem]) -> str:
    """The first series of the alert's own expression, compactly, for quoting."""
    for item in prom:
        if item.id == "prom-1":
            _, series = series_of(item)
            if series:
                s = series[0]
                return (
                    f"{s.labels} last={fmt(s.last)} min={fmt(s.min)} max={fmt(s.max)} "
                    f"trend={s.trend}"
                )
    return ""
