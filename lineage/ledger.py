"""Tamper-evident ledger: a hash chain, appended in the same transaction as the change it records.

Each entry's hash covers its content and the previous entry's hash, so editing or deleting any
past entry breaks every later link; `verify` finds the first broken one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from lineage.actions import LedgerAction
from shuyu.canonical import as_utc, canonical_json, sha256_text, utcnow
from shuyu.schema import ledger, ledger_head
from shuyu.store import GENESIS


@dataclass(frozen=True)
class LedgerEntry:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None
    reason: str


def entry_hash(
    seq: int, at: datetime, actor: str, action: str, subject: str, details: Any, prev: str
) -> str:
    body = {
        "seq": seq,
        "at": as_utc(at).isoformat(),
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev": prev,
    }
    return sha256_text(canonical_json(body))


def append(
    conn: Connection, actor: str, action: LedgerAction, subject: str, details: dict[str, Any]
) -> LedgerEntry:
    """Append one entry; call inside the transaction that makes the change it records.
    `action` must be a `LedgerAction`: a free string is refused, so the set stays closed."""
    action = LedgerAction(action)
    head = conn.execute(
        select(ledger_head.c.seq, ledger_head.c.hash).where(ledger_head.c.id == 1).with_for_update()
    ).one()
    seq = head.seq + 1
    at = utcnow()
    # Round-trip through JSON so the hash covers exactly what the store hands back later.
    details = json.loads(canonical_json(details))
    digest = entry_hash(seq, at, actor, action, subject, details, head.hash)
    conn.execute(
        insert(ledger).values(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            details=details,
            prev_hash=head.hash,
            hash=digest,
        )
    )
    conn.execute(update(ledger_head).where(ledger_head.c.id == 1).values(seq=seq, hash=digest))
    return LedgerEntry(seq, at, actor, action, subject, details, head.hash, digest)


def entries(
    conn: Connection,
    subject: str | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[LedgerEntry]:
    query = select(ledger).order_by(ledger.c.seq)
    if subject:
        query = query.where(ledger.c.subject.like(f"{subject}%"))
    if action:
        query = query.where(ledger.c.action == action)
    if limit:
        query = query.limit(limit)
    return [LedgerEntry(**row._asdict()) for row in conn.execute(query)]


def verify(conn: Connection) -> Verification:
    prev = GENESIS
    count = 0
    for row in conn.execute(select(ledger).order_by(ledger.c.seq)).yield_per(10_000):
        count += 1
        if row.seq != count:
            return Verification(False, count, prev, row.seq, f"entry {count} is missing")
        if row.prev_hash != prev:
            return Verification(False, count, prev, row.seq, "link to the previous entry is broken")
        expected = entry_hash(
            row.seq, row.at, row.actor, row.action, row.subject, row.details, prev
        )
        if expected != row.hash:
            return Verification(
                False, count, prev, row.seq, "entry content does not match its hash"
            )
        prev = row.hash
    head = conn.execute(select(ledger_head).where(ledger_head.c.id == 1)).one()
    if head.seq != count or head.hash != prev:
        total = conn.execute(select(func.count()).select_from(ledger)).scalar_one()
        return Verification(
            False, total, prev, head.seq, "ledger head does not match the last entry"
        )
    return Verification(True, count, prev, None, "chain intact")
