"""The job lifecycle as data: states, allowed transitions, who owns each state.

`transition` is the only way a job changes state: it checks the move is allowed, records the
reason in the job's event history and the ledger, all in the caller's transaction.
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


S = JobState
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    S.QUEUED: frozenset({S.PREPARING, S.CANCELLED}),
    S.PREPARING: frozenset({S.RUNNING, S.FAILED, S.CANCELLED}),
    S.RUNNING: frozenset({S.COLLECTING, S.FAILED, S.CANCELLED}),
    S.COLLECTING: frozenset({S.RUNNING, S.CHECKS_PENDING, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.CHECKS_PENDING: frozenset({S.REVIEW_PENDING, S.FAILED}),  # the platform's egress checks
    S.REVIEW_PENDING: frozenset(),  # a human reviewer decides from here
    S.COMPLETED: frozenset(),  # development runs end here: their outputs are synthetic
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Who moves a job on from each state: the analyst only queues and cancels; the worker does the rest.
OWNER: dict[JobState, str] = {
    S.QUEUED: "worker",
    S.PREPARING: "worker",
    S.RUNNING: "worker",
    S.COLLECTING: "worker",
    S.CHECKS_PENDING: "egress_checks",
    S.REVIEW_PENDING: "reviewer",
    S.COMPLETED: "nobody (terminal)",
    S.FAILED: "nobody (terminal)",
    S.CANCELLED: "nobody (terminal)",
}

ACTIVE = frozenset({S.PREPARING, S.RUNNING, S.COLLECTING})
LEASED = ACTIVE | {S.CHECKS_PENDING}  # a worker holds the job (and heartbeats) in these states
TERMINAL = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def can_transition(current: JobState, new: JobState) -> bool:
    return new in TRANSITIONS[current]


def mermaid() -> str:
    """The state diagram for the README, generated from TRANSITIONS so it cannot drift."""
    lines = ["stateDiagram-v2", "    [*] --> queued"]
    for state, targets in TRANSITIONS.items():
        for target in sorted(targets):
            if target != state:
                lines.append(f"    {state.value} --> {target.value}")
    lines += [f"    {s.value} --> [*]" for s in sorted(TERMINAL)]
    return "\n".join(lines)
