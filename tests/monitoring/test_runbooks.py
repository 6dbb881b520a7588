"""Runbooks: one per alert (Prometheus and Loki), each linked and complete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiops_analyzer.evidence.common import MAX_RUNBOOK_CHARS

from tests.monitoring.files import (
    LOKI_RULES,
    PROMETHEUS_RULES,
    RUNBOOK_BASE_URL,
    RUNBOOKS_DIR,
    alert_rules,
    all_alert_names,
)

HEADINGS = ("Meaning", "Impact", "Diagnosis", "Mitigation")
RUNBOOKS = sorted(RUNBOOKS_DIR.glob("*.md"))


def test_every_alert_has_a_runbook_and_every_runbook_an_alert() -> None:
    alerts = all_alert_names()
    runbooks = {path.stem for path in RUNBOOKS}
    assert sorted(alerts - runbooks) == [], "alerts without a runbook"
    assert sorted(runbooks - alerts) == [], "runbooks without an alert"


def test_every_runbook_url_points_at_the_alerts_runbook_file() -> None:
    for rule in alert_rules(PROMETHEUS_RULES + LOKI_RULES):
        url = rule.annotations["runbook_url"]
        assert url.startswith(RUNBOOK_BASE_URL), rule.name
        assert (RUNBOOKS_DIR / url.removeprefix(RUNBOOK_BASE_URL)).is_file(), url
        assert url.endswith(f"/{rule.name}.md"), rule.name


def test_the_placeholder_base_appears_only_in_runbook_urls() -> None:
    # The local stack replaces it textually on upload: nothing else of a file may change.
    for path in PROMETHEUS_RULES + LOKI_RULES:
        linked = [r for r in alert_rules([path]) if "runbook_url" in r.annotations]
        assert path.read_text(encoding="utf-8").count(RUNBOOK_BASE_URL) == len(linked), path


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.stem)
def test_runbook_has_its_title_and_the_four_sections_in_order(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith(f"# {path.stem}\n"), "first line must be '# <AlertName>'"
    headings = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert tuple(headings) == HEADINGS
    for heading, body in zip(
        HEADINGS, re.split(r"^## .+$", text, flags=re.MULTILINE)[1:], strict=True
    ):
        assert len(body.strip()) > 40, f"section {heading} is nearly empty"
    # Diagnosis gives commands to run, not prose only.
    diagnosis = text.split("## Diagnosis", 1)[1].split("## Mitigation", 1)[0]
    assert "`" in diagnosis, "Diagnosis has no command"


@pytest.mark.parametrize("path", RUNBOOKS, ids=lambda p: p.stem)
def test_runbook_fits_in_the_analyzers_evidence(path: Path) -> None:
    # The analyzer hands at most MAX_RUNBOOK_CHARS of a runbook to its engine.
    assert len(path.read_text(encoding="utf-8")) <= MAX_RUNBOOK_CHARS
