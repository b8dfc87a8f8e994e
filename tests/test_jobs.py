"""Jobs end to end on real sandboxes: development and production runs, failures, cancel, workers."""

from __future__ import annotations

import shutil
import textwrap
import threading
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from jobs import service
from jobs.dev import run_dev
from jobs.states import JobState, OutputStatus
from jobs.worker import Worker
from lineage import ledger
from shuyu.errors import PolicyRefused
from shuyu.platform import Platform
from shuyu.schema import job_outputs

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jobs" / "employment"


def example_job(tmp_path: Path) -> Path:
    folder = tmp_path / "job"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("output"))
    return folder / "job.yaml"


def script_job(tmp_path: Path, code: str, outputs: dict | None = None, name: str = "probe") -> Path:
    """A one-action job running `code`."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "main.py").write_text(textwrap.dedent(code), encoding="utf-8")
    spec = {
        "version": 1,
        "name": name,
        "project": "employment-insights",
        "purpose": "public_governance",
        "actions": {
            "main": {
                "run": "python main.py",
                "outputs": outputs
                or {"result.csv": {"kind": "table", "counts": ["n"], "context": "test output"}},
            }
        },
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return folder / "job.yaml"


def run_production(platform: Platform, backend, spec: Path):
    job = service.submit(platform, spec)
    Worker(platform, backend).run(once=True)
    return service.view(platform, job.id)


def test_dev_run_shows_synthetic_outputs_and_log(
    granted: Platform, sandbox_backend, tmp_path: Path
) -> None:
    result = run_dev(granted, example_job(tmp_path), sandbox_backend)
    assert result.job.state is JobState.COMPLETED, result.job.reason
    produced = result.output_dir / "wages" / "wages_by_district.csv"
    assert produced.is_file() and produced.read_text().startswith("district,gender,contributors")
    assert "wages" not in result.logs, "the platform computed the table: no sandbox, no log"
    assert (result.output_dir / "headcount" / "headcount_by_industry.csv").is_file()


def test_production_run_holds_outputs_for_checks(
    granted: Platform, sandbox_backend, tmp_path: Path
) -> None:
    view = run_production(granted, sandbox_backend, example_job(tmp_path))
    assert view.job.state is JobState.REVIEW_PENDING, view.job.reason
    assert [e["to"] for e in view.events] == [
        "queued",
        "preparing",
        "running",
        "collecting",
        "running",
        "collecting",
        "running",
        "collecting",
        "checks_pending",
        "review_pending",
    ]
    helper = [o for o in view.outputs if o["status"] == "helper"]
    assert [o["path"] for o in helper] == ["_platform/contributors.parquet"]
    collected = [o for o in view.outputs if o["status"] == "collected"]
    assert {o["path"] for o in collected} == {
        "wages_by_district.csv",
        "headcount_by_industry.csv",
        "dp_wages_by_district.csv",
    }
    for o in collected:
        assert not Path(o["stored_path"]).is_absolute(), "the store holds no host path"
        assert granted.resolve(o["stored_path"]).is_relative_to(granted.jobs_dir)
        assert o["rows"] > 0 and len(o["sha256"]) == 64
    shown = view.to_dict(detail=True)["outputs"]
    assert all(set(o) == {"action", "path", "status"} for o in shown), (
        "analysts do not see production details"
    )
    assert not (tmp_path / "job" / "output").exists()


def test_undeclared_files_are_reported_and_never_collected(
    granted: Platform, local_backend, tmp_path
) -> None:
    spec = script_job(
        tmp_path,
        """
        import os
        out = os.environ["SHUYU_OUTPUT"]
        open(os.path.join(out, "result.csv"), "w").write("n\\n12\\n")
        open(os.path.join(out, "extra.csv"), "w").write("secret\\n1\\n")
    """,
    )
    view = run_production(granted, local_backend, spec)
    assert view.job.state is JobState.REVIEW_PENDING
    status = {o["path"]: o["status"] for o in view.outputs if o["status"] != "log"}
    assert status == {"result.csv": "collected", "extra.csv": "undeclared"}
    assert not list(granted.jobs_dir.rglob("collected/**/extra.csv"))


def test_failure_reason_is_coarse_and_the_log_is_withheld(
    granted: Platform, sandbox_backend, tmp_path
) -> None:
    spec = script_job(
        tmp_path,
        """
        print("PEEKED-VALUE-150302198706011234")
        raise SystemExit(3)
    """,
    )
    view = run_production(granted, sandbox_backend, spec)
    assert view.job.state is JobState.FAILED and view.job.failure == "nonzero_exit"
    assert "status 3" in view.job.reason, "the detailed reason is kept for reviewers"
    assert "status 3" in str(view.to_dict(detail=True, full=True))
    assert "status 3" not in str(view.to_dict(detail=True)), "analysts read the fixed vocabulary"
    assert "PEEKED" not in str(view.to_dict(detail=True))
    with granted.store.read() as conn:
        log = conn.execute(
            select(job_outputs.c.stored_path).where(job_outputs.c.status == OutputStatus.LOG)
        ).scalar_one()
    assert "PEEKED-VALUE" in granted.resolve(log).read_text(), "the log is kept for reviewers"


def test_missing_declared_output_fails_the_job(granted: Platform, local_backend, tmp_path) -> None:
    view = run_production(
        granted, local_backend, script_job(tmp_path, "print('forgot to write')\n")
    )
    assert view.job.failure == "invalid_outputs" and "result.csv" in view.job.reason


def test_memory_limit_is_the_reported_reason(granted: Platform, sandbox_backend, tmp_path) -> None:
    from dataclasses import replace

    granted.settings = replace(granted.settings, job_memory_mb=128)
    view = run_production(
        granted,
        sandbox_backend,
        script_job(
            tmp_path,
            """
        blocks = []
        while True:
            blocks.append(bytearray(16 * 1024 * 1024))
    """,
        ),
    )
    assert view.job.state is JobState.FAILED and view.job.failure == "memory", view.job.reason


def test_purpose_must_match_the_grant(granted: Platform, tmp_path) -> None:
    spec = example_job(tmp_path)
    doc = yaml.safe_load(spec.read_text())
    doc["purpose"] = "industry_development"
    spec.write_text(yaml.safe_dump(doc, allow_unicode=True))
    with pytest.raises(PolicyRefused) as err:
        service.submit(granted, spec)
    assert err.value.field == "purpose"
    assert service.list_jobs(granted) == []
    assert list(granted.jobs_dir.iterdir()) == []


def test_cancel_queued_and_running_jobs(granted: Platform, local_backend, tmp_path) -> None:
    queued = service.submit(granted, example_job(tmp_path))
    assert service.cancel(granted, queued.id).state is JobState.CANCELLED

    spec = script_job(tmp_path, "import time\nwhile True: time.sleep(0.1)\n", name="sleeper")
    job = service.submit(granted, spec)
    worker = Worker(granted, local_backend)
    thread = threading.Thread(target=worker.run, kwargs={"once": True})
    thread.start()
    _wait_for_state(granted, job.id, JobState.RUNNING)
    service.cancel(granted, job.id)
    thread.join(timeout=60)
    assert service.view(granted, job.id).job.state is JobState.CANCELLED
    assert local_backend.list_leftovers() == []


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def granted_any(request: pytest.FixtureRequest, tmp_path: Path, demo_dir: Path):
    """A granted platform on each store: claiming must be exclusive on both."""
    from tests.conftest import make_platform, register_and_grant

    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    platform = register_and_grant(make_platform(tmp_path / "home", url), demo_dir)
    yield platform
    platform.store.dispose()


def test_two_workers_never_take_the_same_job(
    granted_any: Platform, local_backend, tmp_path
) -> None:
    granted = granted_any
    ids = [
        service.submit(
            granted,
            script_job(
                tmp_path,
                f"""
        import os
        open(os.path.join(os.environ["SHUYU_OUTPUT"], "result.csv"), "w").write("n\\n{i}\\n")
    """,
                name=f"job{i}",
            ),
        ).id
        for i in range(6)
    ]
    workers = [Worker(granted, local_backend, name=f"w{i}") for i in range(2)]
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    with granted.store.read() as conn:
        claims = [e.subject for e in ledger.entries(conn, action="job.preparing")]
    assert sorted(claims) == sorted(f"job:{i}" for i in ids), "each job claimed exactly once"
    assert all(service.view(granted, i).job.state is JobState.REVIEW_PENDING for i in ids)


def _wait_for_state(platform: Platform, job_id: str, state: JobState, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while service.view(platform, job_id).job.state is not state:
        assert time.monotonic() < deadline, f"job never reached {state}"
        time.sleep(0.1)


def test_a_killed_worker_leaves_no_stuck_job_and_no_sandbox(
    granted: Platform, sandbox_backend, tmp_path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    from dataclasses import replace

    spec = script_job(tmp_path, "import time\nwhile True: time.sleep(0.1)\n", name="sleeper")
    job = service.submit(granted, spec)
    env = {
        **os.environ,
        "SHUYU_HOME": str(granted.home),
        "SHUYU_USER": "worker-a",
        "SHUYU_BACKEND": sandbox_backend.name,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_state(granted, job.id, JobState.RUNNING)
        os.kill(proc.pid, signal.SIGKILL)  # the worker dies mid-job, without any clean-up
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert service.view(granted, job.id).job.state is JobState.RUNNING
    granted.settings = replace(granted.settings, worker_lease_seconds=1)
    import time

    time.sleep(2.5)
    recovered = Worker(granted, sandbox_backend, name="worker-b").recover()
    assert recovered == [job.id]
    view = service.view(granted, job.id)
    assert view.job.state is JobState.FAILED and view.job.failure == "worker_lost"
    assert sandbox_backend.list_leftovers() == []


def test_a_job_left_in_checks_by_a_dead_worker_is_failed_not_stuck(
    granted: Platform, local_backend, tmp_path
) -> None:
    from dataclasses import replace
    from datetime import timedelta

    from sqlalchemy import update

    from jobs import records
    from shuyu.canonical import utcnow
    from shuyu.schema import jobs

    job = service.submit(granted, example_job(tmp_path))
    with granted.store.transaction() as conn:
        for state in (
            JobState.PREPARING,
            JobState.RUNNING,
            JobState.COLLECTING,
            JobState.CHECKS_PENDING,
        ):
            records.transition(conn, job.id, state, "driven by the test", "test")
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job.id)
            .values(heartbeat_at=utcnow() - timedelta(minutes=5))
        )
    with pytest.raises(Exception, match="can no longer be cancelled"):
        service.cancel(granted, job.id)
    granted.settings = replace(granted.settings, worker_lease_seconds=30)
    assert Worker(granted, local_backend).recover() == [job.id]
    assert service.view(granted, job.id).job.failure == "worker_lost"
