"""Alertmanager's webhook payload, version 4, exactly as Alertmanager sends it.

Unknown extra fields (``notification_reason`` and whatever later versions add) are accepted and
ignored, so an Alertmanager upgrade never turns deliveries into 422s.

What a client cannot send (each a 422 naming the field): label names over 1 KiB, label values
over 16 KiB, annotation values over 64 KiB, more than 256 labels or annotations per alert, NUL
characters anywhere (PostgreSQL cannot store them), timestamps that are not RFC 3339 strings
with an offset (a number is not a time), and duplicate keys in any JSON object.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import jiter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from aiops_analyzer.schemas import Alert

# Alertmanager marks "no end yet" with Go's zero time, 0001-01-01T00:00:00Z.
_ZERO_TIME_YEAR = 1

MAX_LABEL_NAME_CHARS = 1024
MAX_LABEL_VALUE_CHARS = 16_384
MAX_ANNOTATION_VALUE_CHARS = 65_536
MAX_PAIRS = 256

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 string is a time: 1764324000 or "0.5" is refused, not read as epoch."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 timestamp with an offset, e.g. 2026-11-28T10:00:00Z")
    return value


_NoNul = AfterValidator(_no_nul)
LabelName = Annotated[str, StringConstraints(max_length=MAX_LABEL_NAME_CHARS), _NoNul]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE_CHARS), _NoNul]
AnnotationValue = Annotated[str, StringConstraints(max_length=MAX_ANNOTATION_VALUE_CHARS), _NoNul]
Url = Annotated[str, StringConstraints(max_length=16_384), _NoNul]
ShortText = Annotated[str, StringConstraints(max_length=255), _NoNul]
Labels = Annotated[dict[LabelName, LabelValue], Field(max_length=MAX_PAIRS)]
Annotations = Annotated[dict[LabelName, AnnotationValue], Field(max_length=MAX_PAIRS)]
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]


class DuplicateKeyError(ValueError):
    pass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(f"duplicate key {key[:100]!r} in a JSON object")
            seen.add(key)
    return document


def check_duplicate_keys(body: bytes) -> None:
    """JSON parsers keep the last of duplicate keys; which one a reader sees is a guess, so a
    body with any is refused. Syntax errors are left to pydantic's parser (its messages).

    jiter (Rust, pydantic-core's parser) finds duplicates at half the cost of a Python hook per
    object; only a body it refuses is parsed again, for the message naming the key."""
    try:
        jiter.from_json(body, catch_duplicate_keys=True, cache_mode="keys")
        return
    except ValueError:
        pass
    try:
        json.loads(body, object_pairs_hook=_refuse_duplicates)
    except DuplicateKeyError:
        raise
    except (ValueError, RecursionError):
        return


class AlertmanagerAlert(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: Labels = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=dict)
    starts_at: Timestamp = Field(alias="startsAt")
    ends_at: Timestamp | None = Field(None, alias="endsAt")
    generator_url: Url = Field("", alias="generatorURL")
    fingerprint: Annotated[str, StringConstraints(max_length=128), _NoNul] = Field(
        "",
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

    version: Annotated[str, StringConstraints(max_length=16), _NoNul] = "4"
    group_key: Annotated[str, StringConstraints(max_length=65_536), _NoNul] = Field(
        "", alias="groupKey"
    )
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0, le=1_000_000_000)
    status: Literal["firing", "resolved"]
    receiver: ShortText = ""
    group_labels: Labels = Field(default_factory=dict, alias="groupLabels")
    common_labels: Labels = Field(default_factory=dict, alias="commonLabels")
    common_annotations: Annotations = Field(default_factory=dict, alias="commonAnnotations")
    external_url: Url = Field("", alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(min_length=1)
