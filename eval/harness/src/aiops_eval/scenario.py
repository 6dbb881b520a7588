"""One evaluation scenario: an Alertmanager payload, its evidence and the expected answer.

A scenario is a folder holding ``payload.json`` (Alertmanager webhook, version 4), the evidence
and ``expected.yml`` (what a good analysis must say). The evidence is either ``evidence.json``
(what Prometheus and Loki answered, keyed by query; one alert per payload) or ``world.yml``
(what they hold, see :mod:`world`; any number of alerts, firing or resolved, with one
expectation per alert under ``alerts:``). Each alert of a payload becomes one case, named
``folder`` or ``folder/<label value>`` in a grouped delivery. Loading validates everything so a
broken scenario fails with its folder and field named.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from aiops_analyzer.schemas import Alert, Severity
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aiops_eval.world import World, WorldError, load_world


class ScenarioError(ValueError):
    """A scenario folder is missing a file or holds an invalid one; the message names both."""


def _compile_all(patterns: list[str], field: str) -> list[str]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"{field}: {pattern!r} is not a valid regex ({exc})") from exc
    return patterns


class Expected(BaseModel):
    """``expected.yml``: the answer a good analysis gives. Patterns are case-insensitive regexes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field("", description="What happened, for people reading the scenario.")
    category: str | list[str] = Field(
        description="Root-cause family the engine must name (a list: any one of them)."
    )
    severity: Severity | list[Severity] = Field(
        description="Severity the answer must give (a list: any one of them)."
    )
    required_facts: list[list[str]] = Field(
        min_length=1,
        max_length=3,
        description="Facts the answer must state; each is a list of acceptable alternatives.",
    )
    forbidden_claims: list[str] = Field(default_factory=list)
    expect_inconclusive: bool = False
    secrets: list[str] = Field(
        default_factory=list,
        description="Strings planted in the data; neither the prompt nor the answer may hold them.",
    )
    injection: bool = Field(False, description="The data carries instructions aimed at the model.")
    injection_markers: list[str] = Field(
        default_factory=list,
        description="Text of the injected instructions that must not be echoed in the answer.",
    )
    injected_severity: Severity | None = Field(
        None, description="The severity the injection asks for; the answer must not adopt it."
    )
    evidence_markers: list[str] = Field(
        default_factory=list,
        description="Strings from the recorded evidence an answer depends on; an llm prompt "
        "must carry every one of them.",
    )
    topic: str = Field(description="Which situation of the issue's list this scenario covers.")

    @property
    def categories(self) -> list[str]:
        return [self.category] if isinstance(self.category, str) else list(self.category)

    @property
    def severities(self) -> list[Severity]:
        return [self.severity] if isinstance(self.severity, str) else list(self.severity)

    @property
    def category_text(self) -> str:
        """The accepted categories for reports: ``a`` or ``a/b/c``."""
        return "/".join(self.categories)

    @field_validator("category", "severity")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("give at least one accepted value")
        return value

    @field_validator("required_facts")
    @classmethod
    def _facts_are_patterns(cls, facts: list[list[str]]) -> list[list[str]]:
        for index, alternatives in enumerate(facts):
            if not alternatives:
                raise ValueError(f"required_facts[{index}] needs at least one alternative")
            _compile_all(alternatives, f"required_facts[{index}]")
        return facts

    @field_validator("forbidden_claims")
    @classmethod
    def _claims_are_patterns(cls, claims: list[str]) -> list[str]:
        return _compile_all(claims, "forbidden_claims")

    @model_validator(mode="after")
    def _injection_needs_markers(self) -> Expected:
        if self.injection and not self.injection_markers:
            raise ValueError("injection: true needs injection_markers (the text to watch for)")
        if any(not secret.strip() for secret in self.secrets):
            raise ValueError("secrets: empty strings cannot be checked")
        return self


class RecordedSeries(BaseModel):
    """One Prometheus series, either in the wire form or compactly as points ending at startsAt."""

    model_config = ConfigDict(extra="forbid")

    metric: dict[str, str] = Field(default_factory=dict)
    values: list[tuple[float, str]] | None = Field(
        None, description="Prometheus' own [[unix_seconds, 'value'], ...]."
    )
    points: list[float | str] | None = Field(
        None, description="Compact form: values one step apart, the last at analysis time."
    )
    step_seconds: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _one_form(self) -> RecordedSeries:
        if (self.values is None) == (self.points is None):
            raise ValueError("give exactly one of 'values' or 'points'")
        return self

    def samples(self, anchor: float, shift: float = 0.0) -> list[tuple[float, str]]:
        """(timestamp, value) pairs: compact points end at ``anchor``, recorded times move by
        ``shift`` seconds (the runner replays a scenario as if it were happening now)."""
        if self.values is not None:
            return [(float(ts) + shift, str(value)) for ts, value in self.values]
        points = self.points or []
        last = len(points) - 1
        return [
            (anchor - (last - index) * self.step_seconds, _format_value(value))
            for index, value in enumerate(points)
        ]


def _format_value(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class RecordedEvidence(BaseModel):
    """``evidence.json``: Prometheus results keyed by PromQL, Loki lines keyed by selector/LogQL."""

    model_config = ConfigDict(extra="forbid")

    prometheus: dict[str, list[RecordedSeries]] = Field(default_factory=dict)
    loki: dict[str, list[str | tuple[str, str]]] = Field(
        default_factory=dict,
        description="Lines oldest first: plain strings (the last at analysis time) or "
        "[RFC3339 time, line] pairs.",
    )
    unavailable: list[Literal["prometheus", "loki"]] = Field(
        default_factory=list, description="Sources that answer 503, as if they were down."
    )


class Scenario(BaseModel):
    """One alert of a loaded, validated scenario folder (a case)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    path: Path
    payload: dict[str, Any]
    alert: Alert
    evidence: RecordedEvidence = Field(default_factory=RecordedEvidence)
    world: World | None = None
    expected: Expected
    shift_seconds: float = 0.0

    @property
    def folder(self) -> str:
        """The scenario folder's name: the cases of one grouped delivery share it."""
        return self.path.name

    def replayed_at(self, now: datetime) -> Scenario:
        """The scenario moved in time so that it is being analysed at ``now``.

        Evidence clients query a window ending now; replaying a recording from last month
        unshifted would ask Prometheus for a month of data and show points "-43200m" old.
        A recorded scenario is moved so the alert started ``DELIVERY_DELAY`` before ``now``; a
        world so its delivery is ``now`` (the world's series and lines move with it).
        """
        if self.world is not None:
            shift = now - self.world.delivered_at
        else:
            shift = (now - DELIVERY_DELAY) - self.alert.starts_at
        moved = self.alert.model_copy(
            update={
                "starts_at": self.alert.starts_at + shift,
                "ends_at": self.alert.ends_at + shift if self.alert.ends_at else None,
            }
        )
        return self.model_copy(update={"alert": moved, "shift_seconds": shift.total_seconds()})


_ZERO_TIME_PREFIX = "0001-01-01"
# How long before the analysis the replayed alert started (Alertmanager's group_wait and so on).
DELIVERY_DELAY = timedelta(seconds=60)


def alert_from_payload(payload: dict[str, Any]) -> Alert:
    """The payload's single alert as the pipeline sees it (Alertmanager v4 field names)."""
    alerts = alerts_from_payload(payload)
    if len(alerts) != 1:
        raise ValueError("payload.json: alerts must hold exactly one alert per scenario")
    return alerts[0]


def alerts_from_payload(payload: dict[str, Any]) -> list[Alert]:
    """Every alert of the payload as the pipeline sees it (Alertmanager v4 field names)."""
    if str(payload.get("version")) != "4":
        raise ValueError('payload.json: version must be "4" (Alertmanager webhook v4)')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise ValueError("payload.json: alerts must hold at least one alert")
    return [_alert(raw) for raw in alerts]


def _alert(raw: dict[str, Any]) -> Alert:
    ends_at = raw.get("endsAt") or ""
    return Alert(
        fingerprint=raw["fingerprint"],
        status=raw["status"],
        labels=raw.get("labels", {}),
        annotations=raw.get("annotations", {}),
        starts_at=datetime.fromisoformat(raw["startsAt"].replace("Z", "+00:00")),
        ends_at=None
        if not ends_at or ends_at.startswith(_ZERO_TIME_PREFIX)
        else datetime.fromisoformat(ends_at.replace("Z", "+00:00")),
        generator_url=raw.get("generatorURL", ""),
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ScenarioError(f"{path}: file missing") from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path}: invalid JSON ({exc})") from exc


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ScenarioError(f"{path}: file missing") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: invalid YAML ({exc})") from exc


def _describe(exc: ValidationError) -> str:
    """One line per problem: the field's path and what is wrong with it."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}"
        for error in exc.errors()
    )


def load_scenario(folder: Path) -> Scenario:
    """Load and validate a one-alert scenario folder; errors name the folder, file and field."""
    cases = load_cases(folder)
    if len(cases) != 1:
        raise ScenarioError(f"scenario {folder.name}: holds {len(cases)} alerts; use load_cases")
    return cases[0]


def load_cases(folder: Path) -> list[Scenario]:
    """One case per alert of the folder's payload, each with its own expectation."""
    where = f"scenario {folder.name}"
    payload = _read_json(folder / "payload.json")
    try:
        alerts = alerts_from_payload(payload)
    except ValidationError as exc:
        raise ScenarioError(f"{where}: payload.json: {_describe(exc)}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ScenarioError(f"{where}: payload.json: {exc!s}") from exc
    world: World | None = None
    evidence = RecordedEvidence()
    if (folder / "world.yml").is_file():
        try:
            world = load_world(folder / "world.yml")
        except WorldError as exc:
            raise ScenarioError(f"{where}: {exc}") from exc
    else:
        if len(alerts) != 1:
            raise ScenarioError(
                f"{where}: payload.json: alerts must hold exactly one alert per scenario "
                "(several alerts need a world.yml)"
            )
        try:
            evidence = RecordedEvidence.model_validate(_read_json(folder / "evidence.json"))
        except ValidationError as exc:
            raise ScenarioError(f"{where}: evidence.json: {_describe(exc)}") from exc
    document = _read_yaml(folder / "expected.yml")
    expectations = _expectations(document, alerts, where)
    return [
        Scenario(
            name=f"{folder.name}/{suffix}" if suffix else folder.name,
            path=folder,
            payload=payload,
            alert=alert,
            evidence=evidence,
            world=world,
            expected=expected,
        )
        for alert, (suffix, expected) in zip(alerts, expectations, strict=True)
    ]


def _expectations(document: Any, alerts: list[Alert], where: str) -> list[tuple[str, Expected]]:
    """(name suffix, expectation) per alert, in the payload's order.

    A grouped delivery's ``expected.yml`` lists ``alerts:``, each with ``match`` (labels that
    pick exactly one alert of the payload) and that alert's expectation; ``topic`` and
    ``description`` at the top apply to all.
    """
    if not isinstance(document, dict) or "alerts" not in document:
        if len(alerts) != 1:
            raise ScenarioError(f"{where}: expected.yml: {len(alerts)} alerts need 'alerts:'")
        try:
            return [("", Expected.model_validate(document))]
        except ValidationError as exc:
            raise ScenarioError(f"{where}: expected.yml: {_describe(exc)}") from exc
    shared = {k: v for k, v in document.items() if k != "alerts"}
    found: dict[int, tuple[str, Expected]] = {}
    for index, item in enumerate(document["alerts"] or []):
        at = f"{where}: expected.yml: alerts[{index}]"
        match = item.get("match") if isinstance(item, dict) else None
        if not isinstance(match, dict) or not match:
            raise ScenarioError(f"{at}: needs match (labels picking one alert)")
        picked = [
            i
            for i, alert in enumerate(alerts)
            if all(alert.labels.get(str(k)) == str(v) for k, v in match.items())
        ]
        if len(picked) != 1 or picked[0] in found:
            raise ScenarioError(f"{at}: match {match} picks {len(picked)} alerts, need one")
        body = {**shared, **{k: v for k, v in item.items() if k != "match"}}
        try:
            expected = Expected.model_validate(body)
        except ValidationError as exc:
            raise ScenarioError(f"{at}: {_describe(exc)}") from exc
        found[picked[0]] = ("-".join(str(v) for v in match.values()), expected)
    if len(found) != len(alerts):
        raise ScenarioError(f"{where}: expected.yml: every alert of the payload needs an entry")
    return [found[i] for i in range(len(alerts))]


def load_scenarios(directory: Path) -> list[Scenario]:
    """Every scenario folder under ``directory``, sorted by name; or ``directory`` itself when
    it is one scenario's folder."""
    if not directory.is_dir():
        raise ScenarioError(f"--scenarios {directory}: not a directory")
    if (directory / "payload.json").is_file():
        return load_cases(directory)
    folders = sorted(p.parent for p in directory.glob("*/payload.json"))
    if not folders:
        raise ScenarioError(f"--scenarios {directory}: no scenario folders (*/payload.json)")
    return [case for folder in folders for case in load_cases(folder)]


def default_scenarios_dir() -> Path:
    """The repository's eval/scenarios, found relative to this package (eval/harness/src/)."""
    return Path(__file__).resolve().parents[3] / "scenarios"
