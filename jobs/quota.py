"""Bounds on what the fixed vocabulary cannot close: success or failure, and time.

Each production run tells its analyst at least one bit (did it fail?), so the number of runs is
capped per analyst and per day, and failed runs are counted per project where reviewers see
them: a pattern of probing (many failures, or failures of one kind) is visible to the people
who approve outputs.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from jobs.states import JobState
from shuyu.canonical import as_utc, utcnow
from shuyu.schema import jobs, users

WINDOW = timedelta(days=1)


class OverQuota(Exception):
    """Raised inside the submission's transaction; the caller records the refusal."""

    def __init__(self, limit: int, next_at: datetime) -> None:
        super().__init__(limit, next_at)
        self.limit = limit
        self.next_at = next_at


def check_runs_left(conn: Connection, submitter: str, limit: int) -> None:
    """Raise OverQuota when `submitter` already queued `limit` production runs in the last day.

    Called in the transaction that inserts the job: SQLite's write lock, and on PostgreSQL the
    lock on the submitter's user row, serialise two submissions of one analyst.
    """
    conn.execute(select(users.c.name).where(users.c.name == submitter).with_for_update())
    since = utcnow() - WINDOW
    recent = [
        as_utc(at)
        for at in conn.execute(
            select(jobs.c.submitted_at)
            .where(jobs.c.submitted_by == submitter, jobs.c.dev == 0, jobs.c.submitted_at > since)
            .order_by(jobs.c.submitted_at)
        ).scalars()
    ]
    if len(recent) >= limit:
        # The run that frees a slot is the one that leaves the window first.
        freed = recent[len(recent) - limit] + WINDOW
        rounded = freed.replace(second=0, microsecond=0) + timedelta(
            minutes=math.ceil((freed.second + freed.microsecond / 1e6) / 60)
        )
        raise OverQuota(limit, rounded)


def failure_counts(conn: Connection, project: str | None = None) -> list[dict[str, Any]]:
    """Failed production runs per project, in total and in the last day, by kind and submitter."""
    query = select(
        jobs.c.project, jobs.c.failure, jobs.c.submitted_by, jobs.c.updated_at, jobs.c.state
    ).where(jobs.c.dev == 0)
    if project:
        query = query.where(jobs.c.project == project)
    since = utcnow() - WINDOW
    per: dict[str, dict[str, Any]] = {}
    for row in conn.execute(query):
        entry = per.setdefault(
            row.project,
            {
                "project": row.project,
                "runs": 0,
                "failed": 0,
                "failed_last_day": 0,
                "by_kind": Counter(),
                "by_submitter": Counter(),
            },
        )
        entry["runs"] += 1
        if row.state != JobState.FAILED.value:
            continue
        entry["failed"] += 1
        entry["failed_last_day"] += as_utc(row.updated_at) > since
        entry["by_kind"][row.failure or "unknown"] += 1
        entry["by_submitter"][row.submitted_by] += 1
    return [
        {**e, "by_kind": dict(e["by_kind"]), "by_submitter": dict(e["by_submitter"])}
        for _, e in sorted(per.items())
    ]
