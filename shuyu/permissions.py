"""Who may do what: pure functions in pairs (`can_x` for templates, `check_can_x` raises).

"Who may act" lives here; "what the current state allows" lives with each state machine.
Deny by default: a name that is not registered has no role and may do nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from shuyu.errors import PermissionDenied

ROLES = ("steward", "analyst", "reviewer", "auditor", "operator")


@dataclass(frozen=True)
class User:
    name: str
    role: str | None  # None: not registered


def _allowed(user: User, *roles: str) -> bool:
    return user.role is not None and user.role in roles


def can_read_catalog(user: User) -> bool:
    return _allowed(user, *ROLES)


def can_submit_jobs(user: User) -> bool:
    return _allowed(user, "analyst")


def can_read_jobs(user: User) -> bool:
    return _allowed(user, *ROLES)


def can_read_job_details(user: User) -> bool:
    """Exit statuses, detailed reasons, undeclared files, sizes, failure counts: everything a
    production job could encode data in. Reviewers and auditors judge it; operators run it."""
    return _allowed(user, "reviewer", "auditor", "operator")


def can_read_checks(user: User) -> bool:
    """Check reports quote cell values of production outputs: reviewers and auditors only."""
    return _allowed(user, "reviewer", "auditor")


def can_read_ledger(user: User) -> bool:
    return _allowed(user, "auditor", "steward", "operator")


def _check(allowed: bool, user: User, what: str) -> None:
    if not allowed:
        who = f"{user.name} ({user.role})" if user.role else f"{user.name} (not a registered user)"
        raise PermissionDenied(
            f"{who} may not {what}", fix="ask a platform operator for the right role"
        )


def check_can_read_catalog(user: User) -> None:
    _check(can_read_catalog(user), user, "read the catalog")


def check_can_submit_jobs(user: User) -> None:
    _check(can_submit_jobs(user), user, "submit or cancel jobs")


def check_can_read_jobs(user: User) -> None:
    _check(can_read_jobs(user), user, "read job status")


def check_can_read_job_details(user: User) -> None:
    _check(can_read_job_details(user), user, "read the details of production jobs")


def check_can_read_checks(user: User) -> None:
    _check(can_read_checks(user), user, "read egress check reports")


def check_can_read_ledger(user: User) -> None:
    _check(can_read_ledger(user), user, "read the ledger")
