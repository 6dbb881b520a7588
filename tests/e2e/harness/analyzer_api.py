"""A thin client of the analyzer's read API (``/analyses``, ``/metrics``) for the assertions."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


def metric_sum(exposition: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when absent)."""
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def parse_time(value: str | None) -> float | None:
    """An ISO 8601 timestamp (the API's or Alertmanager's) as epoch seconds; naive means UTC."""
    if not value:
        return None
    # Alertmanager may send nanoseconds; Python parses at most microseconds.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value)
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class AnalyzerClient:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}

    def analyses(self, **filters: str | float) -> list[dict[str, Any]]:
        """Every analysis matching the filters (all pages); ``since`` may be epoch seconds."""
        params: dict[str, str | int] = {}
        for key, value in filters.items():
            params[key] = iso(value) if key == "since" and isinstance(value, float) else str(value)
        items: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            response = httpx.get(
                f"{self.base_url}/analyses",
                params={**params, "limit": 500, "offset": offset},
                headers=self.headers,
                timeout=5.0,
            )
            response.raise_for_status()
            page = response.json()
            items.extend(page["items"])
            offset = page.get("next_offset")
        return items

    def analysis(self, analysis_id: int) -> dict[str, Any]:
        response = httpx.get(
            f"{self.base_url}/analyses/{analysis_id}", headers=self.headers, timeout=5.0
        )
        response.raise_for_status()
        return dict(response.json())

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the analyzer's ``name`` samples whose labels include ``labels``."""
        response = httpx.get(f"{self.base_url}/metrics", timeout=5.0)
        response.raise_for_status()
        return metric_sum(response.text, name, **labels)

    def done(self, alertname: str, status: str, since: float) -> list[dict[str, Any]]:
        """Analyses of ``alertname`` in ``status`` received since ``since``, their job finished."""
        found = self.analyses(alertname=alertname, status=status, since=since)
        return [a for a in found if a["job"]["state"] in ("done", "failed")]
