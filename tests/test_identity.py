"""Sign-in and tenancy under attack: each bad credential or cross-tenant request is refused with
one clear error, changes nothing, and is a ledger entry."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select, update

from api.http import create_app
from api.session import COOKIE
from jobs import service
from lineage.service import list_entries
from shuyu.auth import revoke_token
from shuyu.canonical import utcnow
from shuyu.permissions import User, can_review_job
from shuyu.platform import Platform
from shuyu.schema import api_tokens, jobs, users
from shuyu.tenancy import add_tenant
from shuyu.users import disable, lookup, record_realname
from tests.identities import OTHER_TENANT, PASSWORD, PROJECT, TENANT, bearer, enrol

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "jobs" / "employment"
ERROR_SHAPE = {"error", "message", "file", "field", "fix"}


def refusals(platform: Platform, action: str = "auth.refused") -> list[dict]:
    return [e for e in list_entries(platform) if e["action"] == action]


def body() -> dict:
    return {
        "spec_yaml": (EXAMPLE / "job.yaml").read_text(encoding="utf-8"),
        "files": {
            "headcount.sql": (EXAMPLE / "headcount.sql").read_text(),
        },
    }


def sign_in(api: TestClient, name: str, password: str) -> object:
    form = api.get("/login")
    csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return api.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": csrf},
        follow_redirects=False,
    )


@pytest.fixture
def api(granted: Platform) -> TestClient:
    enrol(granted, "li", "analyst", password=True)
    return TestClient(create_app(granted.settings))


def test_wrong_password_is_refused_counted_and_locks(granted: Platform, api: TestClient) -> None:
    for _ in range(granted.settings.login_attempts):
        response = sign_in(api, "li", "not the password")
        assert response.status_code == 401
        assert "name or password is wrong" in response.text
        assert COOKIE not in response.cookies or "u" not in response.text
    with granted.store.read() as conn:
        row = conn.execute(select(users).where(users.c.name == "li")).first()
    assert row.locked_until is not None, "the lock is in the store"
    locked = sign_in(api, "li", PASSWORD)  # even the right password, while locked
    assert locked.status_code == 401
    assert api.get("/me", follow_redirects=False).headers["location"] == "/login"
    whys = [e["details"]["why"] for e in refusals(granted)]
    assert whys.count("wrong password") == granted.settings.login_attempts - 1
    assert "wrong password; account locked" in whys and "locked" in whys


def test_sign_in_sets_a_strict_httponly_cookie_and_whoami_shows_chinese(
    granted: Platform, api: TestClient
) -> None:
    response = sign_in(api, "li", PASSWORD)
    assert response.status_code == 303, response.text
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    page = api.get("/me")
    assert page.status_code == 200 and TENANT in page.text and PROJECT in page.text
    me = api.get("/api/me").json()
    assert me["tenant"] == TENANT and me["projects"] == [PROJECT] and "password" not in str(me)


def test_a_session_needs_its_csrf_token_for_every_change(
    granted: Platform, api: TestClient
) -> None:
    sign_in(api, "li", PASSWORD)
    before = len(service.list_jobs(granted))
    response = api.post("/api/jobs", json=body())  # the cookie rides along; no CSRF header
    assert response.status_code == 403 and set(response.json()) == ERROR_SHAPE
    assert "CSRF" in response.json()["message"]
    assert len(service.list_jobs(granted)) == before, "nothing was submitted"
    assert refusals(granted)[-1]["details"]["why"] == "missing CSRF token"
    no_form_token = api.post(
        "/login", data={"name": "li", "password": PASSWORD}, follow_redirects=False
    )
    assert no_form_token.status_code == 403 and "CSRF" in no_form_token.text


def test_a_cookie_signed_with_another_key_is_refused(granted: Platform, api: TestClient) -> None:
    forged = URLSafeTimedSerializer(b"0" * 32, salt="shuyu.session").dumps(
        {"c": "x", "u": "li", "e": 0}
    )
    api.cookies.set(COOKIE, forged)
    response = api.get("/api/me")
    assert response.status_code == 401 and set(response.json()) == ERROR_SHAPE
    assert "session cookie is invalid" in response.json()["message"]
    assert refusals(granted)[-1]["details"]["why"] == "session cookie does not verify"


def test_expired_and_revoked_tokens_are_refused(granted: Platform, api: TestClient) -> None:
    expired, revoked = bearer(granted, "li"), bearer(granted, "li")
    assert api.get("/api/me", headers=expired).status_code == 200
    with granted.store.transaction() as conn:  # time passes
        first = conn.execute(select(api_tokens.c.id).order_by(api_tokens.c.created_at)).all()
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == first[-2].id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    revoke_token(granted, first[-1].id)
    for headers, why in ((expired, "expired token"), (revoked, "revoked token")):
        response = api.get("/api/jobs", headers=headers)
        assert response.status_code == 401 and "unknown, expired or revoked" in response.text
        assert refusals(granted)[-1]["details"]["why"] == why


def test_disabling_ends_sessions_and_tokens_at_once(granted: Platform, api: TestClient) -> None:
    token = bearer(granted, "li")
    sign_in(api, "li", PASSWORD)
    assert api.get("/api/me").status_code == 200
    disable(granted, "li", "left the company")
    assert api.get("/api/me").status_code == 401, "the session cookie is dead"
    assert api.get("/api/me", headers=token).status_code == 401, "the token is dead"
    assert sign_in(api, "li", PASSWORD).status_code == 401
    with granted.store.read() as conn:
        assert all(r.revoked_at for r in conn.execute(select(api_tokens)))


def test_the_proxy_header_counts_only_when_on_and_from_the_proxy(granted: Platform) -> None:
    enrol(granted, "li", "analyst")
    forged = {"X-Shuyu-User": "li"}
    default = TestClient(create_app(granted.settings))
    response = default.get("/api/jobs", headers=forged)
    assert response.status_code == 401 and "single sign-on is off" in response.text
    elsewhere = replace(granted.settings, trusted_proxy=True, proxy_addresses="10.0.0.7")
    response = TestClient(create_app(elsewhere)).get("/api/jobs", headers=forged)
    assert response.status_code == 401 and "only from the trusted proxy" in response.text
    assert refusals(granted)[-1]["details"] == {
        "why": "proxy header from a non-proxy address",
        "from": "testclient",
    }
    proxied = replace(granted.settings, trusted_proxy=True, proxy_addresses="testclient")
    assert TestClient(create_app(proxied)).get("/api/jobs", headers=forged).status_code == 200


def test_an_analyst_without_a_confidentiality_agreement_cannot_submit(
    granted: Platform,
) -> None:
    token = enrol(granted, "zhou", "analyst", nda=False)
    api = TestClient(create_app(granted.settings))
    response = api.post("/api/jobs", json=body(), headers=token)
    assert response.status_code == 403 and "confidentiality agreement" in response.text
    assert service.list_jobs(granted) == []
    assert refusals(granted, "access.denied")[-1]["subject"] == f"project:{PROJECT}"


@pytest.fixture
def two_tenants(granted: Platform, tmp_path: Path) -> dict:
    """Tenant A (li, a job in employment-insights) and tenant B (ma, its own project)."""
    from policies.service import add_grant

    add_tenant(granted, OTHER_TENANT)
    doc = yaml.safe_load((ROOT / "examples" / "grant-employment.yaml").read_text(encoding="utf-8"))
    doc.update(id="grant-b", project="transport-b", tenant=OTHER_TENANT)
    (tmp_path / "grant-b.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True))
    add_grant(granted, tmp_path / "grant-b.yaml")
    li = enrol(granted, "li", "analyst")
    ma = enrol(granted, "ma", "analyst", tenant=OTHER_TENANT, projects=("transport-b",))
    folder = tmp_path / "job"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("output"))
    job = service.submit(granted.acting_as(lookup(granted, "li")), folder / "job.yaml")
    return {"li": li, "ma": ma, "job": job.id}


def test_tenant_b_cannot_name_tenant_a_s_job_or_project_anywhere(
    granted: Platform, two_tenants: dict
) -> None:
    api = TestClient(create_app(granted.settings))
    ma, job = two_tenants["ma"], two_tenants["job"]
    with granted.store.read() as conn:
        before = conn.execute(select(jobs)).all()
    ledger_before = len(list_entries(granted))
    missing = api.get("/api/jobs/job-000000000000", headers=ma)
    for method, path in [
        ("get", f"/api/jobs/{job}"),
        ("post", f"/api/jobs/{job}/cancel"),
        ("get", f"/api/jobs/{job}/checks"),
        ("get", f"/api/grants?project={PROJECT}"),
    ]:
        response = api.request(method.upper(), path, headers=ma)
        assert response.status_code in (403, 404), (path, response.text)
        assert job not in response.text.replace(f"no job {job}", "")
        if response.status_code == 404 and "/jobs/" in path and "checks" not in path:
            assert response.json()["fix"] == missing.json()["fix"], (
                "same as a job that is not there"
            )
    assert api.get(f"/api/jobs?project={PROJECT}", headers=ma).json() == []
    assert [j["id"] for j in api.get("/api/jobs", headers=ma).json()] == []
    assert {g["project"] for g in api.get("/api/grants", headers=ma).json()} == {"transport-b"}
    submitted = api.post("/api/jobs", json=body(), headers=ma)  # the spec names A's project
    assert submitted.status_code == 404 and f"no project {PROJECT}" in submitted.text
    with granted.store.read() as conn:
        assert conn.execute(select(jobs)).all() == before, "nothing changed"
    denied = [e for e in list_entries(granted)[ledger_before:] if e["action"] == "access.denied"]
    assert len(denied) >= 5 and {e["actor"] for e in denied} == {"ma"}
    assert api.get(f"/api/jobs/{job}", headers=two_tenants["li"]).status_code == 200


def test_the_real_name_record_keeps_no_clear_id(granted: Platform) -> None:
    enrol(granted, "li", "analyst")
    resident_id = "11010519491231002X"
    record_realname(granted, "li", resident_id)
    with granted.store.read() as conn:
        row = conn.execute(select(users).where(users.c.name == "li")).first()
    assert row.realname_verified_at is not None and len(row.realname_hmac) == 64
    stored = (granted.home / "shuyu.db").read_bytes() + b"".join(
        p.read_bytes() for p in granted.home.glob("shuyu.db-wal")
    )
    assert resident_id.encode() not in stored and resident_id[:-1].encode() not in stored
    assert row.password_hash is None or row.password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    ("reviewer", "submitted_by", "tenant", "allowed"),
    [
        (User("wang", "reviewer", organisation="市大数据中心"), "li", TENANT, True),
        (User("wang", "reviewer", organisation=TENANT), "li", TENANT, False),
        (User("wang", "reviewer", organisation="市大数据中心"), "wang", TENANT, False),
        (User("zhao", "auditor"), "li", TENANT, False),
        (User.host_console("root"), "li", TENANT, False),
    ],
)
def test_reviewers_never_review_their_own_organisation_or_submission(
    reviewer: User, submitted_by: str, tenant: str, allowed: bool
) -> None:
    class Job:
        project = PROJECT

    job = Job()
    job.submitted_by, job.tenant = submitted_by, tenant  # type: ignore[attr-defined]
    assert can_review_job(reviewer, job) is allowed  # type: ignore[arg-type]


def test_lockout_and_tokens_on_both_stores(any_platform: Platform) -> None:
    """The failure count and the lock live in the store (row-locked on PostgreSQL)."""
    from shuyu.auth import sign_in as password_sign_in
    from shuyu.auth import token_user
    from shuyu.errors import Unauthenticated
    from tests.identities import enrol

    enrol(any_platform, "li", "analyst", projects=(), password=True)
    for _ in range(any_platform.settings.login_attempts):
        with pytest.raises(Unauthenticated):
            password_sign_in(any_platform, "li", "guess", "198.51.100.7")
    with pytest.raises(Unauthenticated, match="locked or disabled"):
        password_sign_in(any_platform, "li", PASSWORD, "198.51.100.7")
    token = bearer(any_platform, "li")["Authorization"].split()[1]
    assert token_user(any_platform, token, "x").name == "li"
    disable(any_platform, "li", "test")
    with pytest.raises(Unauthenticated):
        token_user(any_platform, token, "x")
    whys = [e["details"]["why"] for e in refusals(any_platform)]
    assert whys[-1] == "revoked token" and "locked" in whys


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_store_from_before_identity_gains_its_columns(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import sqlalchemy

    from shuyu.store import Store

    url = (
        request.getfixturevalue("pg_url") if store == "postgres" else f"sqlite:///{tmp_path}/old.db"
    )
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:  # the users table as the previous version made it
        conn.exec_driver_sql(
            "CREATE TABLE users (name VARCHAR(128) PRIMARY KEY, role VARCHAR(16) NOT NULL, "
            "created_at TIMESTAMP NOT NULL, created_by VARCHAR(128) NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO users VALUES ('li', 'analyst', '2026-01-01 00:00:00', 'root')"
        )
    engine.dispose()
    upgraded = Store(url)
    upgraded.create_schema()
    with upgraded.read() as conn:
        row = conn.execute(select(users).where(users.c.name == "li")).first()
    upgraded.dispose()
    assert row.failed_logins == 0 and row.session_epoch == 0 and row.tenant is None
