"""Runbook evidence: ``<AlertName>.md`` from the bundled runbooks, else the runbook_url link.

Lookup order: ``settings.runbooks_dir``, ``$AIOPS_RUNBOOKS_DIR`` (the image sets it to
/app/runbooks), then the repository's ``monitoring/runbooks`` found above this package in a
development checkout. A ``runbook_url`` annotation is recorded as a link and never fetched:
the URL comes from alert data, and following it would let any alert make the analyzer call an
arbitrary address.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from aiops_analyzer.core.config import Settings
from aiops_analyzer.evidence.common import MAX_RUNBOOK_CHARS, cap
from aiops_analyzer.schemas import Alert, EvidenceItem

# Alert names become file names: anything else could walk out of the directory.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,200}$")
# The detail of an item that only records the runbook_url link: nothing was read.
LINK_ONLY_DETAIL = "no bundled runbook file; link recorded only"


def runbook_dirs(settings: Settings) -> list[Path]:
    dirs: list[Path] = []
    if settings.runbooks_dir:
        dirs.append(Path(settings.runbooks_dir))
    env_dir = os.environ.get("AIOPS_RUNBOOKS_DIR")
    if env_dir:
        dirs.append(Path(env_dir))
    bundled = _repository_runbooks()
    if bundled:
        dirs.append(bundled)
    return dirs


def _repository_runbooks() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "monitoring" / "runbooks"
        if candidate.is_dir():
            return candidate
    return None


def find_runbook(alertname: str, settings: Settings) -> Path | None:
    if not _SAFE_NAME.match(alertname) or alertname.startswith("."):
        return None
    for directory in runbook_dirs(settings):
        path = directory / f"{alertname}.md"
        if path.is_file():
            return path
    return None


def display_path(path: Path) -> str:
    """monitoring/runbooks/X.md inside a checkout, <directory>/X.md elsewhere: evidence is
    shown to API readers, chat channels and the LLM, none of whom need the server's paths."""
    parts = path.resolve().parts
    if "monitoring" in parts:
        index = len(parts) - 1 - parts[::-1].index("monitoring")
        return "/".join(parts[index:])
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def collect(alert: Alert, settings: Settings) -> list[EvidenceItem]:
    name = alert.alertname
    path = find_runbook(name, settings)
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return [
                EvidenceItem(
                    id="runbook-1",
                    source="runbook",
                    query=display_path(path),
                    status="unavailable",
                    detail=f"runbook unreadable: {exc.strerror}",
                )
            ]
        return [
            EvidenceItem(
                id="runbook-1",
                source="runbook",
                query=display_path(path),
                text=cap(text.strip(), MAX_RUNBOOK_CHARS),
            )
        ]
    url = alert.annotations.get("runbook_url", "").strip()
    if url:
        return [
            EvidenceItem(
                id="runbook-1",
                source="runbook",
                query=url,
                text=f"Runbook link from the alert's runbook_url annotation (not fetched): {url}",
                detail=LINK_ONLY_DETAIL,
            )
        ]
    searched = ", ".join(map(str, runbook_dirs(settings))) or "any runbook directory"
    return [
        EvidenceItem(
            id="runbook-1",
            source="runbook",
            query=f"{name}.md",
            status="empty",
            detail=f"no runbook {name}.md in {searched} and no runbook_url annotation",
        )
    ]
