"""Every route of the OpenAPI schema, with a user of each role and tenant: the full allow/deny
matrix. A route that is not in RULES fails here, so no route ships without a rule.

ok: 2xx (or 409 when an earlier allowed call already changed the state); forbidden: 403;
hidden: 404 (another project's object is not confirmed to exist); anon: 401. Every 403/404
is an `access.denied` ledger entry.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from api.http import create_app
from jobs import service
from lineage.service import list_entries
from shuyu.platform import Platform
from shuyu.tenancy import add_tenant
from shuyu.users import lookup
from tests.identities import OTHER_TENANT, enrol

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "jobs" / "employment"
WHO = ["anonymous", "analyst", "outsider", "tenant_b", "reviewer", "auditor", "steward", "operator"]

OK, FORBIDDEN, HIDDEN, ANON = "ok", "forbidden", "hidden", "anon"


def rule(default: str, **overrides: str) -> dict[str, str]:
    """`default` for every signed-in user, 401 for anonymous unless overridden."""
    return {"anonymous": ANON, **dict.fromkeys(WHO[1:], default), **overrides}


STAFF_ONLY = dict(analyst=FORBIDDEN, outsider=FORBIDDEN, tenant_b=FORBIDDEN)
RULES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/health"): rule(OK, anonymous=OK),
    ("GET", "/api/me"): rule(OK),
    ("GET", "/api/projects"): rule(OK),
    ("GET", "/api/projects/{project}/budget"): rule(OK, outsider=HIDDEN, tenant_b=HIDDEN),
    ("GET", "/api/datasets"): rule(OK),
    ("GET", "/api/datasets/{name}"): rule(OK),
    ("GET", "/api/grants"): rule(OK),
    ("GET", "/api/jobs"): rule(OK),
    ("POST", "/api/jobs"): rule(FORBIDDEN, analyst=OK, outsider=HIDDEN, tenant_b=HIDDEN),
    ("GET", "/api/jobs/failures"): rule(OK, steward=FORBIDDEN, **STAFF_ONLY),
    ("GET", "/api/jobs/{job_id}"): rule(OK, outsider=HIDDEN, tenant_b=HIDDEN),
    ("POST", "/api/jobs/{job_id}/cancel"): rule(
        FORBIDDEN, analyst=OK, outsider=HIDDEN, tenant_b=HIDDEN
    ),
    ("GET", "/api/jobs/{job_id}/checks"): rule(
        FORBIDDEN, reviewer=OK, auditor=OK, outsider=HIDDEN, tenant_b=HIDDEN
    ),
    ("GET", "/api/ledger"): rule(OK, reviewer=FORBIDDEN, **STAFF_ONLY),
    ("GET", "/api/ledger/verify"): rule(OK, reviewer=FORBIDDEN, **STAFF_ONLY),
}


@pytest.fixture
def world(granted: Platform, tmp_path: Path) -> dict:
    from policies.service import add_grant

    add_tenant(granted, OTHER_TENANT)
    doc = yaml.safe_load((ROOT / "examples" / "grant-employment.yaml").read_text(encoding="utf-8"))
    doc.update(id="grant-b", project="transport-b", tenant=OTHER_TENANT)
    (tmp_path / "grant-b.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    add_grant(granted, tmp_path / "grant-b.yaml")
    headers = {
        "anonymous": {},
        "analyst": enrol(granted, "li", "analyst"),
        "outsider": enrol(granted, "sun", "analyst", projects=()),
        "tenant_b": enrol(granted, "ma", "analyst", tenant=OTHER_TENANT, projects=("transport-b",)),
        "reviewer": enrol(granted, "wang", "reviewer"),
        "auditor": enrol(granted, "zhao", "auditor"),
        "steward": enrol(granted, "chen", "steward"),
        "operator": enrol(granted, "ops", "operator"),
    }
    folder = tmp_path / "job"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("output"))
    job = service.submit(granted.acting_as(lookup(granted, "li")), folder / "job.yaml")
    return {"headers": headers, "job": job.id}


def _body() -> dict:
    return {
        "spec_yaml": (EXAMPLE / "job.yaml").read_text(encoding="utf-8"),
        "files": {
            "headcount.sql": (EXAMPLE / "headcount.sql").read_text(),
        },
    }


def _outcome(status: int) -> str:
    if status < 300 or status == 409:
        return OK
    return {401: ANON, 403: FORBIDDEN, 404: HIDDEN}.get(status, f"HTTP {status}")


def test_every_route_has_a_rule_and_the_matrix_holds(granted: Platform, world: dict) -> None:
    app = create_app(granted.settings)
    api = TestClient(app)
    routes = {
        (method.upper(), path)
        for path, item in app.openapi()["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert routes - set(RULES) == set(), "routes without an authorisation rule"
    assert set(RULES) - routes == set(), "rules for routes that no longer exist"
    params = {"job_id": world["job"], "name": "residents", "project": "employment-insights"}
    mismatches = []
    for (method, template), expected in sorted(RULES.items()):
        path = template.format(**params)
        for who in WHO:
            before = len(list_entries(granted))
            response = api.request(
                method,
                path,
                headers=world["headers"][who],
                json=_body() if (method, template) == ("POST", "/api/jobs") else None,
            )
            got = _outcome(response.status_code)
            if got != expected[who]:
                mismatches.append((method, template, who, expected[who], response.status_code))
            if got in (FORBIDDEN, HIDDEN):
                new = list_entries(granted)[before:]
                assert [e for e in new if e["action"] == "access.denied"], (method, path, who)
            if got != OK:
                assert set(response.json()) == {"error", "message", "file", "field", "fix"}
    assert mismatches == []
