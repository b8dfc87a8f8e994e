"""The `shuyu` command: a thin shell. Each command parses input, calls one service, prints."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from api.output import emit, fail, json_option, progress_bar
from shuyu.errors import PermissionDenied, PlatformError, ShuyuError
from shuyu.permissions import User, can_read_job_details
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
    settings: Settings = ctx.find_root().obj["settings"]
    return open_platform(settings)


def acting_user(ctx: click.Context, platform: Platform) -> User | None:
    """Who reads or submits jobs, checks and the ledger from this shell.

    With `SHUYU_USER` set, the CLI acts as that registered user: its role decides what it may
    do and see, exactly as over HTTP (an analyst reads the fixed vocabulary of production
    jobs). Without it, this is the host console (None): whoever can log in to the host can read
    the store anyway, so the console keeps the full view.
    """
    if not ctx.find_root().obj["as_user"]:
        return None
    user = lookup(platform, platform.actor)
    if user.role is None:
        raise PermissionDenied(
            f"SHUYU_USER={platform.actor} is not a registered user",
            field="SHUYU_USER",
            fix="`shuyu user add NAME --role ROLE` first, or unset SHUYU_USER for the host console",
        )
    return user


def sees_everything(user: User | None) -> bool:
    return user is None or can_read_job_details(user)


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
    ctx.obj["as_user"] = bool(os.environ.get("SHUYU_USER"))


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


from api import cli_checks, cli_data, cli_jobs  # noqa: E402  (each registers its commands)

cli_data.register(main)
cli_data.register_users(main)
cli_jobs.register(main)
cli_jobs.register_serve(main)
cli_checks.register(main)


def _store_label(settings: Settings) -> str:
    return "sqlite" if settings.resolved_db_url.startswith("sqlite") else "postgresql"


if __name__ == "__main__":
    main()
