"""The HTTP API: the same services as the CLI, as JSON. Run with `shuyu serve`.

The caller's identity comes from the `X-Shuyu-User` header set by the deployment's
authenticating proxy; it is recorded in the ledger as the actor, and its registered role
(`shuyu user add`) decides what it may do. An unregistered name may do nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shuyu.errors import PermissionDenied, ShuyuError
from shuyu.permissions import (
    User,
    check_can_read_catalog,
    check_can_read_checks,
    check_can_read_jobs,
    check_can_read_ledger,
    check_can_submit_jobs,
)
from shuyu.platform import Platform, open_platform
from shuyu.settings import Settings
from shuyu.users import lookup


class JobSubmission(BaseModel):
    spec_yaml: str = Field(description="the job spec, as YAML text")
    files: dict[str, str] = Field(
        default_factory=dict, description="code files by path relative to the spec"
    )


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="shuyu 数域",
        version="0.1.0",
        description="Privacy-preserving compute over public data",
    )

    @app.exception_handler(ShuyuError)
    async def _shuyu_error(_: Request, exc: ShuyuError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content=exc.to_dict())

    base = open_platform(settings)  # one platform and store engine for the process
    app.router.on_shutdown.append(base.store.dispose)

    def platform(x_shuyu_user: str | None = Header(default=None)) -> Platform:
        """The request carries only its user; the store is the process's."""
        if not x_shuyu_user:
            raise PermissionDenied(
                "no identity on the request", fix="send X-Shuyu-User (set by the proxy)"
            )
        return base.acting_as(x_shuyu_user)

    def caller(p: Platform) -> User:
        return lookup(p, p.actor)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/datasets")
    def datasets(p: Platform = Depends(platform)) -> list[dict[str, Any]]:
        from catalog.service import list_datasets

        check_can_read_catalog(caller(p))
        return [v.summary() for v in list_datasets(p)]

    @app.get("/api/datasets/{name}")
    def dataset(name: str, p: Platform = Depends(platform)) -> dict[str, Any]:
        from catalog.service import show

        check_can_read_catalog(caller(p))
        return show(p, name)

    @app.get("/api/grants")
    def grants(project: str | None = None, p: Platform = Depends(platform)) -> list[dict[str, Any]]:
        from policies.service import list_grants

        check_can_read_catalog(caller(p))
        return list_grants(p, project)

    @app.get("/api/jobs")
    def jobs(
        project: str | None = None, state: str | None = None, p: Platform = Depends(platform)
    ) -> list[dict[str, Any]]:
        from jobs.service import JobView, list_jobs

        check_can_read_jobs(caller(p))
        return [JobView(j, [], []).to_dict() for j in list_jobs(p, project, state)]

    @app.post("/api/jobs", status_code=201)
    def submit(body: JobSubmission, p: Platform = Depends(platform)) -> dict[str, Any]:
        from jobs.service import JobView, submit_files

        check_can_submit_jobs(caller(p))
        return JobView(submit_files(p, body.spec_yaml, body.files), [], []).to_dict()

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str, p: Platform = Depends(platform)) -> dict[str, Any]:
        from jobs.service import view

        check_can_read_jobs(caller(p))
        return view(p, job_id).to_dict(detail=True)

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str, p: Platform = Depends(platform)) -> dict[str, Any]:
        from jobs.service import JobView
        from jobs.service import cancel as cancel_job

        check_can_submit_jobs(caller(p))
        return JobView(cancel_job(p, job_id), [], []).to_dict()

    @app.get("/api/jobs/{job_id}/checks")
    def job_checks(job_id: str, p: Platform = Depends(platform)) -> list[dict[str, Any]]:
        from egress_review.service import job_checks as checks_of

        check_can_read_checks(caller(p))
        return checks_of(p, job_id)

    @app.get("/api/ledger")
    def ledger(
        subject: str | None = None,
        action: str | None = None,
        limit: int | None = 1000,
        p: Platform = Depends(platform),
    ) -> list[dict[str, Any]]:
        from lineage.service import list_entries

        check_can_read_ledger(caller(p))
        return list_entries(p, subject, action, limit)

    @app.get("/api/ledger/verify")
    def verify(p: Platform = Depends(platform)) -> dict[str, Any]:
        from lineage.service import verify_ledger

        check_can_read_ledger(caller(p))
        return verify_ledger(p)

    return app
