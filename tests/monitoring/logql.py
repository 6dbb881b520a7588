"""A small structural reading of LogQL, enough to check rules and panels without Loki.

No Loki binary is available here. A LogQL metric query is PromQL-shaped around log ranges
`{selector} | stage | stage [5m]`: the selector uses PromQL's matcher syntax, so with the
pipelines removed promtool can parse the rest; the pipeline stages are checked against the
few forms this repository uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Stream labels Alloy attaches (monitoring/alloy/config.alloy); selecting on others finds nothing.
# Containers: container, service, stack, level; the host's journal: job, instance, host, unit,
# transport, level.
ALLOY_STREAM_LABELS = frozenset(
    {"container", "service", "stack", "level", "job", "instance", "host", "unit", "transport"}
)

# A stream selector, its pipeline (up to the range or the end of a log query) and the range.
_LOG_RANGE = re.compile(r"(\{[^{}]*\})([^\[\]]*?)(\[[^\[\]]+\])")
_SELECTOR_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_STAGE = re.compile(
    "|".join(
        [
            r"json|logfmt",  # parsers
            r'__error__\s*=\s*""',  # drop the lines a parser failed on
            r'[a-z_][a-z0-9_]*\s*(==|!=|>=|<=|>|<|=~|!~|=)\s*("[^"]*"|[0-9.]+)',  # label filter
        ]
    )
)
_LINE_FILTER = re.compile(r'(\|=|!=|\|~|!~)\s*"[^"]*"')


@dataclass(frozen=True)
class LogQuery:
    selectors: list[str]
    stages: list[str]
    promql_shape: str  # the expression with pipelines removed and selectors named `logs`


def parse(expr: str) -> LogQuery:
    """Split a LogQL query (a log query or a metric query) into checkable parts."""
    selectors: list[str] = []
    stages: list[str] = []

    def split(pipeline: str) -> None:
        # Line filters start with |= |~ != !~; other stages are separated by a bare "|".
        rest = pipeline.strip()
        while rest:
            line_filter = _LINE_FILTER.match(rest)
            if line_filter:
                stages.append(line_filter.group(0))
                rest = rest[line_filter.end() :].strip()
                continue
            assert rest.startswith("|"), f"cannot read LogQL pipeline at {rest!r}"
            stage, _, tail = rest[1:].partition("|")
            stages.append(stage.strip())
            rest = ("|" + tail).strip() if tail else ""

    if "[" not in expr:  # a log query: one selector and its pipeline
        match = re.fullmatch(r"\s*(\{[^{}]*\})(.*)", expr, flags=re.DOTALL)
        assert match, f"not a LogQL log query: {expr!r}"
        selectors.append(match.group(1))
        split(match.group(2))
        return LogQuery(selectors, stages, f"logs{match.group(1)}")
    for selector, pipeline, _ in _LOG_RANGE.findall(expr):
        selectors.append(selector)
        split(pipeline)
    shape = _LOG_RANGE.sub(lambda m: f"logs{m.group(1)}{m.group(3)}", expr)
    return LogQuery(selectors, stages, shape)


def problems(query: LogQuery) -> list[str]:
    """What is wrong with a parsed query: unknown stages, selectors on labels Alloy never sets."""
    found = []
    if not query.selectors:
        found.append("no stream selector")
    for selector in query.selectors:
        labels = set(_SELECTOR_LABEL.findall(selector))
        if not labels or not labels <= ALLOY_STREAM_LABELS:
            found.append(f"selector {selector} uses labels Alloy does not set")
    for stage in query.stages:
        if not (_STAGE.fullmatch(stage) or _LINE_FILTER.fullmatch(stage)):
            found.append(f"unknown LogQL stage {stage!r}")
    return found
