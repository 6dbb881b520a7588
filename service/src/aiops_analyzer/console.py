"""An analysis as readable text for a terminal: `aiops-analyzer analyze` and `make demo`.

Works on the JSON shapes (the analysis result and its evidence items as the API returns them),
so a script holding an API response and the CLI holding models print the same thing.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

WIDTH = 96


def wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(
        " ".join(text.split()),
        width=WIDTH,
        initial_indent=indent,
        subsequent_indent=indent + "  ",
        break_long_words=False,
        break_on_hyphens=False,
    )


def heading(alertname: str, status: str, labels: Mapping[str, str], starts_at: str) -> list[str]:
    where = labels.get("name") or labels.get("instance") or labels.get("job") or ""
    title = f"{alertname} [{status}]  {where}  since {starts_at}"
    return ["", "=" * WIDTH, title, "=" * WIDTH]


def analysis_lines(result: Mapping[str, Any], evidence: Sequence[Mapping[str, Any]]) -> list[str]:
    """Severity, summary, causes with the evidence they cite, evidence, remediation, runbooks."""
    flags = "   INCONCLUSIVE" if result.get("inconclusive") else ""
    fallback = f" (fallback: {result['fallback_reason']})" if result.get("fallback_reason") else ""
    lines = [
        f"  Severity: {result['severity']}   Category: {result.get('category', '')}   "
        f"Engine: {result['engine']}{fallback}   Latency: {result.get('latency_ms') or 0:.0f} ms"
        + flags,
        "  Summary:",
        wrap(result["summary"]),
    ]
    if result.get("probable_causes"):
        lines.append("  Probable causes:")
        for number, cause in enumerate(result["probable_causes"], 1):
            cited = ", ".join(cause["evidence_ids"]) or "no evidence cited"
            lines.append(wrap(f"{number}. {cause['cause']} (confidence {cause['confidence']:.0%})"))
            lines.append(f"       evidence: {cited}")
    if evidence:
        lines.append("  Evidence:")
        for item in evidence:
            text = item.get("text") or item.get("detail") or ""
            first = " ".join(text.split())[:140]
            lines.append(f"    [{item['id']}] {item['source']} ({item['status']}): {first}")
    if result.get("remediation"):
        lines.append("  Remediation:")
        lines += [wrap(f"- {step}", indent="    ") for step in result["remediation"]]
    if result.get("runbook_urls"):
        lines.append("  Runbooks:")
        lines += [f"    {url}" for url in result["runbook_urls"]]
    return lines
