"""The `shuyu` command: a thin shell. Each command parses input, calls one service, prints."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from api.output import emit, fail, json_option, progress_bar
from shuyu.errors import PermissionDenied, PlatformError, ShuyuError
from shuyu.permissions import CONSOLE_ROLES, Role, User
from shuyu.platform import Platform, init_home, open_platform
from shuyu.settings import Settings
from shuyu.users import lookup


class ShuyuGroup(click.Group):
    """Turns our errors into one line (or one JSON object) and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShuyuError as error:
            fail(error, as_json="--json" in sys.argv)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: one line for people, the traceback only when asked for
            if os.environ.get("SHUYU_DEBUG"):
                raise
            fail(
                PlatformError(
                    f"internal error ({type(exc).__name__}): {exc}",
                    fix="rerun with SHUYU_DEBUG=1 for the traceback and report it",
                ),
                as_json="--json" in sys.argv,
            )


def platform_from(ctx: click.Context) -> Platform:
    """The platform as this shell acts on it: the host console, recording the OS user.

    `SHUYU_USER` may name an operator or steward (the console acts with their name and the OS
    user beside it) or an auditor (the auditor's permissions, no more); an analyst's or a
    reviewer's identity is refused: they work through the API and the web pages, where they
    sign in. A name that is not registered is only a label (a worker's name) on the console.
    """
    settings: Settings = ctx.find_root().obj["settings"]
    platform = open_platform(settings)
    name = ctx.find_root().obj["as_user"]
    os_user = _os_user()
    if not name:
        return platform.acting_as(User.host_console(os_user))
    user = lookup(platform, name)
    label = f"{name} (os:{os_user})"
    if user.role in CONSOLE_ROLES:
        return platform.acting_as(User(label, user.role, console=True))
    if user.role == Role.AUDITOR:
        return platform.acting_as(User(label, user.role))
    if user.role is not None or _registered(platform, name):
        raise PermissionDenied(
            f"the host console does not act as {name} ({user.role or 'disabled'}): it is for "
            "operators and stewards",
            field="SHUYU_USER",
            fix="analysts and reviewers sign in to the API (a token) or the web pages; "
            "unset SHUYU_USER for the console",
        )
    return platform.acting_as(User(label, Role.OPERATOR.value, console=True))


def _registered(platform: Platform, name: str) -> bool:
    from sqlalchemy import select

    from shuyu.schema import users

    with platform.store.read() as conn:
        return conn.execute(select(users.c.name).where(users.c.name == name)).first() is not None


def _os_user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid-{os.getuid()}"


def acting_user(ctx: click.Context, platform: Platform) -> User:
    """Who acts from this shell (the services check it; this is for the views)."""
    return platform.user


def sees_everything(user: User | None) -> bool:
    from jobs.service import sees_full

    return user is None or sees_full(user)


@click.group(cls=ShuyuGroup)
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    help="platform home (default $SHUYU_HOME or ./.shuyu)",
)
@click.pass_context
def main(ctx: click.Context, home: Path | None) -> None:
    """数域 shuyu: analysis over a city's public data that stays usable but invisible."""
    ctx.ensure_object(dict)
    ctx.obj["settings"] = Settings.from_env(home=home)
    ctx.obj["as_user"] = os.environ.get("SHUYU_USER", "")


@main.command()
@json_option
@click.pass_context
def init(ctx: click.Context, as_json: bool) -> None:
    """Create the platform home: metadata store, data folders and keys (idempotent)."""
    settings: Settings = ctx.obj["settings"]
    _, created = init_home(settings)
    emit(
        {"home": str(settings.home.resolve()), "store": _store_label(settings), "created": created},
        as_json,
    )


@main.command("settings")
@json_option
def show_settings(as_json: bool) -> None:
    """List every setting with its environment variable, default and meaning."""
    rows = [{"variable": v, "default": d, "help": h} for v, d, h in Settings.describe()]
    emit(rows, as_json, ["variable", "default", "help"])


@main.command("demo-data")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="folder to write data and manifests into",
)
@click.option(
    "--scale",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="1 ≈ 100k contributions",
)
@click.option("--seed", type=int, default=20261127, show_default=True)
@json_option
def demo_data(out: Path, scale: int, seed: int, as_json: bool) -> None:
    """Write deterministic synthetic Wuhai-like public data with manifests."""
    from catalog.demo_data import generate_demo_data

    out.mkdir(parents=True, exist_ok=True)
    with progress_bar(not as_json) as progress:
        manifests = generate_demo_data(out, scale=scale, seed=seed, progress=progress)
    emit(
        [{"manifest": str(m)} for m in manifests], as_json, ["manifest"], title="demo data written"
    )


from api import (  # noqa: E402  (each registers its commands)
    cli_checks,
    cli_data,
    cli_identity,
    cli_jobs,
    cli_privacy,
)

cli_data.register(main)
cli_identity.register(main)
cli_jobs.register(main)
cli_jobs.register_serve(main)
cli_checks.register(main)
cli_privacy.register(main)


def _store_label(settings: Settings) -> str:
    return "sqlite" if settings.resolved_db_url.startswith("sqlite") else "postgresql"


if __name__ == "__main__":
    main()
