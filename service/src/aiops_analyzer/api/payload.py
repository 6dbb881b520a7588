"""Alertmanager's webhook payload, version 4, exactly as Alertmanager sends it.

Unknown extra fields (``notification_reason`` and whatever later versions add) are accepted and
ignored, so an Alertmanager upgrade never turns deliveries into 422s.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiops_analyzer.schemas import Alert

# Alertmanager marks "no end yet" with Go's zero time, 0001-01-01T00:00:00Z.
_ZERO_TIME_YEAR = 1


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL", max_length=16_384)
    fingerprint: str = Field(
        "",
        max_length=128,
        description="Alertmanager's fingerprint; derived from the labels when a sender omits it.",
    )

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """Store instants in UTC; an offset that pushes one past year 1 or 9999 is invalid."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("timestamp out of range once converted to UTC") from None

    def effective_fingerprint(self) -> str:
        if self.fingerprint:
            return self.fingerprint
        canonical = json.dumps(sorted(self.labels.items()), separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_alert(self) -> Alert:
        ends_at = self.ends_at
        if ends_at is not None and ends_at.year <= _ZERO_TIME_YEAR:
            ends_at = None
        return Alert(
            fingerprint=self.effective_fingerprint(),
            status=self.status,
            starts_at=self.starts_at,
            ends_at=ends_at,
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            generator_url=self.generator_url,
        )


class AlertmanagerPayload(BaseModel):
    """The body of ``POST /webhook/alertmanager``."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        json_schema_extra={
            "example": {
                "version": "4",
                "groupKey": '{}:{alertname="NginxDown"}',
                "truncatedAlerts": 0,
                "status": "firing",
                "receiver": "analyzer",
                "groupLabels": {"alertname": "NginxDown"},
                "commonLabels": {"alertname": "NginxDown", "severity": "critical"},
                "commonAnnotations": {"summary": "nginx is down"},
                "externalURL": "http://alertmanager:9093",
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {"alertname": "NginxDown", "severity": "critical"},
                        "annotations": {"summary": "nginx is down"},
                        "startsAt": "2026-11-28T10:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus:9090/graph?g0.expr=nginx_up+%3D%3D+0",
                        "fingerprint": "3c8e5e2f0a1b2c3d",
                    }
                ],
            }
        },
    )

    version: str = "4"
    group_key: str = Field("", alias="groupKey", max_length=65_536)
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0, le=1_000_000_000)
    status: Literal["firing", "resolved"]
    receiver: str = Field("", max_length=255)
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(min_length=1)
