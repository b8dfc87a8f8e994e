"""Regenerate the generated documentation (a test checks it has not drifted): in README.md the
job state diagram (jobs/states.py) and the example job spec (examples/), and docs/cli.md,
the CLI reference, from every command's --help."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from jobs.states import mermaid  # noqa: E402

SPEC = ROOT / "examples" / "jobs" / "employment" / "job.yaml"


def render(text: str) -> str:
    text = re.sub(
        r"```mermaid\n.*?```", lambda _: f"```mermaid\n{mermaid()}\n```", text, count=1, flags=re.S
    )
    spec = SPEC.read_text(encoding="utf-8").rstrip()
    return re.sub(
        r"```yaml\n# A job spec.*?```", lambda _: f"```yaml\n{spec}\n```", text, count=1, flags=re.S
    )


def cli_reference() -> str:
    import click

    from api.cli import main

    parts = [
        "# shuyu CLI reference",
        "",
        "Generated from `--help` by `python scripts/update-readme.py`.",
        "",
    ]

    def walk(command: click.Command, path: list[str]) -> None:
        ctx = click.Context(
            command, info_name=" ".join(path), terminal_width=100, max_content_width=100
        )
        parts.extend(
            [f"## `{' '.join(path)}`", "", "```", command.get_help(ctx).rstrip(), "```", ""]
        )
        if isinstance(command, click.Group):
            for name in sorted(command.commands):
                walk(command.commands[name], [*path, name])

    walk(main, ["shuyu"])
    return "\n".join(parts)


if __name__ == "__main__":
    readme = ROOT / "README.md"
    readme.write_text(render(readme.read_text(encoding="utf-8")), encoding="utf-8")
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "cli.md").write_text(cli_reference(), encoding="utf-8")
