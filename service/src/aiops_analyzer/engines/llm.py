"""The LLM engine: any OpenAI-compatible chat completions server via the OpenAI SDK.

The SDK's own retries are off (``max_retries=0``) so that every failure passes through one
loop here: 429 (honouring Retry-After), 5xx, timeouts, connection errors and replies that
are not valid JSON or do not match the schema are retried with exponential backoff;
authentication and other 4xx errors are not. After the last attempt ``LLMFailure`` says why,
and ``engines.analyze`` lets the rules engine answer instead.

Structured output asks for ``response_format=json_schema`` (strict); a server that rejects it
(many local servers) is asked again with ``json_object``. Either way the reply is validated
with pydantic and evidence ids the model cites but never saw are dropped.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiops_analyzer.core.config import Settings
from aiops_analyzer.engines.cost import cost_usd, estimate_tokens
from aiops_analyzer.engines.prompt import Prompt, build_prompt
from aiops_analyzer.engines.rules import SEVERITY_WORDS, runbook_links
from aiops_analyzer.schemas import Alert, AnalysisResult, EvidenceItem, ProbableCause
from aiops_analyzer.scrub import Scrubber, scrubber_for

# Local servers (Ollama) ignore the key, but the SDK insists on one.
PLACEHOLDER_API_KEY = "unused-placeholder-key"
MAX_COMPLETION_TOKENS = 1024
MAX_RETRY_AFTER_SECONDS = 30.0

REPLY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "summary",
        "severity",
        "category",
        "inconclusive",
        "probable_causes",
        "remediation",
    ],
    "properties": {
        "summary": {"type": "string"},
        "severity": {"type": "string", "enum": ["critical", "warning", "info", "none"]},
        "category": {"type": "string"},
        "inconclusive": {"type": "boolean"},
        "probable_causes": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["cause", "confidence", "evidence_ids"],
                "properties": {
                    "cause": {"type": "string"},
                    "confidence": {"type": "number"},
                    "evidence_ids": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "remediation": {"type": "array", "items": {"type": "string"}},
    },
}


class LLMFailure(Exception):
    """The LLM gave no usable answer after its retries; ``reason`` says why."""

    def __init__(
        self,
        reason: str,
        *,
        invalid_output: bool = False,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.invalid_output = invalid_output
        # Tokens spent on failed attempts still count against the budget and cost.
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


class _Cause(BaseModel):
    model_config = ConfigDict(extra="ignore")
    cause: str = Field(min_length=1)
    confidence: float
    evidence_ids: list[str] = Field(default_factory=list)


class LLMReply(BaseModel):
    """What the model must return (validated whatever response_format the server honoured)."""

    model_config = ConfigDict(extra="ignore")
    summary: str = Field(min_length=1)
    severity: str
    category: str = "unknown"
    inconclusive: bool = False
    probable_causes: list[_Cause] = Field(default_factory=list)
    remediation: list[str] = Field(default_factory=list)


class _Retryable(Exception):
    def __init__(self, reason: str, *, invalid: bool = False, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.invalid = invalid
        self.wait = wait


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_reply(content: str | None) -> LLMReply:
    """Parse and validate the model's text; raises ValueError saying what is wrong."""
    if not content or not content.strip():
        raise ValueError("empty reply")
    fenced = _FENCE.match(content)
    text = fenced.group(1) if fenced else content
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"reply is not JSON ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ValueError("reply is not a JSON object")
    try:
        return LLMReply.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"reply does not match the schema at {where}: {first['msg']}") from exc


def _confidence(value: float) -> float:
    if value > 1.0 and value <= 100.0:  # some models answer in percent
        value /= 100.0
    return min(1.0, max(0.0, value))


def _category(value: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")
    return slug[:40] or "unknown"


def _retry_after(response: Any) -> float | None:
    try:
        raw = response.headers.get("retry-after")
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, float(raw))) if raw else None
    except (AttributeError, TypeError, ValueError):
        return None


class LLMEngine:
    def __init__(
        self,
        settings: Settings,
        *,
        scrubber: Scrubber | None = None,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 8.0,
    ) -> None:
        self.settings = settings
        self.scrubber = scrubber or scrubber_for(settings.scrub_extra_patterns)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        self.client = openai.AsyncOpenAI(
            api_key=key or PLACEHOLDER_API_KEY,
            base_url=settings.llm_base_url or None,
            timeout=settings.llm_timeout_seconds,
            max_retries=0,
        )
        # Flips to json_object once a server says it does not support json_schema.
        self._use_json_schema = True

    async def aclose(self) -> None:
        await self.client.close()

    def prompt(self, alert: Alert, evidence: list[EvidenceItem]) -> Prompt:
        return build_prompt(alert, evidence, self.settings, self.scrubber)

    async def analyze(self, alert: Alert, evidence: list[EvidenceItem]) -> AnalysisResult:
        prompt = self.prompt(alert, evidence)
        attempts = self.settings.llm_max_retries + 1
        spent_prompt = spent_completion = 0
        last = _Retryable("no attempt made")
        started = time.perf_counter()
        attempt = 0
        while attempt < attempts:
            if attempt:
                await asyncio.sleep(self._delay(attempt, last.wait))
            attempt += 1
            try:
                reply, usage = await self._call(prompt)
            except _SchemaUnsupported:
                self._use_json_schema = False
                attempt -= 1  # asking again in json_object mode is not a retry
                continue
            except _Retryable as exc:
                last = exc
                continue
            except LLMFailure as exc:
                exc.prompt_tokens += spent_prompt
                exc.completion_tokens += spent_completion
                raise
            spent_prompt += usage[0]
            spent_completion += usage[1]
            if isinstance(reply, _Retryable):
                last = reply
                continue
            return self._result(
                alert, evidence, prompt, reply, spent_prompt, spent_completion, started
            )
        raise LLMFailure(
            last.reason,
            invalid_output=last.invalid,
            prompt_tokens=spent_prompt,
            completion_tokens=spent_completion,
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return max(backoff, retry_after or 0.0)

    async def _call(self, prompt: Prompt) -> tuple[LLMReply | _Retryable, tuple[int, int]]:
        """One request. Returns the reply (or why it is unusable) and its token usage."""
        if self._use_json_schema:
            response_format: Any = {
                "type": "json_schema",
                "json_schema": {"name": "alert_analysis", "strict": True, "schema": REPLY_SCHEMA},
            }
        else:
            response_format = {"type": "json_object"}
        try:
            async with asyncio.timeout(self.settings.llm_timeout_seconds):
                completion = await self.client.chat.completions.create(
                    model=self.settings.llm_model,
                    messages=prompt.messages,  # type: ignore[arg-type]
                    response_format=response_format,
                    temperature=0,
                    max_tokens=MAX_COMPLETION_TOKENS,
                )
        except TimeoutError as exc:
            raise _Retryable("timeout") from exc
        except openai.APITimeoutError as exc:
            raise _Retryable("timeout") from exc
        except openai.APIConnectionError as exc:
            raise _Retryable("connection_error") from exc
        except openai.RateLimitError as exc:
            raise _Retryable("rate_limited", wait=_retry_after(exc.response)) from exc
        except openai.BadRequestError as exc:
            if self._use_json_schema and _mentions_format(exc):
                raise _SchemaUnsupported from exc
            raise LLMFailure("bad_request (HTTP 400)") from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise LLMFailure(f"auth_error (HTTP {exc.status_code})") from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise _Retryable(f"server_error (HTTP {exc.status_code})") from exc
            raise LLMFailure(f"http_error (HTTP {exc.status_code})") from exc
        except (openai.OpenAIError, ValueError) as exc:  # a body the SDK cannot decode
            raise _Retryable("invalid_output: response body is not JSON", invalid=True) from exc

        if not isinstance(completion, ChatCompletion):  # e.g. an HTML page with status 200
            raise _Retryable("invalid_output: response is not a chat completion", invalid=True)
        content = completion.choices[0].message.content if completion.choices else None
        usage = completion.usage
        if usage is not None:
            tokens = (usage.prompt_tokens or 0, usage.completion_tokens or 0)
        else:  # some compatible servers omit usage: estimate rather than count zero
            tokens = (prompt.estimated_tokens, estimate_tokens(content or ""))
        try:
            return parse_reply(content), tokens
        except ValueError as exc:
            return _Retryable(f"invalid_output: {exc}", invalid=True), tokens

    def _result(
        self,
        alert: Alert,
        evidence: list[EvidenceItem],
        prompt: Prompt,
        reply: LLMReply,
        prompt_tokens: int,
        completion_tokens: int,
        started: float,
    ) -> AnalysisResult:
        seen = set(prompt.evidence_ids)
        causes = [
            ProbableCause(
                cause=self.scrubber.scrub(c.cause),
                confidence=_confidence(c.confidence),
                # A cited id the model never saw is invented: drop it.
                evidence_ids=[i for i in dict.fromkeys(c.evidence_ids) if i in seen],
            )
            for c in reply.probable_causes
        ]
        severity = SEVERITY_WORDS.get(reply.severity.strip().lower(), "warning")
        return AnalysisResult(
            summary=self.scrubber.scrub(reply.summary),
            severity=severity,
            probable_causes=causes,
            remediation=[self.scrubber.scrub(step) for step in reply.remediation if step.strip()],
            runbook_urls=runbook_links(alert, evidence),
            inconclusive=reply.inconclusive,
            category=_category(reply.category),
            engine="llm",
            model=self.settings.llm_model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost_usd(prompt_tokens, completion_tokens, self.settings),
            latency_ms=(time.perf_counter() - started) * 1000,
        )


class _SchemaUnsupported(Exception):
    """The server rejected response_format json_schema."""


def _mentions_format(exc: openai.BadRequestError) -> bool:
    text = f"{exc.message} {exc.body}".lower()
    return "response_format" in text or "json_schema" in text
