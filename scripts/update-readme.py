"""Regenerate the generated parts of README.md (a test checks they have not drifted):
the job state diagram from jobs/states.py and the example job spec from examples/."""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from jobs.states import mermaid  # noqa: E402

SPEC = ROOT / "examples" / "jobs" / "employment" / "job.yaml"


def render(text: str) -> str:
    text = re.sub(r"```mermaid\n.*?```", lambda _: f"```mermaid\n{mermaid()}\n```", text, count=1, flags=re.S)
    spec = SPEC.read_text(encoding="utf-8").rstrip()
    return re.sub(r"```yaml\n# A job spec.*?```", lambda _: f"```yaml\n{spec}\n```", text, count=1, flags=re.S)


if __name__ == "__main__":
    readme = ROOT / "README.md"
    readme.write_text(render(readme.read_text(encoding="utf-8")), encoding="utf-8")
