"""Job service: submit, run in development, status, list, cancel, wait.

The CLI and HTTP API both call these. Analysts see production jobs through `jobs.views`
(a fixed vocabulary), never their outputs or logs (those are held for the checks and
reviewers); production submissions are rate-limited per analyst (`jobs.quota`).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import insert, select, update

from jobs import records
from jobs.quota import OverQuota, check_runs_left, failure_counts
from jobs.records import Job
from jobs.runner import prepare_code
from jobs.spec import LoadedSpec, load_spec, spec_record
from jobs.states import TERMINAL, JobState
from jobs.views import JobView
from lineage import ledger
from lineage.actions import LedgerAction
from policies.service import active_policy
from shuyu.access import enforced
from shuyu.canonical import sha256_file, utcnow
from shuyu.errors import Conflict, NotFound, PolicyRefused, ShuyuError, ValidationError
from shuyu.permissions import (
    PLATFORM_ROLES,
    User,
    can_read_job_details,
    check_can_cancel_job,
    check_can_read_job,
    check_can_read_job_details,
    check_can_read_jobs,
    check_can_submit_job,
)
from shuyu.platform import Platform
from shuyu.schema import job_events, jobs

WAIT_STATES = TERMINAL


def create_job(platform: Platform, spec_path: Path, dev: bool) -> Job:
    """Validate the spec against the project's grant, copy and hash its code, record the job
    as queued. A production run over the submitter's daily limit is refused (and recorded).
    The acting user must be an analyst with a signed confidentiality agreement and a member of
    the spec's project (another tenant's project does not exist for them)."""
    loaded = load_spec(spec_path)
    with enforced(platform, "job.submit", f"project:{loaded.spec.project}"):
        check_can_submit_job(platform.user, loaded.spec.project)
    try:
        return _create_job(platform, loaded, spec_path, dev)
    except OverQuota as over:
        with platform.store.transaction() as conn:
            ledger.append(
                conn,
                platform.actor,
                LedgerAction.JOB_REFUSED,
                f"project:{loaded.spec.project}",
                {
                    "why": "daily production run limit",
                    "limit": over.limit,
                    "next_run_at": over.next_at.isoformat(),
                    "spec_hash": loaded.hash,
                },
            )
        raise PolicyRefused(
            f"{platform.actor} has already submitted {over.limit} production runs in the last "
            f"24 hours; the next one is allowed from {over.next_at.isoformat()}",
            field="SHUYU_ANALYST_RUNS_PER_DAY",
            fix="develop on the synthetic twin (`shuyu job run --dev`) meanwhile",
        ) from None


def _create_job(platform: Platform, loaded: LoadedSpec, spec_path: Path, dev: bool) -> Job:
    job_id = f"job-{uuid.uuid4().hex[:12]}"
    job_dir = platform.jobs_dir / job_id
    try:
        _copy_code(loaded, job_dir / "code")
        prepare_code(job_dir)
        with platform.store.transaction() as conn:
            if not dev:
                check_runs_left(conn, platform.actor, platform.settings.analyst_runs_per_day)
            grant_id, policy = active_policy(conn, loaded.spec.project)
            if policy.purpose != loaded.spec.purpose:
                raise PolicyRefused(
                    f"the job's purpose {loaded.spec.purpose} differs from the grant's purpose {policy.purpose}",
                    file=str(spec_path),
                    field="purpose",
                    fix=f"use purpose: {policy.purpose}",
                )
            now = utcnow()
            conn.execute(
                insert(jobs).values(
                    id=job_id,
                    project=loaded.spec.project,
                    name=loaded.spec.name,
                    dev=int(dev),
                    spec=spec_record(loaded),
                    spec_hash=loaded.hash,
                    state=JobState.QUEUED.value,
                    reason="submitted",
                    backend=platform.settings.backend,
                    grant_id=grant_id,
                    submitted_by=platform.actor,
                    tenant=policy.tenant,
                    submitted_at=now,
                    updated_at=now,
                    cancel_requested=0,
                )
            )
            conn.execute(
                insert(job_events).values(
                    job_id=job_id,
                    at=now,
                    from_state=None,
                    to_state=JobState.QUEUED.value,
                    reason="submitted",
                )
            )
            ledger.append(
                conn,
                platform.actor,
                LedgerAction.JOB_SUBMITTED,
                f"job:{job_id}",
                {
                    "project": loaded.spec.project,
                    "name": loaded.spec.name,
                    "dev": dev,
                    "spec_hash": loaded.hash,
                    "code": loaded.code,
                    "grant": grant_id,
                },
            )
            return records.load(conn, job_id)
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise


def submit(platform: Platform, spec_path: Path) -> Job:
    return create_job(platform, spec_path, dev=False)


def submit_files(platform: Platform, spec_yaml: str, files: dict[str, str]) -> Job:
    """Submit a spec and its code sent as text (the HTTP API's form): written to a private folder
    first, then validated exactly like a spec on disk."""
    with tempfile.TemporaryDirectory(dir=platform.tmp_dir) as tmp:
        folder = Path(tmp)
        for rel, text in files.items():
            pure = PurePosixPath(rel)
            if (
                not rel
                or "\0" in rel
                or "\\" in rel
                or pure.is_absolute()
                or ".." in pure.parts
                or pure.name in ("", ".")
                or str(pure) == "job.yaml"
            ):
                raise ValidationError(
                    f"file name {rel!r} is not a plain relative path inside the job folder",
                    field=f"files.{rel}",
                    fix="use names like analysis.py or lib/helpers.py",
                )
            (folder / pure).parent.mkdir(parents=True, exist_ok=True)
            (folder / pure).write_text(text, encoding="utf-8")
        spec = folder / "job.yaml"
        spec.write_text(spec_yaml, encoding="utf-8")
        try:
            return submit(platform, spec)
        except ShuyuError as exc:  # name the sent files as the caller named them, not our folder
            raise _without_folder(exc, folder) from None


def _without_folder(exc: ShuyuError, folder: Path) -> ShuyuError:
    def strip(text: str | None) -> str | None:
        if text is None:
            return None
        for prefix in {str(folder) + "/", str(folder.resolve()) + "/"}:
            text = text.replace(prefix, "")
        return text

    exc.message = strip(exc.message) or ""
    exc.file, exc.fix = strip(exc.file), strip(exc.fix)
    return exc


def sees_full(user: User) -> bool:
    """Whether this reader gets the full detail of production jobs (else the fixed vocabulary)."""
    return user.console or can_read_job_details(user)


def readable_job(platform: Platform, job_id: str) -> Job:
    """The job if the acting user may read it; another project's job is *not found*, in the
    same words as a job that does not exist (the denial is still recorded)."""
    with platform.store.read() as conn:
        try:
            job: Job | None = records.load(conn, job_id)
        except NotFound:
            job = None
    return _check_readable(platform, job_id, job)


def _check_readable(platform: Platform, job_id: str, job: Job | None) -> Job:
    """Checked after the read connection is closed: a denial writes its own ledger entry."""
    with enforced(platform, "job.read", f"job:{job_id}"):
        check_can_read_jobs(platform.user)
    if job is None:
        raise NotFound(f"no job {job_id}", fix="see `shuyu job list`")
    with enforced(platform, "job.read", f"job:{job_id}"):
        check_can_read_job(platform.user, job, job_id)
    return job


def view(platform: Platform, job_id: str) -> JobView:
    """One read for the job and its history; nothing of it is returned unless the check passes."""
    with platform.store.read() as conn:
        try:
            found: Job | None = records.load(conn, job_id)
        except NotFound:
            found = None
        events = records.events(conn, job_id) if found else []
        outputs = records.outputs(conn, job_id) if found else []
    return JobView(_check_readable(platform, job_id, found), events, outputs)


def list_jobs(
    platform: Platform, project: str | None = None, state: str | None = None
) -> list[Job]:
    """Newest first; an analyst sees only the jobs of the projects they are a member of."""
    user = platform.user
    with enforced(platform, "job.list", f"project:{project}" if project else "jobs"):
        check_can_read_jobs(user)
    query = select(jobs.c.id).order_by(jobs.c.submitted_at.desc())
    if not user.console and user.role not in PLATFORM_ROLES:
        query = query.where(jobs.c.project.in_(sorted(user.projects)))
    if project:
        query = query.where(jobs.c.project == project)
    if state:
        query = query.where(jobs.c.state == state)
    with platform.store.read() as conn:
        return [records.load(conn, row.id) for row in conn.execute(query)]


def cancel(platform: Platform, job_id: str, reason: str = "cancelled by the analyst") -> Job:
    """Queued jobs are cancelled at once; running ones are stopped by their worker within seconds."""
    job = readable_job(platform, job_id)
    with enforced(platform, "job.cancel", f"job:{job_id}"):
        check_can_cancel_job(platform.user, job, job_id)
    with platform.store.transaction() as conn:
        job = records.load(conn, job_id, lock=True)
        if job.state in WAIT_STATES | {JobState.CHECKS_PENDING}:
            raise Conflict(
                f"job {job_id} is already {job.state.value}; it can no longer be cancelled"
            )
        if job.state is JobState.QUEUED:
            return records.transition(conn, job_id, JobState.CANCELLED, reason, platform.actor)
        conn.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=1))
        ledger.append(
            conn,
            platform.actor,
            LedgerAction.JOB_CANCEL_REQUESTED,
            f"job:{job_id}",
            {"reason": reason},
        )
        return records.load(conn, job_id)


def wait(platform: Platform, job_id: str, timeout: float = 600, poll: float = 0.2) -> Job:
    readable_job(platform, job_id)
    deadline = time.monotonic() + timeout
    while True:
        with platform.store.read() as conn:
            job = records.load(conn, job_id)
        if job.state in WAIT_STATES:
            return job
        if time.monotonic() > deadline:
            raise Conflict(
                f"job {job_id} is still {job.state.value} after {timeout:.0f} s",
                fix="wait longer (--timeout) or check that a worker is running: shuyu worker",
            )
        time.sleep(poll)


def failures(platform: Platform, project: str | None = None) -> list[dict[str, Any]]:
    """Failed production runs per project, for reviewers: probing shows up here."""
    with enforced(platform, "job.failures", f"project:{project}" if project else "jobs"):
        check_can_read_job_details(platform.user)
    with platform.store.read() as conn:
        return failure_counts(conn, project)


def _copy_code(loaded: LoadedSpec, target: Path) -> None:
    """Copy the code as hashed; a file changed between hashing and copying is refused."""
    for rel, digest in loaded.code.items():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(loaded.base / rel, dest)
        if sha256_file(dest) != digest:
            raise ValidationError(
                f"code file {rel} changed while it was being submitted",
                file=str(loaded.path),
                fix="submit again",
            )
