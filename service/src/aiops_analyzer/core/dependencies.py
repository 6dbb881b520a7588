"""What the analyzer last saw of each dependency, and one WARNING when one starts failing.

The workers report every LLM answer, evidence query and notification here. A dependency that
starts failing is logged once at WARNING with its reason (not once per alert while it stays
down), its recovery once at INFO, and `/readyz` shows each dependency's state. Readiness itself
does not depend on them: the analyzer still accepts and stores alerts, and answers with the
rules engine, while the LLM or Prometheus is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiops_analyzer.core.config import Settings
from aiops_analyzer.schemas import AnalysisResult, EvidenceItem, NotificationOutcome

logger = logging.getLogger("aiops_analyzer.dependencies")

NOT_CONFIGURED = "not configured"
UNKNOWN = "not used yet"
OK = "ok"
FAILING = "failing"
# The LLM was not asked: no failure of the server, but the operator should know.
LLM_SKIPPED = {"daily_token_budget_exhausted": "daily token budget exhausted"}


@dataclass
class DependencyState:
    state: str
    reason: str = ""
    since: float | None = None
    last_checked: float | None = None

    def as_dict(self) -> dict[str, str | None]:
        def iso(at: float | None) -> str | None:
            return datetime.fromtimestamp(at, UTC).isoformat() if at is not None else None

        body: dict[str, str | None] = {"state": self.state}
        if self.reason:
            body["reason"] = self.reason
        if self.since is not None:
            body["since"] = iso(self.since)
        if self.last_checked is not None:
            body["last_checked"] = iso(self.last_checked)
        return body


class DependencyHealth:
    def __init__(self, settings: Settings) -> None:
        from aiops_analyzer import notify

        channels = {channel.name for channel in notify.configured_channels(settings)}
        configured = {
            "llm": settings.llm_enabled,
            "prometheus": bool(settings.prometheus_url),
            "loki": bool(settings.loki_url),
            **{name: name in channels for name in ("slack", "discord", "webhook", "grafana")},
        }
        self._states = {
            name: DependencyState(UNKNOWN if on else NOT_CONFIGURED)
            for name, on in configured.items()
        }
        for name in channels - set(self._states):  # a channel added later keeps its name
            self._states[name] = DependencyState(UNKNOWN)

    def snapshot(self) -> dict[str, dict[str, str | None]]:
        return {name: state.as_dict() for name, state in sorted(self._states.items())}

    def record(self, name: str, ok: bool, reason: str = "", *, what: str = "") -> None:
        """One observation. Logs the transition into failing (WARNING) and out of it (INFO)."""
        now = time.time()
        state = self._states.setdefault(name, DependencyState(UNKNOWN))
        state.last_checked = now
        if ok:
            if state.state == FAILING:
                logger.info(
                    f"{name} works again (failing since {state.as_dict()['since']})",
                    extra={"event": "dependency_recovered", "dependency": name},
                )
            if state.state != OK:
                state.state, state.reason, state.since = OK, "", now
            return
        if state.state != FAILING or state.reason != reason:
            logger.warning(
                f"{name} {what or 'failed'}: {reason}",
                extra={"event": "dependency_failing", "dependency": name, "reason": reason},
            )
            if state.state != FAILING:
                state.since = now
            state.state, state.reason = FAILING, reason

    # --- what the workers report -----------------------------------------------------------
    def observe_result(self, result: AnalysisResult, settings: Settings) -> None:
        if not settings.llm_enabled:
            return
        reason = result.fallback_reason or ""
        if result.engine == "llm" and not reason:
            self.record("llm", True)
        elif reason in LLM_SKIPPED:
            self.record("llm", False, LLM_SKIPPED[reason], what="not asked")
        elif reason:
            self.record("llm", False, reason, what="failed; the rules engine answered")

    def observe_evidence(self, items: Iterable[EvidenceItem]) -> None:
        problems: dict[str, str] = {}
        seen: set[str] = set()
        for item in items:
            if item.source == "runbook" or self._states[item.source].state == NOT_CONFIGURED:
                continue
            seen.add(item.source)
            if item.status == "unavailable" and item.source not in problems:
                problems[item.source] = item.detail or "unavailable"
        for source in sorted(seen):
            if source in problems:
                self.record(source, False, problems[source], what="evidence query failed")
            else:
                self.record(source, True)

    def observe_notifications(self, outcomes: Iterable[NotificationOutcome]) -> None:
        for outcome in outcomes:
            if outcome.ok:
                self.record(outcome.channel, True)
            else:
                error = outcome.error or f"HTTP {outcome.status_code or '?'}"
                reason = f"{error} after {outcome.attempts} attempts"
                self.record(outcome.channel, False, reason, what="notification failed")
