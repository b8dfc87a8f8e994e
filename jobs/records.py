"""Job rows in the store, and `transition`: the one function that changes a job's state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from jobs.states import FailureKind, JobState, can_transition
from lineage import ledger
from lineage.actions import job_transition
from shuyu.canonical import as_utc, utcnow
from shuyu.errors import Conflict, NotFound
from shuyu.schema import job_events, job_outputs, jobs


@dataclass(frozen=True)
class Job:
    id: str
    project: str
    name: str
    dev: bool
    spec: dict[str, Any]
    spec_hash: str
    state: JobState
    failure: str | None
    reason: str | None
    backend: str
    workspace_id: str | None
    grant_id: str | None
    submitted_by: str
    submitted_at: datetime
    updated_at: datetime
    worker: str | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    tenant: str | None = None  # the project's tenant at submission (tenant isolation, review)


def load(conn: Connection, job_id: str, lock: bool = False) -> Job:
    query = select(jobs).where(jobs.c.id == job_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFound(f"no job {job_id}", fix="see `shuyu job list`")
    m = row._mapping
    return Job(
        **{
            **m,
            "state": JobState(m["state"]),
            "dev": bool(m["dev"]),
            "cancel_requested": bool(m["cancel_requested"]),
            "submitted_at": as_utc(m["submitted_at"]),
            "updated_at": as_utc(m["updated_at"]),
            "heartbeat_at": as_utc(m["heartbeat_at"]) if m["heartbeat_at"] else None,
        }
    )


def transition(
    conn: Connection,
    job_id: str,
    new: JobState,
    reason: str,
    actor: str,
    failure: FailureKind | None = None,
    **fields: Any,
) -> Job:
    """Move a job to `new`, if allowed from its current state, recording why (event + ledger)."""
    job = load(conn, job_id, lock=True)
    if not can_transition(job.state, new):
        raise Conflict(f"job {job_id} is {job.state.value}; it cannot become {new.value}")
    now = utcnow()
    values: dict[str, Any] = {"state": new.value, "updated_at": now, "reason": reason, **fields}
    if failure is not None:
        values["failure"] = failure.value
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
    conn.execute(
        insert(job_events).values(
            job_id=job_id, at=now, from_state=job.state.value, to_state=new.value, reason=reason
        )
    )
    ledger.append(
        conn,
        actor,
        job_transition(new),
        f"job:{job_id}",
        {"from": job.state.value, "reason": reason, "failure": failure.value if failure else None},
    )
    return load(conn, job_id)


def events(conn: Connection, job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(job_events).where(job_events.c.job_id == job_id).order_by(job_events.c.id)
    )
    return [
        {"at": as_utc(r.at).isoformat(), "from": r.from_state, "to": r.to_state, "reason": r.reason}
        for r in rows
    ]


def outputs(conn: Connection, job_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(job_outputs).where(job_outputs.c.job_id == job_id).order_by(job_outputs.c.id)
    )
    return [dict(r._mapping) for r in rows]
