"""Signed links to analysis pages and the list page's login session.

A page link is ``<AIOPS_PUBLIC_URL>/ui/analyses/<id>?sig=<token>``: the token signs the id and
the time of signing (HMAC-SHA256 via itsdangerous), so it opens that one page, without the
bearer token, until ``AIOPS_PAGE_LINK_TTL_HOURS`` after it was made. The key is
``AIOPS_PAGE_SIGNING_KEY`` or, by default, one derived from the webhook token; earlier keys in
``AIOPS_PAGE_SIGNING_PREVIOUS_KEYS`` still verify, so a key can be rotated without breaking the
links already sent. The login cookie is signed with the same key under another salt, so a page
token is never a session and a session never a page token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import Enum

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from aiops_analyzer.core.config import Settings

PAGE_PATH = "/ui/analyses"
_PAGE_SALT = "aiops-analysis-page"
_SESSION_SALT = "aiops-ui-session"
_DERIVATION_LABEL = b"aiops-analyzer page links v1"
# Without any configured secret (auth disabled, no key) links only live as long as the process.
_PROCESS_KEY = secrets.token_hex(32)


class LinkProblem(Enum):
    MISSING = "missing"
    INVALID = "invalid"
    EXPIRED = "expired"


@dataclass(frozen=True)
class LinkCheck:
    ok: bool
    problem: LinkProblem | None = None


def _signing_keys(settings: Settings) -> list[str]:
    """Oldest first, newest last: itsdangerous signs with the last and verifies with all."""
    if settings.page_signing_key and settings.page_signing_key.get_secret_value():
        current = settings.page_signing_key.get_secret_value()
    elif settings.webhook_token and settings.webhook_token.get_secret_value():
        token = settings.webhook_token.get_secret_value().encode("utf-8")
        current = hmac.new(token, _DERIVATION_LABEL, hashlib.sha256).hexdigest()
    else:
        current = _PROCESS_KEY
    previous = [k.get_secret_value() for k in settings.page_signing_previous_keys]
    return [k for k in previous if k] + [current]


def _serializer(
    settings: Settings, salt: str, issued_at: int | None = None
) -> URLSafeTimedSerializer:
    signer: type[TimestampSigner] = TimestampSigner
    if issued_at is not None:  # links "made" at another time: expiry tests, nothing else
        signer = type("_SignerAt", (TimestampSigner,), {"get_timestamp": lambda _: issued_at})
    return URLSafeTimedSerializer(_signing_keys(settings), salt=salt, signer=signer)


def sign_page(settings: Settings, analysis_id: int, *, issued_at: int | None = None) -> str:
    return str(_serializer(settings, _PAGE_SALT, issued_at).dumps(analysis_id))


def check_page(settings: Settings, analysis_id: int, token: str | None) -> LinkCheck:
    """Is ``token`` a valid, unexpired signature of exactly this analysis id?"""
    if not token:
        return LinkCheck(False, LinkProblem.MISSING)
    max_age = round(settings.page_link_ttl_hours * 3600)
    try:
        signed_id = _serializer(settings, _PAGE_SALT).loads(token, max_age=max_age)
    except SignatureExpired:
        return LinkCheck(False, LinkProblem.EXPIRED)
    except BadSignature:
        return LinkCheck(False, LinkProblem.INVALID)
    if signed_id != analysis_id:
        return LinkCheck(False, LinkProblem.INVALID)
    return LinkCheck(True)


def page_path(settings: Settings, analysis_id: int) -> str:
    return f"{PAGE_PATH}/{analysis_id}?sig={sign_page(settings, analysis_id)}"


def page_url(settings: Settings, analysis_id: int) -> str | None:
    """The absolute signed link, or None when AIOPS_PUBLIC_URL is not set."""
    if not settings.public_url:
        return None
    return settings.public_url + page_path(settings, analysis_id)


def new_session(settings: Settings) -> str:
    return str(_serializer(settings, _SESSION_SALT).dumps("ui"))


def session_valid(settings: Settings, cookie: str | None) -> bool:
    if not cookie:
        return False
    max_age = round(settings.ui_session_hours * 3600)
    try:
        return bool(_serializer(settings, _SESSION_SALT).loads(cookie, max_age=max_age) == "ui")
    except BadSignature:  # SignatureExpired is a BadSignature too
        return False
