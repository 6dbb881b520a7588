"""Secret masking applied to everything that becomes evidence or part of an LLM prompt.

Alert labels, annotations, log lines and runbooks are written by many people and programs;
any of them may carry a credential. Each match is replaced by ``[REDACTED:<kind>]`` so a
reader still sees *that* something was there and what it was, never the value.

Every repetition that can start at many positions is bounded ({0,40} and the like), so a
pathological line (10 KB of "a.a.a.") costs milliseconds, not seconds.

Patterns are ordered: specific formats (PEM keys, JWTs, vendor keys, webhook URLs) run before
the generic ``key=value`` pairs, so the kind in the marker is the most precise one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from aiops_analyzer.schemas import Alert

REDACTED = "[REDACTED:{kind}]"

# Words that mark the *value* next to them as secret in key=value / "key": "value" forms.
_SENSITIVE_NAMES = (
    r"password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|client[_-]?secret|credentials?|auth[_-]?key"
)
_SECRET_KEY = re.compile(rf"(?i)(?:{_SENSITIVE_NAMES})")


# Values that are references or placeholders, not secrets: already masked, $VAR / ${VAR},
# <token>, {{ .Template }}. Documentation and shell snippets are full of them. A value like
# $uperS3cret (not an upper-case variable name) is still masked.
_NOT_A_VALUE = r"(?!\[REDACTED|(?-i:\$\{?[A-Z_][A-Z0-9_]*(?![a-z0-9]))|<[\w .-]+>|\{\{)"


def _marker(kind: str) -> str:
    return REDACTED.format(kind=kind)


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    # Builds the replacement from the match; default: the whole match becomes the marker.
    replace: Callable[[re.Match[str]], str] | None = None

    def apply(self, text: str) -> str:
        if self.replace is None:
            return self.pattern.sub(_marker(self.kind), text)
        return self.pattern.sub(self.replace, text)


def _keep_prefix(kind: str) -> Callable[[re.Match[str]], str]:
    """Keep group 1 (the key or scheme part) and mask the rest of the match."""
    return lambda m: m.group(1) + _marker(kind)


def _generic_pair(m: re.Match[str]) -> str:
    key = m.group(1).strip(" \"':=")
    if _looks_harmless(key):
        return m.group(0)
    return m.group(1) + _marker("secret")


_RULES: tuple[_Rule, ...] = (
    # PEM private keys, also when a log line cut the END marker off.
    _Rule(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"
            r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*\Z)",
            re.DOTALL,
        ),
    ),
    # JSON Web Tokens: base64url header (always starts with '{"' -> eyJ), payload, signature.
    _Rule("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    _Rule(
        "slack_webhook",
        re.compile(r"https://hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/[\w/-]+"),
    ),
    _Rule(
        "discord_webhook",
        re.compile(
            r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/\d+/[\w-]+",
        ),
    ),
    # scheme://user:password@host -> keep the user, mask the password.
    _Rule(
        "url_password",
        re.compile(
            r"(\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^/\s:@\"']{1,256}:)"
            r"(?!\[REDACTED)[^/\s@\"']{1,256}(?=@)"
        ),
        _keep_prefix("url_password"),
    ),
    # HTTP Authorization headers (Bearer, Basic, token...) and bare "Bearer <token>".
    _Rule(
        "authorization",
        re.compile(
            r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token|apikey)?\s*)"
            + _NOT_A_VALUE
            + r"(?!(?:bearer|basic|token|apikey)\b)[^\s\"',;]{6,}"
        ),
        _keep_prefix("authorization"),
    ),
    _Rule(
        "bearer_token",
        re.compile(r"(?i)(\bbearer\s+)" + _NOT_A_VALUE + r"[A-Za-z0-9._~+/=-]{8,}"),
        _keep_prefix("bearer_token"),
    ),
    _Rule("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    _Rule("gcp_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    # An AWS access key id followed closely by its 40-character secret: mask both.
    _Rule(
        "aws_credentials",
        re.compile(
            r"\b(?:AKIA|ASIA)[0-9A-Z]{16}[\s:,;=\"'/|]{1,6}[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
        ),
    ),
    _Rule("aws_access_key_id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    # A 40-character secret access key only counts next to its well-known key name.
    _Rule(
        "aws_secret_access_key",
        re.compile(
            r"(?i)(\b(?:aws_?)?secret_?access_?key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
        ),
        _keep_prefix("aws_secret_access_key"),
    ),
    _Rule(
        "github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")
    ),
    _Rule(
        "slack_token", re.compile(r"\bxox[abprse]-[A-Za-z0-9-]{10,}|\bxapp-\d-[A-Za-z0-9-]{10,}")
    ),
    # "password": "..." inside JSON (the value may contain escaped quotes).
    _Rule(
        "secret",
        re.compile(
            rf"(?i)(\"[\w.-]{{0,40}}?(?:{_SENSITIVE_NAMES})[\w.-]{{0,40}}\"\s*:\s*\")"
            + _NOT_A_VALUE
            + r"(?:[^\"\\]|\\.)+(?=\")"
        ),
        _generic_pair,
    ),
    # password=..., secret: ..., api_key=... (query strings, env dumps, log fields). The
    # match starts at the sensitive word (db_password= matches from "password="): scanning
    # back to the key's start from every word boundary would be quadratic on long lines.
    _Rule(
        "secret",
        re.compile(
            rf"(?i)((?:{_SENSITIVE_NAMES})[\w.-]{{0,40}}[\"']?\s*[=:]\s*[\"']?)"
            + _NOT_A_VALUE
            + r"(?![\"'{\[`])[^\s\"'&,;}\]]+"
        ),
        _generic_pair,
    ),
)


class Scrubber:
    """Masks secrets in text; ``extra_patterns`` are regexes whose whole match is masked."""

    def __init__(self, extra_patterns: Iterable[str] = ()) -> None:
        extra: list[_Rule] = []
        for raw in extra_patterns:
            try:
                extra.append(_Rule("custom", re.compile(raw)))
            except re.error as exc:
                raise ValueError(
                    f"AIOPS_SCRUB_EXTRA_PATTERNS: invalid regular expression {raw!r}: {exc}"
                ) from exc
        # Custom patterns first: the operator knows their own formats best.
        self._rules: tuple[_Rule, ...] = (*extra, *_RULES)

    def scrub(self, text: str) -> str:
        if not text:
            return text
        for rule in self._rules:
            text = rule.apply(text)
        return text

    def scrub_mapping(self, d: dict[str, str]) -> dict[str, str]:
        """Scrub each value; a key that names a secret (``db_password``) masks its whole value."""
        cleaned: dict[str, str] = {}
        for key, value in d.items():
            if _SECRET_KEY.search(key) and value and not _looks_harmless(key):
                cleaned[key] = _marker("secret")
            else:
                cleaned[key] = self.scrub(value)
        return cleaned

    def scrub_alert(self, alert: Alert) -> Alert:
        """The alert with secrets in its labels, annotations and link masked."""
        return alert.model_copy(
            update={
                "labels": self.scrub_mapping(alert.labels),
                "annotations": self.scrub_mapping(alert.annotations),
                "generator_url": self.scrub(alert.generator_url),
            }
        )


def _looks_harmless(key: str) -> bool:
    # Keys that count tokens ("max_tokens", "prompt_tokens", "tokens:") are not secrets.
    return bool(re.search(r"(?i)tokens?_?(?:count|used|total|limit)|tokens$", key))


default_scrubber = Scrubber()


@lru_cache(maxsize=16)
def _cached(patterns: tuple[str, ...]) -> Scrubber:
    return Scrubber(patterns)


def scrubber_for(extra_patterns: Iterable[str] = ()) -> Scrubber:
    """A shared scrubber for a pattern list (compiling the regexes once per distinct list)."""
    return _cached(tuple(extra_patterns))
