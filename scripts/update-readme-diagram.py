"""Regenerate the job state diagram in README.md from jobs/states.py (a test checks for drift)."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from jobs.states import mermaid  # noqa: E402

readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text(encoding="utf-8")
new = re.sub(r"```mermaid\n.*?```", lambda _: f"```mermaid\n{mermaid()}\n```", text, count=1, flags=re.S)
readme.write_text(new, encoding="utf-8")
