"""A LogQL subset evaluated over a world's log streams, as the Loki stand-in answers it.

Log queries: a stream selector (``=``, ``!=``, ``=~``, ``!~``), line filters (``|=``, ``!=``,
``|~``, ``!~``), the ``json``, ``logfmt`` and ``regexp`` parsers and label filters (string and
numeric comparisons, ``__error__``). Metric queries: ``count_over_time``, ``rate``,
``bytes_over_time``, ``bytes_rate`` and ``absent_over_time`` over a log query, the aggregations
``sum``, ``avg``, ``min``, ``max``, ``count``, ``topk``, ``bottomk`` with ``by``/``without``,
arithmetic and comparisons with scalars and between vectors (one-to-one on identical labels), and
``and``/``or``/``unless``. Anything else raises :class:`LogQLUnsupported`, so a report can tell a
stand-in limit from an engine's mistake. Loki's regexes are RE2; Python's ``re`` agrees on the
constructs log queries use.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

Labels = tuple[tuple[str, str], ...]
Vector = dict[Labels, float]


class LogQLError(ValueError):
    """A query Loki itself would reject (parse error); answered 400."""


class LogQLUnsupported(LogQLError):
    """Valid LogQL that the stand-in does not evaluate; answered 400 and reported."""


@dataclass(frozen=True)
class Entry:
    """One log line at a unix time in nanoseconds."""

    ns: int
    line: str


@dataclass(frozen=True)
class StreamData:
    labels: dict[str, str]
    entries: list[Entry]  # oldest first


# ---- tokens -------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
    |(?P<duration>\[\s*[0-9smhdwy.]+\s*\])
    |(?P<number>[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)
    |(?P<op>\|=|\|~|!=|!~|=~|==|>=|<=|[{}()\[\],|=<>+\-*/%^])
    |(?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def _tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    text = query.strip()
    while position < len(text):
        found = _TOKEN.match(text, position)
        if not found or found.end() == position:
            raise LogQLError(f"parse error at {text[position : position + 20]!r}")
        kind = found.lastgroup or ""
        tokens.append(Token(kind, found.group(kind)))
        position = found.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tokens


def _unquote(literal: str) -> str:
    if literal.startswith("`"):
        return literal[1:-1]
    return str(json.loads(literal))


def parse_duration(text: str) -> float:
    raw = text.strip("[] ")
    parts = _DURATION_PART.findall(raw)
    if not parts or "".join(n + u for n, u in parts) != raw:
        raise LogQLError(f"invalid duration {raw!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


# ---- log pipeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


Stage = Callable[[str, dict[str, str]], bool]  # may update labels; False drops the line


def _line_filter(op: str, value: str) -> Stage:
    if op in {"|~", "!~"}:
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise LogQLError(f"invalid regex {value!r}: {exc}") from exc
        keep = op == "|~"
        return lambda line, labels: (pattern.search(line) is not None) == keep
    if op == "|=":
        return lambda line, labels: value in line
    return lambda line, labels: value not in line


@lru_cache(maxsize=4096)
def _sanitize(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", key)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            name = f"{prefix}_{_sanitize(key)}" if prefix else _sanitize(key)
            if isinstance(inner, str):  # the common case, without a call
                out[name] = inner
            else:
                _flatten(name, inner, out)
    elif isinstance(value, list):
        return  # Loki's json parser skips arrays
    elif value is None:
        out[prefix] = ""
    elif isinstance(value, bool):
        out[prefix] = "true" if value else "false"
    elif isinstance(value, int | float):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = str(value)


def _add_parsed(labels: dict[str, str], parsed: dict[str, str]) -> None:
    for key, value in parsed.items():
        # A parsed key that collides with a stream label gets the _extracted suffix, as in Loki.
        labels[f"{key}_extracted" if key in labels else key] = value


def _json_stage(line: str, labels: dict[str, str]) -> bool:
    try:
        document = json.loads(line)
    except ValueError:
        labels["__error__"] = "JSONParserErr"
        return True
    if not isinstance(document, dict):
        labels["__error__"] = "JSONParserErr"
        return True
    parsed: dict[str, str] = {}
    _flatten("", document, parsed)
    _add_parsed(labels, parsed)
    return True


_LOGFMT_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')


def _logfmt_stage(line: str, labels: dict[str, str]) -> bool:
    parsed: dict[str, str] = {}
    for key, raw in _LOGFMT_PAIR.findall(line):
        value = _unquote(raw) if raw.startswith('"') else raw
        parsed[_sanitize(key)] = value
    _add_parsed(labels, parsed)
    return True


def _regexp_stage(expression: str) -> Stage:
    try:
        pattern = re.compile(expression)
    except re.error as exc:
        raise LogQLError(f"invalid regexp parser {expression!r}: {exc}") from exc
    if not pattern.groupindex:
        raise LogQLError("regexp parser needs at least one named capture group")

    def stage(line: str, labels: dict[str, str]) -> bool:
        found = pattern.search(line)
        if found:
            _add_parsed(labels, {k: v for k, v in found.groupdict().items() if v is not None})
        return True

    return stage


_NUMERIC_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _label_filter(label: str, op: str, value: str, numeric: bool) -> Stage:
    if not numeric:
        matcher = Matcher(label, "=" if op == "==" else op, value)
        return lambda line, labels: matcher.matches(labels)
    compare = _NUMERIC_OPS[op]
    threshold = float(value)

    def stage(line: str, labels: dict[str, str]) -> bool:
        try:
            return compare(float(labels.get(label, "")), threshold)
        except ValueError:
            labels["__error__"] = "LabelFilterErr"
            return True  # Loki keeps the line with an error label

    return stage


@dataclass
class LogQuery:
    matchers: list[Matcher]
    stages: list[Stage] = field(default_factory=list)

    def select(self, streams: Iterable[StreamData]) -> list[StreamData]:
        return [s for s in streams if all(m.matches(s.labels) for m in self.matchers)]

    def run(
        self, streams: Iterable[StreamData], start_ns: int, end_ns: int
    ) -> dict[Labels, list[Entry]]:
        """Entries in [start, end) through the pipeline, grouped by their resulting labels."""
        out: dict[Labels, list[Entry]] = {}
        for stream in self.select(streams):
            for entry in stream.entries:
                if not start_ns <= entry.ns < end_ns:
                    continue
                labels = dict(stream.labels)
                if all(stage(entry.line, labels) for stage in self.stages):
                    key = tuple(sorted((k, v) for k, v in labels.items() if v != ""))
                    out.setdefault(key, []).append(entry)
        return out


# ---- metric expressions --------------------------------------------------------------------


@dataclass
class RangeAggregation:
    function: str
    query: LogQuery
    seconds: float


@dataclass
class Aggregation:
    operator: str
    inner: Any
    grouping: tuple[str, list[str]] | None
    parameter: float | None = None


@dataclass
class Binary:
    op: str
    left: Any
    right: Any
    bool_modifier: bool = False


@dataclass
class Number:
    value: float


_RANGE_FUNCTIONS = {"count_over_time", "rate", "bytes_over_time", "bytes_rate", "absent_over_time"}
_AGGREGATIONS = {"sum", "avg", "min", "max", "count", "topk", "bottomk", "stddev", "stdvar"}
_UNSUPPORTED_STAGES = {"pattern", "line_format", "label_format", "unwrap", "unpack", "drop", "keep"}
_COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = _tokenize(query)
        self.position = 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, text: str | None = None, kind: str | None = None) -> Token:
        token = self.peek()
        if token is None:
            raise LogQLError(f"parse error: unexpected end of query, expected {text or kind}")
        if (text is not None and token.text != text) or (kind is not None and token.kind != kind):
            raise LogQLError(f"parse error: unexpected {token.text!r}, expected {text or kind}")
        self.position += 1
        return token

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token is not None and token.text in texts and token.kind in {"op", "ident"}

    def done(self) -> bool:
        return self.position >= len(self.tokens)

    # log queries
    def log_query(self) -> LogQuery:
        self.take("{")
        matchers: list[Matcher] = []
        while not self.at("}"):
            label = self.take(kind="ident").text
            op = self.take().text
            if op not in {"=", "!=", "=~", "!~"}:
                raise LogQLError(f"parse error: unexpected matcher operator {op!r}")
            matchers.append(Matcher(label, op, _unquote(self.take(kind="string").text)))
            if self.at(","):
                self.take(",")
        self.take("}")
        if not any(m.op in {"=", "=~"} and not re.fullmatch(m.value, "") for m in matchers):
            raise LogQLError(
                "parse error : queries require at least one regexp or equality matcher that "
                "does not have an empty-compatible value"
            )
        query = LogQuery(matchers)
        while self.at("|=", "|~", "!=", "!~", "|"):
            op = self.take().text
            if op != "|":
                query.stages.append(_line_filter(op, _unquote(self.take(kind="string").text)))
                if self.at("or"):
                    raise LogQLUnsupported("line filters joined with 'or'")
                continue
            query.stages.append(self.stage())
        return query

    def stage(self) -> Stage:
        token = self.take(kind="ident")
        name = token.text
        if name in {"json", "logfmt"}:
            if not self.at_stage_end():
                raise LogQLUnsupported(f"{name} with parameters")
            return _json_stage if name == "json" else _logfmt_stage
        if name == "regexp":
            return _regexp_stage(_unquote(self.take(kind="string").text))
        if name in _UNSUPPORTED_STAGES or name == "decolorize":
            raise LogQLUnsupported(f"the {name} stage")
        op = self.take().text
        if op not in {"=", "!=", "=~", "!~", ">", ">=", "<", "<=", "=="}:
            raise LogQLError(f"parse error: unexpected {op!r} after label {name}")
        value = self.take()
        if value.kind == "string":
            if op in {">", ">=", "<", "<="}:
                raise LogQLError(f"parse error: {op} needs a number")
            return _label_filter(name, op, _unquote(value.text), numeric=False)
        if value.kind == "number":
            return _label_filter(name, op, value.text, numeric=True)
        raise LogQLUnsupported(f"label filter value {value.text!r}")

    def at_stage_end(self) -> bool:
        token = self.peek()
        return token is None or token.text in {"|", "|=", "|~", "!=", "!~", ")", "["}

    # metric queries
    def expression(self, precedence: int = 0) -> Any:
        left = self.unary()
        while True:
            token = self.peek()
            if token is None or token.kind not in {"op", "ident"}:
                return left
            level = _precedence(token.text)
            if level is None or level < precedence:
                return left
            self.take()
            bool_modifier = False
            if token.text in _COMPARISONS and self.at("bool"):
                self.take("bool")
                bool_modifier = True
            if self.at("on", "ignoring", "group_left", "group_right"):
                raise LogQLUnsupported("vector matching modifiers")
            right = self.expression(level + 1)
            left = Binary(token.text, left, right, bool_modifier)

    def unary(self) -> Any:
        token = self.peek()
        if token is None:
            raise LogQLError("parse error: unexpected end of query")
        if token.kind == "number":
            self.take()
            return Number(float(token.text))
        if token.text == "-" and token.kind == "op":
            self.take()
            return Binary("*", Number(-1.0), self.unary())
        if token.text == "(":
            self.take("(")
            inner = self.expression()
            self.take(")")
            return inner
        if token.text == "{":
            raise LogQLError("parse error: a log query cannot be used in a metric expression")
        name = self.take(kind="ident").text
        if name in _RANGE_FUNCTIONS:
            self.take("(")
            query = self.log_query()
            seconds = parse_duration(self.take(kind="duration").text)
            self.take(")")
            if self.at("by", "without"):
                raise LogQLUnsupported(f"grouping on {name}")
            return RangeAggregation(name, query, seconds)
        if name in _AGGREGATIONS:
            grouping = self.grouping()
            self.take("(")
            parameter = None
            if name in {"topk", "bottomk"}:
                parameter = float(self.take(kind="number").text)
                self.take(",")
            inner = self.expression()
            self.take(")")
            grouping = grouping or self.grouping()
            return Aggregation(name, inner, grouping, parameter)
        raise LogQLUnsupported(f"function {name}")

    def grouping(self) -> tuple[str, list[str]] | None:
        if not self.at("by", "without"):
            return None
        kind = self.take().text
        self.take("(")
        labels: list[str] = []
        while not self.at(")"):
            labels.append(self.take(kind="ident").text)
            if self.at(","):
                self.take(",")
        self.take(")")
        return kind, labels


def _precedence(op: str) -> int | None:
    return {
        "or": 1,
        "and": 2,
        "unless": 2,
        "==": 3,
        "!=": 3,
        "<": 3,
        ">": 3,
        "<=": 3,
        ">=": 3,
        "+": 4,
        "-": 4,
        "*": 5,
        "/": 5,
        "%": 5,
        "^": 6,
    }.get(op)


def parse(query: str) -> LogQuery | Any:
    """A LogQuery for a log query, else the metric expression's tree."""
    parser = _Parser(query)
    if parser.peek() is None:
        raise LogQLError("parse error: empty query")
    result: Any = parser.log_query() if parser.at("{") else parser.expression()
    if not parser.done():
        token = parser.peek()
        raise LogQLError(f"parse error: unexpected {token.text if token else ''!r}")
    return result


def is_log_query(tree: Any) -> bool:
    return isinstance(tree, LogQuery)


# ---- evaluation ---------------------------------------------------------------------------

_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b if b != 0 else (math.nan if a == 0 else math.copysign(math.inf, a)),
    "%": lambda a, b: math.fmod(a, b) if b != 0 else math.nan,
    "^": lambda a, b: a**b,
}


@dataclass
class _Piped:
    """A range aggregation's pipeline output over the whole streams, in time order, so each
    step of a range query only walks the entries inside its window."""

    times: list[int]
    labels: list[Labels]
    sizes: list[int]


@dataclass
class Steps:
    """The evaluation times of one query (first and last, unix seconds) and the pipelines
    already run for it: each log pipeline runs once over the span the steps need."""

    first: float
    last: float
    piped: dict[int, _Piped] = field(default_factory=dict)


def _pipe_all(query: LogQuery, streams: list[StreamData], start_ns: int, end_ns: int) -> _Piped:
    grouped = query.run(streams, start_ns, end_ns)
    ordered = sorted(
        (
            (entry.ns, labels, len(entry.line.encode()))
            for labels, v in grouped.items()
            for entry in v
        ),
        key=lambda item: item[0],
    )
    return _Piped(
        [t for t, _, _ in ordered], [k for _, k, _ in ordered], [n for _, _, n in ordered]
    )


def _range_value(function: str, count: int, size: int, seconds: float) -> float:
    if function in {"count_over_time", "absent_over_time"}:
        return float(count)
    if function == "rate":
        return count / seconds
    return size / seconds if function == "bytes_rate" else float(size)


def _group_key(labels: Labels, grouping: tuple[str, list[str]] | None) -> Labels:
    if grouping is None:
        return ()
    kind, names = grouping
    if kind == "by":
        return tuple((k, v) for k, v in labels if k in names)
    return tuple((k, v) for k, v in labels if k not in names)


def _aggregate(node: Aggregation, vector: Vector) -> Vector:
    groups: dict[Labels, list[tuple[Labels, float]]] = {}
    for labels, value in vector.items():
        groups.setdefault(_group_key(labels, node.grouping), []).append((labels, value))
    out: Vector = {}
    for key, members in groups.items():
        values = [v for _, v in members]
        if node.operator in {"topk", "bottomk"}:
            count = int(node.parameter or 0)
            ordered = sorted(members, key=lambda m: m[1], reverse=node.operator == "topk")
            out.update(dict(ordered[:count]))
            continue
        mean = sum(values) / len(values)
        out[key] = {
            "sum": sum(values),
            "avg": mean,
            "min": min(values),
            "max": max(values),
            "count": float(len(values)),
            "stdvar": sum((v - mean) ** 2 for v in values) / len(values),
            "stddev": math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)),
        }[node.operator]
    return out


def _binary(node: Binary, left: Vector | float, right: Vector | float) -> Vector | float:
    op = node.op
    if op in {"and", "or", "unless"}:
        if not isinstance(left, dict) or not isinstance(right, dict):
            raise LogQLError(f"set operator {op} needs two vectors")
        if op == "and":
            return {k: v for k, v in left.items() if k in right}
        if op == "unless":
            return {k: v for k, v in left.items() if k not in right}
        return {**right, **left}
    if op in _COMPARISONS:
        compare = _NUMERIC_OPS[op]
        if isinstance(left, float) and isinstance(right, float):
            return float(compare(left, right))
        pairs = _pairs(left, right)
        if node.bool_modifier:
            return {k: float(compare(a, b)) for k, (a, b) in pairs.items()}
        # A filtering comparison keeps the vector side's value.
        keep_left = isinstance(left, dict)
        return {k: a if keep_left else b for k, (a, b) in pairs.items() if compare(a, b)}
    function = _ARITHMETIC[op]
    if isinstance(left, float) and isinstance(right, float):
        return function(left, right)
    return {k: function(a, b) for k, (a, b) in _pairs(left, right).items()}


def _pairs(left: Vector | float, right: Vector | float) -> dict[Labels, tuple[float, float]]:
    if isinstance(left, dict) and isinstance(right, dict):
        return {k: (v, right[k]) for k, v in left.items() if k in right}
    if isinstance(left, dict):
        assert isinstance(right, float)
        return {k: (v, right) for k, v in left.items()}
    assert isinstance(right, dict)
    return {k: (left, v) for k, v in right.items()}


def evaluate(
    tree: Any, streams: list[StreamData], at: float, steps: Steps | None = None
) -> Vector | float:
    """The metric expression's value at unix time ``at``. Pass one :class:`Steps` to every
    step of a range query: each log pipeline then runs once, not once per step."""
    steps = Steps(at, at) if steps is None else steps
    if isinstance(tree, Number):
        return tree.value
    if isinstance(tree, RangeAggregation):
        piped = steps.piped.get(id(tree))
        if piped is None:
            span = (int((steps.first - tree.seconds) * 1e9), int(steps.last * 1e9) + 1)
            piped = steps.piped[id(tree)] = _pipe_all(tree.query, streams, *span)
        end_ns = int(at * 1e9)  # the window is (at - range, at]
        start_ns = int((at - tree.seconds) * 1e9)
        first, last = bisect_right(piped.times, start_ns), bisect_right(piped.times, end_ns)
        counts: dict[Labels, list[int]] = {}
        for index in range(first, last):
            tally = counts.setdefault(piped.labels[index], [0, 0])
            tally[0] += 1
            tally[1] += piped.sizes[index]
        out: Vector = {
            labels: _range_value(tree.function, count, size, tree.seconds)
            for labels, (count, size) in counts.items()
        }
        if tree.function == "absent_over_time":
            return {} if out else {(): 1.0}
        return out
    if isinstance(tree, Aggregation):
        inner = evaluate(tree.inner, streams, at, steps)
        if not isinstance(inner, dict):
            raise LogQLError(f"{tree.operator} needs a vector")
        return _aggregate(tree, inner)
    if isinstance(tree, Binary):
        left = evaluate(tree.left, streams, at, steps)
        return _binary(tree, left, evaluate(tree.right, streams, at, steps))
    raise LogQLError("parse error: a log query where a metric expression was expected")
