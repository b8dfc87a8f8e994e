"""Lineage service: what auditors ask of the ledger."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lineage import ledger
from shuyu.access import enforced
from shuyu.permissions import check_can_read_ledger
from shuyu.platform import Platform


def list_entries(
    platform: Platform,
    subject: str | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    with enforced(platform, "ledger.read", subject or "ledger"):
        check_can_read_ledger(platform.user)
    with platform.store.read() as conn:
        return [
            {**asdict(e), "at": e.at.isoformat()}
            for e in ledger.entries(conn, subject, action, limit)
        ]


def verify_ledger(platform: Platform) -> dict[str, Any]:
    with enforced(platform, "ledger.verify", "ledger"):
        check_can_read_ledger(platform.user)
    with platform.store.read() as conn:
        return asdict(ledger.verify(conn))
