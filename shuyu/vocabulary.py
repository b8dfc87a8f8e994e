"""The store's words for jobs and their files: states, failure kinds, output statuses.

They live in the kernel because two packages read them: `jobs` writes them and `egress_review`
reads the rows they label. Keeping them here lets the checks read job rows without importing
the jobs package (the two must not import each other). The lifecycle rules over these words
(transitions, owners, the analyst's sentences) stay in `jobs.states`.
"""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    COLLECTING = "collecting"
    CHECKS_PENDING = "checks_pending"
    REVIEW_PENDING = "review_pending"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FailureKind(StrEnum):
    """Why a job failed: every sandbox `Failure` value, plus what the platform itself detects."""

    NONZERO_EXIT = "nonzero_exit"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    PIDS = "pids"
    OUTPUT_LIMIT = "output_limit"
    FILE_SIZE = "file_size"
    INVALID_OUTPUTS = "invalid_outputs"
    POLICY = "policy"
    WORKER_LOST = "worker_lost"
    INTERNAL = "internal"


class OutputStatus(StrEnum):
    """What became of each file of a job: one row per file in `job_outputs`."""

    COLLECTED = "collected"  # a declared output, copied and held by the platform
    HELPER = "helper"  # a declared contributor file, held for the checks, never released
    REFUSED = "refused"  # declared, but not accepted (wrong type, unreadable, over a limit)
    UNDECLARED = "undeclared"  # written by the job without being declared: never copied
    MISSING = "missing"  # declared but not written
    LOG = "log"  # the action's captured stdout and stderr
