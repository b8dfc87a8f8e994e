"""Who may do what: pure functions in pairs (`can_x` for templates, `check_can_x` raises).

"Who may act" lives here; "what the current state allows" lives with each state machine.
Deny by default: a name that is not registered, or a disabled user, has no role and may do
nothing. Object rules take the object: an analyst acts only within the projects they are a
member of, and another project's job is *not found* for them (its existence is not confirmed).

The host console (`User.console`) is the platform operator at the machine: whoever can log in
there can read the store anyway, so it keeps the full view; it may not review (review needs a
named reviewer from another organisation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from shuyu.errors import NotFound, PermissionDenied


class Role(StrEnum):
    STEWARD = "steward"
    ANALYST = "analyst"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"
    OPERATOR = "operator"


ROLES = tuple(r.value for r in Role)
# The platform's own staff belong to no tenant; operators' analysts belong to exactly one.
PLATFORM_ROLES = frozenset({Role.STEWARD, Role.REVIEWER, Role.AUDITOR, Role.OPERATOR})
TENANT_ROLES = frozenset({Role.ANALYST})
# Identities the host console may take with SHUYU_USER: the people who run the platform.
CONSOLE_ROLES = frozenset({Role.OPERATOR, Role.STEWARD})


@dataclass(frozen=True)
class User:
    name: str
    role: str | None  # None: not registered (or disabled)
    tenant: str | None = None
    organisation: str | None = None
    projects: frozenset[str] = field(default_factory=frozenset)
    nda_signed: bool = False
    console: bool = False

    @classmethod
    def host_console(cls, os_user: str) -> User:
        return cls(os_user, Role.OPERATOR.value, console=True)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.role})" if self.role else f"{self.name} (not a registered user)"


class JobLike(Protocol):
    @property
    def project(self) -> str: ...
    @property
    def submitted_by(self) -> str: ...
    @property
    def tenant(self) -> str | None: ...


def _allowed(user: User, *roles: str) -> bool:
    return user.role is not None and user.role in roles


def in_project(user: User, project: str) -> bool:
    """Platform staff see every project; an analyst only the ones they are a member of."""
    if user.role is None:
        return False
    if user.console or user.role in PLATFORM_ROLES:
        return True
    return project in user.projects


def can_read_catalog(user: User) -> bool:
    return _allowed(user, *ROLES)


def can_submit_jobs(user: User) -> bool:
    return user.console or _allowed(user, Role.ANALYST)


def can_submit_job(user: User, project: str) -> bool:
    """An analyst with a signed confidentiality agreement, in a project they are a member of."""
    if user.console:
        return True
    return _allowed(user, Role.ANALYST) and user.nda_signed and project in user.projects


def can_read_jobs(user: User) -> bool:
    return _allowed(user, *ROLES)


def can_read_job(user: User, job: JobLike) -> bool:
    return can_read_jobs(user) and in_project(user, job.project)


def can_cancel_job(user: User, job: JobLike) -> bool:
    return user.console or (_allowed(user, Role.ANALYST) and job.project in user.projects)


def can_read_job_details(user: User) -> bool:
    """Exit statuses, detailed reasons, undeclared files, sizes, failure counts: everything a
    production job could encode data in. Reviewers and auditors judge it; operators run it."""
    return _allowed(user, Role.REVIEWER, Role.AUDITOR, Role.OPERATOR)


def can_read_checks(user: User) -> bool:
    """Check reports quote cell values of production outputs: reviewers and auditors only."""
    return _allowed(user, Role.REVIEWER, Role.AUDITOR) or user.console


def can_read_job_checks(user: User, job: JobLike) -> bool:
    return can_read_checks(user) and in_project(user, job.project)


def can_review_job(user: User, job: JobLike) -> bool:
    """Separation of duties: a reviewer never decides on their own submission, nor on work
    of their own organisation (the job's tenant)."""
    if not _allowed(user, Role.REVIEWER) or user.console:
        return False
    if job.submitted_by == user.name:
        return False
    own = {o for o in (user.tenant, user.organisation) if o}
    return job.tenant is None or job.tenant not in own


def can_read_ledger(user: User) -> bool:
    return _allowed(user, Role.AUDITOR, Role.STEWARD, Role.OPERATOR)


def can_steward_data(user: User) -> bool:
    """Register datasets, issue and revoke grants: stewards, and the host console."""
    return user.console or _allowed(user, Role.STEWARD)


def check_can_steward_data(user: User) -> None:
    _check(can_steward_data(user), user, "register datasets or issue grants")


def can_manage_identities(user: User) -> bool:
    """Users, tenants, projects, memberships, tokens of others: the host console only."""
    return user.console


def _check(allowed: bool, user: User, what: str, fix: str | None = None) -> None:
    if not allowed:
        raise PermissionDenied(
            f"{user.label} may not {what}", fix=fix or "ask a platform operator for the right role"
        )


class Hidden(NotFound):
    """A denial that must look like absence: the same answer as for an object that does not
    exist (the ledger still records it as a denial)."""


def _hide(allowed: bool, kind: str, ident: str) -> None:
    if not allowed:
        raise Hidden(f"no {kind} {ident}", fix=f"see `shuyu {kind} list`")


def check_can_read_catalog(user: User) -> None:
    _check(can_read_catalog(user), user, "read the catalog")


def check_can_submit_jobs(user: User) -> None:
    _check(can_submit_jobs(user), user, "submit or cancel jobs")


def check_can_submit_job(user: User, project: str) -> None:
    check_can_submit_jobs(user)
    if not user.console and not user.nda_signed:
        _check(
            False,
            user,
            "submit jobs without a signed confidentiality agreement",
            "a platform operator records the agreement: shuyu user nda NAME --signed-on DATE",
        )
    _hide(can_submit_job(user, project), "project", project)


def check_can_read_jobs(user: User) -> None:
    _check(can_read_jobs(user), user, "read job status")


def check_can_read_job(user: User, job: JobLike, job_id: str) -> None:
    check_can_read_jobs(user)
    _hide(can_read_job(user, job), "job", job_id)


def check_can_cancel_job(user: User, job: JobLike, job_id: str) -> None:
    check_can_read_job(user, job, job_id)
    _check(can_cancel_job(user, job), user, "submit or cancel jobs")


def check_can_read_project(user: User, project: str) -> None:
    _hide(in_project(user, project), "project", project)


def check_can_read_job_details(user: User) -> None:
    _check(can_read_job_details(user) or user.console, user, "read the details of production jobs")


def check_can_read_checks(user: User) -> None:
    _check(can_read_checks(user), user, "read egress check reports")


def check_can_read_job_checks(user: User, job: JobLike, job_id: str) -> None:
    check_can_read_job(user, job, job_id)
    check_can_read_checks(user)


def check_can_review_job(user: User, job: JobLike) -> None:
    _check(
        can_review_job(user, job),
        user,
        "review this job: a reviewer decides only on other organisations' work, never their own",
        "another reviewer, from an organisation other than the job's tenant, must review it",
    )


def check_can_read_ledger(user: User) -> None:
    _check(can_read_ledger(user), user, "read the ledger")


def check_can_manage_identities(user: User) -> None:
    _check(can_manage_identities(user), user, "manage users, tenants or projects")
