"""Answering Prometheus and Loki queries from a scenario's recorded evidence.

PromQL is looked up by its text with whitespace outside string literals removed, so ``sum by
(x) (y)`` and ``sum by(x)(y)`` are the same recording. Loki keys are either whole LogQL queries
(looked up the same way) or stream label sets such as ``{container="svc-7f3a"}``; a request
selector is answered, as Loki would, with every recorded stream whose labels it matches, then
its line filters (``|=``, ``!=``, ``|~``, ``!~``) applied. Anything unknown gets an empty result.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from aiops_eval.logql import Matcher
from aiops_eval.scenario import RecordedEvidence, RecordedSeries

# A double-quoted Go string with escapes, or a raw backtick string.
_STRING = r'"(?:[^"\\]|\\.)*"|`[^`]*`'
_TOKEN = re.compile(rf"({_STRING})|(\s+)")
_MATCHER = re.compile(rf"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*({_STRING})\s*(?:,|$)")
_LINE_FILTER = re.compile(rf"(\|=|!=|\|~|!~)\s*({_STRING})")
# Seconds between the synthesised timestamps of log lines recorded without one.
LOG_LINE_SPACING_SECONDS = 5.0


def normalise_query(query: str) -> str:
    """The query with every whitespace run outside string literals removed."""
    return _TOKEN.sub(lambda m: m.group(1) or "", query.strip())


def _unquote(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    return str(json.loads(literal))


@dataclass(frozen=True)
class LogQuery:
    """A LogQL stream selector and its line filters; other pipeline stages are ignored."""

    matchers: tuple[Matcher, ...]
    line_filters: tuple[tuple[str, str], ...] = ()
    has_pipeline: bool = False

    def keeps(self, line: str) -> bool:
        for op, text in self.line_filters:
            if op == "|=" and text not in line:
                return False
            if op == "!=" and text in line:
                return False
            if op in {"|~", "!~"}:
                found = re.search(text, line) is not None
                if found != (op == "|~"):
                    return False
        return True


def _selector_end(query: str) -> int:
    """Index just past the closing brace of the leading ``{...}``, honouring quotes; -1 if none."""
    in_string: str | None = None
    escaped = False
    for index, char in enumerate(query):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\" and in_string == '"':
                escaped = True
            elif char == in_string:
                in_string = None
        elif char in {'"', "`"}:
            in_string = char
        elif char == "}":
            return index + 1
    return -1


def parse_log_query(query: str) -> LogQuery | None:
    """Parse ``{a="b", c=~"d"} |= "x"``; None when the query is not a plain log selector."""
    text = query.strip()
    if not text.startswith("{"):
        return None  # a metric query such as count_over_time(...)
    end = _selector_end(text)
    if end < 0:
        return None
    body = text[1 : end - 1].strip()
    matchers: list[Matcher] = []
    position = 0
    while position < len(body):
        found = _MATCHER.match(body, position)
        if not found:
            return None
        matchers.append(Matcher(found.group(1), found.group(2), _unquote(found.group(3))))
        position = found.end()
    rest = text[end:].strip()
    filters = tuple((m.group(1), _unquote(m.group(2))) for m in _LINE_FILTER.finditer(rest))
    return LogQuery(tuple(matchers), filters, has_pipeline=bool(rest))


@dataclass
class LogLine:
    timestamp_ns: int
    line: str


@dataclass
class LogStream:
    labels: dict[str, str]
    lines: list[LogLine]


def _line_timestamp(value: str) -> int:
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)


def _to_lines(recorded: list[str | tuple[str, str]], anchor: float, shift: float) -> list[LogLine]:
    lines: list[LogLine] = []
    count = len(recorded)
    for index, entry in enumerate(recorded):
        if isinstance(entry, str):
            seconds = anchor - (count - 1 - index) * LOG_LINE_SPACING_SECONDS
            lines.append(LogLine(int(seconds * 1e9), entry))
        else:
            lines.append(LogLine(_line_timestamp(entry[0]) + int(shift * 1e9), entry[1]))
    return lines


@dataclass
class EvidenceBook:
    """Recorded evidence of one scenario, ready to answer queries; notes what was asked.

    ``anchor`` is when compact recordings end (the analysis time); ``shift`` moves recorded
    absolute timestamps by the same amount the replayed alert was moved.
    """

    evidence: RecordedEvidence
    anchor: float
    shift: float = 0.0
    asked: list[tuple[str, str]] = field(default_factory=list)
    unanswered: list[tuple[str, str]] = field(default_factory=list)
    used: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._promql = {normalise_query(q): s for q, s in self.evidence.prometheus.items()}
        self._logql_exact: dict[str, tuple[dict[str, str], list[LogLine]]] = {}
        self._streams: list[tuple[str, LogStream]] = []
        for key, recorded in self.evidence.loki.items():
            lines = _to_lines(recorded, self.anchor, self.shift)
            parsed = parse_log_query(key)
            is_stream = (
                parsed is not None
                and not parsed.has_pipeline
                and all(m.op == "=" for m in parsed.matchers)
            )
            if parsed is not None and is_stream:
                labels = {m.label: m.value for m in parsed.matchers}
                self._streams.append((key, LogStream(labels, lines)))
            labels = {m.label: m.value for m in parsed.matchers} if parsed else {}
            self._logql_exact[normalise_query(key)] = (labels, lines)
        self._loki_keys = {normalise_query(key): key for key in self.evidence.loki}
        self._prom_keys = {normalise_query(key): key for key in self.evidence.prometheus}

    def note_unavailable(self, source: str, query: str) -> None:
        """A query to a source the scenario declares down (answered 503)."""
        self.asked.append((source, query))

    def _note(self, source: str, query: str, found: bool) -> None:
        self.asked.append((source, query))
        if not found:
            self.unanswered.append((source, query))

    def prometheus(self, query: str) -> list[tuple[dict[str, str], list[tuple[float, str]]]]:
        """Series answering a PromQL query as (labels, samples); empty when not recorded."""
        normal = normalise_query(query)
        series: list[RecordedSeries] | None = self._promql.get(normal)
        self._note("prometheus", query, series is not None)
        if series is not None:
            self.used.add(("prometheus", self._prom_keys[normal]))
        return [(s.metric, s.samples(self.anchor, self.shift)) for s in series or []]

    def loki(self, query: str) -> list[LogStream]:
        """Streams answering a LogQL query: an exact recording, else the matching streams."""
        normal = normalise_query(query)
        exact = self._logql_exact.get(normal)
        if exact is not None:
            self._note("loki", query, True)
            self.used.add(("loki", self._loki_keys[normal]))
            return [LogStream(exact[0], list(exact[1]))]
        parsed = parse_log_query(query)
        answer: list[LogStream] = []
        if parsed is not None and parsed.matchers:
            for key, stream in self._streams:
                if all(m.matches(stream.labels) for m in parsed.matchers):
                    self.used.add(("loki", key))
                    kept = [line for line in stream.lines if parsed.keeps(line.line)]
                    if kept:
                        answer.append(LogStream(stream.labels, kept))
        self._note("loki", query, bool(answer))
        return answer

    def unused(self) -> list[tuple[str, str]]:
        """Recordings no query asked for: a sign the evidence clients now ask differently."""
        recorded = [("prometheus", q) for q in self.evidence.prometheus]
        recorded += [("loki", q) for q in self.evidence.loki]
        return [entry for entry in recorded if entry not in self.used]
