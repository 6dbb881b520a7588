"""A scenario's world: what Prometheus and Loki hold, independent of the queries asked.

``world.yml`` describes raw series (metric name, labels, samples over time) and log streams
(labels, timestamped lines), every time relative to the moment Alertmanager delivered the
payload. Any PromQL an engine sends is answered by a real Prometheus loaded with the series,
and any LogQL by a Loki stand-in over the streams, so a scenario does not depend on which
queries an engine happens to send.

Samples use promtool's series notation (``promtool test rules``), one token per sample:
``7``, ``_`` (no sample), ``stale``, ``a+bxN`` / ``a-bxN`` (N+1 samples: a, a+b, ... a+N*b),
``axN`` (a, N+1 times), ``_xN`` (N missing). Two additions: ``...+bxN`` / ``...-bxN`` continue
from the previous sample (N samples, handy for a counter whose rate changes), and with
``time_values: true`` every value is seconds relative to the delivery and ``@`` is the sample's
own time (``container_last_seen``, ``container_start_time_seconds``, boot times...).

Log lines are ``[time, text]`` pairs or ``{every, from, until, line}`` repeats; ``{ts}`` in a
line becomes the line's RFC 3339 time, ``{syslog}`` its ``Dec  1 09:12:03`` form,
``{time:%Y/%m/%d %H:%M:%S}`` any strftime form and ``{n}`` the repeat's counter.
``include`` merges shared worlds (a healthy host, a container set) with ``${var}``
substitution (an included file may open with a ``defaults:`` document and ``---``) and
optional ``until`` (the target stopped there), ``from`` (it appeared then) or
``gap: [from, to]`` (it was away); a series or stream given again replaces the included one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any

import yaml

_DURATION = re.compile(r"^([+-])?((?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+)$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?Inf|NaN"
_EXPANDING = re.compile(rf"^({_NUMBER}|@|\.\.\.)([+-])({_NUMBER})x(\d+)$")
_REPEAT = re.compile(rf"^({_NUMBER}|@|_)x(\d+)$")
_SERIES = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{.*\})?\s*$", re.S)
_STRFTIME = re.compile(r"\{time:([^}]*)\}")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')

# A missing sample and a staleness marker, as the notation's ``_`` and ``stale``.
MISSING = None
STALE = "stale"


class WorldError(ValueError):
    """A world file that cannot be read; the message names the file and the bad entry."""


def parse_duration(text: str | int | float) -> float:
    """Seconds of ``-3h``, ``90s``, ``-1h30m``, ``0`` or a plain number of seconds."""
    if isinstance(text, int | float):
        return float(text)
    raw = str(text).strip()
    try:
        return float(raw)
    except ValueError:
        pass
    found = _DURATION.match(raw)
    if not found:
        raise WorldError(f"{text!r} is not a duration such as -3h, 90s or -1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(found.group(2)))
    return -seconds if found.group(1) == "-" else seconds


def _number(token: str) -> float:
    return float(token.replace("Inf", "inf"))


Value = float | str | None  # a number, "@" (own time), STALE, or MISSING


def expand_values(notation: str) -> list[Value]:
    """The samples of a promtool series notation, with this module's two additions."""
    values: list[Value] = []
    for word in notation.split():
        if word == "_":
            values.append(MISSING)
        elif word == "stale":
            values.append(STALE)
        elif word == "@":
            values.append("@")
        elif (found := _REPEAT.match(word)) is not None:
            value, count = found.groups()
            if value == "_":
                values += [MISSING] * int(count)
            elif value == "@":
                values += ["@"] * (int(count) + 1)
            else:
                values += [_number(value)] * (int(count) + 1)
        elif (found := _EXPANDING.match(word)) is not None:
            start, sign, step, count = found.groups()
            delta = _number(step) * (1 if sign == "+" else -1)
            if start == "...":  # continue from the previous sample
                previous = next((v for v in reversed(values) if isinstance(v, float)), None)
                if previous is None:
                    raise WorldError(f"{word!r} continues a series that has no number yet")
                values += [previous + delta * i for i in range(1, int(count) + 1)]
            elif start == "@":
                raise WorldError(f"{word!r}: '@' cannot be stepped; use @xN")
            else:
                values += [_number(start) + delta * i for i in range(int(count) + 1)]
        else:
            try:
                values.append(_number(word))
            except ValueError:
                raise WorldError(f"{word!r} is not a sample of the series notation") from None
    return values


def parse_series_name(text: str) -> tuple[str, dict[str, str]]:
    """``name{a="b"}`` as (name, labels)."""
    found = _SERIES.match(text)
    if not found:
        raise WorldError(f'{text!r} is not a series such as name{{label="value"}}')
    name, body = found.group(1), (found.group(2) or "{}")[1:-1].strip()
    labels: dict[str, str] = {}
    position = 0
    while position < len(body):
        label = _LABEL.match(body, position)
        if not label:
            raise WorldError(f"{text!r}: cannot read the labels at {body[position:]!r}")
        labels[label.group(1)] = label.group(2).encode().decode("unicode_escape")
        position = label.end()
    return name, labels


@dataclass(frozen=True)
class Series:
    """One series: samples as (seconds relative to the delivery, value)."""

    name: str
    labels: dict[str, str]
    samples: list[tuple[float, float | str]]
    time_values: bool = False

    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.name, tuple(sorted(self.labels.items()))

    def absolute(self, delivered: float) -> list[tuple[float, float | str]]:
        """Samples at unix times, timestamp values made absolute; STALE stays a marker."""
        out: list[tuple[float, float | str]] = []
        for at, value in self.samples:
            if value == "@":
                value = delivered + at
            elif self.time_values and isinstance(value, float):
                value = delivered + value
            out.append((delivered + at, value))
        return out


@dataclass(frozen=True)
class LogLine:
    """A line at ``at`` seconds relative to the delivery; its text may hold time placeholders,
    filled in by :meth:`text_at` for the moment the world is replayed."""

    at: float
    template: str
    counter: int = 1

    def text_at(self, delivered: float) -> str:
        moment = datetime.fromtimestamp(delivered + self.at, UTC)
        iso = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        text = _STRFTIME.sub(lambda m: moment.strftime(m.group(1)), self.template)
        return (
            text.replace("{ts}", iso)
            .replace("{syslog}", _syslog_time(moment))
            .replace("{n}", str(self.counter))
        )


@dataclass(frozen=True)
class Stream:
    labels: dict[str, str]
    lines: list[LogLine]

    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.labels.items()))


@dataclass
class World:
    """Everything Prometheus and Loki hold for one scenario."""

    delivered_at: datetime
    series: list[Series] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> float:
        return self.delivered_at.timestamp()


def _syslog_time(moment: datetime) -> str:
    return moment.strftime("%b ") + f"{moment.day:2d}" + moment.strftime(" %H:%M:%S")


def _series_from(entry: Any, defaults: dict[str, float], where: str) -> Series:
    if not isinstance(entry, dict) or "series" not in entry or "values" not in entry:
        raise WorldError(f"{where}: each series needs 'series' and 'values'")
    name, labels = parse_series_name(str(entry["series"]))
    start = parse_duration(entry.get("start", defaults["start"]))
    interval = parse_duration(entry.get("interval", defaults["interval"]))
    if interval <= 0:
        raise WorldError(f"{where}: interval must be positive")
    values = expand_values(str(entry["values"]))
    samples: list[tuple[float, float | str]] = []
    for index, value in enumerate(values):
        if value is not MISSING:
            samples.append((start + index * interval, value))
    last = samples[-1][0] if samples else start
    if last > 0:
        raise WorldError(
            f"{where}: {entry['series']} has samples {last:.0f}s after the delivery; "
            "a world ends when the payload is delivered"
        )
    return Series(name, labels, samples, bool(entry.get("time_values", False)))


def _lines_from(entries: Any, where: str) -> list[LogLine]:
    if not isinstance(entries, list):
        raise WorldError(f"{where}: lines must be a list")
    lines: list[LogLine] = []
    for index, entry in enumerate(entries):
        if isinstance(entry, list) and len(entry) == 2:
            at = parse_duration(entry[0])
            lines.append(LogLine(at, str(entry[1])))
        elif isinstance(entry, dict) and {"every", "from", "line"} <= entry.keys():
            every = parse_duration(entry["every"])
            if every <= 0:
                raise WorldError(f"{where}.lines[{index}]: every must be positive")
            at, until = parse_duration(entry["from"]), parse_duration(entry.get("until", 0))
            counter = int(entry.get("counter_start", 1))
            while at <= until:
                lines.append(LogLine(at, str(entry["line"]), counter))
                at, counter = at + every, counter + 1
        else:
            raise WorldError(
                f"{where}.lines[{index}]: give [time, line] or {{every, from, until, line}}"
            )
    if any(line.at > 0 for line in lines):
        raise WorldError(f"{where}: a line is after the delivery")
    return sorted(lines, key=lambda line: line.at)


def _cut_series(series: Series, cut: float, resume: float = math.inf) -> Series:
    """Samples up to ``cut`` and from ``resume`` on."""
    kept = [(at, value) for at, value in series.samples if at <= cut or at >= resume]
    return Series(series.name, series.labels, kept, series.time_values)


def _cut_stream(stream: Stream, cut: float, first: float = -math.inf) -> Stream:
    return Stream(stream.labels, [line for line in stream.lines if first <= line.at <= cut])


def _read_yaml(path: Path, variables: dict[str, str] | None = None) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise WorldError(f"{path}: file missing") from exc
    defaults: dict[str, str] = {}
    if variables is not None:  # an included world: its own defaults for the ${var}s
        defaults, text = _split_defaults(text, path)
    if variables or defaults:
        try:
            text = Template(text).substitute({**defaults, **(variables or {})})
        except (KeyError, ValueError) as exc:
            raise WorldError(f"{path}: variable {exc} is not given by the include") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WorldError(f"{path}: invalid YAML ({exc})") from exc


def _split_defaults(text: str, path: Path) -> tuple[dict[str, str], str]:
    """An included world may open with a ``defaults:`` document, then ``---``, then the world.

    The defaults are the values of the ``${var}``s an include does not give, so a scenario sets
    only what it changes (``vars: {instance: db-2:9100}``).
    """
    head, separator, rest = text.partition("\n---\n")
    if not separator:
        return {}, text
    try:
        document = yaml.safe_load(head)
    except yaml.YAMLError as exc:
        raise WorldError(f"{path}: invalid defaults document ({exc})") from exc
    if not isinstance(document, dict) or set(document) != {"defaults"}:
        return {}, text
    defaults = document["defaults"] or {}
    if not isinstance(defaults, dict):
        raise WorldError(f"{path}: defaults is a mapping of variable names to values")
    return {str(k): str(v) for k, v in defaults.items()}, rest


def _merge(
    document: dict[str, Any], path: Path, seen: tuple[Path, ...]
) -> tuple[dict[Any, Series], dict[Any, Stream]]:
    series: dict[Any, Series] = {}
    streams: dict[Any, Stream] = {}
    for include in document.get("include") or []:
        spec = include if isinstance(include, dict) else {"file": include}
        target = (path.parent / str(spec["file"])).resolve()
        if target in seen:
            raise WorldError(f"{path}: include cycle through {target}")
        variables = {k: str(v) for k, v in (spec.get("vars") or {}).items()}
        included = _read_yaml(target, variables)
        if not isinstance(included, dict):
            raise WorldError(f"{target}: a world is a mapping")
        more_series, more_streams = _merge(included, target, (*seen, target))
        if "until" in spec:  # the included target stopped being scraped / logging then
            cut = parse_duration(spec["until"])
            more_series = {k: _cut_series(v, cut) for k, v in more_series.items()}
            more_streams = {k: _cut_stream(v, cut) for k, v in more_streams.items()}
        if "from" in spec:  # the included target appeared then (a new container id)
            first = parse_duration(spec["from"])
            more_series = {k: _cut_series(v, -math.inf, first) for k, v in more_series.items()}
            more_streams = {k: _cut_stream(v, 0.0, first) for k, v in more_streams.items()}
        if "gap" in spec:  # the included target was away between the two times
            away = tuple(parse_duration(t) for t in spec["gap"])
            more_series = {k: _cut_series(v, away[0], away[1]) for k, v in more_series.items()}
        series.update(more_series)
        streams.update(more_streams)
    defaults = {
        "start": parse_duration(document.get("start", "-3h")),
        "interval": parse_duration(document.get("interval", "1m")),
    }
    for index, entry in enumerate(document.get("series") or []):
        one = _series_from(entry, defaults, f"{path.name}: series[{index}]")
        series[one.key()] = one
    for index, entry in enumerate(document.get("logs") or []):
        where = f"{path.name}: logs[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("labels"), dict):
            raise WorldError(f"{where}: each stream needs 'labels' and 'lines'")
        labels = {str(k): str(v) for k, v in entry["labels"].items()}
        stream = Stream(labels, _lines_from(entry.get("lines"), where))
        streams[stream.key()] = stream
    return series, streams


def load_world(path: Path) -> World:
    """Read and expand ``world.yml``; errors name the file and the entry."""
    document = _read_yaml(path)
    if not isinstance(document, dict) or "delivered_at" not in document:
        raise WorldError(f"{path}: needs delivered_at (when the payload was delivered)")
    raw = document["delivered_at"]
    delivered_at = raw if isinstance(raw, datetime) else _parse_time(str(raw), path)
    if delivered_at.tzinfo is None:
        delivered_at = delivered_at.replace(tzinfo=UTC)
    series, streams = _merge(document, path.resolve(), (path.resolve(),))
    unavailable = [str(s) for s in document.get("unavailable") or []]
    if set(unavailable) - {"prometheus", "loki"}:
        raise WorldError(f"{path}: unavailable lists only prometheus and/or loki")
    return World(delivered_at, list(series.values()), list(streams.values()), unavailable)


def _parse_time(text: str, path: Path) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WorldError(f"{path}: delivered_at {text!r} is not an RFC 3339 time") from exc
