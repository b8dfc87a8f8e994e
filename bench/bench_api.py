"""Authenticated job-status reads per second: `GET /api/jobs/{id}` with a bearer token, served
by uvicorn with two worker processes, on SQLite and on PostgreSQL (target >= 500/s).

Each request authenticates (token hash -> user -> memberships), checks the project, and reads
the job, its events and outputs. The load generator runs in this process (asyncio + httpx) and
shares the machine's cores with the server, so the figure is a floor.
Usage: python bench/bench_api.py [--seconds 10] [--concurrency 16] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, demo_data, ensure_tenant

GRANT = ROOT / "examples" / "grant-employment.yaml"
EXAMPLE = ROOT / "examples" / "jobs" / "employment"


def prepare(home: Path, db_url: str) -> tuple[str, str]:
    from catalog.service import register
    from jobs import service
    from policies.service import add_grant
    from shuyu.auth import create_token
    from shuyu.platform import init_home
    from shuyu.settings import Settings
    from shuyu.tenancy import add_member
    from shuyu.users import add_user, lookup, record_nda

    data = demo_data(1)
    platform, _ = init_home(Settings.from_env({}, home=home, db_url=db_url, actor="bench"))
    for name in ("residents", "enterprises", "contributions"):
        register(platform, data / f"{name}.yaml")
    ensure_tenant(platform, GRANT)
    add_grant(platform, GRANT)
    add_user(platform, "li", "analyst", tenant="乌海市数据运营有限公司")
    add_member(platform, "employment-insights", "li")
    from datetime import date

    record_nda(platform, "li", date(2026, 1, 5))
    folder = home.parent / "job"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("output"))
    job = service.submit(platform.acting_as(lookup(platform, "li")), folder / "job.yaml")
    token = create_token(platform, "li", "bench")["token"]
    platform.store.dispose()
    return job.id, token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, token: str, seconds: float, concurrency: int) -> tuple[int, int]:
    import httpx

    done = errors = 0
    stop = time.perf_counter() + seconds
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:

        async def one() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop:
                response = await client.get(url)
                if response.status_code == 200:
                    done += 1
                else:
                    errors += 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return done, errors


def run(label: str, db_url: str, seconds: float, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        job_id, token = prepare(home, db_url)
        port = free_port()
        env = {**os.environ, "SHUYU_HOME": str(home), "SHUYU_DB_URL": db_url}
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "api.http:app_from_env",
                "--workers",
                "2",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=ROOT,
        )
        try:
            import httpx

            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            url = f"http://127.0.0.1:{port}/api/jobs/{job_id}"
            asyncio.run(load(url, token, 2, concurrency))  # warm-up: pools, imports
            done, errors = asyncio.run(load(url, token, seconds, concurrency))
            print(
                f"{label:10s} {done / seconds:7.0f} authenticated job-status reads/s "
                f"(2 uvicorn workers, {concurrency} concurrent clients, {errors} errors; target >= 500/s)"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--pg-url", default=os.environ.get("SHUYU_TEST_PG_URL", ""))
    args = parser.parse_args()
    run("sqlite", "", args.seconds, args.concurrency)
    if args.pg_url:
        import sqlalchemy

        name = f"shuyu_bench_api_{os.getpid()}"
        admin = sqlalchemy.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            run(
                "postgresql",
                args.pg_url.rsplit("/", 1)[0] + f"/{name}",
                args.seconds,
                args.concurrency,
            )
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    else:
        print("postgresql: skipped (set SHUYU_TEST_PG_URL or --pg-url)")


if __name__ == "__main__":
    main()
