"""CLI commands for the data side: catalog, grants, workspaces, and the ledger."""

from __future__ import annotations

from pathlib import Path

import click

from api.output import emit, json_option, progress_bar
from shuyu.platform import Platform


def register(main: click.Group) -> None:
    from api.cli import platform_from

    @main.group()
    def catalog() -> None:
        """Register and inspect datasets (immutable, content-addressed snapshots)."""

    @catalog.command("add")
    @click.argument("manifest", type=click.Path(path_type=Path))
    @json_option
    @click.pass_context
    def catalog_add(ctx: click.Context, manifest: Path, as_json: bool) -> None:
        """Register the data a MANIFEST.yaml describes (a new version when it changed)."""
        from catalog.service import register as register_dataset

        result = register_dataset(platform_from(ctx), manifest)
        emit(
            result.to_dict(),
            as_json,
            title="registered" if result.created else "unchanged (same content)",
        )

    @catalog.command("list")
    @json_option
    @click.pass_context
    def catalog_list(ctx: click.Context, as_json: bool) -> None:
        """List datasets (latest versions)."""
        from catalog.service import list_datasets

        rows = [v.summary() for v in list_datasets(platform_from(ctx))]
        emit(
            rows,
            as_json,
            [
                "dataset",
                "version",
                "classification",
                "classification_label",
                "rows",
                "owner_department",
                "sha256",
            ],
        )

    @catalog.command("show")
    @click.argument("name")
    @json_option
    @click.pass_context
    def catalog_show(ctx: click.Context, name: str, as_json: bool) -> None:
        """Show a dataset: columns with roles, and every version."""
        from catalog.service import show

        detail = show(platform_from(ctx), name)
        if as_json:
            emit(detail, True)
            return
        columns = [{"column": c, **s} for c, s in detail["columns"].items()]
        emit(
            columns,
            False,
            ["column", "type", "role", "identifier_kind", "bounds", "categories", "description"],
            title=f"{detail['dataset']} v{detail['version']} ({detail['classification_label']}) {detail['title']}",
        )
        emit(
            detail["versions"],
            False,
            ["version", "sha256", "rows", "registered_at", "registered_by"],
            title="versions",
        )

    @main.group()
    def grant() -> None:
        """Grant datasets to a project, with per-column transforms, thresholds and a DP budget."""

    @grant.command("add")
    @click.argument("grant_file", type=click.Path(path_type=Path))
    @json_option
    @click.pass_context
    def grant_add(ctx: click.Context, grant_file: Path, as_json: bool) -> None:
        """Validate GRANT.yaml against the catalog and record it."""
        from policies.service import add_grant

        policy = add_grant(platform_from(ctx), grant_file)
        emit(
            {**policy.to_record(), "policy_hash": policy.hash},
            as_json,
            title=f"grant {policy.id} added",
        )

    @grant.command("list")
    @click.option("--project", help="only this project's grants")
    @json_option
    @click.pass_context
    def grant_list(ctx: click.Context, project: str | None, as_json: bool) -> None:
        """List grants with their status and window."""
        from policies.service import list_grants

        emit(
            list_grants(platform_from(ctx), project),
            as_json,
            [
                "id",
                "project",
                "tenant",
                "purpose",
                "status",
                "datasets",
                "valid_from",
                "valid_until",
            ],
        )

    @grant.command("revoke")
    @click.argument("grant_id")
    @click.option("--reason", required=True, help="why, recorded in the ledger")
    @json_option
    @click.pass_context
    def grant_revoke(ctx: click.Context, grant_id: str, reason: str, as_json: bool) -> None:
        """Revoke a grant: no new workspaces or jobs for its project."""
        from policies.service import revoke_grant

        emit(revoke_grant(platform_from(ctx), grant_id, reason), as_json)

    @main.group()
    def workspace() -> None:
        """Build the DuckDB workspace a project's jobs run against."""

    @workspace.command("build")
    @click.argument("project")
    @click.option("--synthetic", is_flag=True, help="build the synthetic twin for development runs")
    @json_option
    @click.pass_context
    def workspace_build(ctx: click.Context, project: str, synthetic: bool, as_json: bool) -> None:
        """Build (or reuse) the project's workspace after the grant's transforms."""
        from policies.workspace import build_workspace

        with progress_bar(not as_json) as progress:
            ws = build_workspace(
                platform_from(ctx), project, "synthetic" if synthetic else "real", progress
            )
        emit(
            ws.to_dict(),
            as_json,
            title="workspace (reused from cache)" if ws.cached else "workspace built",
        )

    @main.group("ledger")
    def ledger_group() -> None:
        """Query and verify the tamper-evident ledger of every operation."""

    @ledger_group.command("list")
    @click.option(
        "--subject", help="only entries whose subject starts with this, e.g. dataset:residents"
    )
    @click.option("--action", help="only this action, e.g. grant.added")
    @click.option("--limit", type=int, default=None)
    @json_option
    @click.pass_context
    def ledger_list(
        ctx: click.Context,
        subject: str | None,
        action: str | None,
        limit: int | None,
        as_json: bool,
    ) -> None:
        """List ledger entries in order."""
        from lineage.service import list_entries

        emit(
            list_entries(_ledger_reader(ctx), subject, action, limit),
            as_json,
            ["seq", "at", "actor", "action", "subject", "hash"],
        )

    @ledger_group.command("verify")
    @json_option
    @click.pass_context
    def ledger_verify(ctx: click.Context, as_json: bool) -> None:
        """Recompute the hash chain; exit 1 if any entry was altered, removed or reordered."""
        from lineage.service import verify_ledger

        result = verify_ledger(_ledger_reader(ctx))
        emit(result, as_json)
        if not result["ok"]:
            raise SystemExit(1)


def _ledger_reader(ctx: click.Context) -> Platform:
    from api.cli import platform_from

    return platform_from(ctx)
