"""Accounts: who a person is on the platform, where they belong and what they have signed.

Analysts belong to one tenant (an operator company); stewards, reviewers, auditors and
operators belong to the platform (no tenant). The real-name record keeps the resident ID only
as an HMAC under a key derived from the platform's master key, so the store never holds it in
clear and the same ID always gives the same record (duplicates are found without decrypting).
Changes are made from the host console; each is a ledger entry in the same transaction.
"""

from __future__ import annotations

import hmac
from datetime import UTC, date, datetime, time
from hashlib import sha256
from typing import Any

from sqlalchemy import Connection, insert, select, update

from lineage import ledger
from lineage.actions import LedgerAction
from shuyu.canonical import as_utc, utcnow
from shuyu.errors import Conflict, NotFound, ValidationError
from shuyu.permissions import (
    PLATFORM_ROLES,
    ROLES,
    TENANT_ROLES,
    Role,
    User,
    check_can_manage_identities,
)
from shuyu.platform import Platform
from shuyu.schema import api_tokens, memberships, tenants, users

REALNAME_PURPOSE = "realname"


def _role(role: str) -> Role:
    if role not in ROLES:
        raise ValidationError(
            f"unknown role {role!r}", field="--role", fix=f"use one of: {', '.join(ROLES)}"
        )
    return Role(role)


def _check_tenant(conn: Connection, role: Role, tenant: str | None) -> None:
    if role in TENANT_ROLES and not tenant:
        raise ValidationError(
            f"an {role.value} belongs to a tenant",
            field="--tenant",
            fix="name the operator company: --tenant NAME (see `shuyu tenant list`)",
        )
    if role in PLATFORM_ROLES and tenant:
        raise ValidationError(
            f"a {role.value} belongs to the platform, not to a tenant",
            field="--tenant",
            fix="leave --tenant out for stewards, reviewers, auditors and operators",
        )
    if (
        tenant
        and conn.execute(select(tenants.c.name).where(tenants.c.name == tenant)).first() is None
    ):
        raise ValidationError(
            f"no tenant {tenant}", field="--tenant", fix="register it: shuyu tenant add NAME"
        )


def add_user(
    platform: Platform,
    name: str,
    role: str,
    *,
    tenant: str | None = None,
    display_name: str | None = None,
    organisation: str | None = None,
) -> dict[str, Any]:
    """Register a person (or change their role and tenant): a change of role is a ledger entry."""
    check_can_manage_identities(platform.user)
    chosen = _role(role)
    with platform.store.transaction() as conn:
        _check_tenant(conn, chosen, tenant)
        existing = conn.execute(select(users).where(users.c.name == name)).first()
        values = {
            "role": chosen.value,
            "tenant": tenant,
            "display_name": display_name or (existing.display_name if existing else None) or name,
            "organisation": organisation or (existing.organisation if existing else None) or tenant,
        }
        if existing is None:
            conn.execute(
                insert(users).values(
                    name=name,
                    created_at=utcnow(),
                    created_by=platform.actor,
                    failed_logins=0,
                    session_epoch=0,
                    **values,
                )
            )
        else:
            conn.execute(update(users).where(users.c.name == name).values(**values))
        ledger.append(
            conn,
            platform.actor,
            LedgerAction.USER_ROLE_SET,
            f"user:{name}",
            {**values, "previous": existing.role if existing else None},
        )
    return {"name": name, **values, "previous": existing.role if existing else None}


def set_role(platform: Platform, name: str, role: str, tenant: str | None = None) -> dict[str, Any]:
    return add_user(platform, name, role, tenant=tenant)


def _existing(conn: Connection, name: str) -> Any:
    row = conn.execute(select(users).where(users.c.name == name)).first()
    if row is None:
        raise NotFound(f"no user {name}", fix="see `shuyu user list`")
    return row


def disable(platform: Platform, name: str, reason: str) -> dict[str, Any]:
    """Ends every session (the epoch moves) and revokes every token, in one transaction."""
    check_can_manage_identities(platform.user)
    now = utcnow()
    with platform.store.transaction() as conn:
        row = _existing(conn, name)
        conn.execute(
            update(users)
            .where(users.c.name == name)
            .values(disabled_at=now, session_epoch=row.session_epoch + 1)
        )
        revoked = conn.execute(
            update(api_tokens)
            .where(api_tokens.c.user == name, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount
        ledger.append(
            conn,
            platform.actor,
            LedgerAction.USER_DISABLED,
            f"user:{name}",
            {"reason": reason, "tokens": revoked},
        )
    return {"name": name, "disabled_at": now.isoformat(), "tokens_revoked": revoked}


def enable(platform: Platform, name: str) -> dict[str, Any]:
    check_can_manage_identities(platform.user)
    with platform.store.transaction() as conn:
        _existing(conn, name)
        conn.execute(
            update(users)
            .where(users.c.name == name)
            .values(disabled_at=None, failed_logins=0, locked_until=None)
        )
        ledger.append(conn, platform.actor, LedgerAction.USER_ENABLED, f"user:{name}", {})
    return {"name": name, "enabled": True}


def realname_hmac(platform: Platform, resident_id: str) -> str:
    return hmac.new(
        platform.project_key("platform", REALNAME_PURPOSE),
        resident_id.strip().upper().encode(),
        sha256,
    ).hexdigest()


def record_realname(platform: Platform, name: str, resident_id: str) -> dict[str, Any]:
    """实名认证: the ID is checked (GB 11643) and kept only as a keyed HMAC; verified now."""
    from stdnum.cn import ric

    check_can_manage_identities(platform.user)
    if not ric.is_valid(resident_id.strip()):
        raise ValidationError(
            "the resident ID number is not valid (GB 11643 check character, birth date)",
            field="--resident-id",
            fix="type the 18-character number as printed on the ID card",
        )
    digest = realname_hmac(platform, resident_id)
    now = utcnow()
    with platform.store.transaction() as conn:
        _existing(conn, name)
        other = conn.execute(
            select(users.c.name).where(users.c.realname_hmac == digest, users.c.name != name)
        ).first()
        if other is not None:
            raise Conflict(
                "this resident ID is already recorded for another account",
                field="--resident-id",
                fix="one person, one account: disable the other account first",
            )
        conn.execute(
            update(users)
            .where(users.c.name == name)
            .values(realname_hmac=digest, realname_verified_at=now)
        )
        ledger.append(conn, platform.actor, LedgerAction.USER_REALNAME_VERIFIED, f"user:{name}", {})
    return {"name": name, "realname_verified_at": now.isoformat()}


def record_nda(platform: Platform, name: str, signed_on: date) -> dict[str, Any]:
    """保密协议: without it an analyst cannot submit jobs."""
    check_can_manage_identities(platform.user)
    at = datetime.combine(signed_on, time(), tzinfo=UTC)
    with platform.store.transaction() as conn:
        _existing(conn, name)
        conn.execute(update(users).where(users.c.name == name).values(nda_signed_on=at))
        ledger.append(
            conn,
            platform.actor,
            LedgerAction.USER_NDA_RECORDED,
            f"user:{name}",
            {"signed_on": str(signed_on)},
        )
    return {"name": name, "nda_signed_on": str(signed_on)}


def user_from_row(conn: Connection, row: Any) -> User:
    """The acting user as permissions see it; a disabled account has no role at all."""
    if row is None:
        raise ValueError("no row")
    if row.disabled_at is not None:
        return User(row.name, None)
    projects = frozenset(
        r.project
        for r in conn.execute(select(memberships.c.project).where(memberships.c.user == row.name))
    )
    return User(
        row.name,
        row.role,
        tenant=row.tenant,
        organisation=row.organisation,
        projects=projects,
        nda_signed=row.nda_signed_on is not None,
    )


def lookup_conn(conn: Connection, name: str) -> User:
    row = conn.execute(select(users).where(users.c.name == name)).first()
    return User(name, None) if row is None else user_from_row(conn, row)


def lookup(platform: Platform, name: str) -> User:
    with platform.store.read() as conn:
        return lookup_conn(conn, name)


def list_users(platform: Platform) -> list[dict[str, Any]]:
    with platform.store.read() as conn:
        return [
            {
                "name": r.name,
                "display_name": r.display_name,
                "role": r.role,
                "tenant": r.tenant,
                "organisation": r.organisation,
                "realname_verified": r.realname_verified_at is not None,
                "nda_signed_on": as_utc(r.nda_signed_on).date().isoformat()
                if r.nda_signed_on
                else None,
                "disabled": r.disabled_at is not None,
                "created_by": r.created_by,
            }
            for r in conn.execute(select(users).order_by(users.c.name))
        ]


def whoami(platform: Platform) -> dict[str, Any]:
    """What the signed-in user may know about their own account (never the HMAC or hash)."""
    user = platform.user
    with platform.store.read() as conn:
        row = conn.execute(select(users).where(users.c.name == user.name)).first()
    if row is None:
        return {"name": user.name, "role": user.role, "console": user.console}
    return {
        "name": row.name,
        "display_name": row.display_name,
        "role": row.role,
        "tenant": row.tenant,
        "organisation": row.organisation,
        "projects": sorted(user.projects),
        "realname_verified": row.realname_verified_at is not None,
        "realname_verified_at": as_utc(row.realname_verified_at).date().isoformat()
        if row.realname_verified_at
        else None,
        "nda_signed_on": as_utc(row.nda_signed_on).date().isoformat()
        if row.nda_signed_on
        else None,
    }
