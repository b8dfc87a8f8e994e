"""CLI commands for jobs, the worker and the sandbox runtime."""

from __future__ import annotations

from pathlib import Path

import click

from api.output import console, emit, json_option, progress_bar
from shuyu.errors import ValidationError

JOB_COLUMNS = ["id", "name", "project", "dev", "state", "failure", "reason", "submitted_at"]


def register(main: click.Group) -> None:
    from api.cli import acting_user, platform_from, sees_everything

    @main.group()
    def job() -> None:
        """Run jobs: development runs on the synthetic twin, production runs through the queue."""

    @job.command("run")
    @click.argument("spec", type=click.Path(path_type=Path))
    @click.option(
        "--dev",
        is_flag=True,
        help="run now on the synthetic twin; outputs land in output/ beside the spec",
    )
    @click.option(
        "--backend", type=click.Choice(["local", "docker"]), help="override SHUYU_BACKEND"
    )
    @json_option
    @click.pass_context
    def job_run(
        ctx: click.Context, spec: Path, dev: bool, backend: str | None, as_json: bool
    ) -> None:
        """Run a job now against the synthetic twin (--dev)."""
        if not dev:
            raise ValidationError(
                "only development runs start directly",
                field="--dev",
                fix="add --dev, or queue a production run with `shuyu job submit SPEC`",
            )
        from jobs.backends import open_backend
        from jobs.dev import run_dev

        platform = platform_from(ctx)
        with progress_bar(not as_json) as progress:
            sandbox = open_backend(platform.settings, backend, progress)
        result = run_dev(platform, spec, sandbox)
        if as_json:
            emit(result.to_dict(), True)
        else:
            emit(
                {
                    "job": result.job.id,
                    "state": result.job.state.value,
                    "reason": result.job.reason,
                    "outputs": str(result.output_dir),
                },
                False,
                title="development run (synthetic data)",
            )
            emit(result.outputs, False, ["action", "status", "rows", "path"], title="outputs")
            for name, text in result.logs.items():
                console.rule(f"log of {name}")
                console.print(text, markup=False, highlight=False)
        if result.job.state.value != "completed":
            raise SystemExit(1)

    @job.command("submit")
    @click.argument("spec", type=click.Path(path_type=Path))
    @json_option
    @click.pass_context
    def job_submit(ctx: click.Context, spec: Path, as_json: bool) -> None:
        """Queue a production run on the real workspace; prints the job id."""
        from jobs.service import JobView, submit

        platform = platform_from(ctx)
        user = acting_user(ctx, platform)
        job = submit(platform, spec)
        emit(JobView(job, [], []).to_dict(full=sees_everything(user)), as_json, title="queued")

    @job.command("status")
    @click.argument("job_id")
    @json_option
    @click.pass_context
    def job_status(ctx: click.Context, job_id: str, as_json: bool) -> None:
        """State, reason, history and declared outputs of a job (all of it for reviewers)."""
        from jobs.service import view

        platform = platform_from(ctx)
        user = acting_user(ctx, platform)
        detail = view(platform, job_id).to_dict(detail=True, full=sees_everything(user))
        if as_json:
            emit(detail, True)
            return
        emit(
            {k: v for k, v in detail.items() if k not in ("events", "outputs")}, False, title=job_id
        )
        emit(detail["events"], False, ["at", "from", "to", "reason"], title="history")
        emit(detail["outputs"], False, ["action", "path", "status", "reason"], title="outputs")

    @job.command("wait")
    @click.argument("job_id")
    @click.option("--timeout", type=float, default=600, show_default=True, help="seconds")
    @json_option
    @click.pass_context
    def job_wait(ctx: click.Context, job_id: str, timeout: float, as_json: bool) -> None:
        """Wait until the job finishes, fails or is cancelled; exit 1 unless it succeeded."""
        from jobs.service import JobView, wait

        platform = platform_from(ctx)
        user = acting_user(ctx, platform)
        job = wait(platform, job_id, timeout)
        emit(JobView(job, [], []).to_dict(full=sees_everything(user)), as_json)
        if job.state.value in ("failed", "cancelled"):
            raise SystemExit(1)

    @job.command("list")
    @click.option("--project")
    @click.option("--state")
    @json_option
    @click.pass_context
    def job_list(ctx: click.Context, project: str | None, state: str | None, as_json: bool) -> None:
        """List jobs, newest first."""
        from jobs.service import JobView, list_jobs

        platform = platform_from(ctx)
        user = acting_user(ctx, platform)
        full = sees_everything(user)
        rows = [JobView(j, [], []).to_dict(full=full) for j in list_jobs(platform, project, state)]
        emit(rows, as_json, JOB_COLUMNS)

    @job.command("failures")
    @click.option("--project")
    @json_option
    @click.pass_context
    def job_failures(ctx: click.Context, project: str | None, as_json: bool) -> None:
        """Failed production runs per project, by kind and submitter (for reviewers: probing)."""
        from jobs.service import failures

        platform = platform_from(ctx)
        acting_user(ctx, platform)
        emit(
            failures(platform, project),
            as_json,
            ["project", "runs", "failed", "failed_last_day", "by_kind", "by_submitter"],
        )

    @job.command("cancel")
    @click.argument("job_id")
    @json_option
    @click.pass_context
    def job_cancel(ctx: click.Context, job_id: str, as_json: bool) -> None:
        """Cancel a queued job, or ask the worker to stop a running one."""
        from jobs.service import JobView, cancel

        platform = platform_from(ctx)
        user = acting_user(ctx, platform)
        emit(JobView(cancel(platform, job_id), [], []).to_dict(full=sees_everything(user)), as_json)

    @main.command()
    @click.option("--once", is_flag=True, help="exit when the queue is empty")
    @click.option(
        "--backend", type=click.Choice(["local", "docker"]), help="override SHUYU_BACKEND"
    )
    @click.pass_context
    def worker(ctx: click.Context, once: bool, backend: str | None) -> None:
        """Take queued production jobs and run them in sandboxes (run several at once if you like)."""
        from jobs.backends import open_backend
        from jobs.worker import Worker

        platform = platform_from(ctx)
        with progress_bar() as progress:
            sandbox = open_backend(platform.settings, backend, progress)
        w = Worker(platform, sandbox)
        console.print(f"worker {w.name} on backend {sandbox.name}")
        n = w.run(
            once=once, on_job=lambda j: console.print(f"{j.id}: {j.state.value} ({j.reason})")
        )
        console.print(f"worker {w.name} ran {n} job(s)")

    @main.group()
    def sandbox() -> None:
        """The job runtime and sandbox backends."""

    @sandbox.command("build-image")
    @click.option(
        "--backend", type=click.Choice(["local", "docker"]), default="docker", show_default=True
    )
    @json_option
    @click.pass_context
    def build_image_cmd(ctx: click.Context, backend: str, as_json: bool) -> None:
        """Build the job runtime (debootstrap, no registry needed) and, for Docker, import it as an image."""
        from jobs.backends import open_backend

        settings = ctx.find_root().obj["settings"]
        with progress_bar(not as_json) as progress:
            chosen = open_backend(settings, backend, progress)
        ok, why = chosen.available()
        runtime = getattr(chosen, "runtime", None)
        emit(
            {
                "backend": chosen.name,
                "available": ok,
                "detail": why,
                "rootfs": str(getattr(runtime, "rootfs", "")),
                "image_id": getattr(runtime, "image_id", None),
            },
            as_json,
        )


def register_serve(main: click.Group) -> None:
    @main.command()
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=8700, show_default=True, type=int)
    @click.pass_context
    def serve(ctx: click.Context, host: str, port: int) -> None:
        """Serve the HTTP API (JSON; OpenAPI at /docs)."""
        import uvicorn

        from api.http import create_app

        uvicorn.run(create_app(ctx.find_root().obj["settings"]), host=host, port=port)
