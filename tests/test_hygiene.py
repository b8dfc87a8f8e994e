"""Host hygiene, attacked: what a job sees of the host in its mount table, what an HTTP client
learns from errors and oversized or doubled requests, who can read the platform's files."""

from __future__ import annotations

import stat
import textwrap
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from api.http import create_app
from jobs import service
from jobs.states import JobState
from jobs.worker import Worker
from shuyu.platform import Platform, init_home
from tests.identities import enrol

TOKENS: dict[str, dict[str, str]] = {}

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jobs" / "employment"

MOUNTINFO_JOB = """
import os, shutil
shutil.copyfile("/proc/self/mountinfo", os.path.join(os.environ["SHUYU_OUTPUT"], "mounts.txt"))
"""


def one_action_job(tmp_path: Path, code: str, outputs: dict) -> Path:
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "main.py").write_text(textwrap.dedent(code), encoding="utf-8")
    spec = {
        "version": 1,
        "name": "probe",
        "project": "employment-insights",
        "purpose": "public_governance",
        "actions": {"main": {"run": "python main.py", "outputs": outputs}},
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return folder / "job.yaml"


def test_the_mount_table_of_a_job_names_nothing_of_the_host(
    granted: Platform, sandbox_backend, tmp_path: Path
) -> None:
    spec = one_action_job(
        tmp_path, MOUNTINFO_JOB, {"mounts.txt": {"kind": "text", "context": "the mount table"}}
    )
    job = service.submit(granted, spec)
    Worker(granted, sandbox_backend).run(once=True)
    view = service.view(granted, job.id)
    assert view.job.state is JobState.REVIEW_PENDING, view.job.reason
    (row,) = [o for o in view.outputs if o["path"] == "mounts.txt"]
    mounts = granted.resolve(row["stored_path"]).read_text()
    assert "/workspace/workspace.duckdb" in mounts and " /code " in mounts  # the table is there
    for leak in (str(granted.home), view.job.id, view.job.workspace_id, str(tmp_path)):
        assert leak not in mounts, leak
    assert "/run/shuyu/" in mounts


def test_platform_files_are_private_and_init_repairs_old_modes(
    granted: Platform, local_backend, tmp_path: Path
) -> None:
    spec = one_action_job(
        tmp_path,
        'import os\nopen(os.path.join(os.environ["SHUYU_OUTPUT"], "r.csv"), "w").write("n\\n12\\n")\n',
        {"r.csv": {"kind": "table", "counts": ["n"], "context": "c"}},
    )
    job = service.submit(granted, spec)
    Worker(granted, local_backend).run(once=True)
    assert service.view(granted, job.id).job.state is JobState.REVIEW_PENDING
    home = granted.home

    def loose(root: Path) -> list[str]:
        """Files or folders that someone other than the platform's user could read."""
        found = []
        for path in [root, *root.rglob("*")]:
            rel = path.relative_to(home).as_posix()
            if "/code" in f"/{rel}" or rel.startswith("data/workspaces/"):
                continue  # the sandbox user reads these (bound in, behind 0700 folders)
            if stat.S_IMODE(path.lstat().st_mode) & 0o077:
                found.append(f"{rel} {stat.S_IMODE(path.lstat().st_mode):o}")
        return found

    assert loose(home) == []
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "shuyu.db").stat().st_mode) == 0o600
    snapshots = list(granted.snapshots_dir.glob("*/data.parquet"))
    assert snapshots and {stat.S_IMODE(p.stat().st_mode) for p in snapshots} == {0o400}
    logs = list(granted.jobs_dir.glob("*/logs/*.log"))
    reports = list(granted.jobs_dir.glob("*/checks/*"))
    assert logs and reports
    assert {stat.S_IMODE(p.stat().st_mode) for p in logs + reports} == {0o600}

    # A home made before the policy: 0755 folders, a 0644 store, 0444 snapshots. init repairs.
    for path in (home, granted.snapshots_dir, granted.jobs_dir):
        path.chmod(0o755)
    (home / "shuyu.db").chmod(0o644)
    for p in snapshots + logs:
        p.chmod(0o444 if p in snapshots else 0o644)
    _, changed = init_home(granted.settings)
    assert any("shuyu.db" in c for c in changed)
    assert loose(home) == []


@pytest.fixture
def api(granted: Platform) -> TestClient:
    TOKENS["li"] = enrol(granted, "li", "analyst")
    TOKENS["wang"] = enrol(granted, "wang", "reviewer")
    from dataclasses import replace

    return TestClient(create_app(replace(granted.settings, max_body_kb=64)))


def test_no_error_response_carries_a_host_path(api: TestClient, granted: Platform) -> None:
    li = TOKENS["li"]
    spec = (EXAMPLE / "job.yaml").read_text(encoding="utf-8")
    provocations = [
        api.post("/api/jobs", json={"spec_yaml": "version: [", "files": {}}, headers=li),
        api.post("/api/jobs", json={"spec_yaml": spec, "files": {}}, headers=li),  # no code
        api.post(
            "/api/jobs",
            json={"spec_yaml": spec.replace("employment-insights", "nowhere"), "files": {}},
            headers=li,
        ),
        api.post(
            "/api/jobs",
            json={
                "spec_yaml": spec.replace("headcount.sql", "../../../../etc/passwd"),
                "files": {},
            },
            headers=li,
        ),
        api.get("/api/jobs/job-000000000000", headers=li),
        api.get("/api/datasets/nothing", headers=li),
        api.get("/api/ledger", headers=li),
        api.get("/api/jobs/failures", headers=li),
    ]
    for response in provocations:
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert "message" in body or "detail" in body
        for host in (str(granted.home), str(granted.home.resolve()), "/tmp/", "/work/"):
            assert host not in response.text, (host, response.text)


def test_oversized_and_doubled_identity_requests_are_refused(api: TestClient) -> None:
    big = {"spec_yaml": "x" * (200 * 1024), "files": {}}
    response = api.post("/api/jobs", json=big, headers=TOKENS["li"])
    assert response.status_code == 413 and response.json()["error"] == "too_large"

    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    response = api.post(
        "/api/jobs",
        content=chunks(),
        headers={**TOKENS["li"], "Content-Type": "application/json"},
    )
    assert response.status_code == 413, "a chunked body is cut at the limit too"

    doubled = [("X-Shuyu-User", "li"), ("X-Shuyu-User", "wang")]  # the proxy appended
    response = api.get("/api/jobs/failures", headers=doubled)
    assert response.status_code == 400 and "more than once" in response.json()["message"]
    assert api.get("/api/jobs", headers=TOKENS["li"]).status_code == 200


def test_production_runs_per_analyst_are_capped_and_the_refusal_recorded(
    any_platform: Platform, demo_dir: Path
) -> None:
    """On both stores (the count and the insert share one transaction and one lock)."""
    from dataclasses import replace

    from lineage import ledger
    from tests.conftest import register_and_grant

    granted = register_and_grant(any_platform, demo_dir)

    TOKENS["li"] = enrol(granted, "li", "analyst")
    api = TestClient(create_app(replace(granted.settings, analyst_runs_per_day=2)))
    body = {
        "spec_yaml": (EXAMPLE / "job.yaml").read_text(encoding="utf-8"),
        "files": {
            "headcount.sql": (EXAMPLE / "headcount.sql").read_text(),
        },
    }
    li = TOKENS["li"]
    for _ in range(2):
        assert api.post("/api/jobs", json=body, headers=li).status_code == 201
    refused = api.post("/api/jobs", json=body, headers=li)
    assert refused.status_code == 422, refused.text
    assert "the next one is allowed from" in refused.json()["message"]
    assert len(service.list_jobs(granted)) == 2
    with granted.store.read() as conn:
        (entry,) = ledger.entries(conn, action="job.refused")
    assert entry.actor == "li" and entry.details["limit"] == 2
    next_at = entry.details["next_run_at"]
    assert next_at in refused.json()["message"] and next_at.endswith(":00+00:00")
    assert entry.details["why"] == "daily production run limit"


@pytest.mark.postgres
def test_a_store_failure_answers_without_the_store_address(
    tmp_path: Path, pg_url: str, pg_admin_url: str
) -> None:
    import sqlalchemy

    from tests.conftest import make_platform

    platform = make_platform(tmp_path / "home", pg_url)
    TOKENS["li"] = enrol(platform, "li", "analyst", projects=())
    api = TestClient(create_app(platform.settings))
    assert api.get("/api/jobs", headers=TOKENS["li"]).status_code == 200
    name = pg_url.rsplit("/", 1)[1]
    admin = sqlalchemy.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # the store goes away under the running server
        conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.dispose()
    response = api.get("/api/jobs", headers=TOKENS["li"])
    assert response.status_code == 503, response.text
    host = pg_url.split("@", 1)[1].split("/", 1)[0]
    assert host not in response.text and name not in response.text
    assert str(platform.home) not in response.text
