"""Types shared by the pipeline: one alert, evidence items and the analysis schema.

The Alertmanager webhook payload itself (version 4) is parsed in ``api``; workers, evidence,
engines and notifiers only see these types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AlertStatus = Literal["firing", "resolved"]
Severity = Literal["critical", "warning", "info", "none"]
EngineName = Literal["llm", "rules"]


class Alert(BaseModel):
    """One alert as Alertmanager sent it, normalised."""

    model_config = ConfigDict(frozen=True)

    fingerprint: str
    status: AlertStatus
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")


Trend = Literal["rising", "falling", "flat", "oscillating", "single point"]
Novelty = Literal["new", "surging", "steady"]


class ChangePoint(BaseModel):
    """Where a series' level shifted most: the mean before and after that moment."""

    at: float = Field(description="Unix seconds of the first point of the new level.")
    before: float
    after: float


class Threshold(BaseModel):
    """The alert expression's final comparison, e.g. ``> 90``: what the chart draws as a line."""

    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: float


class SeriesStats(BaseModel):
    """One time series of a query, reduced to the numbers an engine reasons from.

    ``points`` are (unix seconds, value), downsampled to at most 120 and finite only (a gap in
    the timestamps is a gap in the data). ``baseline`` is the median of the first half of the
    window, ``current`` the last value; ``limit`` and ``saturation`` (current / limit) are set
    when the series has a known ceiling (a container's memory limit).
    """

    labels: dict[str, str] = Field(default_factory=dict)
    matches_alert: bool = Field(
        default=False,
        description="Every label this series shares with the alert has the alert's value.",
    )
    points: list[tuple[float, float]] = Field(default_factory=list)
    current: float | None = None
    baseline: float | None = None
    peak: float | None = None
    minimum: float | None = None
    trend: Trend = "flat"
    slope_per_hour: float = 0.0
    change_point: ChangePoint | None = None
    drops: int = Field(default=0, description="Sharp falls of more than half the range (restarts).")
    runs: int = Field(default=1, description="Separate stretches with data (a flapping condition).")
    last_seen: float | None = Field(default=None, description="Unix seconds of the last point.")
    limit: float | None = None
    saturation: float | None = None


class LogTemplate(BaseModel):
    """A mined log template, ranked by how new or surging it is before the alert started."""

    template: str
    example: str = Field(description="One real line of the template (scrubbed, capped).")
    count: int = Field(description="Lines in the recent window (just before startsAt).")
    baseline_count: int = Field(default=0, description="Lines in the baseline window before that.")
    novelty: Novelty
    score: float
    first_seen: float = Field(description="Unix seconds of the template's first recent line.")
    last_seen: float
    level: str = ""
    tags: list[str] = Field(
        default_factory=list, description="Families the line speaks of: oom, firewall, dns..."
    )
    rate_ratio: float | None = Field(
        default=None,
        description="Recent rate over baseline rate; None when the baseline had none of it.",
    )
    variant: str = Field(
        default="",
        description="A recent line of a template whose lines otherwise repeat word for word "
        "(a configuration dump at each reload) that the baseline never had: a changed value.",
    )
    variant_of: str = Field(default="", description="The baseline line closest to ``variant``.")


class EvidenceItem(BaseModel):
    """A piece of evidence an engine may cite by ``id`` (e.g. ``prom-1``, ``loki-1``).

    The typed fields (``series``, ``templates``, ``threshold``) are what engines reason from;
    ``text`` is the same content rendered for the LLM prompt and for people.
    """

    id: str
    source: Literal["prometheus", "loki", "runbook"]
    query: str = ""
    text: str = ""
    status: Literal["ok", "empty", "unavailable"] = "ok"
    detail: str = Field(default="", description="Why a source is unavailable, or other notes.")
    kind: str = Field(
        default="",
        description="What the item measures, e.g. alert_expression, container_memory_ratio, "
        "host_swap, log_templates.",
    )
    title: str = ""
    series: list[SeriesStats] = Field(default_factory=list)
    threshold: Threshold | None = None
    templates: list[LogTemplate] = Field(default_factory=list)
    window_start: float | None = Field(default=None, description="Unix seconds the query began.")
    window_end: float | None = Field(default=None, description="Unix seconds the query ended.")


class ProbableCause(BaseModel):
    cause: str
    confidence: float = Field(ge=0.0, le=1.0)
    evidence_ids: list[str] = Field(default_factory=list)


class Recovery(BaseModel):
    """For a resolved alert: when it recovered and whether its cause is still there."""

    recovered_at: datetime = Field(description="The alert's endsAt.")
    fired_seconds: float = Field(description="endsAt minus startsAt.")
    cause_persists: bool
    detail: str = Field(description="One sentence: recovered, or what still shows the cause.")
    evidence_ids: list[str] = Field(default_factory=list)


class AnalysisResult(BaseModel):
    """What an engine returns; stored as the analysis of one alert (firing or resolved)."""

    summary: str
    severity: Severity
    probable_causes: list[ProbableCause] = Field(default_factory=list)
    remediation: list[str] = Field(default_factory=list)
    runbook_urls: list[str] = Field(default_factory=list)
    inconclusive: bool = False
    category: str = Field(default="unknown", description="Root-cause family, e.g. container_crash.")
    engine: EngineName
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    fallback_reason: str | None = Field(
        default=None, description="Why the llm engine was not used or failed, when rules answered."
    )
    recovery: Recovery | None = Field(
        default=None, description="Set on the analysis of a resolved alert (with its endsAt)."
    )


class NotificationOutcome(BaseModel):
    channel: str
    ok: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
