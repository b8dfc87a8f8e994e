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
    can_read_ledger,
    can_submit_jobs,
    check_can_read_checks,
)
from shuyu.platform import Platform
from shuyu.users import set_role

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jobs" / "employment"


@pytest.fixture
def api(granted: Platform) -> TestClient:
    for name, role in [
        ("li", "analyst"),
        ("wang", "reviewer"),
        ("zhao", "auditor"),
        ("chen", "steward"),
    ]:
        set_role(granted, name, role)
    return TestClient(create_app(granted.settings))


def as_user(name: str) -> dict[str, str]:
    return {"X-Shuyu-User": name}


@pytest.mark.parametrize(
    ("role", "catalog", "submit", "checks", "ledger"),
    [
        ("analyst", True, True, False, False),
        ("reviewer", True, False, True, False),
        ("auditor", True, False, True, True),
        ("steward", True, False, False, True),
        ("operator", True, False, False, True),
        (None, False, False, False, False),
    ],
)
def test_permission_table(role, catalog, submit, checks, ledger) -> None:
    user = User("someone", role)
    assert (
        can_read_catalog(user),
        can_submit_jobs(user),
        can_read_checks(user),
        can_read_ledger(user),
    ) == (catalog, submit, checks, ledger)


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
    assert api.get("/api/datasets").status_code == 403
    response = api.get("/api/datasets", headers=as_user("mallory"))
    assert response.status_code == 403 and "not a registered user" in response.json()["message"]


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
