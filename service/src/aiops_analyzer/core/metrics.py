"""Prometheus metrics of the analyzer. The names are a contract: dashboards and rules use them.

Each application owns its registry, so several apps (tests, the benchmark) never share counters.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from aiops_analyzer.schemas import AnalysisResult, NotificationOutcome

# The *_created series double every counter's output and no dashboard uses them.
disable_created_metrics()


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhook_requests = Counter(
            "aiops_webhook_requests",
            "Requests to /webhook/alertmanager by HTTP status code.",
            ["code"],
            registry=r,
        )
        self.alerts_received = Counter(
            "aiops_alerts_received",
            "Alerts received by status (new and duplicate).",
            ["status"],
            registry=r,
        )
        self.alerts_duplicate = Counter(
            "aiops_alerts_duplicate",
            "Deliveries of an alert whose (fingerprint, status, startsAt) was already stored.",
            registry=r,
        )
        self.alerts_truncated = Counter(
            "aiops_alerts_truncated",
            "Alerts Alertmanager left out of deliveries (sum of truncatedAlerts).",
            registry=r,
        )
        self.analyses = Counter(
            "aiops_analyses",
            "Finished analysis jobs by engine and outcome.",
            ["engine", "outcome"],
            registry=r,
        )
        self.analysis_duration = Histogram(
            "aiops_analysis_duration_seconds",
            "Evidence plus engine time per job.",
            ["engine"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
            registry=r,
        )
        self.llm_requests = Counter(
            "aiops_llm_requests",
            "LLM analyses by outcome (ok|error|invalid|timeout|rate_limited).",
            ["outcome"],
            registry=r,
        )
        self.llm_fallbacks = Counter(
            "aiops_llm_fallbacks",
            "Analyses the rules engine answered instead of the llm, by reason.",
            ["reason"],
            registry=r,
        )
        self.llm_budget_exhausted = Counter(
            "aiops_llm_budget_exhausted",
            "Analyses answered by rules because the daily token budget was spent.",
            registry=r,
        )
        self.llm_tokens = Counter(
            "aiops_llm_tokens", "LLM tokens by kind (prompt|completion).", ["kind"], registry=r
        )
        self.llm_cost = Counter(
            "aiops_llm_cost_usd", "Estimated LLM cost in US dollars.", registry=r
        )
        self.queue_depth = Gauge(
            "aiops_queue_depth", "Analysis jobs pending or running.", registry=r
        )
        self.notifications = Counter(
            "aiops_notifications",
            "Notifications by channel and outcome (sent|failed).",
            ["channel", "outcome"],
            registry=r,
        )
        self.workers_alive = Gauge(
            "aiops_workers_alive", "Analysis worker tasks running.", registry=r
        )

        self._zero_known_series()

    def _zero_known_series(self) -> None:
        """Expose the expected series at 0 from the start, so rate() and alerts see them."""
        for status in ("firing", "resolved"):
            self.alerts_received.labels(status)
        for engine in ("llm", "rules"):
            self.analysis_duration.labels(engine)
            for outcome in ("ok", "inconclusive", "fallback", "failed"):
                self.analyses.labels(engine, outcome)
        for outcome in ("ok", "error", "invalid", "timeout", "rate_limited"):
            self.llm_requests.labels(outcome)
        for kind in ("prompt", "completion"):
            self.llm_tokens.labels(kind)

    def track_queue_depth(self, count: Callable[[], int]) -> None:
        """Read the queue depth from the store at scrape time (NaN if the store fails)."""

        def read() -> float:
            try:
                return float(count())
            except Exception:
                return float("nan")

        self.queue_depth.set_function(read)

    def record_analysis(self, result: AnalysisResult, duration_seconds: float) -> None:
        self.analysis_duration.labels(result.engine).observe(duration_seconds)
        reason = result.fallback_reason
        if reason:
            outcome = "fallback"
        elif result.inconclusive:
            outcome = "inconclusive"
        else:
            outcome = "ok"
        self.analyses.labels(result.engine, outcome).inc()
        if reason:
            self.llm_fallbacks.labels(_reason_label(reason)).inc()
            if reason == BUDGET_REASON:
                self.llm_budget_exhausted.inc()
            elif _reason_label(reason) not in _NOT_ASKED:
                self.llm_requests.labels(_llm_failure_outcome(reason)).inc()
        elif result.engine == "llm":
            self.llm_requests.labels("ok").inc()
        if result.prompt_tokens:
            self.llm_tokens.labels("prompt").inc(result.prompt_tokens)
        if result.completion_tokens:
            self.llm_tokens.labels("completion").inc(result.completion_tokens)
        if result.cost_usd > 0:
            self.llm_cost.inc(result.cost_usd)

    def record_notifications(self, outcomes: list[NotificationOutcome]) -> None:
        for outcome in outcomes:
            self.notifications.labels(outcome.channel, "sent" if outcome.ok else "failed").inc()


BUDGET_REASON = "daily_token_budget_exhausted"
# Fallbacks that are no LLM failure: the llm was never asked.
_NOT_ASKED = {BUDGET_REASON, "no_api_key", "llm_disabled"}


def _reason_label(reason: str) -> str:
    """A bounded label: 'llm_error: timeout' -> 'timeout', 'llm_error: unexpected X' ->
    'unexpected'; reasons without a colon are kept ('daily_token_budget_exhausted')."""
    kind = reason.split(":", 1)[1] if ":" in reason else reason
    words = kind.strip().split()
    return words[0][:40] if words else "unknown"


def _llm_failure_outcome(reason: str) -> str:
    text = reason.lower()
    if "timeout" in text or "timed out" in text:
        return "timeout"
    if "429" in text or "rate" in text:
        return "rate_limited"
    if "invalid" in text:
        return "invalid"
    return "error"
