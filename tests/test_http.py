"""The HTTP API over a real store, through a real ASGI client: roles decide, one error shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from shuyu.errors import PermissionDenied
from shuyu.permissions import (
    ROLES,
    User,
    can_read_catalog,
    can_read_checks,
    can_read_job_details,
    can_read_ledger,
    can_submit_jobs,
    check_can_read_checks,
    check_can_read_job_details,
)
from shuyu.platform import Platform
from tests.identities import enrol

HEADERS: dict[str, dict[str, str]] = {}

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jobs" / "employment"


@pytest.fixture
def api(granted: Platform) -> TestClient:
    HEADERS.clear()
    for name, role in [
        ("li", "analyst"),
        ("wang", "reviewer"),
        ("zhao", "auditor"),
        ("chen", "steward"),
    ]:
        HEADERS[name] = enrol(granted, name, role)
    return TestClient(create_app(granted.settings))


def as_user(name: str) -> dict[str, str]:
    return HEADERS.get(name, {"Authorization": "Bearer shuyu_not-a-token"})


@pytest.mark.parametrize(
    ("role", "catalog", "submit", "checks", "ledger", "job_details"),
    [
        ("analyst", True, True, False, False, False),
        ("reviewer", True, False, True, False, True),
        ("auditor", True, False, True, True, True),
        ("steward", True, False, False, True, False),
        ("operator", True, False, False, True, True),
        (None, False, False, False, False, False),
    ],
)
def test_permission_table(role, catalog, submit, checks, ledger, job_details) -> None:
    user = User("someone", role)
    assert (
        can_read_catalog(user),
        can_submit_jobs(user),
        can_read_checks(user),
        can_read_ledger(user),
        can_read_job_details(user),
    ) == (catalog, submit, checks, ledger, job_details)
    if not job_details:
        with pytest.raises(PermissionDenied, match="details of production jobs"):
            check_can_read_job_details(user)


def test_check_functions_raise_with_a_fix() -> None:
    with pytest.raises(PermissionDenied, match="may not read egress check reports") as err:
        check_can_read_checks(User("li", "analyst"))
    assert err.value.fix
    assert set(ROLES) == {"steward", "analyst", "reviewer", "auditor", "operator"}


def test_read_endpoints(api: TestClient) -> None:
    me = as_user("li")
    assert {d["dataset"] for d in api.get("/api/datasets", headers=me).json()} == {
        "residents",
        "enterprises",
        "contributions",
    }
    assert api.get("/api/datasets/residents", headers=me).json()["columns"]["resident_id"][
        "role"
    ] == ("direct_identifier")
    assert api.get("/api/grants", headers=me).json()[0]["project"] == "employment-insights"
    assert api.get("/api/ledger/verify", headers=as_user("zhao")).json()["ok"] is True


def test_unknown_and_missing_identities_are_denied(api: TestClient) -> None:
    assert api.get("/api/datasets").status_code == 401
    response = api.get("/api/datasets", headers=as_user("mallory"))
    assert response.status_code == 401 and "token is unknown" in response.json()["message"]


def test_errors_have_one_shape(api: TestClient) -> None:
    response = api.get("/api/datasets/nothing", headers=as_user("li"))
    assert response.status_code == 404
    assert set(response.json()) == {"error", "message", "file", "field", "fix"}


def test_analyst_submits_but_cannot_read_checks_or_ledger(api: TestClient) -> None:
    body = {
        "spec_yaml": (EXAMPLE / "job.yaml").read_text(encoding="utf-8"),
        "files": {
            "headcount.sql": (EXAMPLE / "headcount.sql").read_text(),
        },
    }
    response = api.post("/api/jobs", json=body, headers=as_user("li"))
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["state"] == "queued" and job["submitted_by"] == "li"
    assert (
        api.get(f"/api/jobs/{job['id']}", headers=as_user("li")).json()["events"][0]["to"]
        == "queued"
    )
    assert api.get(f"/api/jobs/{job['id']}/checks", headers=as_user("li")).status_code == 403
    assert api.get(f"/api/jobs/{job['id']}/checks", headers=as_user("wang")).status_code == 200
    assert api.get("/api/ledger", headers=as_user("li")).status_code == 403
    assert api.post("/api/jobs", json=body, headers=as_user("wang")).status_code == 403
    assert (
        api.post(f"/api/jobs/{job['id']}/cancel", headers=as_user("li")).json()["state"]
        == "cancelled"
    )


def test_submit_refuses_paths_that_escape(api: TestClient) -> None:
    body = {
        "spec_yaml": (EXAMPLE / "job.yaml").read_text(encoding="utf-8"),
        "files": {"../evil.py": "x"},
    }
    response = api.post("/api/jobs", json=body, headers=as_user("li"))
    assert response.status_code == 400 and "not a plain relative path" in response.json()["message"]


def test_the_cli_is_the_host_console_and_refuses_analyst_and_reviewer_identities(
    granted: Platform, tmp_path: Path
) -> None:
    """SHUYU_USER naming an analyst or a reviewer is refused (they sign in to the API); the
    console records the OS user and reads everything; an operator's name is recorded beside
    the OS user."""
    import json
    import shutil

    from click.testing import CliRunner

    from api.cli import main as cli
    from jobs import records, service
    from lineage.service import list_entries
    from shuyu.users import lookup

    enrol(granted, "li", "analyst")
    enrol(granted, "wang", "reviewer")
    enrol(granted, "ops", "operator")
    folder = tmp_path / "job"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("output"))
    job = service.submit(granted.acting_as(lookup(granted, "li")), folder / "job.yaml")
    with granted.store.transaction() as conn:
        records.transition(conn, job.id, records.JobState.CANCELLED, "stopped", "w")
    runner = CliRunner()
    home = {"SHUYU_HOME": str(granted.home)}
    before = len(list_entries(granted))
    for name in ("li", "wang"):
        refused = runner.invoke(
            cli, ["job", "status", job.id, "--json"], env={**home, "SHUYU_USER": name}
        )
        assert refused.exit_code != 0 and "is for operators and stewards" in refused.output
        assert job.id not in refused.output
    assert len(list_entries(granted)) == before, "a refused console changes nothing"
    console = runner.invoke(
        cli, ["job", "status", job.id, "--json"], env={**home, "SHUYU_USER": ""}
    )
    assert console.exit_code == 0 and json.loads(console.output)["reason"] == "stopped"
    cancel = runner.invoke(cli, ["tenant", "add", "某公司"], env={**home, "SHUYU_USER": "ops"})
    assert cancel.exit_code == 0, cancel.output
    actor = list_entries(granted, subject="tenant:某公司")[0]["actor"]
    assert actor.startswith("ops (os:") and actor.endswith(")")
