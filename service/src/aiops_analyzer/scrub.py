"""Secret masking applied to everything that enters the analyzer or becomes evidence.

Alert labels, annotations, ``groupKey``, log lines and runbooks are written by many people and
programs; any of them may carry a credential. Each match is replaced by ``[REDACTED:<kind>]``
so a reader still sees *that* something was there and what it was, never the value.

Linear time is a design rule, not an accident: the text is whatever a client sends. Every rule
is written so a match attempt can only *start* where the text changes character class (a
look-behind refuses to start inside a run the rule's own quantifier would consume), its runs are
possessive (``++``, no backtracking) or bounded by a small constant, and the only unbounded
possessive run follows a literal prefix. So no input makes a rule rescan a long run from many
starting points; ``tests/service/test_scrub.py`` feeds every rule 1 MB of adversarial text.

Patterns are ordered: specific formats (PEM keys, JWTs, vendor keys, webhook URLs) run before
the generic ``key=value`` pairs, so the kind in the marker is the most precise one. The vendor
shapes follow the catalogues of gitleaks and detect-secrets.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from aiops_analyzer.schemas import Alert

REDACTED = "[REDACTED:{kind}]"

# Key words whose value is secret wherever they appear in a key: db_password, apiToken...
_STRONG_NAMES = (
    r"password|passwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|client[_-]?secret|credentials?|auth[_-]?key|connection[_-]?string"
    r"|account[_-]?key|shared[_-]?access[_-]?(?:key|signature)"
)
# Short words that only mark a secret as the *last* word of a key (db_pass, x_auth, sig,
# session), never inside a longer word (bypass, passed, author, signal, sessions_total).
_WEAK_NAMES = r"pass|pwd|auth|dsn|session(?:[_-]?id)?|sig|signature|cookie"
_KEY_WORD_STRONG = re.compile(rf"(?i)(?:{_STRONG_NAMES})")
_KEY_LAST_WEAK = re.compile(rf"(?i)(?:^|[^a-z])(?:{_WEAK_NAMES}|key)$")

# Values that are references or placeholders, not secrets: already masked, $VAR / ${VAR},
# <token>, {{ .Template }}. Documentation and shell snippets are full of them. A value like
# $uperS3cret (not an upper-case variable name) is still masked.
_NOT_A_VALUE = r"(?!\[REDACTED|(?-i:\$\{?[A-Z_][A-Z0-9_]{0,64}+(?![a-z0-9]))|<[\w .-]{1,64}+>|\{\{)"

# Full-width forms (U+FF01-FF5E, "password" in wide letters) and invisible characters
# (zero-width space, soft hyphen, word joiner, BOM) would hide a key word or a prefix from
# every pattern: they are folded to ASCII or dropped before scanning the texts holding them.
_DISGUISE = re.compile("[\uff01-\uff5e\u200b-\u200d\u2060\ufeff\u00ad]")
_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {
    c: None for c in (0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD)
}


def _marker(kind: str) -> str:
    return REDACTED.format(kind=kind)


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    # Builds the replacement from the match; default: the whole match becomes the marker.
    replace: Callable[[re.Match[str]], str] | None = None
    # Lower-case strings one of which every match contains: a rule whose triggers are all
    # absent from the text is skipped (a substring test runs at C speed, a pattern does not).
    triggers: tuple[str, ...] = ()

    def wanted(self, lowered: str) -> bool:
        return not self.triggers or any(t in lowered for t in self.triggers)

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


def _bare_aws_secret(m: re.Match[str]) -> str:
    """40 characters of base64 count as an AWS secret key only when they look random:
    mixed case and digits (a git SHA is lower-case hex), and not a path."""
    value = m.group(0)
    looks_random = (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
        and value.count("/") <= 2
        and not value.startswith("/")
        and "//" not in value
    )
    return _marker("aws_secret_access_key") if looks_random else value


def _token(
    kind: str,
    prefix: str,
    body: str,
    triggers: tuple[str, ...],
    *,
    word: str = r"A-Za-z0-9_-",
    before: str | None = None,
) -> _Rule:
    """A vendor token: a literal prefix at a word start, then a possessive body."""
    pattern = re.compile(rf"(?<![{before or word}])(?:{prefix}){body}(?![{word}])")
    return _Rule(kind, pattern, triggers=triggers)


_B64 = r"A-Za-z0-9_\-"

_RULES: tuple[_Rule, ...] = (
    # PEM and PGP private keys, also when a log line cut the END marker off.
    _Rule(
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]++ ){0,4}PRIVATE KEY(?: BLOCK)?-----"
            r"(?:.*?-----END (?:[A-Z0-9]++ ){0,4}PRIVATE KEY(?: BLOCK)?-----|.*+)",
            re.DOTALL,
        ),
        triggers=("-----begin ",),
    ),
    # JSON Web Tokens: base64url header (always starts with '{"' -> eyJ), payload, signature.
    _Rule(
        "jwt",
        re.compile(rf"(?<![{_B64}])eyJ[{_B64}]{{8,}}+\.[{_B64}]{{8,}}+\.[{_B64}]{{8,}}+"),
        triggers=("eyj",),
    ),
    _Rule(
        "slack_webhook",
        re.compile(r"https://hooks\.slack(?:-gov)?\.com/(?:services|workflows|triggers)/[\w/-]++"),
        triggers=("hooks.slack",),
    ),
    _Rule(
        "discord_webhook",
        re.compile(r"https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api/webhooks/\d++/[\w-]++"),
        triggers=("discord",),
    ),
    # scheme://user:password@host -> keep the user, mask the password. The password may hold
    # '/' or '@' (the last '@' before the host ends it); "host:8080/path" is a port, not one.
    _Rule(
        "url_password",
        re.compile(
            r"(?<![A-Za-z0-9+.-])([a-zA-Z][a-zA-Z0-9+.-]{0,30}+://[^/\s:@\"'<>]{0,128}+:)"
            r"(?!\[REDACTED|\d{1,5}+(?![^/?#\s\"'<>]))"
            r"[^\s@\"'<>?#]{0,128}+(?:@[^\s@\"'<>?#]{1,128}+){0,4}(?=@)"
        ),
        _keep_prefix("url_password"),
        triggers=("://",),
    ),
    # Digest authorization: every parameter (username, nonce, response) goes.
    _Rule(
        "authorization",
        re.compile(r"(?i)((?<![a-z])digest\s{1,8}+)(?=(?:username|realm)=)[^\r\n]{1,4096}+"),
        _keep_prefix("authorization"),
        triggers=("digest",),
    ),
    # HTTP Authorization headers (Bearer, Basic, token...) and bare "Bearer <token>".
    _Rule(
        "authorization",
        re.compile(
            r"(?i)((?<![a-z])(?:proxy-)?authorization[\"']?\s{0,8}+[:=]\s{0,8}+[\"']?"
            r"(?:bearer|basic|token|apikey)?\s{0,8}+)"
            + _NOT_A_VALUE
            + r"(?!(?:bearer|basic|token|apikey|digest)\b)[^\s\"',;]{3,}+"
        ),
        _keep_prefix("authorization"),
        triggers=("authorization",),
    ),
    _Rule(
        "bearer_token",
        re.compile(
            r"(?i)((?<![a-z])bearer\s{1,8}+)"
            + _NOT_A_VALUE
            + r"(?!(?:tokens?|auth\w*|header|scheme|realm|is|was|the)\b)"
            r"[A-Za-z0-9._~+/=-]{3,}+"
        ),
        _keep_prefix("bearer_token"),
        triggers=("bearer",),
    ),
    _token("openai_key", r"sk-(?:proj-|svcacct-|admin-)?", r"[A-Za-z0-9_-]{20,}+", ("sk-",)),
    _token("stripe_key", r"(?:sk|rk)_(?:live|test)_", r"[A-Za-z0-9]{16,}+", ("k_live_", "k_test_")),
    _token("stripe_key", r"whsec_", r"[A-Za-z0-9]{24,}+", ("whsec_",)),
    _token("gcp_api_key", r"AIza", r"[0-9A-Za-z_-]{35}", ("aiza",)),
    # An AWS access key id followed closely by its 40-character secret: mask both.
    _Rule(
        "aws_credentials",
        re.compile(
            r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}[\s:,;=\"'/|]{1,6}+"
            r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
        ),
        triggers=("akia", "asia"),
    ),
    _token("aws_access_key_id", r"AKIA|ASIA", r"[0-9A-Z]{16}", ("akia", "asia"), word="A-Za-z0-9"),
    # A 40-character secret access key next to its well-known key name...
    _Rule(
        "aws_secret_access_key",
        re.compile(
            r"(?i)((?<![a-z])(?:aws_?)?secret_?access_?key[\"']?\s{0,8}+[:=]\s{0,8}+[\"']?)"
            r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"
        ),
        _keep_prefix("aws_secret_access_key"),
        triggers=("access",),
    ),
    # ... or on its own, when it looks random (checked in Python, once per 40-character run).
    _Rule(
        "aws_secret_access_key",
        re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),
        _bare_aws_secret,
    ),
    _token(
        "github_token",
        r"gh[pousr]_[A-Za-z0-9]{36,}+|github_pat_[A-Za-z0-9_]{22,}+",
        "",
        ("gh", "github_pat_"),
    ),
    _token("gitlab_token", r"gl(?:pat|dt|rt|ptt|cbt|soat)-", r"[A-Za-z0-9_-]{20,}+", ("gl",)),
    _token(
        "slack_token",
        r"xox[abprse]-[A-Za-z0-9-]{10,}+|xapp-\d-[A-Za-z0-9-]{10,}+",
        "",
        ("xox", "xapp-"),
    ),
    _token(
        "sendgrid_key", r"SG\.", r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", ("sg.",), word=_B64 + "."
    ),
    _token("npm_token", r"npm_", r"[A-Za-z0-9]{36}", ("npm_",)),
    _token("huggingface_token", r"hf_", r"[A-Za-z0-9]{30,}+", ("hf_",)),
    _token("twilio_key", r"SK", r"[0-9a-fA-F]{32}", ("sk",), word="A-Za-z0-9"),
    # Discord bot tokens: base64 user id, timestamp, HMAC.
    _token(
        "discord_token", r"[MNO]", rf"[{_B64}]{{23,25}}\.[{_B64}]{{6}}\.[{_B64}]{{27,38}}", (".",)
    ),
    # Telegram bot tokens, also inside api.telegram.org/bot<token>/ URLs.
    _token("telegram_token", r"\d{8,10}:", r"[A-Za-z0-9_-]{35}", (":",), before="0-9"),
    # "password": "..." inside JSON (the value may contain escaped quotes); the key's last
    # word may also be a weak name ("db_pass", "session").
    _Rule(
        "secret",
        re.compile(
            rf"(?i)(\"(?:[\w.-]{{0,40}}?(?:{_STRONG_NAMES})[\w.-]{{0,40}}"
            rf"|(?:[\w.-]{{0,40}}[^a-z\"])?(?:{_WEAK_NAMES}))\"\s{{0,8}}+:\s{{0,8}}+\")"
            + _NOT_A_VALUE
            + r"(?:[^\"\\]++|\\.)++(?=\")"
        ),
        _generic_pair,
        triggers=('":',),
    ),
    # password=..., secret: ..., api_key=... (query strings, env dumps, log fields). The
    # match starts at the sensitive word (db_password= matches from "password="): scanning
    # back to the key's start from every word boundary would be quadratic on long lines.
    _Rule(
        "secret",
        re.compile(
            rf"(?i)((?:{_STRONG_NAMES})[\w.-]{{0,40}}+[\"']?\s{{0,8}}+[=:]\s{{0,8}}+[\"']?)"
            + _NOT_A_VALUE
            + r"(?![\"'{\[`])[^\s\"'&,;}\]]++"
        ),
        _generic_pair,
        triggers=("pass", "secret", "token", "key", "credential", "connection", "shared"),
    ),
    # Weak names only as a whole last word and only with '=': PASS=..., ?sig=..., dsn=...
    _Rule(
        "secret",
        re.compile(
            # Not the shell's working directory (sudo's log: "PWD=/home/jdoe ; USER=root").
            rf"(?i)(?!(?-i:PWD)=/)((?<![a-z])(?:{_WEAK_NAMES})[\"']?=[\"']?)"
            + _NOT_A_VALUE
            + r"(?![\"'{\[`])[^\s\"'&,;}\]]++"
        ),
        _generic_pair,
        triggers=("=",),
    ),
)


# Bounds of a scrubber's memory of clean texts: ~2.5 MB at most.
KNOWN_CLEAN_MAX_CHARS = 256
KNOWN_CLEAN_MAX_ENTRIES = 10_000


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
        # Short texts already found clean: most label values (alertname, job, instance,
        # severity, the generator URL) come back in every delivery, and scanning them again is
        # most of the webhook's scrubbing time. Only clean texts are kept, so no secret stays
        # in memory; the set is bounded and emptied when full.
        self._known_clean: set[str] = set()

    def scrub(self, text: str) -> str:
        if not text or text in self._known_clean:
            return text
        if _DISGUISE.search(text):
            folded = text.translate(_FOLD)
            masked = self._scan(folded)
            # Unchanged text keeps its characters; masked text is shown folded.
            result = text if masked == folded else masked
        else:
            result = self._scan(text)
        if len(text) <= KNOWN_CLEAN_MAX_CHARS and result == text:
            if len(self._known_clean) >= KNOWN_CLEAN_MAX_ENTRIES:
                self._known_clean.clear()
            self._known_clean.add(text)
        return result

    def _scan(self, text: str) -> str:
        lowered = text.lower()
        for rule in self._rules:
            if rule.wanted(lowered):
                text = rule.apply(text)
        return text

    def scrub_mapping(self, d: dict[str, str]) -> dict[str, str]:
        """Scrub each value; a key that names a secret (``db_password``) masks its whole value."""
        cleaned: dict[str, str] = {}
        for key, value in d.items():
            if value and is_secret_key(key):
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


@lru_cache(maxsize=4096)  # Label and annotation keys repeat in every delivery.
def is_secret_key(key: str) -> bool:
    """db_password, apiToken, connection_string: anywhere; pass, key, auth, dsn, session:
    as the key's last word only (``bypass`` and ``auth_failures_total`` are not secrets)."""
    key = key.translate(_FOLD)
    if _looks_harmless(key):
        return False
    return bool(_KEY_WORD_STRONG.search(key) or _KEY_LAST_WEAK.search(key))


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
