"""Who is calling: a bearer token, a signed session cookie, or (only where the deployment turns
it on, and only from the proxy's addresses) the single-sign-on proxy's header.

The session cookie is signed with a key derived from the platform's master key
(itsdangerous), HttpOnly and SameSite=Strict; it holds the user's name, the session epoch and
the CSRF token. A cookie minted before the user was disabled or changed password carries an
old epoch and is refused. Every form carries the CSRF token and every state-changing request
authenticated by the cookie must send it back (form field or `X-CSRF-Token`); bearer tokens
are not ambient credentials and need none.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from lineage.actions import LedgerAction
from shuyu.auth import record_refusal, session_user, token_user
from shuyu.errors import PermissionDenied, Unauthenticated
from shuyu.permissions import User
from shuyu.platform import Platform
from shuyu.users import lookup

COOKIE = "shuyu_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PROXY_HEADER = "x-shuyu-user"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass(frozen=True)
class Session:
    """What the cookie says: anonymous sessions carry only a CSRF token (for the sign-in form)."""

    csrf: str
    name: str | None = None
    epoch: int = 0

    def dump(self) -> dict[str, Any]:
        return {"c": self.csrf, "u": self.name, "e": self.epoch}


class Sessions:
    def __init__(self, platform: Platform) -> None:
        settings = platform.settings
        self.max_age = settings.session_hours * 3600
        self.secure = settings.cookie_secure
        self.serializer = URLSafeTimedSerializer(
            platform.project_key("platform", "session-cookie"), salt="shuyu.session"
        )

    def read(self, request: Request) -> Session | None:
        """The session the cookie holds; None when absent. A cookie that does not verify
        (another key, edited, expired) raises."""
        raw = request.cookies.get(COOKIE)
        if raw is None:
            return None
        try:
            data = self.serializer.loads(raw, max_age=self.max_age)
            return Session(str(data["c"]), data.get("u"), int(data.get("e", 0)))
        except (BadSignature, KeyError, TypeError, ValueError):
            raise Unauthenticated(
                "the session cookie is invalid or expired", fix="sign in again at /login"
            ) from None

    def fresh(self, name: str | None = None, epoch: int = 0) -> Session:
        return Session(secrets.token_urlsafe(24), name, epoch)

    def set(self, response: Any, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.serializer.dumps(session.dump()),
            max_age=self.max_age,
            httponly=True,
            samesite="strict",
            secure=self.secure,
            path="/",
        )

    def clear(self, response: Any) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def check_csrf(session: Session | None, sent: str | None) -> None:
    if session is None or not sent or not hmac.compare_digest(session.csrf, sent):
        raise PermissionDenied(
            "the form's CSRF token is missing or does not match the session",
            field=CSRF_FIELD,
            fix="reload the page and submit the form again",
        )


def origin(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _from_proxy(platform: Platform, address: str) -> bool:
    allowed = [a.strip() for a in platform.settings.proxy_addresses.split(",") if a.strip()]
    try:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(a, strict=False) for a in allowed)
    except ValueError:
        return address in allowed


def authenticate(platform: Platform, sessions: Sessions, request: Request) -> User:
    """The acting user of one request, or Unauthenticated (each refusal recorded)."""
    where = origin(request)
    proxied = request.headers.get(PROXY_HEADER)
    if proxied is not None and platform.settings.trusted_proxy:
        if not _from_proxy(platform, where):
            _refuse(platform, "proxy header from a non-proxy address", proxied, where)
            raise Unauthenticated(
                "X-Shuyu-User is accepted only from the trusted proxy",
                fix="sign in, or send the request through the deployment's proxy",
            )
        named = lookup(platform, proxied)
        if named.role is None:
            _refuse(platform, "proxy named an unregistered or disabled user", proxied, where)
            raise Unauthenticated(
                "the proxy named no enabled account", fix="ask an operator to register it"
            )
        return named
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, secret = auth.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            _refuse(platform, "malformed Authorization header", None, where)
            raise Unauthenticated(
                "the Authorization header is not `Bearer TOKEN`",
                fix="send Authorization: Bearer TOKEN",
            )
        return token_user(platform, secret.strip(), where)
    try:
        session = sessions.read(request)
    except Unauthenticated:
        _refuse(platform, "session cookie does not verify", None, where)
        raise
    if session is not None and session.name:
        user = session_user(platform, session.name, session.epoch)
        if user is None:
            _refuse(
                platform, "session ended (user disabled or password changed)", session.name, where
            )
            raise Unauthenticated("the session has ended", fix="sign in again at /login")
        if request.method not in SAFE_METHODS:
            try:
                check_csrf(session, request.headers.get(CSRF_HEADER))
            except PermissionDenied:
                _refuse(platform, "missing CSRF token", session.name, where)
                raise
        return user
    if proxied is not None:
        _refuse(platform, "proxy header while single sign-on is off", proxied, where)
        raise Unauthenticated(
            "X-Shuyu-User is not accepted here (single sign-on is off)",
            fix="sign in at /login, or send Authorization: Bearer TOKEN",
        )
    raise Unauthenticated(
        "not signed in", fix="sign in at /login, or send Authorization: Bearer TOKEN"
    )


def _refuse(platform: Platform, why: str, claimed: str | None, where: str) -> None:
    record_refusal(
        platform.acting_as("anonymous"),
        LedgerAction.AUTH_REFUSED,
        f"user:{claimed}" if claimed else "request",
        {"why": why, "from": where},
    )
