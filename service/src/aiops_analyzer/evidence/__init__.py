"""Evidence for one alert: Prometheus series, Loki log lines and the runbook.

``gather_evidence`` never raises: each source runs concurrently with its own timeout, and a
source that is unconfigured, unreachable or broken becomes an item with status
"unavailable" and a detail saying why. Every returned item is already scrubbed and capped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import httpx

from aiops_analyzer.core.config import Settings
from aiops_analyzer.evidence import loki, prometheus, runbooks, subject
from aiops_analyzer.evidence.common import (
    MAX_ITEM_CHARS,
    MAX_RUNBOOK_CHARS,
    Source,
    describe_error,
    finish,
    unavailable,
)
from aiops_analyzer.evidence.expression import alert_expression, metric_names
from aiops_analyzer.evidence.oom_kill import read_oom_kill
from aiops_analyzer.schemas import Alert, EvidenceItem
from aiops_analyzer.scrub import Scrubber, scrubber_for

__all__ = ["alert_expression", "gather_evidence", "metric_names"]


async def gather_evidence(
    alert: Alert,
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    scrubber: Scrubber | None = None,
) -> list[EvidenceItem]:
    """Collect every source concurrently; the result is ordered prometheus, loki, runbook.

    An alert whose rule aggregated away every label naming its subject first has the subject
    looked up (``subject.resolve``): the sources then read that machine or service.
    """
    scrubber = scrubber or scrubber_for(settings.scrub_extra_patterns)
    own_client = http is None
    client = http or httpx.AsyncClient(timeout=settings.evidence_timeout_seconds)
    try:
        found = await subject.resolve(alert, settings, client)
        about = subject.with_subject(alert, [found]) if found else alert
        prom, logs = await asyncio.gather(
            _guard("prom-1", "prometheus", prometheus.collect(about, settings, client)),
            _guard("loki-1", "loki", loki.collect(about, settings, client)),
        )
        if found:
            prom = [found, *prom]
        if queries := _called_for(prom, logs):
            number = len(prom) + 1
            work = prometheus.follow_up(about, settings, client, queries, number)
            prom += await _guard(f"prom-{number}", "prometheus", work)
    finally:
        if own_client:
            await client.aclose()
    try:
        books = runbooks.collect(alert, settings)
    except Exception as exc:  # a broken runbook must not cost the other evidence
        books = [unavailable("runbook-1", "runbook", alert.alertname, describe_error(exc))]
    items = [*prom, *logs, *books]
    return [
        finish(item, scrubber, MAX_RUNBOOK_CHARS if item.source == "runbook" else MAX_ITEM_CHARS)
        for item in items
    ]


def _called_for(prom: list[EvidenceItem], logs: list[EvidenceItem]) -> list[prometheus.NamedQuery]:
    """Prometheus queries the logs call for: the container a kernel OOM-kill line names only
    by its cgroup id, when no series read so far is of that container."""
    examples = [t.example for item in logs for t in item.templates if "oom" in t.tags]
    victim = read_oom_kill(examples)
    if victim is None or not victim.container_id:
        return []
    known = any(
        victim.container_id in series.labels.get("id", "")
        for item in prom
        for series in item.series
    )
    return [] if known else prometheus.oom_victim_queries(victim.container_id)


async def _guard(
    item_id: str, source: Source, work: Awaitable[list[EvidenceItem]]
) -> list[EvidenceItem]:
    """Turn any failure of a source into one 'unavailable' item."""
    try:
        return await work
    except Exception as exc:
        detail = f"{source} evidence failed: {describe_error(exc)}"
        return [unavailable(item_id, source, "", detail)]
