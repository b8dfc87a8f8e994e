"""CLI commands for the egress checks: check a local file, show a job's check reports."""

from __future__ import annotations

from pathlib import Path

import click

from api.output import console, emit, emit_json, json_option
from shuyu.errors import ValidationError


def _columns(value: str | None) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()] if value else []


def summarise(report: dict) -> None:
    """A person's view of one output's checks: verdict, findings, failing cells."""
    console.rule(f"{report['name']} ({report['kind']}): {report['status'].upper()}")
    for note in report.get("notes", []):
        console.print(f"  • {note}", markup=False)
    if report["findings"]:
        emit(
            report["findings"][:20],
            False,
            ["row", "column", "kind", "masked"],
            title="personal information",
        )
    sdc = report.get("sdc")
    if sdc:
        summary = sdc["summary"]
        console.print(
            f"  disclosure control: {summary['cells']} cells: {summary['pass']} pass, "
            f"{summary['fail']} fail, {summary['review']} need review",
            markup=False,
        )
        bad = [c for c in sdc["cells"] if c["status"] != "pass"]
    if sdc and bad:
        emit(
            [
                {
                    "cell": ", ".join(f"{k}={v}" for k, v in c["key"].items()),
                    "column": c["column"],
                    "value": c["value"],
                    "status": c["status"],
                    "rules": c["rules"],
                    "numbers": c["numbers"],
                }
                for c in bad[:30]
            ],
            False,
            ["cell", "column", "value", "status", "rules", "numbers"],
            title="cells that fail or need review",
        )
    dp = report.get("dp")
    if dp:
        mechanisms = ", ".join(
            f"{c}: {m['mechanism']} (ε={m['epsilon']:g})" for c, m in dp["columns"].items()
        )
        console.print(
            f"  differential privacy: ε={dp['epsilon']:g} in total; {mechanisms}", markup=False
        )
    micro = report.get("microdata")
    if micro and micro.get("k_anonymity"):
        k = micro["k_anonymity"]
        console.print(
            f"  k-anonymity: smallest class {k['min_class_size']} (k={k['k']}), "
            f"{k['violating_count']} records in smaller classes",
            markup=False,
        )


def register(main: click.Group) -> None:
    from api.cli import platform_from

    @main.command()
    @click.argument("file", type=click.Path(path_type=Path))
    @click.option(
        "--kind",
        type=click.Choice(["table", "microdata", "text"]),
        default="table",
        show_default=True,
    )
    @click.option("--counts", help="frequency columns, comma-separated")
    @click.option("--values", help="magnitude columns, comma-separated")
    @click.option("--group-by", help="key columns (default: every other column)")
    @click.option("--qi", help="quasi-identifiers (microdata)")
    @click.option("--sensitive", help="sensitive columns (microdata)")
    @click.option("--stat", help="statistic of the value columns: sum, mean, median, min, max")
    @click.option(
        "--contributors",
        type=click.Path(path_type=Path),
        help="contributor-level data (group-by columns, `contributor`, value columns)",
    )
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["shuyu", "acro"]),
        default="shuyu",
        show_default=True,
        help="acro: ACRO's results.json layout (for SACRO-Viewer)",
    )
    @click.option(
        "--enforce-k",
        "enforce_to",
        type=click.Path(path_type=Path),
        help="microdata: write a k-anonymous copy here (generalise, then suppress cells), then check it",
    )
    @click.option(
        "--generalise",
        multiple=True,
        help="with --enforce-k: COLUMN=year|band:WIDTH|prefix:N (repeatable)",
    )
    @click.option(
        "--mitigate",
        help="table: suppress (with secondary suppression for two-way tables) or round:BASE",
    )
    @click.option(
        "--out",
        "mitigated",
        type=click.Path(path_type=Path),
        help="with --mitigate: where to write",
    )
    @json_option
    def check(
        file: Path,
        kind: str,
        counts: str | None,
        values: str | None,
        group_by: str | None,
        qi: str | None,
        sensitive: str | None,
        stat: str | None,
        contributors: Path | None,
        fmt: str,
        enforce_to: Path | None,
        generalise: tuple[str, ...],
        mitigate: str | None,
        mitigated: Path | None,
        as_json: bool,
    ) -> None:
        """Run the platform's egress checks on a local CSV/Parquet/text file (ACRO-style)."""
        from egress_review.service import acro_results, check_file, enforce_k_file, mitigate_file

        if mitigate:
            if mitigated is None:
                raise ValidationError(
                    "--mitigate needs --out", field="--out", fix="add --out FIXED.csv"
                )
            done = mitigate_file(
                file,
                mitigated,
                mitigate,
                counts=_columns(counts),
                values=_columns(values),
                group_by=_columns(group_by) or None,
                contributors=contributors,
            )
            emit(done, as_json, title="mitigation applied")
            return

        if enforce_to is not None:
            from policies.grant import DisclosureRules

            rules = dict(g.split("=", 1) for g in generalise if "=" in g)
            log = enforce_k_file(
                file, enforce_to, _columns(qi), DisclosureRules().k_anonymity, rules
            )
            if not as_json and log:
                columns = list(dict.fromkeys(key for entry in log for key in entry))
                emit(log, False, columns, title=f"k-anonymous copy written to {enforce_to}")
            file = enforce_to
        result = check_file(
            file,
            kind=kind,
            counts=_columns(counts),
            values=_columns(values),
            group_by=_columns(group_by),
            quasi_identifiers=_columns(qi),
            sensitive=_columns(sensitive),
            statistics=_columns(stat),
            contributors=contributors,
        )
        if fmt == "acro":
            emit_json(acro_results(result))
        elif as_json:
            emit_json(result.to_dict())
        else:
            summarise(result.to_dict())
        failing = result.sdc["summary"]["fail"] if result.sdc else 0
        if result.status == "blocked" or failing:
            raise SystemExit(1)  # scripts can gate a submission on a clean check

    @main.group()
    def checks() -> None:
        """Egress check reports of production jobs (for reviewers and auditors)."""

    @checks.command("show")
    @click.argument("job_id")
    @json_option
    @click.pass_context
    def checks_show(ctx: click.Context, job_id: str, as_json: bool) -> None:
        """Show the automated check report of every output and log of a job."""
        from egress_review.service import job_checks

        platform = platform_from(ctx)
        reports = job_checks(platform, job_id)
        if as_json:
            emit_json(reports)
            return
        for report in reports:
            summarise(report)
