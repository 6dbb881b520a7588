"""Runbook links that work for whoever runs the analyzer, fork or not.

An alert's `runbook_url` annotation is whatever base its rules were deployed with (the local
stack's `aiops:runbookBaseUrl`, a placeholder in files used as they are). The analyzer has the
runbooks itself (bundled, or AIOPS_RUNBOOKS_DIR), so it serves them at `/runbooks/<AlertName>`
and links analyses there (or to AIOPS_RUNBOOK_BASE_URL) when it has the file.
"""

from __future__ import annotations

from aiops_analyzer.core.config import Settings
from aiops_analyzer.schemas import Alert, AnalysisResult, EvidenceItem

RUNBOOKS_PATH = "/runbooks"


def runbook_base(settings: Settings) -> str | None:
    if settings.runbook_base_url:
        return settings.runbook_base_url.rstrip("/")
    if settings.public_url:
        return settings.public_url.rstrip("/") + RUNBOOKS_PATH
    return None


def with_runbook_links(
    result: AnalysisResult, alert: Alert, evidence: list[EvidenceItem], settings: Settings
) -> AnalysisResult:
    """The result with its runbook links pointing at `runbook_base`, when the analyzer read the
    alert's runbook file. Links to other places (a team's wiki) are kept as they are."""
    base = runbook_base(settings)
    read = [item for item in evidence if item.source == "runbook" and item.status == "ok"]
    if base is None or not read:
        return result
    name = f"{alert.alertname}.md"
    served = f"{base}/{name}"
    file_refs = {item.query for item in read}
    kept = [
        url
        for url in result.runbook_urls
        if url not in file_refs and not url.rstrip("/").endswith(f"/runbooks/{name}")
    ]
    return result.model_copy(update={"runbook_urls": [served, *kept]})
