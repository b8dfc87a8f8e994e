"""The privacy budget: (ε, δ) per (project, privacy-unit account), reserved before a query reads data.

An account is one per project and kind of person key (privacy.accounts): every dataset keyed by
that kind shares it, so the caps are what ALL releases together may cost one person. Composition
is basic (sequential): ε and δ of the reservations add up. Two tables in the metadata store:
- `dp_budget_accounts`: one row per (project, account), the row a reservation locks (the
  `dataset` column holds the account name, e.g. `unit:cn_resident_id`);
- `dp_budget_spends`: one row per reservation with ε, δ and a status: `reserved` (counted
  against the caps while the query runs), `spent` (the query read data), `released` (the query
  never started: only an operator, or a failure before any data was read, returns ε).

`reserve` runs read-check-insert in ONE transaction:
- PostgreSQL: the account row is created if missing (INSERT ... ON CONFLICT DO NOTHING) and
  locked with SELECT ... FOR UPDATE; a concurrent reservation of the same account waits for the
  lock, then sees the committed spends (READ COMMITTED re-reads after the lock);
- SQLite: the store begins every transaction with BEGIN IMMEDIATE, which takes the database's
  write lock up front, so the whole read-check-insert is serialised with every other writer.
Used = reserved + spent, for ε and for δ. If either would pass its cap (beyond a 1e-9 / 1e-15
float tolerance) nothing is recorded except a `dp.budget.refused` ledger entry (in its own
transaction) and PolicyRefused says how much is left. Otherwise the spend and a
`dp.budget.reserved` ledger entry are written in the same transaction.

Ledger entries name the analyst who submitted the job as the actor and the platform process that
ran it (the worker) as `agent` in the details.

A reservation whose process dies stays `reserved` and keeps counting against the cap (fail
safe); an operator can release it explicitly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Connection,
    func,
    insert,
    select,
    update,
)

from lineage import ledger
from lineage.actions import LedgerAction
from privacy.accounts import resolve_account
from shuyu.canonical import utcnow
from shuyu.errors import Conflict, NotFound, PolicyRefused, ValidationError
from shuyu.platform import Platform
from shuyu.schema import dp_budget_accounts, dp_budget_spends

TOLERANCE = 1e-9
DELTA_TOLERANCE = 1e-15


@dataclass(frozen=True)
class Caps:
    """What one account may spend in total: the grant's ε and δ per person."""

    epsilon: float
    delta: float


@dataclass(frozen=True)
class Reservation:
    id: str
    project: str
    account: str
    job_id: str
    epsilon: float
    delta: float
    datasets: tuple[str, ...]
    actor: str
    platform: Platform = field(repr=False, compare=False)


def _fmt(x: float) -> str:
    return repr(round(float(x), 9))


def _used(conn: Connection, project: str, account: str) -> tuple[float, float]:
    """(ε, δ) reserved or spent on one account."""
    eps, delta = conn.execute(
        select(
            func.coalesce(func.sum(dp_budget_spends.c.epsilon), 0.0),
            func.coalesce(func.sum(dp_budget_spends.c.delta), 0.0),
        ).where(
            dp_budget_spends.c.project == project,
            dp_budget_spends.c.dataset == account,
            dp_budget_spends.c.status.in_(("reserved", "spent")),
        )
    ).one()
    return float(eps), float(delta)


def _lock_account(conn: Connection, project: str, account: str) -> None:
    """Create the account row if missing, then lock it for this transaction."""
    now = utcnow()
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(
            pg_insert(dp_budget_accounts)
            .values(project=project, dataset=account, created_at=now)
            .on_conflict_do_nothing()
        )
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(
            sqlite_insert(dp_budget_accounts)
            .values(project=project, dataset=account, created_at=now)
            .on_conflict_do_nothing()
        )
    conn.execute(
        select(dp_budget_accounts.c.dataset)
        .where(dp_budget_accounts.c.project == project, dp_budget_accounts.c.dataset == account)
        .with_for_update()
    ).all()


def grant_caps(platform: Platform, project: str, datasets: tuple[str, ...] = ()) -> Caps:
    """The caps of the project's active grant for a query reading `datasets`."""
    from policies.service import active_policy

    with platform.store.read() as conn:
        _, policy = active_policy(conn, project)
    return Caps(policy.dp.epsilon_cap(datasets), policy.dp.delta)


def reserve(
    platform: Platform,
    project: str,
    account: str,
    epsilon: float,
    job_id: str,
    *,
    delta: float = 0.0,
    caps: Caps | None = None,
    datasets: tuple[str, ...] = (),
    actor: str | None = None,
) -> Reservation:
    """Reserve (ε, δ) on the account before the query reads data; PolicyRefused past a cap.

    `caps` default to the project's active grant; `actor` is who asked (the analyst who
    submitted the job; default the platform's own actor), recorded with the platform as agent.
    """
    if not epsilon > 0:
        raise ValidationError(f"epsilon must be positive, not {epsilon!r}", field="dp.epsilon")
    if not 0 <= delta < 1:
        raise ValidationError(f"delta must be in [0, 1), not {delta!r}", field="dp.delta")
    caps = caps or grant_caps(platform, project, datasets)
    who = actor or platform.actor
    reservation_id = uuid.uuid4().hex
    refusal: PolicyRefused | None = None
    refusal_details: dict[str, Any] = {}
    with platform.store.transaction() as conn:
        _lock_account(conn, project, account)
        used_eps, used_delta = _used(conn, project, account)
        left_eps, left_delta = caps.epsilon - used_eps, caps.delta - used_delta
        if epsilon > left_eps + TOLERANCE:
            refusal = PolicyRefused(
                f"project {project} has ε={_fmt(max(left_eps, 0.0))} left of {_fmt(caps.epsilon)} "
                f"per person ({account}); this query needs {_fmt(epsilon)}",
                field="dp.epsilon",
                fix="lower epsilon, or ask the data steward for a larger budget in the grant",
            )
        elif delta > left_delta + DELTA_TOLERANCE:
            refusal = PolicyRefused(
                f"project {project} has δ={max(left_delta, 0.0):.3g} left of {caps.delta:.3g} per "
                f"person ({account}); this query needs δ={delta:.3g}",
                field="dp.delta",
                fix="group by columns with public categories (no δ), or ask the data steward "
                "for a larger δ in the grant",
            )
        if refusal is not None:
            refusal_details = {
                "job": job_id,
                "account": account,
                "datasets": list(datasets),
                "needed": {"epsilon": epsilon, "delta": delta},
                "left": {"epsilon": max(left_eps, 0.0), "delta": max(left_delta, 0.0)},
                "cap": {"epsilon": caps.epsilon, "delta": caps.delta},
                "agent": platform.actor,
            }
        else:
            now = utcnow()
            conn.execute(
                insert(dp_budget_spends).values(
                    id=uuid.uuid4().hex,
                    reservation_id=reservation_id,
                    project=project,
                    dataset=account,
                    job_id=job_id,
                    epsilon=float(epsilon),
                    delta=float(delta),
                    status="reserved",
                    at=now,
                    updated_at=now,
                    actor=who,
                )
            )
            ledger.append(
                conn,
                who,
                LedgerAction.DP_BUDGET_RESERVED,
                f"dp-budget:{project}",
                {
                    "reservation": reservation_id,
                    "job": job_id,
                    "account": account,
                    "datasets": list(datasets),
                    "epsilon": float(epsilon),
                    "delta": float(delta),
                    "left_after": {
                        "epsilon": left_eps - float(epsilon),
                        "delta": left_delta - float(delta),
                    },
                    "agent": platform.actor,
                },
            )
    if refusal is not None:
        with platform.store.transaction() as conn:
            ledger.append(
                conn, who, LedgerAction.DP_BUDGET_REFUSED, f"dp-budget:{project}", refusal_details
            )
        raise refusal
    return Reservation(
        reservation_id,
        project,
        account,
        job_id,
        float(epsilon),
        float(delta),
        tuple(datasets),
        who,
        platform,
    )


def _finish(reservation: Reservation, status: str, reason: str | None) -> None:
    platform = reservation.platform
    action = {"spent": LedgerAction.DP_BUDGET_SPENT, "released": LedgerAction.DP_BUDGET_RELEASED}[
        status
    ]
    with platform.store.transaction() as conn:
        _lock_account(conn, reservation.project, reservation.account)
        rows = conn.execute(
            select(dp_budget_spends.c.status)
            .where(dp_budget_spends.c.reservation_id == reservation.id)
            .with_for_update()
        ).all()
        if not rows:
            raise NotFound(f"no budget reservation {reservation.id}")
        states = {r.status for r in rows}
        if states == {status}:
            return  # idempotent
        if states != {"reserved"}:
            raise Conflict(
                f"budget reservation {reservation.id} is already {', '.join(sorted(states))}; "
                f"it cannot become {status}"
            )
        conn.execute(
            update(dp_budget_spends)
            .where(dp_budget_spends.c.reservation_id == reservation.id)
            .values(status=status, updated_at=utcnow(), reason=reason)
        )
        details: dict[str, Any] = {
            "reservation": reservation.id,
            "job": reservation.job_id,
            "account": reservation.account,
            "datasets": list(reservation.datasets),
            "epsilon": reservation.epsilon,
            "delta": reservation.delta,
            "agent": platform.actor,
        }
        if reason:
            details["reason"] = reason
        ledger.append(conn, reservation.actor, action, f"dp-budget:{reservation.project}", details)


def commit(reservation: Reservation, reason: str | None = None) -> None:
    """Mark the reserved (ε, δ) spent: once the query has read data, whatever happens next."""
    _finish(reservation, "spent", reason)


def release(
    reservation: Reservation, reason: str = "the query was not run: no data was read"
) -> None:
    """Return the reserved (ε, δ): only when the query never read any data."""
    _finish(reservation, "released", reason)


def used(platform: Platform, project: str, account: str) -> float:
    """ε reserved or spent so far on an account (a dataset name maps to its account)."""
    return used_both(platform, project, account)[0]


def used_both(platform: Platform, project: str, account: str) -> tuple[float, float]:
    """(ε, δ) reserved or spent so far on an account (a dataset name maps to its account)."""
    name = resolve_account(platform, project, account)
    with platform.store.read() as conn:
        return _used(conn, project, name)


def remaining(
    platform: Platform,
    project: str,
    account: str,
    cap: float | Callable[[str], float] | None = None,
) -> float:
    """ε still available on an account (or a dataset's account): cap minus used.

    The cap defaults to the active grant's per-person ε (lowered by `per_dataset` when a dataset
    is named).
    """
    if cap is None:
        datasets = () if account.startswith("unit:") else (account,)
        cap_value = grant_caps(platform, project, datasets).epsilon
    else:
        cap_value = float(cap(account) if callable(cap) else cap)
    return max(cap_value - used(platform, project, account), 0.0)


def spends(platform: Platform, project: str, account: str | None = None) -> list[dict[str, Any]]:
    """The budget history of a project (optionally one account), oldest first."""
    query = select(dp_budget_spends).where(dp_budget_spends.c.project == project)
    if account:
        query = query.where(
            dp_budget_spends.c.dataset == resolve_account(platform, project, account)
        )
    with platform.store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query.order_by(dp_budget_spends.c.at))]
