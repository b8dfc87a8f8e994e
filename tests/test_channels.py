"""Side channels of a production run, attacked from inside the job on the real worker, with
bubblewrap and with Docker: whatever the job encodes in its exit status, in the names of files
it did not declare, in a parser's error or in an exception, the analyst reads only the
platform's fixed vocabulary, on every surface (API, CLI as an analyst, errors, ledger), while a
reviewer reads the detail."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.cli import main as cli
from api.http import create_app
from jobs import service
from jobs.states import FAILURE_REASONS, STATE_REASONS, FailureKind, OutputStatus
from jobs.worker import Worker
from shuyu.platform import Platform
from shuyu.schema import workspaces
from shuyu.users import lookup
from tests.identities import enrol

TOKENS: dict[str, dict[str, str]] = {}

# A small cell of the real data: what every attack below tries to smuggle out.
SECRET_SQL = (
    "SELECT count(*) % 200 + 20 FROM residents WHERE gender = (SELECT min(gender) FROM residents)"
    " AND district = (SELECT min(district) FROM residents)"
)
PEOPLE_SQL = "SELECT resident_id, gender, district FROM residents ORDER BY resident_id LIMIT 20"
WAGE_SQL = "SELECT resident_id, wage_base FROM contributions ORDER BY resident_id LIMIT 1"
PRELUDE = """
import duckdb, os, sys
con = duckdb.connect(os.environ["SHUYU_WORKSPACE"], read_only=True)
out = os.environ["SHUYU_OUTPUT"]
"""
ATTACKS = {
    # exits with the cell's value as its status
    "exit_status": f"sys.exit(con.execute({SECRET_SQL!r}).fetchone()[0])\n",
    # one empty undeclared file per person, named with their pseudonym, gender and district
    "file_names": f"""
open(os.path.join(out, "result.csv"), "w").write("n\\n12\\n")
for row in con.execute({PEOPLE_SQL!r}).fetchall():
    open(os.path.join(out, "_".join(map(str, row))), "w").close()
""",
    # a declared CSV that breaks at a line whose number carries the cell's value
    "parser_line": f"""
secret = con.execute({SECRET_SQL!r}).fetchone()[0]
with open(os.path.join(out, "result.csv"), "w") as fh:
    fh.write("n,m\\n" + "1,2\\n" * (30000 + secret) + "3,4,5\\n1,2\\n")
""",
    # an exception whose message holds a person's pseudonym and wage
    "exception": f"""
person, wage = con.execute({WAGE_SQL!r}).fetchone()
raise ValueError(f"wage of {{person}} is {{wage}}")
""",
}
ANALYST_KEYS = {
    "id",
    "name",
    "project",
    "dev",
    "state",
    "failure",
    "reason",
    "backend",
    "submitted_by",
    "submitted_at",
    "updated_at",
}
VOCABULARY = set(STATE_REASONS.values()) | set(FAILURE_REASONS.values())


def attack_job(tmp_path: Path, name: str, code: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "main.py").write_text(textwrap.dedent(PRELUDE + code), encoding="utf-8")
    spec = {
        "version": 1,
        "name": name.replace("_", "-"),
        "project": "employment-insights",
        "purpose": "public_governance",
        "actions": {
            "main": {
                "run": "python main.py",
                "outputs": {"result.csv": {"kind": "table", "counts": ["n"], "context": "probe"}},
            }
        },
    }
    (folder / "job.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return folder / "job.yaml"


def true_values(platform: Platform, job_id: str) -> dict[str, Any]:
    """What the attacks encode, read by the test from the real workspace the job ran on."""
    job = service.view(platform, job_id).job
    with platform.store.read() as conn:
        rel = conn.execute(
            select(workspaces.c.path).where(workspaces.c.id == job.workspace_id)
        ).scalar_one()
    con = duckdb.connect(str(platform.resolve(rel)), read_only=True)
    person, wage = con.execute(WAGE_SQL).fetchone()
    return {
        "secret": con.execute(SECRET_SQL).fetchone()[0],
        "names": ["_".join(map(str, r)) for r in con.execute(PEOPLE_SQL).fetchall()],
        "person": str(person),
        "wage": str(wage),
    }


def assert_fixed_vocabulary(view: dict[str, Any]) -> None:
    assert ANALYST_KEYS <= set(view) <= ANALYST_KEYS | {"events", "outputs"}
    assert view["reason"] in VOCABULARY
    assert view["failure"] is None or view["failure"] in set(FailureKind)
    assert view["submitted_at"].endswith(":00+00:00") and view["updated_at"].endswith(":00+00:00")
    for event in view.get("events", []):
        assert event["reason"] in VOCABULARY and event["at"].endswith(":00+00:00")
    for output in view.get("outputs", []):
        assert set(output) == {"action", "path", "status"}
        assert output["path"] == "result.csv" and output["status"] in set(OutputStatus)


@pytest.fixture
def staff(granted: Platform) -> Platform:
    for name, role in [("li", "analyst"), ("wang", "reviewer"), ("zhao", "auditor")]:
        TOKENS[name] = enrol(granted, name, role)
    return granted


def test_an_analyst_reads_only_the_vocabulary_of_a_production_run(
    staff: Platform, sandbox_backend, tmp_path: Path
) -> None:
    analyst = staff.acting_as(lookup(staff, "li"))
    ids = {
        name: service.submit(analyst, attack_job(tmp_path, name, code)).id
        for name, code in ATTACKS.items()
    }
    assert Worker(staff, sandbox_backend).run(once=True) == len(ATTACKS)
    truth = true_values(staff, ids["exit_status"])
    secret = truth["secret"]

    api = TestClient(create_app(staff.settings))
    li, wang = TOKENS["li"], TOKENS["wang"]
    runner = CliRunner()
    env = {"SHUYU_HOME": str(staff.home), "SHUYU_USER": "li"}

    seen: list[str] = []  # everything the analyst can read, on every surface
    for job_id in ids.values():
        view = api.get(f"/api/jobs/{job_id}", headers=li).json()
        assert_fixed_vocabulary(view)
        seen.append(json.dumps(view, ensure_ascii=False))
        status = runner.invoke(cli, ["job", "status", job_id, "--json"], env=env)
        assert status.exit_code != 0, "the host console refuses an analyst's identity"
        seen.append(status.output)
        for denied in (f"/api/jobs/{job_id}/checks", "/api/jobs/failures", "/api/ledger"):
            response = api.get(denied, headers=li)
            assert response.status_code == 403
            seen.append(response.text)
        seen.append(api.post(f"/api/jobs/{job_id}/cancel", headers=li).text)
    listed = api.get("/api/jobs", headers=li).json()
    for view in listed:
        assert_fixed_vocabulary(view)
    seen.append(json.dumps(listed, ensure_ascii=False))
    for args in (
        ["job", "list", "--json"],
        ["ledger", "list", "--json"],
        ["checks", "show", ids["exception"]],
    ):
        seen.append(runner.invoke(cli, args, env=env).output)
    analyst_sees = "\n".join(seen)

    states = {name: api.get(f"/api/jobs/{i}", headers=li).json() for name, i in ids.items()}
    assert states["exit_status"]["failure"] == "nonzero_exit"
    assert states["parser_line"]["failure"] == "invalid_outputs"
    assert states["exception"]["failure"] == "nonzero_exit"
    assert states["file_names"]["state"] == "review_pending"
    assert states["file_names"]["outputs"] == [
        {"action": "main", "path": "result.csv", "status": "collected"}
    ]
    assert f"status {secret}" not in analyst_sees, "the exit status"
    assert f"Line: {30002 + secret}" not in analyst_sees, "the parser's line number"
    assert not [n for n in truth["names"] if n in analyst_sees], "names of undeclared files"
    assert "undeclared" not in analyst_sees and "exited" not in analyst_sees
    assert truth["person"] not in analyst_sees and "ValueError" not in analyst_sees
    assert str(staff.home) not in analyst_sees, "no host path"

    # The reviewer reads the detail, and sees the probing.
    detail = {name: api.get(f"/api/jobs/{i}", headers=wang).json() for name, i in ids.items()}
    reviewer_sees = json.dumps(detail, ensure_ascii=False)
    assert f"status {secret}" in detail["exit_status"]["reason"]
    assert f"Line: {30002 + secret}" in reviewer_sees
    undeclared = [o["path"] for o in detail["file_names"]["outputs"] if o["status"] == "undeclared"]
    assert sorted(undeclared) == sorted(truth["names"])
    (log,) = [o for o in detail["exception"]["outputs"] if o["status"] == "log"]
    assert log["size_bytes"] > 0, "the log (with the exception) is held for reviewers"
    (counts,) = api.get("/api/jobs/failures", headers=wang).json()
    assert (counts["runs"], counts["failed"]) == (4, 3)
    assert counts["by_kind"] == {"nonzero_exit": 2, "invalid_outputs": 1}
    assert counts["by_submitter"] == {"li": 3}
    reviewer_cli = runner.invoke(
        cli, ["job", "failures", "--json"], env={**env, "SHUYU_USER": "zhao"}
    )
    assert json.loads(reviewer_cli.output) == [counts]
