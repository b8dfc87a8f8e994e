"""Executes one job: workspace, then each action in a sandbox, then output collection.

Shared by development runs (synthetic twin, outputs shown to the analyst) and production runs
(real workspace, outputs held by the platform for the egress checks). The runner never reads
what the job wrote except through `collect_outputs`, which does not follow links.
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from jobs import records
from jobs.records import Job
from jobs.states import FailureKind, JobState, OutputStatus
from policies.grant import policy_from_record
from policies.workspace import build_workspace
from sandbox.base import Failure, Limits, SandboxBackend, SandboxRequest, SandboxResult
from sandbox.collect import CollectionReport, collect_outputs
from shuyu.canonical import sha256_file
from shuyu.errors import ShuyuError
from shuyu.platform import Platform
from shuyu.schema import grants, job_outputs, jobs

SQL_RUNNER = Path(__file__).with_name("sql_runner.py")


class JobStopped(Exception):
    """The job reached a terminal state while running (failed or cancelled)."""


@dataclass
class JobRun:
    """One job being executed; `current_run_id` lets a watcher terminate its sandbox."""

    platform: Platform
    backend: SandboxBackend
    job_id: str
    actor: str
    current_run_id: str | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    logs: dict[str, bytes] = field(default_factory=dict)

    @property
    def job_dir(self) -> Path:
        return self.platform.jobs_dir / self.job_id

    def limits(self) -> Limits:
        s = self.platform.settings
        return Limits(
            wall_seconds=float(s.job_wall_seconds),
            memory_bytes=s.job_memory_mb * 1024**2,
            pids=s.job_pids,
            output_bytes=s.job_output_mb * 1024**2,
            log_bytes=s.job_log_kb * 1024,
        )

    def move(
        self, state: JobState, reason: str, failure: FailureKind | None = None, **fields: Any
    ) -> Job:
        with self.platform.store.transaction() as conn:
            return records.transition(
                conn, self.job_id, state, reason, self.actor, failure, **fields
            )

    def fail(self, failure: FailureKind, reason: str) -> None:
        self.move(JobState.FAILED, reason, failure)
        raise JobStopped(reason)

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            self.move(JobState.CANCELLED, "cancelled while running")
            raise JobStopped("cancelled")

    def execute(self) -> Job:
        """From `preparing` to `checks_pending` (production) or `completed` (development)."""
        with self.platform.store.read() as conn:
            job = records.load(conn, self.job_id)
        try:
            try:
                workspace = build_workspace(
                    self.platform, job.project, "synthetic" if job.dev else "real"
                )
            except ShuyuError as exc:
                self.fail(FailureKind.POLICY, f"workspace could not be built: {exc.message}")
            with self.platform.store.transaction() as conn:
                conn.execute(
                    update(jobs).where(jobs.c.id == self.job_id).values(workspace_id=workspace.id)
                )
            spec = job.spec["spec"]
            for action_name in job.spec["order"]:
                self.check_cancelled()
                self.run_action(action_name, spec["actions"][action_name], workspace.path)
            final = JobState.COMPLETED if job.dev else JobState.CHECKS_PENDING
            reason = (
                "development run finished"
                if job.dev
                else "outputs collected; awaiting egress checks"
            )
            return self.move(final, reason)
        except JobStopped:
            with self.platform.store.read() as conn:
                return records.load(conn, self.job_id)

    def run_action(self, name: str, action: dict[str, Any], workspace: Path) -> None:
        self.move(JobState.RUNNING, f"running action {name}")
        if action.get("dp"):
            self.run_dp(name, action, workspace)
            return
        if action.get("table"):
            return self.run_table(name, action, workspace)
        code_dir = self.job_dir / "code"
        self._stage_inputs(action, code_dir)
        make_readable(code_dir)
        output_dir = self.job_dir / "work" / name
        output_dir.mkdir(parents=True, exist_ok=True)
        run_id = f"{self.job_id}-{name}"[:63].rstrip("-")
        request = SandboxRequest(
            run_id=run_id,
            argv=_argv(action),
            workspace=workspace,
            code_dir=code_dir,
            output_dir=output_dir,
            limits=self.limits(),
            env={"SHUYU_INPUTS": "/code/_inputs", "SHUYU_ACTION": name},
        )
        self.current_run_id = run_id
        try:
            self.backend.prepare(request)
            result = self.backend.execute(request)
            self._keep_log(name, result)
            self.move(JobState.COLLECTING, f"collecting outputs of action {name}")
            report = collect_outputs(
                output_dir,
                [*action["outputs"], *_helpers(action)],
                max_files=self.platform.settings.job_max_outputs,
                max_bytes=request.limits.output_bytes,
                dest=self.job_dir / "collected" / name,
            )
        finally:
            self.backend.cleanup(run_id)
            self.current_run_id = None
            shutil.rmtree(output_dir, ignore_errors=True)
        self._record_outputs(name, action, report)
        self.check_cancelled()
        if result.failure is not None:
            self.fail(FailureKind(result.failure.value), f"action {name}: {_detail(result)}")
        if report.refused:
            first = report.refused[0]
            self.fail(
                FailureKind.INVALID_OUTPUTS, f"action {name}: output {first.path}: {first.reason}"
            )
        if report.missing:
            self.fail(
                FailureKind.INVALID_OUTPUTS,
                f"action {name}: declared output {report.missing[0]} was not written",
            )

    def run_dp(self, name: str, action: dict[str, Any], workspace: Path) -> None:
        """DP queries run here, in the platform: the sandbox never sees their true values.

        Production runs reserve (ε, δ) from the grant's per-person account first, in the name
        of the analyst who submitted the job (the worker is the agent); development runs on the
        synthetic twin spend nothing (there is no real person in a twin). A refusal before any
        data is read (the query's form, its literals, the budget) says why; ANY failure after
        that is the one fixed message, and the ε stays spent.
        """
        from privacy.engine import run_dp_query
        from privacy.request import DP_FAILED, DPQueryFailed
        from privacy.service import identifier_kinds, run_dp_action

        with self.platform.store.read() as conn:
            job = records.load(conn, self.job_id)
            policy = policy_from_record(
                conn.execute(
                    select(grants.c.policy).where(grants.c.id == job.grant_id)
                ).scalar_one()
            )
        ((out_path, declared),) = action["outputs"].items()
        target = self.job_dir / "collected" / name / out_path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            if job.dev:
                kinds = identifier_kinds(self.platform, workspace)
                result = run_dp_query(workspace, action["dp"], identifier_kinds=kinds)
            else:
                result, _ = run_dp_action(
                    self.platform,
                    job.project,
                    self.job_id,
                    workspace,
                    action["dp"],
                    grant=policy.dp,
                    actor=job.submitted_by,
                )
        except DPQueryFailed:  # after reading data: one kind, one message, ε spent
            self.fail(FailureKind.INTERNAL, f"action {name}: {DP_FAILED}")
        except ShuyuError as exc:  # refused before reading data: the platform's own words
            self.fail(FailureKind.POLICY, f"action {name}: {exc.message}")
        except Exception:
            self.fail(FailureKind.INTERNAL, f"action {name}: {DP_FAILED}")
        self.move(JobState.COLLECTING, f"collecting the DP result of action {name}")
        try:
            suffix = target.suffix.lower()
            if suffix == ".parquet":
                result.to_parquet(target)  # ε, mechanisms and error bounds in the file's metadata
            else:  # text formats carry each cell's 95% error bound in a column beside it
                table = result.table.copy()
                for column, bounds in result.error_bounds.items():
                    table[f"{column}_error95"] = bounds
                if suffix == ".json":
                    table.to_json(target, orient="records", force_ascii=False)
                else:
                    table.to_csv(target, index=False)
            meta = json.loads(json.dumps(result.metadata(), default=str))
            with self.platform.store.transaction() as conn:
                conn.execute(
                    insert(job_outputs).values(
                        job_id=self.job_id,
                        action=name,
                        path=out_path,
                        status="collected",
                        kind=declared["kind"],
                        sha256=sha256_file(target),
                        size_bytes=target.stat().st_size,
                        rows=len(result.table),
                        columns=len(result.table.columns),
                        stored_path=self.platform.relative(target),
                        declared={**declared, "dp": meta},
                    )
                )
        except Exception:  # the ε is spent; the failure says nothing about the data
            self.fail(FailureKind.INTERNAL, f"action {name}: {DP_FAILED}")

    def run_table(self, name: str, action: dict[str, Any], workspace: Path) -> None:
        """Trusted aggregation: the platform computes the table over the workspace (`aggregation/`).

        The contributor-level rows behind the cells are written beside the job's collected
        outputs, never inside them, so no later action's sandbox can read them; the stored
        declaration points the egress checks at them and marks the table the platform's own.
        """
        from aggregation.service import check_declared, run_table_query

        ((out_path, declared),) = action["outputs"].items()
        target = self.job_dir / "collected" / name / out_path
        helper_rel = "_platform/contributors.parquet"
        helper = self.job_dir / "held" / name / helper_rel
        try:
            result = run_table_query(workspace, action["table"]["query"], target, helper)
            filled = check_declared(result.query, declared, f"actions.{name}.outputs.{out_path}")
        except ShuyuError as exc:
            self.fail(FailureKind.POLICY, f"action {name}: {exc.message}")
        self.move(JobState.COLLECTING, f"collecting the table of action {name}")
        meta = {**filled, "contributors": helper_rel, "aggregation": result.metadata()}
        rows = [
            dict(
                path=out_path,
                status="collected",
                kind="table",
                sha256=sha256_file(target),
                size_bytes=target.stat().st_size,
                rows=len(result.table),
                columns=len(result.table.columns),
                stored_path=self.platform.relative(target),
                declared=meta,
            ),
            dict(
                path=helper_rel,
                status="helper",
                sha256=sha256_file(helper),
                size_bytes=helper.stat().st_size,
                rows=result.helper_rows,
                stored_path=self.platform.relative(helper),
                declared={"contributors_for": out_path, "platform": True},
            ),
        ]
        blank = dict.fromkeys(c.name for c in job_outputs.columns if c.name != "id")
        with self.platform.store.transaction() as conn:
            conn.execute(
                insert(job_outputs),
                [{**blank, "job_id": self.job_id, "action": name, **r} for r in rows],
            )

    def _stage_inputs(self, action: dict[str, Any], code_dir: Path) -> None:
        """Earlier actions' collected outputs, readable by later actions at /code/_inputs/<action>/."""
        for need in action.get("needs", []):
            dep, _, path = need.partition("/")
            source = self.job_dir / "collected" / dep
            target = code_dir / "_inputs" / dep
            if path:
                (target / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / path, target / path)
            elif not target.exists():
                shutil.copytree(source, target)

    def _keep_log(self, name: str, result: SandboxResult) -> None:
        log_dir = self.job_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / f"{name}.log"
        path.write_bytes(
            result.log
            + (b"\n[log truncated at the platform's cap]\n" if result.log_truncated else b"")
        )
        self.logs[name] = path.read_bytes()
        with self.platform.store.transaction() as conn:
            conn.execute(
                insert(job_outputs).values(
                    job_id=self.job_id,
                    action=name,
                    path=f"logs/{name}.log",
                    status=OutputStatus.LOG.value,
                    kind="text",
                    size_bytes=path.stat().st_size,
                    stored_path=self.platform.relative(path),
                    reason="truncated" if result.log_truncated else None,
                )
            )

    def _record_outputs(self, name: str, action: dict[str, Any], report: CollectionReport) -> None:
        declared = action["outputs"]
        rows = []
        helpers = _helpers(action)
        for out in report.accepted:
            helper_for = helpers.get(out.path)
            rows.append(
                dict(
                    job_id=self.job_id,
                    action=name,
                    path=out.path,
                    status=(OutputStatus.HELPER if helper_for else OutputStatus.COLLECTED).value,
                    kind=None if helper_for else declared[out.path]["kind"],
                    sha256=out.sha256,
                    size_bytes=out.size,
                    rows=out.rows,
                    columns=out.columns,
                    declared={"contributors_for": helper_for} if helper_for else declared[out.path],
                    stored_path=self.platform.relative(
                        self.job_dir / "collected" / name / out.path
                    ),
                )
            )
        for status, items in (
            (OutputStatus.REFUSED, report.refused),
            (OutputStatus.UNDECLARED, report.undeclared),
        ):
            for item in items:
                rows.append(
                    dict(
                        job_id=self.job_id,
                        action=name,
                        path=item.path,
                        status=status.value,
                        size_bytes=item.size,
                        reason=item.reason,
                        declared=declared.get(item.path),
                    )
                )
        for path in report.missing:
            rows.append(
                dict(
                    job_id=self.job_id,
                    action=name,
                    path=path,
                    status=OutputStatus.MISSING.value,
                    reason="declared but not written",
                    declared=declared.get(path),
                )
            )
        if rows:
            blank = dict.fromkeys(c.name for c in job_outputs.columns if c.name != "id")
            with self.platform.store.transaction() as conn:
                conn.execute(insert(job_outputs), [{**blank, **r} for r in rows])


def _helpers(action: dict[str, Any]) -> dict[str, str]:
    """Contributor helper files of an action: helper path -> the output it backs."""
    return {
        o["contributors"]: path for path, o in action["outputs"].items() if o.get("contributors")
    }


def _argv(action: dict[str, Any]) -> list[str]:
    language, _, code_file = action["run"].partition(" ")
    code_file = code_file.strip()
    if language == "python":
        return ["python", f"/code/{code_file}"]
    (output,) = action["outputs"]  # validated: a sql action writes its one declared output
    return ["python", "/code/_shuyu/run_sql.py", f"/code/{code_file}", f"/output/{output}"]


def prepare_code(job_dir: Path) -> None:
    """Platform helpers next to the analyst's code (read-only in the sandbox)."""
    helper = job_dir / "code" / "_shuyu" / "run_sql.py"
    helper.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SQL_RUNNER, helper)
    make_readable(job_dir / "code")


def make_readable(folder: Path) -> None:
    """The sandbox user is not the platform's user: code must be world-readable (never writable)."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _detail(result: SandboxResult) -> str:
    """The detailed failure reason, for reviewers and operators only: it quotes the exit status,
    which the job chooses (analysts read `jobs.states.FAILURE_REASONS` instead)."""
    if result.failure is Failure.NONZERO_EXIT:
        return f"the code exited with status {result.exit_code}; the log is held by the platform"
    return result.reason
