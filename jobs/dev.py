"""Development runs: the job runs now, on the synthetic twin, and the analyst sees everything.

Nothing real is in a twin, so outputs and logs are copied to `output/` beside the spec.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs import records
from jobs.records import Job
from jobs.runner import JobRun
from jobs.service import create_job
from jobs.states import JobState, OutputStatus
from sandbox.base import SandboxBackend
from shuyu.platform import Platform


@dataclass(frozen=True)
class DevRun:
    job: Job
    output_dir: Path
    outputs: list[dict[str, Any]]
    logs: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.job.id,
            "state": self.job.state.value,
            "failure": self.job.failure,
            "reason": self.job.reason,
            "output_dir": str(self.output_dir),
            "outputs": self.outputs,
            "logs": self.logs,
        }


def run_dev(platform: Platform, spec_path: Path, backend: SandboxBackend) -> DevRun:
    job = create_job(platform, spec_path, dev=True)
    with platform.store.transaction() as conn:
        records.transition(
            conn, job.id, JobState.PREPARING, "development run started", platform.actor
        )
    run = JobRun(platform, backend, job.id, actor=platform.actor)
    finished = run.execute()
    target = spec_path.parent / "output"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shown = []
    with platform.store.read() as conn:
        rows = records.outputs(conn, job.id)
    for row in rows:
        if row["status"] == OutputStatus.COLLECTED:
            dest = target / row["action"] / row["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(platform.resolve(row["stored_path"]), dest)
            shown.append(
                {
                    "action": row["action"],
                    "path": str(dest),
                    "rows": row["rows"],
                    "status": OutputStatus.COLLECTED.value,
                }
            )
        elif row["status"] == OutputStatus.HELPER:
            shown.append(
                {
                    "action": row["action"],
                    "path": row["path"],
                    "rows": row["rows"],
                    "status": "helper (contributor data, held for the checks)",
                }
            )
        elif row["status"] != OutputStatus.LOG:
            shown.append(
                {
                    "action": row["action"],
                    "path": row["path"],
                    "rows": None,
                    "status": f"{row['status']}: {row['reason']}",
                }
            )
    logs = {name: data.decode("utf-8", "replace") for name, data in run.logs.items()}
    for name, text in logs.items():
        (target / f"{name}.log").write_text(text, encoding="utf-8")
    return DevRun(finished, target, shown, logs)
