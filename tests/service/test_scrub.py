"""Secret masking: realistic secrets in labels, annotations and log lines are masked;
ordinary identifiers, URLs and fingerprints stay exactly as they were."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from aiops_analyzer.scrub import (
    _RULES,
    KNOWN_CLEAN_MAX_CHARS,
    KNOWN_CLEAN_MAX_ENTRIES,
    Scrubber,
    default_scrubber,
    scrubber_for,
)
from hypothesis import given, settings
from hypothesis import strategies as st

# Assembled at run time so that no scanner mistakes the test data for leaked credentials.
OPENAI_KEY = "sk-proj-" + "Q7hZk2LmN9pRtV4wXy6BcDfGhJkLmNpQrStUvWx"
OPENAI_LEGACY = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0"
GCP_KEY = "AIza" + "SyD4-9xQ2mKz7LwVbN3hJcR8tYuPq0sEfGh"
AWS_ID = "AKIA" + "J5KZ2QWERTY7UIOP"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "Q2w3E4r5T6"
GITHUB = "ghp_" + "x7Yh3KdL9mQ2wE5rT8uI1oP4aS6dF0gH2jK4"
GITHUB_PAT = "github_pat_" + "11AB3CDEF0gHiJkLmNoPqR_s7TuVwXyZ0123456789abcdefGHIJKLmnop"
SLACK_TOKEN = "xoxb-" + "2638495017-5738291045-Zk3mP9qLw2Xr7Tn4Vb8Yc1Jd"
SLACK_HOOK = "https://hooks.slack.com/services/" + "T024BE7LD/B08QXK2NM1F/kX9pLm2QrT4vWz7yBn3cHd"
DISCORD_HOOK = "https://discord.com/api/webhooks/" + "1187239845102938475/Zq8-Kp3LmW_x9RtY2vB"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiJzdmMtYmlsbGluZyIsImV4cCI6MTc5OTk5OTk5OX0"
    ".Hq3fN8vL2kZ7xW9mR4tP1yB6cD0sJ5gA3eU8iO2nK7w"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu9xGfQ2mZ7kPz3LwVbN3hJcR8tYuPq0sEfGhJkLmNoPqRsTu\n"
    "-----END RSA PRIVATE KEY-----"
)

# (where it was found, text, the secret that must disappear, the marker kind)
CASES = [
    ("log", f"POST /v1/chat Authorization: Bearer {OPENAI_KEY}", OPENAI_KEY, "authorization"),
    (
        "log",
        f"curl -H 'authorization: bearer abc123DEF456ghi789' {SLACK_HOOK}",
        SLACK_HOOK,
        "slack_webhook",
    ),
    ("annotation", f"using key {OPENAI_LEGACY} for the LLM", OPENAI_LEGACY, "openai_key"),
    ("label", f"maps_key={GCP_KEY}", GCP_KEY, "gcp_api_key"),
    ("log", f"aws configure set {AWS_ID} {AWS_SECRET}", AWS_SECRET, "aws_credentials"),
    (
        "log",
        f"AWS_SECRET_ACCESS_KEY={AWS_SECRET} region=eu-west-1",
        AWS_SECRET,
        "aws_secret_access_key",
    ),
    ("log", f"boto: access key {AWS_ID} denied", AWS_ID, "aws_access_key_id"),
    ("annotation", f"clone with {GITHUB}", GITHUB, "github_token"),
    ("annotation", f"CI token {GITHUB_PAT} expired", GITHUB_PAT, "github_token"),
    ("log", f"slack client init token={SLACK_TOKEN}", SLACK_TOKEN, "slack_token"),
    ("annotation", f"post to {DISCORD_HOOK} on failure", DISCORD_HOOK, "discord_webhook"),
    (
        "log",
        "db connect postgresql://billing:Tr0ub4dor&3@db.internal:5432/billing",
        "Tr0ub4dor&3",
        "url_password",
    ),
    ("label", f"session {JWT}", JWT, "jwt"),
    ("log", f"loaded key\n{PEM}\nok", "MIIEowIBAAKCAQEAu9xGfQ2", "private_key"),
    (
        "log",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC (line cut)",
        "MIIEvQIBADANBgkq",
        "private_key",
    ),
    ("log", 'level=error msg="login failed" password=hunter2 user=alice', "hunter2", "secret"),
    ("log", '{"user": "alice", "password": "c0rrect \\"horse\\" battery"}', "c0rrect", "secret"),
    ("log", "GET /callback?code=1&client_secret=s3kr1t-v4lue&state=x", "s3kr1t-v4lue", "secret"),
    ("log", "redis: api_key: 9f8e7d6c5b4a", "9f8e7d6c5b4a", "secret"),
    ("log", "export DB_PASSWORD=$uperS3cret!", "$uperS3cret!", "secret"),
]


@pytest.mark.parametrize(("where", "text", "secret", "kind"), CASES)
def test_masks_realistic_secrets(where: str, text: str, secret: str, kind: str) -> None:
    cleaned = default_scrubber.scrub(text)
    assert secret not in cleaned, f"{kind} leaked from a {where}"
    assert f"[REDACTED:{kind}]" in cleaned


def test_masking_keeps_the_surrounding_text_readable() -> None:
    cleaned = default_scrubber.scrub('level=error msg="login failed" password=hunter2 user=alice')
    assert cleaned == 'level=error msg="login failed" password=[REDACTED:secret] user=alice'
    url = default_scrubber.scrub("postgresql://billing:pw1234@db:5432/billing")
    assert url == "postgresql://billing:[REDACTED:url_password]@db:5432/billing"


NEGATIVES = [
    "fingerprint=3f2a9c81b7d4e605",  # Alertmanager fingerprint
    "image sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "commit 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12 deployed",
    "request_id=123e4567-e89b-12d3-a456-426614174000 status=502",
    "http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22nginx%22%7D+%3D%3D+0&g0.tab=1",
    "https://grafana.example.com/d/abc123/overview?orgId=1&from=now-1h",
    "upstream timed out (110: Connection timed out) while reading response header from upstream",
    "container web-7d9f8b6c4-x2kzq restarted 3 times; exit code 137 (OOMKilled)",
    "Skipping task: skiing-table sk-10 reserved",  # "sk-" too short to be a key
    "load average: 3.52, 2.97, 2.10",
    # Placeholders and references in runbooks and shell snippets are not secrets.
    '-H "Authorization: Bearer $OPENAI_API_KEY"',
    "curl -H 'Authorization: Bearer <token>' http://localhost:8080/analyses",
    "password=${DB_PASSWORD}",
    "token: {{ .Values.webhookToken }}",
    "Which alerts used the most tokens: `curl -s localhost:8080/analyses`",
    "usage prompt_tokens=412 completion_tokens=88 max_tokens: 1024",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_leaves_ordinary_text_untouched(text: str) -> None:
    assert default_scrubber.scrub(text) == text


def test_labels_and_annotations_mapping() -> None:
    labels = {
        "alertname": "BillingDown",
        "instance": "billing:8080",
        "db_password": "plain-text-value",
        "max_tokens": "4096",
    }
    annotations = {
        "description": f"billing cannot reach Slack ({SLACK_HOOK})",
        "runbook_url": "https://runbooks.example.com/billing",
    }
    clean_labels = default_scrubber.scrub_mapping(labels)
    clean_annotations = default_scrubber.scrub_mapping(annotations)
    assert clean_labels["db_password"] == "[REDACTED:secret]"
    assert clean_labels["instance"] == "billing:8080"
    assert clean_labels["max_tokens"] == "4096"
    assert SLACK_HOOK not in json.dumps(clean_annotations)
    assert clean_annotations["runbook_url"] == annotations["runbook_url"]


def test_extra_patterns_from_settings_are_masked_first() -> None:
    scrubber = Scrubber([r"ACME-[0-9]{6}"])
    assert scrubber.scrub("license ACME-123456 ok") == "license [REDACTED:custom] ok"
    # The built-in patterns still apply next to the custom ones.
    assert GITHUB not in scrubber.scrub(f"ACME-000001 {GITHUB}")


def test_invalid_extra_pattern_names_the_setting() -> None:
    with pytest.raises(ValueError, match="AIOPS_SCRUB_EXTRA_PATTERNS"):
        Scrubber(["(unclosed"])


def test_scrubbing_is_idempotent() -> None:
    once = default_scrubber.scrub(f"password=hunter2 {OPENAI_KEY} {JWT}")
    assert default_scrubber.scrub(once) == once


def test_bundled_runbooks_pass_unchanged() -> None:
    runbooks = Path(__file__).resolve().parents[2] / "monitoring" / "runbooks"
    books = sorted(runbooks.glob("*.md"))
    assert books, "monitoring/runbooks holds the bundled runbooks"
    changed = [b.name for b in books if default_scrubber.scrub(b.read_text()) != b.read_text()]
    assert changed == []


def test_shared_scrubber_per_pattern_list() -> None:
    assert scrubber_for(["x+"]) is scrubber_for(["x+"])
    assert scrubber_for(["x+"]) is not scrubber_for(["y+"])


@settings(max_examples=300, deadline=None)
@given(
    before=st.text(max_size=60),
    after=st.text(max_size=60),
    secret=st.sampled_from([OPENAI_KEY, GITHUB, SLACK_TOKEN, JWT, GCP_KEY, DISCORD_HOOK]),
)
def test_a_planted_secret_never_survives_any_surrounding_text(
    before: str, after: str, secret: str
) -> None:
    cleaned = default_scrubber.scrub(f"{before} {secret} {after}")
    assert secret not in cleaned
    assert default_scrubber.scrub(cleaned) == cleaned


ADVERSARIAL_UNITS = [
    # Repeated prefixes of every rule, each cut just before the rule could complete.
    "eyJ-",
    "eyJaaaaaaaa.",
    "-----BEGIN ",
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN A ",
    "https://hooks.slack.com/services/",
    "https://discord.com/api/webhooks/1/",
    "a://a:",
    "a://a:b/",
    "=a://a:a",
    "a:@",
    "http://a",
    ":a@",
    "@",
    "digest username=",
    "authorization:",
    "Authorization: Bearer ",
    "bearer a",
    "bearer ",
    "sk-",
    "sk-a",
    "sk_live_",
    "whsec_",
    "AIza",
    "AKIA",
    "AKIAAAAAAAAAAAAAAAAA ",
    "secret_access_key=",
    "Aa1",
    "A/",
    "ghp_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xapp-1-",
    "SG.",
    "SG.aaaaaaaaaaaaaaaaaaaaaa.",
    "npm_",
    "hf_",
    "SK",
    "M" + "a" * 24 + ".",
    "123456789:",
    '"password":"',
    '"pass":"\\',
    '"a":"',
    "password=",
    "password",
    "passwordpasswor",
    "password: ",
    "pass=",
    "sig=a",
    "$A",
    "<a",
    "{{",
    # Full-width and zero-width characters force the folding pass.
    "\uff41",
    "a\u200b",
    "a",
]

_BASELINE = re.compile(r"(?i)password")


def _best_seconds(work: Callable[[], object], runs: int = 2) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.timeout(120)
@pytest.mark.parametrize("unit", ADVERSARIAL_UNITS)
def test_every_rule_is_linear_on_a_megabyte_of_adversarial_text(unit: str) -> None:
    """1 MB built from a rule's own prefix, for every rule: each rule costs at most a bounded
    multiple of one plain case-insensitive scan of the same bytes (measured: at most ~100x,
    the URL password rule). A quadratic rule (the old JWT rule took 192 s on "eyJ-" repeated)
    is thousands of times over the bound."""
    text = (unit * (1_000_000 // len(unit) + 1))[:1_000_000]
    baseline = max(_best_seconds(lambda: _BASELINE.findall(text)), 1e-3)
    lowered = text.lower()
    # A rule whose trigger strings are absent is skipped by the scrubber, so never runs here.
    for rule in (rule for rule in _RULES if rule.wanted(lowered)):
        elapsed = _best_seconds(partial(rule.apply, text), runs=1)
        assert elapsed / baseline < 400, f"{rule.kind} took {elapsed:.2f}s on {unit!r} x N"


def _median_seconds(text: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        default_scrubber.scrub(text)
        times.append(time.perf_counter() - started)
    return sorted(times)[runs // 2]


@pytest.mark.parametrize("unit", ["a.", "eyJ-", "token.", "a://a:", "http://a", "sk-"])
def test_cost_grows_linearly_on_pathological_lines(unit: str) -> None:
    # Eight times the text: a linear scrubber takes about 8x as long, a quadratic one 64x.
    small = _median_seconds(unit * 16_000)
    large = _median_seconds(unit * 128_000)
    assert large / small < 24


def test_the_memory_of_clean_texts_never_holds_a_secret_and_stays_bounded() -> None:
    scrubber = Scrubber()
    secret = "password=hunter2hunter2"
    for _ in range(2):  # The second pass answers from memory where it can.
        assert scrubber.scrub("cadvisor:8080") == "cadvisor:8080"
        assert "hunter2" not in scrubber.scrub(secret)
    assert "cadvisor:8080" in scrubber._known_clean
    assert not any("hunter2" in text for text in scrubber._known_clean)
    long_clean = "x " * KNOWN_CLEAN_MAX_CHARS
    assert scrubber.scrub(long_clean) == long_clean and long_clean not in scrubber._known_clean
    for n in range(KNOWN_CLEAN_MAX_ENTRIES + 10):
        scrubber.scrub(f"instance-{n}")
    assert 0 < len(scrubber._known_clean) <= KNOWN_CLEAN_MAX_ENTRIES
