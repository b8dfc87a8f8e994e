"""Grant service: add (validated against the catalog), list, revoke, and find a project's policy."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update

from catalog.service import DatasetVersion, get_version
from lineage import ledger
from lineage.actions import LedgerAction
from policies.grant import Policy, load_grant, policy_from_record, resolve
from shuyu.canonical import as_utc, utcnow
from shuyu.errors import Conflict, NotFound, PolicyRefused, ValidationError
from shuyu.platform import Platform
from shuyu.schema import grants
from shuyu.tenancy import ensure_project


def add_grant(platform: Platform, path: Path) -> Policy:
    from shuyu.access import enforced
    from shuyu.permissions import check_can_steward_data

    with enforced(platform, "grant.add", "grants"):
        check_can_steward_data(platform.user)
    doc = load_grant(path)
    with platform.store.transaction() as conn:

        def lookup(name: str, version: int | None, file: str, field: str) -> DatasetVersion:
            try:
                return get_version(conn, name, version)
            except NotFound as exc:
                raise ValidationError(exc.message, file=file, field=field, fix=exc.fix) from None

        policy = resolve(doc, path, lookup, date.today(), platform.settings.grant_years)
        ensure_project(conn, platform.actor, policy.project, policy.tenant, {"file": str(path)})
        if conn.execute(select(grants.c.id).where(grants.c.id == policy.id)).first():
            raise Conflict(
                f"grant {policy.id} already exists",
                file=str(path),
                field="id",
                fix="choose a new id",
            )
        active = _active_row(conn, policy.project)
        if active is not None:
            raise Conflict(
                f"project {policy.project} already has active grant {active.id}",
                file=str(path),
                field="project",
                fix=f"revoke it first: shuyu grant revoke {active.id} --reason ...",
            )
        conn.execute(
            insert(grants).values(
                id=policy.id,
                project=policy.project,
                tenant=policy.tenant,
                purpose=policy.purpose,
                valid_from=_start_of(policy.valid_from),
                valid_until=_end_of(policy.valid_until),
                status="active",
                policy=policy.to_record(),
                policy_hash=policy.hash,
                source_file=str(path),
                created_at=utcnow(),
                created_by=platform.actor,
            )
        )
        ledger.append(
            conn,
            platform.actor,
            LedgerAction.GRANT_ADDED,
            f"grant:{policy.id}",
            {
                "project": policy.project,
                "tenant": policy.tenant,
                "purpose": policy.purpose,
                "datasets": sorted(policy.datasets),
                "policy_hash": policy.hash,
                "valid_until": policy.valid_until.isoformat(),
            },
        )
    return policy


def revoke_grant(platform: Platform, grant_id: str, reason: str) -> dict[str, Any]:
    if not reason.strip():
        raise ValidationError(
            "a revocation needs a reason",
            field="--reason",
            fix="say why, e.g. --reason 'audit finding'",
        )
    with platform.store.transaction() as conn:
        row = conn.execute(select(grants).where(grants.c.id == grant_id).with_for_update()).first()
        if row is None:
            raise NotFound(f"no grant {grant_id}", fix="see `shuyu grant list`")
        if row.status != "active":
            raise Conflict(f"grant {grant_id} is already {row.status}")
        now = utcnow()
        conn.execute(
            update(grants)
            .where(grants.c.id == grant_id)
            .values(status="revoked", revoked_at=now, revoked_reason=reason)
        )
        ledger.append(
            conn,
            platform.actor,
            LedgerAction.GRANT_REVOKED,
            f"grant:{grant_id}",
            {"reason": reason},
        )
    return {"id": grant_id, "status": "revoked", "revoked_at": now.isoformat(), "reason": reason}


def list_grants(platform: Platform, project: str | None = None) -> list[dict[str, Any]]:
    """Every grant for platform staff; an analyst sees only the grants of their projects."""
    from shuyu.access import enforced
    from shuyu.permissions import check_can_read_catalog, check_can_read_project, in_project

    with enforced(platform, "grant.list", f"project:{project}" if project else "grants"):
        check_can_read_catalog(platform.user)
        if project:
            check_can_read_project(platform.user, project)
    query = select(grants).order_by(grants.c.created_at)
    if project:
        query = query.where(grants.c.project == project)
    with platform.store.read() as conn:
        return [
            _summary(row) for row in conn.execute(query) if in_project(platform.user, row.project)
        ]


def active_policy(conn: Connection, project: str, at: datetime | None = None) -> tuple[str, Policy]:
    """The project's one active, in-window grant, or an error saying why there is none."""
    row = _active_row(conn, project)
    if row is None:
        raise PolicyRefused(
            f"project {project} has no active grant", fix="ask a data steward for a grant"
        )
    now = at or utcnow()
    if as_utc(row.valid_until) < now:
        raise PolicyRefused(
            f"the grant {row.id} of project {project} expired on {as_utc(row.valid_until).date()}"
        )
    if as_utc(row.valid_from) > now:
        raise PolicyRefused(
            f"the grant {row.id} of project {project} starts on {as_utc(row.valid_from).date()}"
        )
    return row.id, policy_from_record(row.policy)


def _active_row(conn: Connection, project: str) -> Any:
    return conn.execute(
        select(grants).where(grants.c.project == project, grants.c.status == "active")
    ).first()


def _summary(row: Any) -> dict[str, Any]:
    expired = row.status == "active" and as_utc(row.valid_until) < utcnow()
    return {
        "id": row.id,
        "project": row.project,
        "tenant": row.tenant,
        "purpose": row.purpose,
        "status": "expired" if expired else row.status,
        "datasets": sorted(row.policy["datasets"]),
        "valid_from": as_utc(row.valid_from).date().isoformat(),
        "valid_until": as_utc(row.valid_until).date().isoformat(),
        "policy_hash": row.policy_hash,
        "revoked_reason": row.revoked_reason,
    }


def _start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _end_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=UTC)
