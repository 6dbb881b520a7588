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


class SeriesPoints(BaseModel):
    """One series of a Prometheus evidence item, downsampled, for the page's chart."""

    labels: str
    points: list[tuple[float, float]] = Field(
        default_factory=list, description="(unix seconds, value); non-finite values left out."
    )


class EvidenceItem(BaseModel):
    """A compact piece of evidence an engine may cite by ``id`` (e.g. ``prom-1``, ``loki-1``)."""

    id: str
    source: Literal["prometheus", "loki", "runbook"]
    query: str = ""
    text: str = ""
    status: Literal["ok", "empty", "unavailable"] = "ok"
    detail: str = Field(default="", description="Why a source is unavailable, or other notes.")
    series: list[SeriesPoints] = Field(
        default_factory=list, description="Prometheus items: the series drawn on the page."
    )
    threshold: float | None = Field(
        default=None, description="The alert expression's threshold, when it compares to one."
    )


class ProbableCause(BaseModel):
    cause: str
    confidence: float = Field(ge=0.0, le=1.0)
    evidence_ids: list[str] = Field(default_factory=list)


class AnalysisResult(BaseModel):
    """What an engine returns; stored as the analysis of one firing alert."""

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


class NotificationOutcome(BaseModel):
    channel: str
    ok: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
