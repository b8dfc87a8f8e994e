"""The worker: claims queued jobs one at a time, runs them, and recovers after crashed workers.

Claiming is a conditional UPDATE (`... WHERE state = 'queued'`) inside a transaction that
locks the row (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's write lock serialises the
same), so two workers never take the same job. A worker heartbeats while it runs a job; a job
whose worker has been silent longer than the lease is failed and its sandbox removed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from jobs import records
from jobs.records import Job
from jobs.runner import JobRun
from jobs.states import LEASED, FailureKind, JobState
from sandbox.base import SandboxBackend
from shuyu.canonical import utcnow
from shuyu.platform import Platform
from shuyu.schema import jobs

HEARTBEAT_SECONDS = 2.0
LOG = logging.getLogger("shuyu.worker")


@dataclass
class Worker:
    platform: Platform
    backend: SandboxBackend
    name: str = ""
    dev: bool = False  # development workers take only dev jobs; production ones only real jobs

    def __post_init__(self) -> None:
        self.name = self.name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:4]}"

    def claim(self) -> str | None:
        with self.platform.store.transaction() as conn:
            query = (
                select(jobs.c.id)
                .where(jobs.c.state == JobState.QUEUED.value, jobs.c.dev == int(self.dev))
                .order_by(jobs.c.submitted_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            row = conn.execute(query).first()
            if row is None:
                return None
            now = utcnow()
            taken = conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id, jobs.c.state == JobState.QUEUED.value)
                .values(worker=self.name, heartbeat_at=now)
            ).rowcount
            if taken != 1:
                return None
            records.transition(
                conn, row.id, JobState.PREPARING, f"claimed by worker {self.name}", self.name
            )
            return row.id

    def run_job(self, job_id: str) -> Job:
        """Run one job to a terminal state. Whatever a job does (or makes the platform do), it
        ends this job only: any exception fails it with kind `internal`, the exception's text
        is kept for operators (job row, log), and the worker goes on to the next job."""
        run = JobRun(self.platform, self.backend, job_id, actor=self.name)
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(run, stop), daemon=True)
        beat.start()
        try:
            job = run.execute()
            if job.state is JobState.CHECKS_PENDING:
                job = self.check(job_id)
            return job
        except Exception as exc:  # never leave a job active, never die because of one job
            LOG.exception("job %s failed inside the platform", job_id)
            return self._fail_internal(job_id, exc)
        finally:
            stop.set()
            beat.join()

    def _fail_internal(self, job_id: str, exc: Exception) -> Job:
        detail = f"internal error: {type(exc).__name__}: {exc}"[:2000]
        try:
            with self.platform.store.transaction() as conn:
                job = records.load(conn, job_id, lock=True)
                if job.state in LEASED:
                    job = records.transition(
                        conn, job_id, JobState.FAILED, detail, self.name, FailureKind.INTERNAL
                    )
                return job
        except Exception:  # the store itself failed: the lease runs out and `recover` fails it
            LOG.exception("job %s could not be marked failed", job_id)
            with self.platform.store.read() as conn:
                return records.load(conn, job_id)

    def check(self, job_id: str) -> Job:
        """Run the egress checks, then move the job on: to review with the verdicts, or to
        `failed` (internal) if the checks could not run at all. Fail closed either way: an
        output whose own check crashed or hit a limit comes back blocked, never passed."""
        from egress_review.service import check_job, record_checks

        try:
            outcome = check_job(self.platform, job_id)
            with self.platform.store.transaction() as conn:
                record_checks(conn, outcome)
                records.transition(
                    conn, job_id, JobState.REVIEW_PENDING, outcome.summary, self.name
                )
        except Exception as exc:  # nothing reaches review unchecked
            with self.platform.store.transaction() as conn:
                records.transition(
                    conn,
                    job_id,
                    JobState.FAILED,
                    f"egress checks could not run: {type(exc).__name__}",
                    self.name,
                    FailureKind.INTERNAL,
                )
        with self.platform.store.read() as conn:
            return records.load(conn, job_id)

    def _heartbeat(self, run: JobRun, stop: threading.Event) -> None:
        """Keep the lease and watch for cancellation requests."""
        while not stop.wait(HEARTBEAT_SECONDS):
            with self.platform.store.transaction() as conn:
                conn.execute(
                    update(jobs).where(jobs.c.id == run.job_id).values(heartbeat_at=utcnow())
                )
                cancel = conn.execute(
                    select(jobs.c.cancel_requested).where(jobs.c.id == run.job_id)
                ).scalar()
            if cancel and not run.cancelled.is_set():
                run.cancelled.set()
                if run.current_run_id:
                    self.backend.terminate(run.current_run_id)

    def recover(self) -> list[str]:
        """Fail jobs whose worker stopped heartbeating, and remove sandboxes nobody owns."""
        lease = timedelta(seconds=self.platform.settings.worker_lease_seconds)
        failed = []
        with self.platform.store.transaction() as conn:
            stale = conn.execute(
                select(jobs.c.id)
                .where(
                    jobs.c.state.in_([s.value for s in LEASED]),
                    jobs.c.heartbeat_at < utcnow() - lease,
                )
                .with_for_update(skip_locked=True)
            ).all()
            for row in stale:
                records.transition(
                    conn,
                    row.id,
                    JobState.FAILED,
                    "the worker running this job stopped",
                    self.name,
                    FailureKind.WORKER_LOST,
                )
                failed.append(row.id)
            active = {
                r.id
                for r in conn.execute(
                    select(jobs.c.id).where(jobs.c.state.in_([s.value for s in LEASED]))
                )
            }
        for run_id in self.backend.list_leftovers():
            if not any(run_id.startswith(job_id) for job_id in active):
                self.backend.cleanup(run_id)
        return failed

    def run(
        self,
        once: bool = False,
        poll: float = 0.5,
        stop: threading.Event | None = None,
        on_job: Callable[[Job], None] | None = None,
    ) -> int:
        """Loop: recover, claim, run. With `once`, stop when the queue is empty. Returns jobs run."""
        stop = stop or threading.Event()
        done = 0
        self.recover()
        while not stop.is_set():
            job_id = self.claim()
            if job_id is None:
                if once:
                    break
                stop.wait(poll)
                self.recover()
                continue
            job = self.run_job(job_id)
            done += 1
            if on_job:
                on_job(job)
        return done
