"""How the CLI talks: rich tables and progress bars for people, `--json` for scripts, one error line."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shuyu.errors import ShuyuError

# Pipes and CI logs get a wide fixed width instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
HEX64 = re.compile(r"^[0-9a-f]{64}$")

json_option = click.option(
    "--json", "as_json", is_flag=True, help="print machine-readable JSON instead of a table"
)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def emit_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None
) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    console.print(table)


def emit(
    data: Any, as_json: bool, columns: Sequence[str] | None = None, title: str | None = None
) -> None:
    if as_json:
        emit_json(data)
    elif isinstance(data, list) and columns:
        emit_table(data, columns, title)
    elif isinstance(data, dict):
        emit_table([{"field": k, "value": v} for k, v in data.items()], ["field", "value"], title)
    else:
        console.print(data)


def fail(error: ShuyuError, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(error.to_dict(), ensure_ascii=False), err=True)
    else:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    sys.exit(2 if error.code == "invalid" else 1)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """Yields a `progress(step, done, total)` callback drawing a bar on stderr for people."""
    if not enabled or not err_console.is_terminal:
        yield lambda step, done, total: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=1)

        def update(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=max(total, 1))

        yield update


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    text = str(value)
    return text[:12] + "…" if HEX64.match(text) else text  # full hashes are in --json
