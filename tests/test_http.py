"""The HTTP API over a real store, through a real ASGI client, with the same error shape."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.http import create_app
from shuyu.platform import Platform

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "jobs" / "employment"


def client(platform: Platform) -> TestClient:
    return TestClient(create_app(platform.settings))


def test_read_endpoints(granted: Platform) -> None:
    c = client(granted)
    assert {d["dataset"] for d in c.get("/api/datasets").json()} == {
        "residents",
        "enterprises",
        "contributions",
    }
    assert (
        c.get("/api/datasets/residents").json()["columns"]["resident_id"]["role"]
        == "direct_identifier"
    )
    assert c.get("/api/grants").json()[0]["project"] == "employment-insights"
    assert c.get("/api/ledger/verify").json()["ok"] is True


def test_errors_have_one_shape(granted: Platform) -> None:
    response = client(granted).get("/api/datasets/nothing")
    assert response.status_code == 404
    assert set(response.json()) == {"error", "message", "file", "field", "fix"}


def test_submit_records_the_caller_as_actor(granted: Platform) -> None:
    c = client(granted)
    body = {
        "spec_yaml": (EXAMPLE / "job.yaml").read_text(encoding="utf-8"),
        "files": {
            "wages.py": (EXAMPLE / "wages.py").read_text(),
            "headcount.sql": (EXAMPLE / "headcount.sql").read_text(),
        },
    }
    response = c.post("/api/jobs", json=body, headers={"X-Shuyu-User": "analyst-li"})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["state"] == "queued" and job["submitted_by"] == "analyst-li"
    assert c.get(f"/api/jobs/{job['id']}").json()["events"][0]["to"] == "queued"
    assert c.post(f"/api/jobs/{job['id']}/cancel").json()["state"] == "cancelled"


def test_submit_refuses_paths_that_escape(granted: Platform) -> None:
    body = {
        "spec_yaml": (EXAMPLE / "job.yaml").read_text(encoding="utf-8"),
        "files": {"../evil.py": "x"},
    }
    response = client(granted).post("/api/jobs", json=body)
    assert response.status_code == 400 and "escapes" in response.json()["message"]
