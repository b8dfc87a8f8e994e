"""Every denial is a ledger entry: who, what, which object, written in its own transaction so
that it stays recorded whatever the refused request does next."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from lineage import ledger
from lineage.actions import LedgerAction
from shuyu.errors import PermissionDenied
from shuyu.permissions import Hidden
from shuyu.platform import Platform


@contextmanager
def enforced(platform: Platform, action: str, subject: str) -> Iterator[None]:
    """Run permission checks; a refusal (403, or a 404 that hides another tenant's object) is
    recorded as `access.denied` and raised unchanged."""
    try:
        yield
    except (PermissionDenied, Hidden) as exc:
        with platform.store.transaction() as conn:
            ledger.append(
                conn,
                platform.actor,
                LedgerAction.ACCESS_DENIED,
                subject,
                {"action": action, "role": platform.user.role, "why": exc.message},
            )
        raise
