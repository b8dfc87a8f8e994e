"""The job lifecycle as data: states, allowed transitions, who owns each state.

`transition` is the only way a job changes state: it checks the move is allowed, records the
reason in the job's event history and the ledger, all in the caller's transaction.
"""

from __future__ import annotations

# The words themselves are the kernel's (egress_review reads them too); re-exported here.
from shuyu.vocabulary import FailureKind as FailureKind
from shuyu.vocabulary import JobState as JobState
from shuyu.vocabulary import OutputStatus as OutputStatus

# What an analyst may see of a production job's outputs: the statuses of declared files only.
# Undeclared files (their names, number, sizes) and logs are the job's own words: never shown.
DECLARED_STATUSES = frozenset(
    {OutputStatus.COLLECTED, OutputStatus.HELPER, OutputStatus.REFUSED, OutputStatus.MISSING}
)

# The analyst's whole vocabulary about a production job: one fixed sentence per state, and one
# per failure kind. Nothing the job printed, returned or wrote can change these words.
STATE_REASONS: dict[JobState, str] = {
    JobState.QUEUED: "submitted; waiting for a worker",
    JobState.PREPARING: "taken by a worker; preparing the workspace",
    JobState.RUNNING: "running",
    JobState.COLLECTING: "collecting the declared outputs",
    JobState.CHECKS_PENDING: "outputs held by the platform; egress checks pending",
    JobState.REVIEW_PENDING: "outputs checked; awaiting a reviewer",
    JobState.COMPLETED: "finished",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
}
FAILURE_REASONS: dict[FailureKind, str] = {
    FailureKind.NONZERO_EXIT: "the code ended with an error; its log is held for reviewers",
    FailureKind.TIMEOUT: "the wall-time limit was reached",
    FailureKind.MEMORY: "the memory limit was reached",
    FailureKind.PIDS: "the process limit was reached",
    FailureKind.OUTPUT_LIMIT: "the output size limit was reached",
    FailureKind.FILE_SIZE: "the single-file size limit was reached",
    FailureKind.INVALID_OUTPUTS: "a declared output was not written or could not be accepted",
    FailureKind.POLICY: "refused by the project's grant or privacy budget",
    FailureKind.WORKER_LOST: "the worker running the job stopped; submit it again",
    FailureKind.INTERNAL: "the platform failed while running the job; operators have the details",
}


def analyst_reason(state: JobState, failure: str | None) -> str:
    """The fixed sentence an analyst reads for a production job in `state`."""
    if state is JobState.FAILED and failure is not None:
        try:
            return FAILURE_REASONS[FailureKind(failure)]
        except ValueError:
            return FAILURE_REASONS[FailureKind.INTERNAL]
    return STATE_REASONS[state]


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
