"""Registered users and their roles (the identity itself comes from the deployment's proxy)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from lineage import ledger
from shuyu.canonical import utcnow
from shuyu.errors import ValidationError
from shuyu.permissions import ROLES, User
from shuyu.platform import Platform
from shuyu.schema import users


def set_role(platform: Platform, name: str, role: str) -> dict[str, Any]:
    if role not in ROLES:
        raise ValidationError(
            f"unknown role {role!r}", field="--role", fix=f"use one of: {', '.join(ROLES)}"
        )
    with platform.store.transaction() as conn:
        existing = conn.execute(select(users.c.role).where(users.c.name == name)).scalar()
        if existing is None:
            conn.execute(
                insert(users).values(
                    name=name, role=role, created_at=utcnow(), created_by=platform.actor
                )
            )
        else:
            conn.execute(update(users).where(users.c.name == name).values(role=role))
        ledger.append(
            conn,
            platform.actor,
            "user.role_set",
            f"user:{name}",
            {"role": role, "previous": existing},
        )
    return {"name": name, "role": role, "previous": existing}


def lookup(platform: Platform, name: str) -> User:
    with platform.store.read() as conn:
        return User(name, conn.execute(select(users.c.role).where(users.c.name == name)).scalar())


def list_users(platform: Platform) -> list[dict[str, Any]]:
    with platform.store.read() as conn:
        return [
            {"name": r.name, "role": r.role, "created_by": r.created_by}
            for r in conn.execute(select(users).order_by(users.c.name))
        ]
