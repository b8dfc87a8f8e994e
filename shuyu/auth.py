"""Sign-in: passwords (Argon2id), lockout, API tokens, and the refusals' ledger entries.

- Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile);
  the clear password is never stored, logged or put in an error. After
  `SHUYU_LOGIN_ATTEMPTS` failures in a row the account is locked for `SHUYU_LOCKOUT_MINUTES`;
  the count and the lock live in the store, so every server process sees them.
- API tokens carry 256 random bits, are shown once, and only their SHA-256 is stored (a
  password hash is not needed for a secret that cannot be guessed; it keeps each request
  cheap). They expire, can be revoked, and die with their user.
- Every refusal is a ledger entry in its own transaction (who claimed what, from where), and
  the caller gets one sentence that does not say which part was wrong.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from hashlib import sha256
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import insert, select, update

from lineage import ledger
from lineage.actions import LedgerAction
from shuyu.canonical import as_utc, utcnow
from shuyu.errors import NotFound, Unauthenticated, ValidationError
from shuyu.permissions import User, check_can_manage_identities
from shuyu.platform import Platform
from shuyu.schema import api_tokens, users
from shuyu.users import user_from_row

HASHER = PasswordHasher()  # Argon2id
# Verified against when the name is unknown, so both answers take the same time.
_DUMMY_HASH = HASHER.hash("shuyu-no-such-user")
TOKEN_PREFIX = "shuyu_"
MIN_PASSWORD = 12
REFUSED = "the name or password is wrong, or the account is locked or disabled"


def record_refusal(
    platform: Platform, action: LedgerAction, subject: str, details: dict[str, Any]
) -> None:
    """A denial as its own ledger entry: it survives whatever the request does next."""
    with platform.store.transaction() as conn:
        ledger.append(conn, platform.actor, action, subject, details)


def set_password(platform: Platform, name: str, password: str) -> dict[str, Any]:
    check_can_manage_identities(platform.user)
    if len(password) < MIN_PASSWORD:
        raise ValidationError(
            f"a password needs at least {MIN_PASSWORD} characters",
            field="password",
            fix="choose a longer pass phrase",
        )
    hashed = HASHER.hash(password)
    with platform.store.transaction() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            raise NotFound(f"no user {name}", fix="see `shuyu user list`")
        conn.execute(
            update(users)
            .where(users.c.name == name)
            .values(
                password_hash=hashed,
                failed_logins=0,
                locked_until=None,
                session_epoch=row.session_epoch + 1,  # sessions from the old password end
            )
        )
        ledger.append(conn, platform.actor, LedgerAction.USER_PASSWORD_SET, f"user:{name}", {})
    return {"name": name, "password_set": True}


def sign_in(platform: Platform, name: str, password: str, origin: str) -> tuple[User, int]:
    """The user and their session epoch, or Unauthenticated (recorded, counted, maybe locked)."""
    settings = platform.settings
    now = utcnow()
    with platform.store.transaction() as conn:
        row = conn.execute(select(users).where(users.c.name == name).with_for_update()).first()
        why = None
        if row is None:
            _verify(_DUMMY_HASH, password)
            why = "unknown name"
        elif row.disabled_at is not None:
            why = "disabled"
        elif row.locked_until is not None and as_utc(row.locked_until) > now:
            why = "locked"
        elif not row.password_hash or not _verify(row.password_hash, password):
            why = "wrong password"
            failed = (row.failed_logins or 0) + 1
            values: dict[str, Any] = {"failed_logins": failed}
            if failed >= settings.login_attempts:
                values["locked_until"] = now + timedelta(minutes=settings.lockout_minutes)
                values["failed_logins"] = 0
                why = "wrong password; account locked"
            conn.execute(update(users).where(users.c.name == name).values(**values))
        if why is not None:
            ledger.append(
                conn,
                "anonymous",
                LedgerAction.AUTH_REFUSED,
                f"user:{name}",
                {"why": why, "from": origin},
            )
        else:
            assert row is not None
            if row.failed_logins or row.locked_until:
                conn.execute(
                    update(users)
                    .where(users.c.name == name)
                    .values(failed_logins=0, locked_until=None)
                )
            ledger.append(conn, name, LedgerAction.AUTH_SIGNED_IN, f"user:{name}", {"from": origin})
            return user_from_row(conn, row), row.session_epoch
    raise Unauthenticated(REFUSED, fix="check the name and password, or ask an operator")


def _verify(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def session_user(platform: Platform, name: str, epoch: int) -> User | None:
    """The user a session cookie names, if the account is still enabled and the session was
    minted after the last disable or password change."""
    with platform.store.read() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None or row.disabled_at is not None or row.session_epoch != epoch:
            return None
        return user_from_row(conn, row)


def create_token(
    platform: Platform, name: str, label: str, days: int | None = None
) -> dict[str, Any]:
    """A new token for `name`; the secret is in the answer and nowhere else."""
    check_can_manage_identities(platform.user)
    days = days or platform.settings.token_days
    if days < 1 or days > 366:
        raise ValidationError("a token lives 1 to 366 days", field="--days", fix="use --days 90")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = secrets.token_hex(4)
    now = utcnow()
    expires = now + timedelta(days=days)
    with platform.store.transaction() as conn:
        row = conn.execute(select(users).where(users.c.name == name)).first()
        if row is None:
            raise NotFound(f"no user {name}", fix="see `shuyu user list`")
        if row.disabled_at is not None:
            raise ValidationError(f"user {name} is disabled", fix="enable the account first")
        conn.execute(
            insert(api_tokens).values(
                id=token_id,
                user=name,
                hash=_digest(secret),
                label=label,
                created_at=now,
                expires_at=expires,
            )
        )
        ledger.append(
            conn,
            platform.actor,
            LedgerAction.TOKEN_CREATED,
            f"user:{name}",
            {"token": token_id, "label": label, "expires_at": expires.isoformat()},
        )
    return {"id": token_id, "user": name, "token": secret, "expires_at": expires.isoformat()}


def revoke_token(platform: Platform, token_id: str) -> dict[str, Any]:
    check_can_manage_identities(platform.user)
    with platform.store.transaction() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no token {token_id}", fix="see `shuyu token list`")
        conn.execute(
            update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=utcnow())
        )
        ledger.append(
            conn,
            platform.actor,
            LedgerAction.TOKEN_REVOKED,
            f"user:{row.user}",
            {"token": token_id},
        )
    return {"id": token_id, "revoked": True}


def list_tokens(platform: Platform, name: str | None = None) -> list[dict[str, Any]]:
    check_can_manage_identities(platform.user)
    query = select(api_tokens).order_by(api_tokens.c.created_at)
    if name:
        query = query.where(api_tokens.c.user == name)
    with platform.store.read() as conn:
        return [
            {
                "id": r.id,
                "user": r.user,
                "label": r.label,
                "expires_at": as_utc(r.expires_at).isoformat(),
                "revoked": r.revoked_at is not None,
            }
            for r in conn.execute(query)
        ]


def token_user(platform: Platform, secret: str, origin: str) -> User:
    """The user behind a bearer token, or Unauthenticated (recorded)."""
    now = utcnow()
    with platform.store.read() as conn:
        # One statement for the token and its user: this runs on every API request.
        row = conn.execute(
            select(
                api_tokens.c.id.label("token_id"),
                api_tokens.c.user,
                api_tokens.c.revoked_at,
                api_tokens.c.expires_at,
                users,
            )
            .join(users, users.c.name == api_tokens.c.user)
            .where(api_tokens.c.hash == _digest(secret))
        ).first()
        why = None
        if row is None:
            why = "unknown token"
        elif row.revoked_at is not None:
            why = "revoked token"
        elif as_utc(row.expires_at) <= now:
            why = "expired token"
        elif row.disabled_at is not None:
            why = "disabled user"
        else:
            return user_from_row(conn, row)
    record_refusal(
        platform.acting_as("anonymous"),
        LedgerAction.AUTH_REFUSED,
        f"user:{row.user}" if row is not None else "token:unknown",
        {"why": why, "from": origin, "token": row.token_id if row is not None else None},
    )
    raise Unauthenticated(
        "the API token is unknown, expired or revoked, or its user is disabled",
        fix="ask an operator for a new token: shuyu token create NAME",
    )


def _digest(secret: str) -> str:
    return sha256(secret.encode()).hexdigest()
