"""What an alert measures: its PromQL expression and the metric names in it.

Prometheus puts the rule's expression in the alert's generatorURL (``/graph?g0.expr=...``).
Both the evidence collector and the rules engine read it, so an alert nobody has written a
special case for can still be understood by what it measures.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from aiops_analyzer.schemas import Alert

# Annotations some teams use to carry the query when generatorURL is missing.
_EXPR_ANNOTATIONS = ("expr", "query", "promql")

# PromQL words that look like identifiers but are not metric names.
_PROMQL_WORDS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "inf",
        "nan",
    ]
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_CALL = re.compile(r"\s*\(")


def alert_expression(alert: Alert) -> str:
    """The alert rule's PromQL expression, or "" when the alert does not carry one."""
    if alert.generator_url:
        try:
            query = parse_qs(urlsplit(alert.generator_url).query)
        except ValueError:
            query = {}
        values = query.get("g0.expr")
        if values and values[0].strip():
            return values[0].strip()
    for key in _EXPR_ANNOTATIONS:
        value = alert.annotations.get(key, "").strip()
        if value:
            return value
    return ""


def metric_names(expr: str) -> list[str]:
    """Metric names used in a PromQL expression, in order of first appearance."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    names: list[str] = []
    seen: set[str] = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        if _CALL.match(text, match.end()):  # a function call such as rate(
            continue
        if word.lower() in _PROMQL_WORDS or word in seen:
            continue
        # Durations and numbers are not identifiers (e.g. "5m" never starts with a letter
        # here, but "e" of 1e3 could); skip single letters that follow a digit.
        if match.start() > 0 and text[match.start() - 1].isdigit():
            continue
        names.append(word)
        seen.add(word)
    return names


# A stream selector right after "(" or at the start, followed by a line filter, a parser
# stage or a range: LogQL, which only Loki can run (a Loki ruler alert). PromQL always names
# a metric before "{" (or matches __name__ inside it).
_LOGQL = re.compile(
    r"(?:^|\()\s*\{[^{}]*\}\s*(?:\|[=~]|![=~]|\|\s*[a-z_]+|\[)",
)
_SELECTOR = re.compile(r"\{[^{}]*\}")
_THRESHOLD = re.compile(
    r"(?P<op>>=|<=|==|!=|>|<)\s*(?:bool\s+)?(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


def is_logql(expr: str) -> bool:
    """True when the expression is LogQL (a Loki ruler alert), which Prometheus cannot run."""
    return bool(expr) and bool(_LOGQL.search(_STRING.sub('""', expr)))


def logql_selector(expr: str) -> str | None:
    """The first stream selector of a LogQL expression, e.g. ``{compose_service="edge"}``."""
    match = _SELECTOR.search(expr)
    return match.group(0) if match else None


def threshold(expr: str) -> tuple[str, float] | None:
    """The final comparison of an alert expression (``... > 90`` -> (">", 90.0)), if any."""
    match = _THRESHOLD.search(expr.strip())
    if not match:
        return None
    return match["op"], float(match["value"])


def value_expression(expr: str) -> str | None:
    """The alert expression without its final comparison (``a / b > 0.9`` -> ``a / b``): the
    value itself, also where it is on the healthy side. None when what is left still filters
    (a second comparison, ``and``/``unless``), so it would not be the value."""
    match = _THRESHOLD.search(expr.strip())
    if not match:
        return None
    left = expr.strip()[: match.start()].strip()
    if not left or re.search(r"\b(?:and|or|unless)\b|[<>]|[!=]=", re.sub(r"\{[^}]*\}", "", left)):
        return None
    return left


# Metric names of a scheduled job's health (a backup's last success, a cron job's status): the
# rules engine's failed_job family, and the Loki source's reason to read the job's last runs.
JOB_METRICS = (
    r"last_success|last_run|last_completion|lastsuccess|^backup_|_backup_"
    r"|(?:^|_)cron_|_job_(?:failed|failures|success|status|last)"
    # A Pushgateway's time of a job's last push: a job that stopped pushing stopped succeeding.
    r"|^push_time_seconds$|^push_failure_time_seconds$"
)


# `time() - x_timestamp_seconds > N`: what a scheduled job leaves when it succeeds (a time
# stamp it exports, node_exporter's textfile written by a cron job) is N seconds old: the job
# stopped succeeding. Boot, start and last-seen times are other families' measures.
STALE_OUTPUT = (
    r"time\s*\(\s*\)\s*-[^<>=!]*?\b(?!\w*(?:boot|start|seen|expir))\w+"
    r"(?:_timestamp(?:_seconds)?|_mtime_seconds)\b"
)


# label_replace(v, "dst", "replacement", "src", "regex"): the last four arguments are strings.
_LABEL_REPLACE = re.compile(
    r"label_replace\s*\(.*?,\s*\"(?P<dst>[a-zA-Z_]\w*)\"\s*,\s*\"(?P<replacement>(?:[^\"\\]|\\.)*)\""
    r"\s*,\s*\"(?P<src>[a-zA-Z_]\w*)\"\s*,\s*\"(?P<regex>(?:[^\"\\]|\\.)*)\"\s*\)",
    re.DOTALL,
)
_FIRST_GROUP = re.compile(r"\((?!\?)(?:[^()\\]|\\.)*\)")
_REGEX_META = re.compile(r"[.^$*+?{}\[\]|()\\]")


def renamed_labels(expr: str, labels: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Labels an alert lost to ``label_replace``, worked back from the labels it carries.

    ``label_replace(up, "host", "$1", "instance", "(.*):.*")`` gives the alert ``host="web-3"``
    but the raw series still say ``instance="web-3:9100"``. For each such source label the
    alert does not carry, returns ``{src: (op, value)}``: ``("=", "web-3")`` when the regex
    gives the value back exactly, ``("=~", "web-3:.*")`` when only a pattern is known.
    """
    found: dict[str, tuple[str, str]] = {}
    for match in _LABEL_REPLACE.finditer(expr):
        dst, src = match["dst"], match["src"]
        value = labels.get(dst, "")
        if not value or src in labels or src in found or dst == src:
            continue
        inverse = _invert(value, match["replacement"], match["regex"])
        if inverse:
            found[src] = inverse
    return found


def _invert(value: str, replacement: str, regex: str) -> tuple[str, str] | None:
    """The source value (or pattern) that ``regex`` and ``replacement`` turned into ``value``."""
    replacement = replacement.replace("${1}", "$1")
    if replacement.count("$1") != 1 or re.search(r"\$(?!1)", replacement):
        return None
    prefix, suffix = replacement.split("$1")
    if not (value.startswith(prefix) and value.endswith(suffix)):
        return None
    inner = value[len(prefix) : len(value) - len(suffix)] if suffix else value[len(prefix) :]
    pattern = regex.removeprefix("^").removesuffix("$")
    group = _FIRST_GROUP.search(pattern)
    if not group or not inner:
        return None
    before, after = pattern[: group.start()], pattern[group.end() :]
    if not _REGEX_META.search(before + after):
        return "=", before + inner + after
    return "=~", before + re.escape(inner) + after
