"""Tenants own projects; analysts are members of projects of their own tenant.

A tenant is an operator company (运营单位). A project belongs to one tenant for good; a grant
names both and is refused when they disagree. Membership is what an analyst's view is cut to:
jobs, check summaries, budgets and workspaces of other projects do not exist for them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from lineage import ledger
from lineage.actions import LedgerAction
from shuyu.canonical import utcnow
from shuyu.errors import Conflict, NotFound, ValidationError
from shuyu.permissions import Role, check_can_manage_identities
from shuyu.platform import Platform
from shuyu.schema import memberships, projects, tenants, users


def add_tenant(platform: Platform, name: str, title: str | None = None) -> dict[str, Any]:
    check_can_manage_identities(platform.user)
    if not name.strip():
        raise ValidationError(
            "a tenant needs a name", field="NAME", fix="name the operator company"
        )
    with platform.store.transaction() as conn:
        if conn.execute(select(tenants.c.name).where(tenants.c.name == name)).first():
            raise Conflict(f"tenant {name} already exists", field="NAME")
        conn.execute(
            insert(tenants).values(
                name=name, title=title or name, created_at=utcnow(), created_by=platform.actor
            )
        )
        ledger.append(
            conn,
            platform.actor,
            LedgerAction.TENANT_ADDED,
            f"tenant:{name}",
            {"title": title or name},
        )
    return {"name": name, "title": title or name}


def ensure_project(
    conn: Connection, actor: str, project: str, tenant: str, where: dict[str, str]
) -> None:
    """The project exists under `tenant` (created if new); another tenant's project is refused.
    `where` names the file and field for the error."""
    if conn.execute(select(tenants.c.name).where(tenants.c.name == tenant)).first() is None:
        raise ValidationError(
            f"no tenant {tenant}",
            field=where.get("tenant_field", "tenant"),
            file=where.get("file"),
            fix="register the operator company first: shuyu tenant add NAME",
        )
    owner = conn.execute(select(projects.c.tenant).where(projects.c.name == project)).scalar()
    if owner is None:
        conn.execute(
            insert(projects).values(
                name=project, tenant=tenant, created_at=utcnow(), created_by=actor
            )
        )
        ledger.append(
            conn, actor, LedgerAction.PROJECT_ADDED, f"project:{project}", {"tenant": tenant}
        )
    elif owner != tenant:
        raise ValidationError(
            f"project {project} belongs to another tenant",
            field=where.get("project_field", "project"),
            file=where.get("file"),
            fix="a project stays with its tenant: choose another project name",
        )


def add_project(platform: Platform, name: str, tenant: str) -> dict[str, Any]:
    check_can_manage_identities(platform.user)
    with platform.store.transaction() as conn:
        if conn.execute(select(projects.c.name).where(projects.c.name == name)).first():
            raise Conflict(f"project {name} already exists", field="NAME")
        ensure_project(conn, platform.actor, name, tenant, {"tenant_field": "--tenant"})
    return {"name": name, "tenant": tenant}


def add_member(platform: Platform, project: str, user: str) -> dict[str, Any]:
    """Only an analyst of the project's own tenant can become a member."""
    check_can_manage_identities(platform.user)
    with platform.store.transaction() as conn:
        owner = conn.execute(select(projects.c.tenant).where(projects.c.name == project)).scalar()
        if owner is None:
            raise NotFound(f"no project {project}", fix="see `shuyu project list`")
        row = conn.execute(select(users).where(users.c.name == user)).first()
        if row is None:
            raise NotFound(f"no user {user}", fix="see `shuyu user list`")
        if row.role != Role.ANALYST.value or row.tenant != owner:
            raise ValidationError(
                f"{user} is not an analyst of tenant {owner}",
                field="USER",
                fix="project members are analysts of the tenant that owns the project",
            )
        exists = conn.execute(
            select(memberships.c.user).where(
                memberships.c.user == user, memberships.c.project == project
            )
        ).first()
        if exists is None:
            conn.execute(
                insert(memberships).values(
                    user=user, project=project, added_at=utcnow(), added_by=platform.actor
                )
            )
            ledger.append(
                conn,
                platform.actor,
                LedgerAction.PROJECT_MEMBER_ADDED,
                f"project:{project}",
                {"user": user},
            )
    return {"project": project, "user": user}


def remove_member(platform: Platform, project: str, user: str) -> dict[str, Any]:
    check_can_manage_identities(platform.user)
    with platform.store.transaction() as conn:
        gone = conn.execute(
            delete(memberships).where(memberships.c.user == user, memberships.c.project == project)
        ).rowcount
        if not gone:
            raise NotFound(f"{user} is not a member of {project}")
        ledger.append(
            conn,
            platform.actor,
            LedgerAction.PROJECT_MEMBER_REMOVED,
            f"project:{project}",
            {"user": user},
        )
    return {"project": project, "user": user, "removed": True}


def list_tenants(platform: Platform) -> list[dict[str, Any]]:
    with platform.store.read() as conn:
        return [
            {"name": r.name, "title": r.title}
            for r in conn.execute(select(tenants).order_by(tenants.c.name))
        ]


def list_projects(platform: Platform) -> list[dict[str, Any]]:
    """Every project for platform staff; an analyst's own projects only."""
    from shuyu.permissions import in_project

    user = platform.user
    with platform.store.read() as conn:
        members: dict[str, list[str]] = {}
        for m in conn.execute(select(memberships).order_by(memberships.c.user)):
            members.setdefault(m.project, []).append(m.user)
        return [
            {"name": r.name, "tenant": r.tenant, "members": members.get(r.name, [])}
            for r in conn.execute(select(projects).order_by(projects.c.name))
            if in_project(user, r.name)
        ]


def project_tenant(conn: Connection, project: str) -> str | None:
    return conn.execute(select(projects.c.tenant).where(projects.c.name == project)).scalar()
