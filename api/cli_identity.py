"""CLI commands for identities: users, sign-in secrets, tenants, projects and membership.

These run on the host console only (the services check it): they are how operators register
people, record their real-name check and confidentiality agreement, and hand out tokens.
"""

from __future__ import annotations

import datetime as dt
import sys

import click

from api.output import emit, json_option

USER_COLUMNS = [
    "name",
    "display_name",
    "role",
    "tenant",
    "realname_verified",
    "nda_signed_on",
    "disabled",
]


def register(main: click.Group) -> None:  # noqa: C901  (one small command each)
    from api.cli import platform_from

    @main.group()
    def user() -> None:
        """Register people: role, tenant, real name, confidentiality agreement, password."""

    @user.command("add")
    @click.argument("name")
    @click.option("--role", required=True, help="steward | analyst | reviewer | auditor | operator")
    @click.option("--tenant", help="the operator company an analyst belongs to")
    @click.option("--display-name", help="the person's name as shown (e.g. 李明)")
    @click.option("--org", "organisation", help="organisation (default: the tenant)")
    @json_option
    @click.pass_context
    def user_add(
        ctx: click.Context,
        name: str,
        role: str,
        tenant: str | None,
        display_name: str | None,
        organisation: str | None,
        as_json: bool,
    ) -> None:
        """Register NAME (or change their role): analysts need --tenant, platform staff none."""
        from shuyu.users import add_user

        emit(
            add_user(
                platform_from(ctx),
                name,
                role,
                tenant=tenant,
                display_name=display_name,
                organisation=organisation,
            ),
            as_json,
        )

    @user.command("list")
    @json_option
    @click.pass_context
    def user_list(ctx: click.Context, as_json: bool) -> None:
        """List registered users, their role, tenant and records."""
        from shuyu.users import list_users

        emit(list_users(platform_from(ctx)), as_json, USER_COLUMNS)

    @user.command("password")
    @click.argument("name")
    @click.option("--password-stdin", is_flag=True, help="read the password from standard input")
    @json_option
    @click.pass_context
    def user_password(ctx: click.Context, name: str, password_stdin: bool, as_json: bool) -> None:
        """Set NAME's password (Argon2id); ends their web sessions."""
        from shuyu.auth import set_password

        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = click.prompt("password", hide_input=True, confirmation_prompt=True)
        emit(set_password(platform_from(ctx), name, password), as_json)

    @user.command("disable")
    @click.argument("name")
    @click.option("--reason", required=True)
    @json_option
    @click.pass_context
    def user_disable(ctx: click.Context, name: str, reason: str, as_json: bool) -> None:
        """Disable NAME: their sessions and tokens end at once."""
        from shuyu.users import disable

        emit(disable(platform_from(ctx), name, reason), as_json)

    @user.command("enable")
    @click.argument("name")
    @json_option
    @click.pass_context
    def user_enable(ctx: click.Context, name: str, as_json: bool) -> None:
        """Enable NAME again (and clear a lockout); old tokens stay revoked."""
        from shuyu.users import enable

        emit(enable(platform_from(ctx), name), as_json)

    @user.command("realname")
    @click.argument("name")
    @click.option("--resident-id-stdin", is_flag=True, help="read the ID number from stdin")
    @json_option
    @click.pass_context
    def user_realname(
        ctx: click.Context, name: str, resident_id_stdin: bool, as_json: bool
    ) -> None:
        """Record NAME's real-name check: the resident ID is kept only as a keyed HMAC."""
        from shuyu.users import record_realname

        if resident_id_stdin:
            rid = sys.stdin.readline().strip()
        else:
            rid = click.prompt("resident ID number", hide_input=True)
        emit(record_realname(platform_from(ctx), name, rid), as_json)

    @user.command("nda")
    @click.argument("name")
    @click.option("--signed-on", type=click.DateTime(["%Y-%m-%d"]), required=True)
    @json_option
    @click.pass_context
    def user_nda(ctx: click.Context, name: str, signed_on: dt.datetime, as_json: bool) -> None:
        """Record the date NAME signed the confidentiality agreement (保密协议)."""
        from shuyu.users import record_nda

        emit(record_nda(platform_from(ctx), name, signed_on.date()), as_json)

    @main.group()
    def token() -> None:
        """API tokens for the CLI and scripts (Authorization: Bearer), shown once."""

    @token.command("create")
    @click.argument("name")
    @click.option("--label", default="api", show_default=True)
    @click.option("--days", type=int, help="lifetime (default SHUYU_TOKEN_DAYS)")
    @json_option
    @click.pass_context
    def token_create(
        ctx: click.Context, name: str, label: str, days: int | None, as_json: bool
    ) -> None:
        """Create a token for NAME; the secret is printed once and never stored."""
        from shuyu.auth import create_token

        emit(create_token(platform_from(ctx), name, label, days), as_json)

    @token.command("list")
    @click.option("--user", "name")
    @json_option
    @click.pass_context
    def token_list(ctx: click.Context, name: str | None, as_json: bool) -> None:
        """List tokens (never their secrets)."""
        from shuyu.auth import list_tokens

        emit(
            list_tokens(platform_from(ctx), name),
            as_json,
            ["id", "user", "label", "expires_at", "revoked"],
        )

    @token.command("revoke")
    @click.argument("token_id")
    @json_option
    @click.pass_context
    def token_revoke(ctx: click.Context, token_id: str, as_json: bool) -> None:
        """Revoke a token at once."""
        from shuyu.auth import revoke_token

        emit(revoke_token(platform_from(ctx), token_id), as_json)

    @main.group()
    def tenant() -> None:
        """Tenants: the operator companies that own projects."""

    @tenant.command("add")
    @click.argument("name")
    @click.option("--title")
    @json_option
    @click.pass_context
    def tenant_add(ctx: click.Context, name: str, title: str | None, as_json: bool) -> None:
        """Register a tenant."""
        from shuyu.tenancy import add_tenant

        emit(add_tenant(platform_from(ctx), name, title), as_json)

    @tenant.command("list")
    @json_option
    @click.pass_context
    def tenant_list(ctx: click.Context, as_json: bool) -> None:
        """List tenants."""
        from shuyu.tenancy import list_tenants

        emit(list_tenants(platform_from(ctx)), as_json, ["name", "title"])

    @main.group()
    def project() -> None:
        """Projects (each owned by one tenant) and their members."""

    @project.command("add")
    @click.argument("name")
    @click.option("--tenant", required=True)
    @json_option
    @click.pass_context
    def project_add(ctx: click.Context, name: str, tenant: str, as_json: bool) -> None:
        """Create a project owned by TENANT (a grant also creates its project)."""
        from shuyu.tenancy import add_project

        emit(add_project(platform_from(ctx), name, tenant), as_json)

    @project.command("list")
    @json_option
    @click.pass_context
    def project_list(ctx: click.Context, as_json: bool) -> None:
        """List projects, their tenant and members."""
        from shuyu.tenancy import list_projects

        emit(list_projects(platform_from(ctx)), as_json, ["name", "tenant", "members"])

    @project.command("member")
    @click.argument("project_name")
    @click.argument("name")
    @click.option("--remove", is_flag=True)
    @json_option
    @click.pass_context
    def project_member(
        ctx: click.Context, project_name: str, name: str, remove: bool, as_json: bool
    ) -> None:
        """Make analyst NAME a member of PROJECT_NAME (or --remove them)."""
        from shuyu.tenancy import add_member, remove_member

        act = remove_member if remove else add_member
        emit(act(platform_from(ctx), project_name, name), as_json)
