"""The HTTP API: the same services as the CLI, as JSON. Run with `shuyu serve`.

Every request is authenticated (`api.session`: a bearer token, a signed session cookie, or
the single-sign-on proxy's header where the deployment turns it on) and carries only its
user: the services check what that user may do and see, record every denial, and answer
another tenant's objects as not found. One platform (one store engine, one pool) per process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.guard import PathScrubber, RequestGuard, error_body
from api.session import Sessions, authenticate
from shuyu.errors import PlatformError, ShuyuError
from shuyu.permissions import User
from shuyu.platform import Platform, open_platform
from shuyu.settings import Settings
from shuyu.store import safe_url

LOG = logging.getLogger("shuyu.http")


@dataclass(frozen=True)
class Caller:
    """One request's view of the process-wide platform: the same store, acting as `user`."""

    platform: Platform
    user: User

    @property
    def full(self) -> bool:
        from jobs.service import sees_full

        return sees_full(self.user)


class JobSubmission(BaseModel):
    spec_yaml: str = Field(description="the job spec, as YAML text")
    files: dict[str, str] = Field(
        default_factory=dict, description="code files by path relative to the spec"
    )


def create_app(settings: Settings) -> FastAPI:
    base = open_platform(settings)
    scrub = PathScrubber(
        settings.home, settings.runtime_cache, store_url=safe_url(settings.resolved_db_url)
    )
    app = FastAPI(
        title="shuyu 数域",
        version="0.1.0",
        description="Privacy-preserving compute over public data",
    )
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_kb * 1024)
    app.router.on_shutdown.append(base.store.dispose)
    sessions = Sessions(base)

    @app.exception_handler(ShuyuError)
    async def _shuyu_error(_: Request, exc: ShuyuError) -> JSONResponse:
        if isinstance(exc, PlatformError):  # the store or the home failed: internals, for the log
            LOG.error("platform unavailable: %s", exc)
            return JSONResponse(
                status_code=exc.http_status,
                content=error_body(
                    exc.code, "the platform is not available right now; operators have the details"
                ),
            )
        return JSONResponse(status_code=exc.http_status, content=scrub.error(exc))

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        LOG.error("unexpected error", exc_info=exc)  # the detail is for operators, in the log
        return JSONResponse(
            status_code=500,
            content=error_body("internal", "the server failed; operators have the details"),
        )

    def caller(request: Request) -> Caller:
        user = authenticate(base, sessions, request)
        return Caller(base.acting_as(user), user)

    from api import pages

    pages.register(app, base, sessions)

    @app.get("/api/me")
    def me(c: Caller = Depends(caller)) -> dict[str, Any]:
        from shuyu.users import whoami

        return whoami(c.platform)

    @app.get("/api/projects")
    def projects(c: Caller = Depends(caller)) -> list[dict[str, Any]]:
        from shuyu.tenancy import list_projects

        return list_projects(c.platform)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/datasets")
    def datasets(c: Caller = Depends(caller)) -> list[dict[str, Any]]:
        from catalog.service import list_datasets

        return [v.summary() for v in list_datasets(c.platform)]

    @app.get("/api/datasets/{name}")
    def dataset(name: str, c: Caller = Depends(caller)) -> dict[str, Any]:
        from catalog.service import show

        return show(c.platform, name)

    @app.get("/api/grants")
    def grants(project: str | None = None, c: Caller = Depends(caller)) -> list[dict[str, Any]]:
        from policies.service import list_grants

        return list_grants(c.platform, project)

    @app.get("/api/jobs")
    def jobs(
        project: str | None = None, state: str | None = None, c: Caller = Depends(caller)
    ) -> list[dict[str, Any]]:
        from jobs.service import JobView, list_jobs

        return [
            JobView(j, [], []).to_dict(full=c.full) for j in list_jobs(c.platform, project, state)
        ]

    @app.post("/api/jobs", status_code=201)
    def submit(body: JobSubmission, c: Caller = Depends(caller)) -> dict[str, Any]:
        from jobs.service import JobView, submit_files

        job = submit_files(c.platform, body.spec_yaml, body.files)
        return JobView(job, [], []).to_dict(full=c.full)

    @app.get("/api/jobs/failures")
    def failures(project: str | None = None, c: Caller = Depends(caller)) -> list[dict[str, Any]]:
        """Failed production runs per project (probing shows up here): reviewers and auditors."""
        from jobs.service import failures as failures_of

        return failures_of(c.platform, project)

    @app.get("/api/projects/{project}/budget")
    def budget(project: str, c: Caller = Depends(caller)) -> list[dict[str, Any]]:
        """The project's DP accounts: ε and δ used of their caps, and the guarantee in words."""
        from privacy.budget_view import budget_view

        return [v.to_dict() for v in budget_view(c.platform, project)]

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str, c: Caller = Depends(caller)) -> dict[str, Any]:
        from jobs.service import view

        return view(c.platform, job_id).to_dict(detail=True, full=c.full)

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str, c: Caller = Depends(caller)) -> dict[str, Any]:
        from jobs.service import JobView
        from jobs.service import cancel as cancel_job

        return JobView(cancel_job(c.platform, job_id), [], []).to_dict(full=c.full)

    @app.get("/api/jobs/{job_id}/checks")
    def job_checks(job_id: str, c: Caller = Depends(caller)) -> list[dict[str, Any]]:
        from egress_review.service import job_checks as checks_of

        return checks_of(c.platform, job_id)

    @app.get("/api/ledger")
    def ledger(
        subject: str | None = None,
        action: str | None = None,
        limit: int | None = 1000,
        c: Caller = Depends(caller),
    ) -> list[dict[str, Any]]:
        from lineage.service import list_entries

        return list_entries(c.platform, subject, action, limit)

    @app.get("/api/ledger/verify")
    def verify(c: Caller = Depends(caller)) -> dict[str, Any]:
        from lineage.service import verify_ledger

        return verify_ledger(c.platform)

    return app


def app_from_env() -> FastAPI:
    """For `uvicorn --factory api.http:app_from_env --workers N`: settings from the environment."""
    return create_app(Settings.from_env())
