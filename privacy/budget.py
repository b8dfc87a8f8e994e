"""The privacy budget: ε per (project, dataset), reserved atomically before a query runs, hard cap.

Two tables in the metadata store:
- `dp_budget_accounts`: one row per (project, dataset), the row a reservation locks;
- `dp_budget_spends`: one row per (reservation, dataset) with ε, δ and a status:
  `reserved` (counted against the cap while the query runs), `spent` (results released),
  `released` (the query failed before producing any result; the ε is available again).

`reserve` runs read-check-insert in ONE transaction:
- PostgreSQL: the account rows are created if missing (INSERT ... ON CONFLICT DO NOTHING) and
  locked with SELECT ... FOR UPDATE, in dataset order (so two multi-dataset reservations cannot
  deadlock); a concurrent reservation of the same (project, dataset) waits for the lock, then
  sees the committed spends (READ COMMITTED re-reads after the lock);
- SQLite: the store begins every transaction with BEGIN IMMEDIATE, which takes the database's
  write lock up front, so the whole read-check-insert is serialised with every other writer
  (FOR UPDATE renders as nothing there).
Used ε = reserved + spent. If used + wanted exceeds the cap (beyond a 1e-9 float tolerance)
nothing is recorded except a `dp.budget.refused` ledger entry (in its own transaction) and
PolicyRefused says how much is left. Otherwise the spends and a `dp.budget.reserved` ledger
entry are written in the same transaction.

A reservation whose process dies stays `reserved` and keeps counting against the cap (fail
safe); an operator can release it explicitly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
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
from shuyu.canonical import utcnow
from shuyu.errors import Conflict, NotFound, PolicyRefused, ValidationError
from shuyu.platform import Platform
from shuyu.schema import dp_budget_accounts, dp_budget_spends

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Reservation:
    id: str
    project: str
    job_id: str
    epsilon: dict[str, float]  # dataset -> ε reserved
    delta: float
    platform: Platform = field(repr=False, compare=False)


def _fmt(x: float) -> str:
    return repr(round(float(x), 9))


def _used(conn: Connection, project: str, dataset: str) -> float:
    total = conn.execute(
        select(func.coalesce(func.sum(dp_budget_spends.c.epsilon), 0.0)).where(
            dp_budget_spends.c.project == project,
            dp_budget_spends.c.dataset == dataset,
            dp_budget_spends.c.status.in_(("reserved", "spent")),
        )
    ).scalar_one()
    return float(total)


def _lock_accounts(conn: Connection, project: str, datasets: list[str]) -> None:
    """Create missing account rows, then lock them (in dataset order) for this transaction."""
    now = utcnow()
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        for d in datasets:
            conn.execute(
                pg_insert(dp_budget_accounts)
                .values(project=project, dataset=d, created_at=now)
                .on_conflict_do_nothing()
            )
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        for d in datasets:
            conn.execute(
                sqlite_insert(dp_budget_accounts)
                .values(project=project, dataset=d, created_at=now)
                .on_conflict_do_nothing()
            )
    conn.execute(
        select(dp_budget_accounts.c.dataset)
        .where(dp_budget_accounts.c.project == project, dp_budget_accounts.c.dataset.in_(datasets))
        .order_by(dp_budget_accounts.c.dataset)
        .with_for_update()
    ).all()


def _default_cap(platform: Platform, project: str) -> Callable[[str], float]:
    from policies.service import active_policy

    with platform.store.read() as conn:
        _, policy = active_policy(conn, project)
    return policy.dp.epsilon_for


def reserve(
    platform: Platform,
    project: str,
    dataset_eps: Mapping[str, float],
    job_id: str,
    cap_for: Callable[[str], float] | None = None,
    *,
    delta: float = 0.0,
) -> Reservation:
    """Reserve ε on each dataset before the query runs; PolicyRefused if any cap would be passed.

    `cap_for(dataset)` gives the cap (default: the project's active grant,
    `PrivacyBudget.epsilon_for`). All datasets are reserved together or none is.
    """
    if not dataset_eps:
        raise ValidationError("a reservation needs at least one dataset", field="dp.query")
    for dataset, eps in dataset_eps.items():
        if not eps > 0:
            raise ValidationError(
                f"epsilon for {dataset} must be positive, not {eps!r}", field="dp.epsilon"
            )
    if not 0 <= delta < 1:
        raise ValidationError(f"delta must be in [0, 1), not {delta!r}", field="dp.delta")
    caps_of = cap_for or _default_cap(platform, project)
    caps = {d: float(caps_of(d)) for d in dataset_eps}
    datasets = sorted(dataset_eps)
    reservation_id = uuid.uuid4().hex
    refusal: PolicyRefused | None = None
    refusal_details: dict[str, Any] = {}
    with platform.store.transaction() as conn:
        _lock_accounts(conn, project, datasets)
        used = {d: _used(conn, project, d) for d in datasets}
        for d in datasets:
            need = float(dataset_eps[d])
            left = caps[d] - used[d]
            if need > left + TOLERANCE:
                refusal = PolicyRefused(
                    f"project {project} has ε={_fmt(max(left, 0.0))} left of {_fmt(caps[d])} on "
                    f"dataset {d}; this query needs {_fmt(need)}",
                    field="dp.epsilon",
                    fix="lower epsilon, or ask the data steward for a larger budget in the grant",
                )
                refusal_details = {
                    "job": job_id,
                    "dataset": d,
                    "needed": need,
                    "left": max(left, 0.0),
                    "cap": caps[d],
                }
                break
        if refusal is None:
            now = utcnow()
            for d in datasets:
                conn.execute(
                    insert(dp_budget_spends).values(
                        id=uuid.uuid4().hex,
                        reservation_id=reservation_id,
                        project=project,
                        dataset=d,
                        job_id=job_id,
                        epsilon=float(dataset_eps[d]),
                        delta=float(delta),
                        status="reserved",
                        at=now,
                        updated_at=now,
                        actor=platform.actor,
                    )
                )
            ledger.append(
                conn,
                platform.actor,
                "dp.budget.reserved",
                f"dp-budget:{project}",
                {
                    "reservation": reservation_id,
                    "job": job_id,
                    "epsilon": {d: float(dataset_eps[d]) for d in datasets},
                    "delta": float(delta),
                    "left_after": {d: caps[d] - used[d] - float(dataset_eps[d]) for d in datasets},
                },
            )
    if refusal is not None:
        with platform.store.transaction() as conn:
            ledger.append(
                conn, platform.actor, "dp.budget.refused", f"dp-budget:{project}", refusal_details
            )
        raise refusal
    return Reservation(
        reservation_id,
        project,
        job_id,
        {d: float(dataset_eps[d]) for d in datasets},
        float(delta),
        platform,
    )


def _finish(reservation: Reservation, status: str, reason: str | None) -> None:
    platform = reservation.platform
    action = {"spent": "dp.budget.spent", "released": "dp.budget.released"}[status]
    with platform.store.transaction() as conn:
        _lock_accounts(conn, reservation.project, sorted(reservation.epsilon))
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
            "epsilon": reservation.epsilon,
            "delta": reservation.delta,
        }
        if reason:
            details["reason"] = reason
        ledger.append(conn, platform.actor, action, f"dp-budget:{reservation.project}", details)


def commit(reservation: Reservation) -> None:
    """Mark the reserved ε spent: call once the results have been released (idempotent)."""
    _finish(reservation, "spent", None)


def release(
    reservation: Reservation, reason: str = "the query failed before producing results"
) -> None:
    """Return the reserved ε: only when the query failed before any result was produced."""
    _finish(reservation, "released", reason)


def used(platform: Platform, project: str, dataset: str) -> float:
    """ε reserved or spent so far on (project, dataset)."""
    with platform.store.read() as conn:
        return _used(conn, project, dataset)


def remaining(
    platform: Platform,
    project: str,
    dataset: str,
    cap: float | Callable[[str], float] | None = None,
) -> float:
    """ε still available on (project, dataset): cap (default: the active grant's) minus used."""
    if cap is None:
        cap = _default_cap(platform, project)
    cap_value = float(cap(dataset) if callable(cap) else cap)
    return max(cap_value - used(platform, project, dataset), 0.0)


def spends(platform: Platform, project: str, dataset: str | None = None) -> list[dict[str, Any]]:
    """The budget history of a project (optionally one dataset), oldest first."""
    query = select(dp_budget_spends).where(dp_budget_spends.c.project == project)
    if dataset:
        query = query.where(dp_budget_spends.c.dataset == dataset)
    with platform.store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query.order_by(dp_budget_spends.c.at))]
