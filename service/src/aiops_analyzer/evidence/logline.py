"""Read one log entry whatever its format: its level, and the text worth mining and quoting.

Applications log in many shapes: plain text with a level word after the time stamp (Spring
Boot, Python logging, log4j, Rails, PostgreSQL's ``ERROR:``, MySQL's ``[ERROR]``, glog's
``E1201``), JSON lines (``level``/``severity``/``lvl``/``log.level``, pino's numeric levels)
and logfmt (``level=warn msg=... err=...``). An exception arrives as one multi-line entry
(when the collector joins it) or as one entry per line (when it does not): either way the
cause is in its last ``Caused by:``, the last line of a Python traceback or a Go ``panic:``,
not in the frames. This module turns each entry into one readable line that keeps that cause,
and tells a frame line (which says nothing alone) from a message.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Level words as the common formats spell them, mapped to one name each.
_LEVEL_NAMES = {
    "trace": "trace",
    "trc": "trace",
    "debug": "debug",
    "dbug": "debug",
    "dbg": "debug",
    "verbose": "debug",
    "fine": "debug",
    "info": "info",
    "inf": "info",
    "information": "info",
    "informational": "info",
    "log": "info",  # PostgreSQL's LOG:
    "note": "info",  # MySQL's [Note]
    "system": "info",  # MySQL's [System]
    "notice": "notice",
    "warn": "warn",
    "wrn": "warn",
    "warning": "warn",
    "error": "error",
    "err": "error",
    "eror": "error",  # log15
    "severe": "error",  # java.util.logging
    "crit": "crit",
    "critical": "crit",
    "fatal": "fatal",
    "ftl": "fatal",
    "panic": "fatal",
    "emerg": "emerg",
    "emergency": "emerg",
    "alert": "alert",
}
# The levels that mean something failed.
ERROR_LEVELS = frozenset({"error", "crit", "fatal", "emerg", "alert"})
# pino / bunyan numeric levels.
_NUMERIC_LEVELS = {10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal"}
_LEVEL_KEYS = ("level", "severity", "lvl", "levelname", "log.level", "loglevel", "@l", "L")
_TIME_KEYS = frozenset(
    {"time", "ts", "timestamp", "@timestamp", "t", "@t", "date", "datetime", "asctime"}
)
# Keys whose value is the failure itself: quoted right after the message.
_PAIR = re.compile(r'([\w.@-]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?=\s|$)')
_ERROR_KEYS = ("error", "err", "exception", "exc_info", "error.message", "reason", "cause")
_MESSAGE_KEYS = ("msg", "message", "@m", "@mt", "event", "M")

# level=warn / lvl=eror / severity="ERROR" (logfmt and the like).
_FIELD_LEVEL = re.compile(r"(?i)\b(?:level|lvl|severity|loglevel)[=:]\s*\"?([a-z]+)")
# A level word leading the line or in brackets ([error], [Warning], <error>).
_LEADING_LEVEL = re.compile(r"^\W*([A-Za-z]+)\b")
_BRACKET_LEVEL = re.compile(r"[\[<(]([A-Za-z]+)[\]>)]")
# An upper-case level word early in the line, after a time stamp, pid or thread: Spring Boot
# `... ERROR 1 --- [exec-1]`, Python `... ERROR module: msg`, PostgreSQL `... [58] FATAL:`.
_UPPER_LEVEL = re.compile(
    r"(?<![\w.-])(TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|ERR|SEVERE|CRIT(?:ICAL)?|FATAL"
    r"|PANIC|EMERG|ALERT|LOG)(?=[\s:\]|,]|$)"
)
# glog / klog: E1201 09:30:00.123456 (the letter is the level).
_GLOG = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d")
_GLOG_LEVELS = {"I": "info", "W": "warn", "E": "error", "F": "fatal"}
# Level names that are also ordinary words: a level only in capitals when they lead a line.
_WORDS_TOO = frozenset(
    {"log", "alert", "note", "system", "fine", "verbose", "information", "informational"}
)
# How far into a plain line a level word is looked for (past a time stamp, pid and thread).
_LEVEL_SPAN = 90

# A line of a stack trace or traceback that names a place in the code, not a failure.
_FRAME = re.compile(
    r"^\s+at\s+\S"  # Java, Node, .NET
    r"|^\s*at [\w$.<>]+\(.*\)\s*$"  # Java without indentation
    r"|^\s*\.\.\. \d+ (?:more|common frames omitted)"  # Java
    r"|^\s*File \".*\", line \d+"  # Python
    r"|^\s*Traceback \(most recent call last\):\s*$"  # Python's header
    r"|^\s*(?:The above exception was the direct cause|During handling of the above)"
    r"|^goroutine \d+ \[[\w ,]+\]:\s*$"  # Go
    r"|^\s+/\S+\.go:\d+"  # Go
    r"|^[\w./*()]+\((?:0x[0-9a-f]+,? ?|\.\.\.)*\)\s*$"  # Go call lines: main.f(0xc0000, ...)
    r"|^created by \S+"  # Go
    r"|^\s+from \S+:\d+:in "  # Ruby
    r"|^\s+\S+\.rb:\d+:in ",  # Ruby
)
_TRACEBACK = re.compile(r"^\s*Traceback \(most recent call last\):")
# The deepest cause of a Java chain, or an exception line (`pkg.SomeError: message`).
_CAUSED_BY = re.compile(r"^\s*Caused by: (.+)$")
_EXCEPTION_LINE = re.compile(r"^[\w.$]+(?:Error|Exception|Exit|Interrupt|Warning|Failure)\b:?")


def is_frame(line: str) -> bool:
    """A stack-frame line (or a traceback header) that says nothing on its own."""
    return bool(_FRAME.search(line))


def _structured(line: str) -> dict[str, Any] | None:
    text = line.lstrip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _field(data: dict[str, Any], key: str) -> Any:
    """``data[key]``, also through nesting for dotted keys (ECS's ``{"log": {"level": ..}}``)."""
    if key in data:
        return data[key]
    head, _, rest = key.partition(".")
    inner = data.get(head)
    return _field(inner, rest) if rest and isinstance(inner, dict) else None


def _name(word: str) -> str:
    return _LEVEL_NAMES.get(word.lower(), "")


def level_of(line: str) -> str:
    """The entry's level in one spelling (``error``, ``warn``, ``info``...), or ""."""
    data = _structured(line)
    if data is not None:
        for key in _LEVEL_KEYS:
            value = _field(data, key)
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                return _NUMERIC_LEVELS.get(int(value) // 10 * 10, "")
            if isinstance(value, str) and _name(value):
                return _name(value)
    head = line.lstrip()[:_LEVEL_SPAN]
    field = _FIELD_LEVEL.search(head)
    if field and _name(field.group(1)):
        return _name(field.group(1))
    leading = _LEADING_LEVEL.search(head)
    if leading and _name(leading.group(1)):
        word = leading.group(1)
        # "Log rotation done", "Alert sent", "Note:" lead with a word, not a level.
        if word.isupper() or word.lower() not in _WORDS_TOO:
            return _name(word)
    glog = _GLOG.match(head)
    if glog:
        return _GLOG_LEVELS[glog.group(1)]
    for match in _BRACKET_LEVEL.finditer(head):
        if _name(match.group(1)) and match.group(1).lower() not in ("log", "system"):
            return _name(match.group(1))
    upper = _UPPER_LEVEL.search(head)
    if upper:
        return _name(upper.group(1))
    # An exception printed on its own line (one entry per line of a trace) is an error.
    stripped = line.lstrip()
    return "error" if _CAUSED_BY.match(stripped) or _EXCEPTION_LINE.match(stripped) else ""


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return condense(text) if "\n" in text else text


def _readable(data: dict[str, Any], raw: str) -> str:
    """A JSON entry as one line: level, message, the other fields, then the error (last,
    where a clipped quote keeps it)."""
    level = ""
    for key in _LEVEL_KEYS:
        value = _field(data, key)
        if isinstance(value, str):
            level = value
            break
    message = next((_value(data[k]) for k in _MESSAGE_KEYS if data.get(k)), "")
    used = {*_LEVEL_KEYS, *_MESSAGE_KEYS, *_TIME_KEYS}
    parts = [p for p in (level, message) if p]
    errors: list[str] = []
    for key in _ERROR_KEYS:
        value = _field(data, key)
        if value not in (None, "", [], {}):
            errors.append(f"{key}={_value(value)}")
            used.add(key.partition(".")[0])
    for key, value in data.items():
        if key in used or value in (None, "", [], {}):
            continue
        parts.append(f"{key}={_value(value)}")
    parts += errors
    return " ".join(parts) if parts else raw


def _logfmt(line: str) -> dict[str, Any] | None:
    """``key=value key="quoted value"`` pairs of a logfmt line (with a message or a level),
    in order, or None for any other line."""
    text = line.strip()
    pairs = list(_PAIR.finditer(text))
    if len(pairs) < 3 or not _PAIR.match(text) or "\n" in text:
        return None
    covered = sum(len(m.group(0)) for m in pairs) + len(pairs) - 1
    if covered < 0.9 * len(text):
        return None
    data = {m.group(1): _unquote(m.group(2)) for m in pairs}
    return data if any(k in data for k in (*_MESSAGE_KEYS, *_LEVEL_KEYS)) else None


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def condense(entry: str) -> str:
    """One line for an entry: a JSON or logfmt line made readable; a multi-line exception as
    its headline and its deepest cause (frames dropped)."""
    data = _structured(entry) or _logfmt(entry)
    if data is not None:
        return _readable(data, entry)
    if "\n" not in entry:
        return entry
    lines = [ln.rstrip() for ln in entry.splitlines() if ln.strip()]
    said = [ln.strip() for ln in lines if not is_frame(ln)]
    if not said:
        return " ".join(ln.strip() for ln in lines[:2])
    headline = said[0]
    causes = [m.group(1) for ln in lines if (m := _CAUSED_BY.match(ln))]
    if causes:
        cause = causes[-1]
    elif any(_TRACEBACK.match(ln) for ln in lines):
        cause = lines[-1].strip()  # Python prints the exception last
    else:
        # Python and Ruby put the exception last; a Go panic leads with it.
        exceptions = [ln for ln in said[1:] if _EXCEPTION_LINE.match(ln)]
        cause = exceptions[-1] if exceptions else (said[-1] if len(said) > 1 else "")
    if not cause or cause == headline:
        return headline
    return f"{headline} ... {cause}"


# A leading time stamp (ISO, syslog, `ts=`/`time=` field): the ranking reports the time itself.
_LEADING_TIME = re.compile(
    r"^\[?(?:(?:time|ts|timestamp|t)=)?\"?"
    r"(?:\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2}| [+-]\d{4})?"
    r"|[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})\"?\]?\s+"
)


_NGINX_REFERRER = re.compile(r', referrer: "[^"]*"')


def shorten(line: str, limit: int, head: int | None = None) -> str:
    """``line`` within ``limit`` characters: without its leading time stamp, then its start
    (what logged it; ``head`` characters, half by default) and its end (where the reason
    usually is) around an ellipsis."""
    line = " ".join(line.split())
    if len(line) <= limit:
        return line
    line = _LEADING_TIME.sub("", line, count=1)
    if len(line) <= limit:
        return line
    # nginx's error lines end with the page the request came from: the least telling field,
    # dropped so the upstream before it survives the cut.
    line = _NGINX_REFERRER.sub("", line)
    if len(line) <= limit:
        return line
    head = limit // 2 if head is None else head
    return f"{line[:head]} ... {line[-(limit - head - 5) :]}"
