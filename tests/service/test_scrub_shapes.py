"""Every secret shape the scrubber knows, as a table: a realistic positive that must be masked
and a near miss that must stay exactly as it was. Shapes follow gitleaks and detect-secrets;
the values are assembled at run time so no scanner mistakes this file for a leak."""

from __future__ import annotations

import pytest
from aiops_analyzer.scrub import default_scrubber, is_secret_key

STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
STRIPE_RESTRICTED = "rk_live_" + "51H8xQ2LmN9pRtV4wXy6BcD"
GITLAB = "glpat-" + "xK9mP2qL7wR4tY8uZ3vB"
SENDGRID = "SG." + "ngeVfQFYQlKU0ufo8x5d1A" + "." + "TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr"
NPM = "npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
HUGGINGFACE = "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNmQwErTyUi"
AZURE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu" + "Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "Q2w3E4r5T6"
TWILIO = "SK" + "2a7f9c1e4b8d3f6a0c5e9b2d7f1a4c8e"
DISCORD_BOT = "MTk4NjIyNDgzNDcxOTI1MjQ4" + ".Cl2FMQ." + "ZnCjm1XVW7vRze4b7Cq4se7kKWs"
TELEGRAM = "1234567890:" + "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"
PGP = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF0v2mABCADkq7Z3\n"
    "-----END PGP PRIVATE KEY BLOCK-----"
)

# (shape, text with a secret, the secret, a near miss that must stay unchanged)
SHAPES = [
    ("stripe", f"charge failed with key {STRIPE}", STRIPE, "desk_live_view settings saved"),
    ("stripe restricted", f"STRIPE={STRIPE_RESTRICTED}", STRIPE_RESTRICTED, "sk_live_short"),
    ("gitlab", f"git clone https://oauth2:{GITLAB}@gitlab.com/x.git", GITLAB, "glpat-short"),
    ("gitlab bare", f"token {GITLAB} expired", GITLAB, "see glpat-docs for details"),
    ("sendgrid", f"mail via {SENDGRID}", SENDGRID, "SG.2 release notes"),
    ("npm", f"//registry.npmjs.org/:_authToken {NPM}", NPM, "npm_config_cache=/tmp/npm"),
    ("huggingface", f"HF hub login {HUGGINGFACE}", HUGGINGFACE, "pip install hf_transfer"),
    (
        "azure",
        f"DefaultEndpointsProtocol=https;AccountName=billing;AccountKey={AZURE_KEY};"
        "EndpointSuffix=core.windows.net",
        AZURE_KEY,
        "DefaultEndpointsProtocol=https;AccountName=billing;EndpointSuffix=core.windows.net",
    ),
    ("PASS=", "export PASS=Hunter2hunter", "Hunter2hunter", "bypass=true passed=3 compass=N"),
    ("pwd=", "mysql -u root pwd=s3cr3tValue", "s3cr3tValue", "cd $PWD && ls"),
    (
        "pwd= path",
        "mysql -u root pwd=/s3cr3tValue",
        "/s3cr3tValue",
        "sudo: jdoe : TTY=pts/0 ; PWD=/home/jdoe ; USER=root ; COMMAND=/usr/bin/ls",
    ),
    ("dsn=", "sentry dsn=abcdef0123456789@o1.ingest", "abcdef0123456789", "dsnames=a,b"),
    (
        "PGP block",
        f"imported\n{PGP}\ndone",
        "lQOYBF0v2mABCADkq7Z3",
        "-----BEGIN PGP PUBLIC KEY BLOCK----- is public",
    ),
    (
        "URL sig=",
        "https://acct.blob.core.windows.net/c/b?sv=2022&sig=Zx8%2Bq7LmN2pR&se=2026",
        "Zx8%2Bq7LmN2pR",
        "kill -s signal=SIGTERM pid=1",
    ),
    ("URL auth=", "GET /hook?auth=AbCdEf123456&x=1", "AbCdEf123456", "author=alice authority=ca"),
    ("URL session=", "GET /?session=8f14e45fceea167a", "8f14e45fceea167a", "sessions=42"),
    ("redis no user", "redis://:Sup3rPw@cache:6379/0", "Sup3rPw", "redis://cache:6379/0"),
    (
        "password with / and @",
        "postgres://app:pa/ss@w0rd@db:5432/app",
        "pa/ss@w0rd",
        "http://grafana:3000/d/x?user=a@b.example",
    ),
    (
        "bare AWS secret",
        f"aws configure {AWS_SECRET}",
        AWS_SECRET,
        "commit 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
    ),
    ("twilio", f"twilio api key {TWILIO}", TWILIO, "order SKU12345 shipped"),
    ("discord bot", f"bot login {DISCORD_BOT}", DISCORD_BOT, "version M1.2.3 released"),
    ("telegram bot", f"bot{TELEGRAM}/sendMessage", TELEGRAM, "ts 1234567890:12 ok"),
    ("short bearer", "Authorization: Bearer abc123", "abc123", "the bearer token is missing"),
    ("short bearer bare", "curl -H 'Bearer q1w2e3' x", "q1w2e3", "bearer tokens are checked"),
    (
        "digest",
        'Authorization: Digest username="bob", realm="api", nonce="dcd98b", '
        'response="6629fae49393a05397450978507c4ef1"',
        "6629fae49393a05397450978507c4ef1",
        "image digest sha256 verified",
    ),
    (
        "full-width",
        "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44\uff1dhunter2",
        "hunter2",
        "\uff50\uff41\uff53\uff53\uff45\uff44",
    ),
    ("zero-width", "pass\u200bword=hunter2", "hunter2", "zero\u200bwidth text"),
    (
        "groupKey",
        '{}/{severity="critical"}:{alertname="DbDown", password="Tr0ub4dor"}',
        "Tr0ub4dor",
        '{}/{severity="critical"}:{alertname="DbDown"}',
    ),
    (
        "log line",
        'ts=2026-12-01 level=error msg="connect" connection_string="Server=db;Password=Xy7!"',
        "Xy7!",
        'ts=2026-12-01 level=info msg="connection established"',
    ),
    ("JSON weak key", '{"db_pass": "Tr0ub4dor", "user": "a"}', "Tr0ub4dor", '{"bypass": "yes"}'),
]


@pytest.mark.parametrize(
    ("shape", "text", "secret", "near_miss"), SHAPES, ids=[s[0] for s in SHAPES]
)
def test_shape_is_masked_and_its_near_miss_is_not(
    shape: str, text: str, secret: str, near_miss: str
) -> None:
    cleaned = default_scrubber.scrub(text)
    assert secret not in cleaned, f"{shape} leaked: {cleaned!r}"
    assert "[REDACTED:" in cleaned
    assert default_scrubber.scrub(near_miss) == near_miss


SECRET_KEYS = [
    "pass",
    "db_pass",
    "key",
    "api_key",
    "auth",
    "x-auth",
    "dsn",
    "session",
    "user_session",
    "connection_string",
    "connectionString",
    "DB_PASSWORD",
    "apiToken",
    "stripe_secret",
    "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",
]
HARMLESS_KEYS = [
    "alertname",
    "bypass",
    "passed",
    "keyspace",
    "monkey",
    "key_id",
    "author",
    "auth_failures_total",
    "sessions_active",
    "dsn_host_count",
    "max_tokens",
    "signal",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_label_key_naming_a_secret_masks_its_value(key: str) -> None:
    assert is_secret_key(key)
    cleaned = default_scrubber.scrub_mapping({key: "plain-value-123", "alertname": "DbDown"})
    assert cleaned == {key: "[REDACTED:secret]", "alertname": "DbDown"}


@pytest.mark.parametrize("key", HARMLESS_KEYS)
def test_ordinary_label_keys_keep_their_values(key: str) -> None:
    assert not is_secret_key(key)
    assert default_scrubber.scrub_mapping({key: "plain-value-123"}) == {key: "plain-value-123"}
