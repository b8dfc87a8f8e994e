"""CLI commands for differential privacy: what a project's budget accounts have spent, and what
that guarantees each person, in words."""

from __future__ import annotations

import click

from api.output import console, emit, json_option


def register(main: click.Group) -> None:
    from api.cli import platform_from

    @main.command("budget")
    @click.argument("project")
    @json_option
    @click.pass_context
    def budget(ctx: click.Context, project: str, as_json: bool) -> None:
        """The project's DP accounts (one per kind of person key): ε and δ used of their caps,
        and the person-level guarantee in plain words."""
        from privacy.budget_view import budget_view

        views = [v.to_dict() for v in budget_view(platform_from(ctx), project)]
        columns = ["account", "datasets", "epsilon_used", "epsilon_cap", "delta_used", "delta_cap"]
        emit(views, as_json, [*columns, "queries"], title=f"DP budget of {project}")
        if not as_json:
            for view in views:
                console.print(f"• {view['guarantee']}", markup=False)
