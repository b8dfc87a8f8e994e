"""Every action the ledger records: one word each, so auditors can query a closed set.

`ledger.append` refuses anything else, so a new kind of change must be named here first.
Job transitions are `job.<state>` for each state of the job lifecycle (`job_transition`).
"""

from __future__ import annotations

from enum import StrEnum

from shuyu.vocabulary import JobState


class LedgerAction(StrEnum):
    ACCESS_DENIED = "access.denied"
    AUTH_REFUSED = "auth.refused"
    AUTH_SIGNED_IN = "auth.signed_in"
    DATASET_REGISTERED = "dataset.registered"
    DP_BUDGET_REFUSED = "dp.budget.refused"
    DP_BUDGET_RESERVED = "dp.budget.reserved"
    DP_BUDGET_SPENT = "dp.budget.spent"
    DP_BUDGET_RELEASED = "dp.budget.released"
    GRANT_ADDED = "grant.added"
    GRANT_REVOKED = "grant.revoked"
    JOB_CANCEL_REQUESTED = "job.cancel_requested"
    JOB_REFUSED = "job.refused"
    JOB_SUBMITTED = "job.submitted"
    PROJECT_ADDED = "project.added"
    PROJECT_MEMBER_ADDED = "project.member_added"
    PROJECT_MEMBER_REMOVED = "project.member_removed"
    TENANT_ADDED = "tenant.added"
    TOKEN_CREATED = "token.created"
    TOKEN_REVOKED = "token.revoked"
    USER_DISABLED = "user.disabled"
    USER_ENABLED = "user.enabled"
    USER_NDA_RECORDED = "user.nda_recorded"
    USER_PASSWORD_SET = "user.password_set"
    USER_REALNAME_VERIFIED = "user.realname_verified"
    USER_ROLE_SET = "user.role_set"
    WORKSPACE_BUILT = "workspace.built"
    JOB_QUEUED = "job.queued"
    JOB_PREPARING = "job.preparing"
    JOB_RUNNING = "job.running"
    JOB_COLLECTING = "job.collecting"
    JOB_CHECKS_PENDING = "job.checks_pending"
    JOB_REVIEW_PENDING = "job.review_pending"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_CANCELLED = "job.cancelled"


def job_transition(state: JobState) -> LedgerAction:
    """The action recording a job's move into `state`."""
    return LedgerAction(f"job.{state.value}")
