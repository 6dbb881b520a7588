"""Engine selection: the LLM when configured and within budget, else the offline rules.

``analyze`` never raises. It records why the rules engine answered instead of the LLM in
``fallback_reason``:

- ``no_api_key``                    engine=llm with neither a key nor AIOPS_LLM_BASE_URL
- ``daily_token_budget_exhausted``  tokens_used_today reached ``llm_daily_token_budget``
- ``llm_invalid_output``            every attempt returned unparsable or schema-invalid JSON
- ``llm_error: <kind>``             timeout, rate_limited, connection_error,
                                    server_error (HTTP 5xx), auth_error, bad_request, ...

Tokens spent on failed LLM attempts stay on the result (and in its cost) so that the
daily budget and the cost metric stay honest.
"""

from __future__ import annotations

import time

from aiops_analyzer.core.config import Settings
from aiops_analyzer.engines.cost import cost_usd
from aiops_analyzer.engines.llm import LLMEngine, LLMFailure
from aiops_analyzer.engines.rules import RulesEngine, recovery_of, resolved_when
from aiops_analyzer.evidence.subject import with_subject
from aiops_analyzer.schemas import Alert, AnalysisResult, EvidenceItem
from aiops_analyzer.scrub import scrubber_for

__all__ = ["LLMEngine", "LLMFailure", "RulesEngine", "analyze"]

BUDGET_EXHAUSTED = "daily_token_budget_exhausted"
INVALID_OUTPUT = "llm_invalid_output"
NO_API_KEY = "no_api_key"


async def analyze(
    alert: Alert,
    evidence: list[EvidenceItem],
    settings: Settings,
    *,
    tokens_used_today: int = 0,
    llm: LLMEngine | None = None,
) -> AnalysisResult:
    """Analyse one alert. Pass ``llm`` to reuse one client (and its connections) across jobs.

    An aggregated alert is analysed with the subject its evidence found (``with_subject``).
    """
    started = time.perf_counter()
    alert = with_subject(alert, evidence)
    result = await _choose(alert, evidence, settings, tokens_used_today, llm)
    if result.engine == "llm":
        result = _with_recovery(alert, evidence, result)
    return result.model_copy(update={"latency_ms": (time.perf_counter() - started) * 1000})


def _with_recovery(
    alert: Alert, evidence: list[EvidenceItem], result: AnalysisResult
) -> AnalysisResult:
    """A resolved alert through the llm engine gets the rules engine's recovery facts (from the
    evidence and the ids the model cited). The prompt asks for severity info unless the cause
    is still there, so a higher severity is the model saying it is: that is recorded (the
    model may see what the check does not, a leak growing again after a restart)."""
    cited = {i for cause in result.probable_causes for i in cause.evidence_ids}
    quoted = " ".join(cause.cause for cause in result.probable_causes)
    recovery = recovery_of(alert, evidence, cited, quoted)
    if recovery is None or recovery.cause_persists or result.severity in ("info", "none"):
        return result.model_copy(update={"recovery": recovery})
    best = max(result.probable_causes, key=lambda c: c.confidence, default=None)
    reason = best.cause if best else result.summary
    when = resolved_when(recovery.recovered_at, recovery.fired_seconds)
    judged = recovery.model_copy(
        update={
            "cause_persists": True,
            "detail": f"{when}, but the llm analysis finds the cause still there: {reason[:300]}",
            "evidence_ids": list(best.evidence_ids) if best else [],
        }
    )
    return result.model_copy(update={"recovery": judged})


async def _choose(
    alert: Alert,
    evidence: list[EvidenceItem],
    settings: Settings,
    tokens_used_today: int,
    llm: LLMEngine | None,
) -> AnalysisResult:
    if not settings.llm_enabled:
        return _rules(alert, evidence, settings, reason=None)
    has_key = bool(settings.openai_api_key and settings.openai_api_key.get_secret_value())
    if not has_key and not settings.llm_base_url:
        # engine=llm without a key can only mean a keyless local server; with no URL either,
        # a call would go to the public API with a placeholder key and fail there.
        return _rules(alert, evidence, settings, reason=NO_API_KEY)
    budget = settings.llm_daily_token_budget
    if budget and tokens_used_today >= budget:
        return _rules(alert, evidence, settings, reason=BUDGET_EXHAUSTED)
    engine = llm
    try:
        engine = engine or LLMEngine(settings)
        return await engine.analyze(alert, evidence)
    except LLMFailure as failure:
        reason = INVALID_OUTPUT if failure.invalid_output else f"llm_error: {failure.reason}"
        result = _rules(alert, evidence, settings, reason=reason)
        spent = (failure.prompt_tokens, failure.completion_tokens)
        return result.model_copy(
            update={
                "prompt_tokens": spent[0],
                "completion_tokens": spent[1],
                "cost_usd": cost_usd(*spent, settings),
            }
        )
    except Exception as exc:  # a bug or an SDK surprise must not lose the analysis
        return _rules(
            alert, evidence, settings, reason=f"llm_error: unexpected {type(exc).__name__}"
        )
    finally:
        if llm is None and engine is not None:
            await engine.aclose()


def _rules(
    alert: Alert, evidence: list[EvidenceItem], settings: Settings, *, reason: str | None
) -> AnalysisResult:
    try:
        result = RulesEngine(scrubber_for(settings.scrub_extra_patterns)).analyze(alert, evidence)
    except Exception as exc:  # last line of defence: an honest "don't know"
        result = AnalysisResult(
            summary=f"{alert.alertname or 'Alert'}: automatic analysis failed "
            f"({type(exc).__name__}); see the alert and its source.",
            severity="warning",
            inconclusive=True,
            engine="rules",
        )
    return result.model_copy(update={"fallback_reason": reason}) if reason else result
