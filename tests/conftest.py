"""Shared fixtures: real SQLite and PostgreSQL stores, real DuckDB, demo data generated once."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy

from shuyu.platform import Platform, init_home
from shuyu.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
GRANT_EXAMPLE = ROOT / "examples" / "grant-employment.yaml"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The real PostgreSQL that `make test` starts; failing to reach it fails the run, never skips."""
    url = os.environ.get("SHUYU_TEST_PG_URL")
    if not url:
        done = subprocess.run(
            [str(ROOT / "scripts" / "start-postgres.sh")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            pytest.fail(f"PostgreSQL could not start: {done.stderr.strip()}")
        url = done.stdout.strip()
    return url


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database per test, dropped afterwards."""
    name = f"shuyu_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def make_platform(home: Path, db_url: str = "", **overrides: object) -> Platform:
    settings = Settings.from_env({}, home=home, db_url=db_url, actor="tester", **overrides)
    platform, _ = init_home(settings)
    return platform


def ensure_tenant(platform: Platform) -> None:
    """The example grant's tenant: grants name registered tenants."""
    from shuyu.tenancy import add_tenant, list_tenants
    from tests.identities import TENANT

    if TENANT not in {t["name"] for t in list_tenants(platform)}:
        add_tenant(platform, TENANT)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    """The same test on both stores."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    platform = make_platform(tmp_path / "home", url)
    yield platform
    platform.store.dispose()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    platform = make_platform(tmp_path / "home")
    yield platform
    platform.store.dispose()


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from catalog.demo_data import generate_demo_data

    out = tmp_path_factory.mktemp("demo")
    generate_demo_data(out, scale=1)
    return out


@pytest.fixture
def granted(platform: Platform, demo_dir: Path) -> Platform:
    """A platform with the demo datasets registered and the example grant added."""
    return register_and_grant(platform, demo_dir)


def register_and_grant(platform: Platform, demo_dir: Path, grant: Path = GRANT_EXAMPLE) -> Platform:
    from catalog.service import register
    from policies.service import add_grant

    for name in ("residents", "enterprises", "contributions"):
        register(platform, demo_dir / f"{name}.yaml")
    ensure_tenant(platform)
    add_grant(platform, grant)
    return platform


@pytest.fixture(scope="session")
def job_runtime():
    """The real job runtime (debootstrap rootfs + venv), built once and cached across runs."""
    from sandbox.runtime import ensure_runtime

    return ensure_runtime(Settings.from_env().runtime_cache)


def _backend(name: str, runtime):
    import dataclasses

    from sandbox.base import get_backend
    from sandbox.runtime import build_image

    if name == "docker":
        done = subprocess.run(
            [str(ROOT / "scripts" / "start-dockerd.sh")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            pytest.fail(f"the Docker engine could not start: {done.stderr.strip()}")
        if runtime.image_id is None:
            runtime = dataclasses.replace(runtime, image_id=build_image(runtime))
    backend = get_backend(name, runtime)
    ok, why = backend.available()
    if not ok:
        pytest.fail(f"sandbox backend {name} is not usable here: {why}")
    return backend


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("local", marks=pytest.mark.bwrap),
        pytest.param("docker", marks=pytest.mark.docker),
    ],
)
def sandbox_backend(request: pytest.FixtureRequest, job_runtime):
    """Each test using this runs on the real bubblewrap backend and on the real Docker backend."""
    return _backend(request.param, job_runtime)


@pytest.fixture(scope="session")
def local_backend(job_runtime):
    return _backend("local", job_runtime)
