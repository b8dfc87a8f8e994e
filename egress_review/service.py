"""The automated egress checks: every production output, before any human sees it.

Runs in the platform, never in the sandbox. Per collected output: personal-information
detection (including linkage to the project's pseudonyms and to raw identifiers of the granted
datasets, via keyed fingerprints), then statistical disclosure control for tables or
k-anonymity/l-diversity/risk for microdata. Logs are scanned too. The report travels with the
outputs into review; an output that fails a hard rule is `blocked` and can never be released.

Every output is read strictly by its declared format (``extract``), once, for both the scan and
the disclosure checks; one that cannot be read is blocked with a reason from a fixed vocabulary
(``verdicts.Unreadable``). For jobs, each output is checked in a child process with memory and
time limits (``check_process``). The checks return their outcome; moving the job on is the
worker's business, so this package does not depend on ``jobs``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, insert, select

from egress_review.declarations import Verification, check_declarations, value_statistics
from egress_review.detect import Finding, Severity, read_output, scan_text
from egress_review.differencing import flag_differences
from egress_review.extract import ReadLimits, read_table
from egress_review.fingerprints import FingerprintSet, fingerprint_key
from egress_review.microdata import check_microdata
from egress_review.sdc import TableReport, check_dof, check_table
from egress_review.verdicts import Unreadable, UnreadableOutput, Verdict
from policies.grant import DisclosureRules, policy_from_record
from shuyu.canonical import utcnow
from shuyu.errors import ValidationError
from shuyu.platform import Platform
from shuyu.schema import grants, job_outputs, jobs, output_checks, workspaces
from shuyu.vocabulary import OutputStatus

TABLE_SUFFIXES = {".csv", ".tsv", ".parquet"}
PERSONS = "persons (platform)"  # persons behind each cell, from the contributor data
# The job_outputs statuses the checks read (the kernel's words, so jobs is not imported).
COLLECTED, LOG, HELPER = OutputStatus.COLLECTED, OutputStatus.LOG, OutputStatus.HELPER


@dataclass
class OutputCheck:
    """The verdict on one output (or log) and the evidence behind it."""

    name: str
    kind: str
    status: Verdict = Verdict.PASS
    findings: list[dict[str, Any]] = field(default_factory=list)
    sdc: dict[str, Any] | None = None
    microdata: dict[str, Any] | None = None
    dp: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    unreadable: Unreadable | None = None  # why the output could not be read (then blocked)
    evidence: Any = field(default=None, repr=False)  # the TableReport / MicrodataReport behind it

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputCheck:
        """A check back from its report (as a check process returns it)."""
        unreadable = data.get("unreadable")
        return cls(
            name=data["name"],
            kind=data["kind"],
            status=Verdict(data["status"]),
            findings=list(data.get("findings") or []),
            sdc=data.get("sdc"),
            microdata=data.get("microdata"),
            dp=data.get("dp"),
            notes=list(data.get("notes") or []),
            unreadable=Unreadable(unreadable) if unreadable else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": Verdict(self.status).value,
            "unreadable": self.unreadable.value if self.unreadable else None,
            "findings": self.findings,
            "sdc": self.sdc,
            "microdata": self.microdata,
            "dp": self.dp,
            "notes": self.notes,
        }


def check_output(
    path: Path,
    name: str,
    declared: dict[str, Any],
    rules: DisclosureRules,
    *,
    fingerprints: FingerprintSet | None = None,
    pseudonyms: Path | None = None,
    contributors: Path | None = None,
    limits: ReadLimits | None = None,
) -> OutputCheck:
    """All checks for one output file; `declared` is the output's spec (kind and column roles).

    The file is parsed once, strictly by its declared format; the scan and the disclosure
    checks read that parse. A file that does not parse, or is over a limit, is blocked unread.
    """
    kind = declared.get("kind", "table")
    result = OutputCheck(name, kind)
    try:
        read = read_output(
            path,
            name,
            fingerprints=fingerprints,
            pseudonyms=pseudonyms,
            limits=limits,
            want_table=kind in ("table", "microdata") and not declared.get("dp"),
        )
    except UnreadableOutput as exc:
        return blocked_unread(result, exc.reason)
    findings = read.findings
    result.findings = [_finding(f) for f in findings]
    if blocking := [f for f in findings if f.severity is Severity.BLOCK]:
        result.status = Verdict.BLOCKED
        result.notes.append(
            f"{len(blocking)} personal-information finding(s): the output cannot be released"
        )
    elif findings:
        result.status = Verdict.REVIEW
        result.notes.append(
            f"{len(findings)} opaque token(s) that may be pseudonyms: the reviewer must judge them"
        )
    if declared.get("dp"):
        result.dp = declared["dp"]
        result.notes.append(
            "differentially private result computed by the platform: SDC rules do not apply"
        )
        return result
    if kind == "table" and path.suffix.lower() in TABLE_SUFFIXES | {".json"}:
        _check_table(result, path, declared, rules, contributors, read.table, workspace=pseudonyms)
        _redact(result, findings)
    elif kind == "microdata":
        _check_microdata(result, path, declared, rules, read.table)
    elif kind in ("figure", "text"):
        result.status = _worst(result.status, Verdict.REVIEW)
        result.notes.append(
            f"a {kind} cannot be checked automatically: the reviewer must inspect it"
        )
    return result


def _check_table(
    result: OutputCheck,
    path: Path,
    declared: dict[str, Any],
    rules: DisclosureRules,
    contributors: Path | None,
    table: pd.DataFrame | None = None,
    workspace: Path | None = None,
) -> None:
    """Declarations first (is it an aggregate, do its numbers hold?), then the SDC rules.

    With a workspace (production checks), a table whose numbers cannot be verified against data
    the platform holds goes to review marked unverified; with contributor data, the persons
    behind each cell are checked against the threshold too, whatever the count columns say.
    ``table`` is the output as the checks' strict reader parsed it.
    """
    table = _read(path) if table is None else table
    if declared.get("dof"):
        _check_dof(result, table, declared["dof"], rules)
    declarations = check_declarations(
        table, declared, workspace=workspace, contributors=contributors
    )
    if declarations.problems:
        result.status = Verdict.BLOCKED
        result.notes.extend(f"not an aggregate table: {p}" for p in declarations.problems)
    if declarations.verification is Verification.UNVERIFIED:
        result.status = _worst(result.status, Verdict.REVIEW)
        result.notes.append(
            "unverified: the table's numbers could not be checked against data the platform "
            "holds; the reviewer must judge them"
        )
    result.notes.extend(declarations.notes)
    if not (declared.get("counts") or declared.get("values")):
        result.status = _worst(result.status, Verdict.REVIEW)
        result.notes.append("no counts or values declared: the reviewer must judge every cell")
        return
    declared_columns = [
        *declarations.group_by,
        *(declared.get("counts") or []),
        *(declared.get("values") or []),
    ]
    if any(c not in table.columns for c in declared_columns):
        return  # blocked above: the declared columns are not there to check
    checked = dict(declared)
    if declarations.persons is not None:
        table = table.assign(**{PERSONS: declarations.persons})
        checked["counts"] = [*(declared.get("counts") or []), PERSONS]
        checked["group_by"] = declarations.group_by
    helper = contributors if declarations.helper_usable else None
    report = table_report(table, checked, rules, helper)
    result.sdc = {**report.to_dict(), "declarations": declarations.to_dict()}
    result.evidence = report
    result.status = _worst(result.status, Verdict.REVIEW if not report.ok else Verdict.PASS)
    if report.blocked:
        result.notes.append(
            f"{report.summary['fail']} cell(s) fail disclosure rules: suppress or round them before release"
        )


def _redact(result: OutputCheck, findings: list[Finding]) -> None:
    """SDC cells name their group-by keys; a key holding personal information is shown masked,
    so the report never copies a clear identifier into the store."""
    if not findings or result.sdc is None:
        return
    masked = {(f.row, f.column): f.masked for f in findings}
    for cell in result.sdc["cells"]:
        for column in cell["key"]:
            if (cell["row"] + 1, column) in masked:
                cell["key"][column] = masked[(cell["row"] + 1, column)]


def _check_dof(
    result: OutputCheck, table: pd.DataFrame, column: str, rules: DisclosureRules
) -> None:
    """A model fitted on too few residual degrees of freedom can reveal individual records."""
    if column not in table.columns:
        verdict = check_dof(None, rules)
    else:
        values = pd.to_numeric(table[column], errors="coerce")
        verdict = check_dof(None if values.isna().all() else float(values.min()), rules)
    result.notes.append(f"degrees of freedom: {verdict.numbers} -> {verdict.status}")
    if verdict.status != Verdict.PASS:
        result.status = _worst(result.status, Verdict.REVIEW)


def table_report(
    table: pd.DataFrame, declared: dict[str, Any], rules: DisclosureRules, contributors: Path | None
) -> TableReport:
    """The SDC verdict on a table from its declared roles: the one place checks and mitigations share."""
    counts, values = list(declared.get("counts") or []), list(declared.get("values") or [])
    group_by = list(
        declared.get("group_by") or [c for c in table.columns if c not in counts + values]
    )
    return check_table(
        table,
        group_by=group_by,
        counts=counts,
        values=values,
        rules=rules,
        contributors=contributors,
        contributor_id="contributor" if contributors else None,
        stats=value_statistics(declared),
    )


def _check_microdata(
    result: OutputCheck,
    path: Path,
    declared: dict[str, Any],
    rules: DisclosureRules,
    table: pd.DataFrame | None = None,
) -> None:
    report = check_microdata(
        _read(path) if table is None else table,
        quasi_identifiers=declared.get("quasi_identifiers") or [],
        sensitive=declared.get("sensitive") or [],
        rules=rules,
    )
    result.microdata = report.to_dict()
    result.evidence = report
    if report.blocked:
        result.status = Verdict.BLOCKED
        result.notes.append(
            "microdata fails k-anonymity or l-diversity: blocked (generalise or suppress first)"
        )
    elif not report.ok:
        result.status = _worst(result.status, Verdict.REVIEW)


def check_file(
    path: Path,
    *,
    kind: str = "table",
    counts: list[str] | None = None,
    values: list[str] | None = None,
    group_by: list[str] | None = None,
    quasi_identifiers: list[str] | None = None,
    sensitive: list[str] | None = None,
    statistics: list[str] | None = None,
    contributors: Path | None = None,
    rules: DisclosureRules | None = None,
) -> OutputCheck:
    """The same checks on any local file, so analysts can check an output before submitting it."""
    if not path.is_file():
        raise ValidationError("file not found", file=str(path), fix="check the path")
    declared = {
        "kind": kind,
        "counts": counts or [],
        "values": values or [],
        "group_by": group_by or [],
        "quasi_identifiers": quasi_identifiers or [],
        "sensitive": sensitive or [],
        "statistics": statistics or [],
    }
    return check_output(
        path, path.name, declared, rules or DisclosureRules(), contributors=contributors
    )


def enforce_k_file(
    path: Path,
    target: Path,
    quasi_identifiers: list[str],
    k: int,
    generalise: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Write a k-anonymous copy of a microdata file: generalise (`year`, `band:10`, `prefix:4`),
    then locally suppress quasi-identifier cells; return the log of every change."""
    from egress_review.microdata import band, enforce_k, prefix, year

    makers = {
        "year": lambda _: year(),
        "band": lambda a: band(float(a)),
        "prefix": lambda a: prefix(int(a)),
    }
    generalisers = {}
    for column, how in (generalise or {}).items():
        name, _, arg = how.partition(":")
        if name not in makers:
            raise ValidationError(
                f"unknown generalisation {how!r} for {column}",
                field="--generalise",
                fix="use year, band:WIDTH or prefix:N",
            )
        generalisers[column] = makers[name](arg)
    frame, log = enforce_k(_read(path), quasi_identifiers, k, generalisers)
    if target.suffix.lower() == ".parquet":
        frame.to_parquet(target, index=False)
    else:
        frame.to_csv(target, index=False)
    return log


def mitigate_file(
    path: Path,
    target: Path,
    method: str,
    *,
    counts: list[str],
    values: list[str],
    group_by: list[str] | None = None,
    contributors: Path | None = None,
    rules: DisclosureRules | None = None,
) -> dict[str, Any]:
    """Apply a reviewer's mitigation (`suppress`, `round:BASE`) to a table and write the result."""
    from egress_review.mitigate import mitigate_table

    table = _read(path)
    declared = {"counts": counts, "values": values, "group_by": group_by or []}
    report = table_report(table, declared, rules or DisclosureRules(), contributors)
    return mitigate_table(table, target, report, method=method).to_dict()


def acro_results(check: OutputCheck) -> dict[str, Any]:
    """The check in ACRO's results.json layout (readable by SACRO-Viewer)."""
    from egress_review.acro_format import to_acro_results

    if check.evidence is None:
        raise ValidationError(
            f"a {check.kind} check has no ACRO equivalent",
            field="--format",
            fix="use --format acro only for table or microdata checks",
        )
    return to_acro_results({check.name: check.evidence})


def job_checks(platform: Platform, job_id: str) -> list[dict[str, Any]]:
    """Stored check reports of a job, for reviewers and auditors of the job's project."""
    from shuyu.access import enforced
    from shuyu.errors import NotFound
    from shuyu.permissions import check_can_read_job_checks
    from shuyu.schema import jobs

    with platform.store.read() as conn:  # the job's row only: egress_review does not import jobs
        job = conn.execute(
            select(jobs.c.project, jobs.c.submitted_by, jobs.c.tenant).where(jobs.c.id == job_id)
        ).first()
    if job is None:
        raise NotFound(f"no job {job_id}", fix="see `shuyu job list`")
    with enforced(platform, "checks.read", f"job:{job_id}"):
        check_can_read_job_checks(platform.user, job, job_id)
    with platform.store.read() as conn:
        rows = conn.execute(
            select(output_checks.c.report)
            .where(output_checks.c.job_id == job_id)
            .order_by(output_checks.c.id)
        ).all()
    return [r.report for r in rows]


def check_log(
    data: bytes, name: str, *, fingerprints: FingerprintSet | None, pseudonyms: Path | None
) -> OutputCheck:
    result = OutputCheck(name, "log")
    findings = scan_text(data, name, fingerprints=fingerprints, pseudonyms=pseudonyms)
    result.findings = [_finding(f) for f in findings]
    if findings:
        result.status = Verdict.REVIEW
        result.notes.append(
            "the log holds personal information: reviewers see it masked; it is never released"
        )
    return result


@dataclass
class CheckOutcome:
    """The checks of one job: the report for reviewers and each output's verdict.

    The caller (the worker) stores it with :func:`record_checks` and moves the job on in the
    same transaction.
    """

    job_id: str
    report: dict[str, Any]
    checks: list[tuple[int, dict[str, Any]]]  # (job_outputs.id, OutputCheck.to_dict())

    @property
    def counts(self) -> dict[Verdict, int]:
        statuses = [Verdict(c["status"]) for _, c in self.checks if c["kind"] != "log"]
        return {v: statuses.count(v) for v in Verdict}

    @property
    def summary(self) -> str:
        counts = self.counts
        return (
            f"checks done: {counts[Verdict.PASS]} pass, {counts[Verdict.REVIEW]} need review, "
            f"{counts[Verdict.BLOCKED]} blocked; awaiting a reviewer"
        )


def check_job(platform: Platform, job_id: str) -> CheckOutcome:
    """Check every collected output and log of a job, each in a limited child process.

    Writes the report next to the job's files and returns the outcome; it changes no state.
    """
    from egress_review.check_process import CheckLimits, CheckTask, run_all

    with platform.store.read() as conn:
        job = conn.execute(
            select(jobs.c.grant_id, jobs.c.workspace_id).where(jobs.c.id == job_id)
        ).one()
        grant = conn.execute(
            select(grants.c.policy).where(grants.c.id == job.grant_id)
        ).scalar_one()
        workspace = conn.execute(
            select(workspaces).where(workspaces.c.id == job.workspace_id)
        ).one()
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                select(job_outputs).where(job_outputs.c.job_id == job_id).order_by(job_outputs.c.id)
            )
        ]
    rules = policy_from_record(grant).disclosure
    pseudonyms = platform.resolve(workspace.path)
    fingerprints = job_fingerprints(platform, workspace.snapshots)
    limits = CheckLimits.from_settings(platform.settings)
    helpers = {
        (r["action"], r["path"]): platform.resolve(r["stored_path"])
        for r in rows
        if r["status"] == HELPER
    }
    tasks: list[tuple[int, CheckTask]] = []
    for row in rows:
        stored = platform.resolve(row["stored_path"]) if row["stored_path"] else None
        if stored is None or row["status"] not in (COLLECTED, LOG):
            continue
        is_log = row["status"] == LOG
        declared = None if is_log else (row["declared"] or {})
        task = CheckTask(
            path=stored,
            name=f"log:{row['action']}" if is_log else f"{row['action']}/{row['path']}",
            declared=declared,
            rules=rules,
            fingerprints=fingerprints,
            pseudonyms=pseudonyms,
            contributors=helpers.get((row["action"], (declared or {}).get("contributors"))),
        )
        tasks.append((row["id"], task))
    reports = run_all([task for _, task in tasks], limits)
    done = [
        (output_id, OutputCheck.from_dict(report))
        for (output_id, _), report in zip(tasks, reports, strict=True)
    ]
    flag_differences(platform, job_id, done)  # across outputs and jobs: in the worker's process
    checks = [(output_id, check.to_dict()) for output_id, check in done]
    report = {
        "job": job_id,
        "checked_at": utcnow().isoformat(),
        "rules": rules.model_dump(),
        "outputs": [c for _, c in checks],
    }
    target = platform.jobs_dir / job_id / "checks" / "report.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps(report, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    return CheckOutcome(job_id, report, checks)


def record_checks(conn: Connection, outcome: CheckOutcome) -> None:
    """Store each output's check in the caller's transaction (the one that moves the job on)."""
    now = utcnow()
    for output_id, check in outcome.checks:
        conn.execute(
            insert(output_checks).values(
                job_id=outcome.job_id,
                output_id=output_id,
                status=check["status"],
                report=json.loads(json.dumps(check, default=str)),
                checked_at=now,
            )
        )


def blocked_unread(result: OutputCheck, reason: Unreadable) -> OutputCheck:
    """An output the checks could not read: blocked, saying why in the platform's own words."""
    result.status = Verdict.BLOCKED
    result.unreadable = reason
    result.notes.append(f"the output could not be checked ({reason.value}): it is blocked")
    return result


def job_fingerprints(platform: Platform, snapshots: dict[str, str]) -> FingerprintSet | None:
    # one file per manifest version of the same data (their direct identifiers may differ)
    present = sorted(
        p
        for sha in snapshots.values()
        for p in (platform.snapshots_dir / sha).glob("fingerprints*.parquet")
    )
    return FingerprintSet(present, fingerprint_key(platform)) if present else None


def _read(path: Path, limits: ReadLimits | None = None) -> pd.DataFrame:
    """A table file through the same strict reader as the checks."""
    try:
        return read_table(path, limits)
    except UnreadableOutput as exc:
        raise ValidationError(
            f"the file cannot be read as its declared format ({exc.reason.value})",
            file=str(path),
            fix="write a UTF-8 CSV with a header, or Parquet, named by its format",
        ) from None


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "output": f.output,
        "row": f.row,
        "column": f.column,
        "kind": f.kind,
        "masked": f.masked,
        "source": f.source,
        "form": f.form,
        "severity": str(f.severity),
    }


def _worst(a: Verdict, b: Verdict) -> Verdict:
    return Verdict(a).worst(b)
