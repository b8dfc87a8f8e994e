"""What each reader sees of a job: the analyst's fixed vocabulary, or the full detail.

Everything an analyst can see of a production run is a channel out of the sandbox, so the
analyst's view is built from the platform's own words only: the state, the failure kind, one
fixed sentence per state or kind, the declared outputs with their status, and times rounded
down to the minute. No exit status, no log, no parser or exception message, and nothing about
files the job wrote without declaring them (not their names, number, sizes or rows).

Reviewers, auditors and the platform's operators read the full detail (`full=True`), and so
does anyone for a development run: its data is the synthetic twin, with no real person in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobs.records import Job
from jobs.states import DECLARED_STATUSES, STATE_REASONS, JobState, OutputStatus, analyst_reason

# When several files answer one declaration (a declared folder), the worst status is shown.
_SEVERITY = {
    OutputStatus.REFUSED: 3,
    OutputStatus.MISSING: 2,
    OutputStatus.COLLECTED: 1,
    OutputStatus.HELPER: 1,
}


def minute(at: datetime | str) -> str:
    """A timestamp coarsened to the minute: durations to the second are a channel too."""
    value = datetime.fromisoformat(at) if isinstance(at, str) else at
    return value.replace(second=0, microsecond=0).isoformat()


@dataclass(frozen=True)
class JobView:
    job: Job
    events: list[dict[str, Any]]
    outputs: list[dict[str, Any]]

    def to_dict(self, detail: bool = False, full: bool = False) -> dict[str, Any]:
        """The job for one reader: `full` for reviewers, auditors and operators; the analyst's
        fixed vocabulary otherwise (deny by default). `detail` adds history and outputs."""
        if full or self.job.dev:
            return self._full(detail)
        return self._analyst(detail)

    def _identity(self) -> dict[str, Any]:
        """What every reader sees alike: the platform's own fields, none written by the job."""
        j = self.job
        return {
            "id": j.id,
            "name": j.name,
            "project": j.project,
            "dev": j.dev,
            "state": j.state.value,
            "failure": j.failure,
            "backend": j.backend,
            "submitted_by": j.submitted_by,
        }

    def _analyst(self, detail: bool) -> dict[str, Any]:
        j = self.job
        base: dict[str, Any] = {
            **self._identity(),
            "reason": analyst_reason(j.state, j.failure),
            "submitted_at": minute(j.submitted_at),
            "updated_at": minute(j.updated_at),
        }
        if detail:
            base["events"] = [
                {
                    "at": minute(e["at"]),
                    "from": e["from"],
                    "to": e["to"],
                    "reason": analyst_reason(JobState(e["to"]), j.failure)
                    if e["to"] == JobState.FAILED.value
                    else STATE_REASONS[JobState(e["to"])],
                }
                for e in self.events
            ]
            base["outputs"] = declared_outputs(j, self.outputs)
        return base

    def _full(self, detail: bool) -> dict[str, Any]:
        j = self.job
        base: dict[str, Any] = {
            **self._identity(),
            "reason": j.reason,
            "worker": j.worker,
            "submitted_at": j.submitted_at.isoformat(),
            "updated_at": j.updated_at.isoformat(),
        }
        if detail:
            base["events"] = self.events
            base["outputs"] = [
                {
                    "action": o["action"],
                    "path": o["path"],
                    "status": o["status"],
                    "reason": o["reason"],
                    "size_bytes": o["size_bytes"],
                    "rows": o["rows"],
                    "sha256": o["sha256"],
                }
                for o in self.outputs
            ]
        return base


def declared_outputs(job: Job, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One entry per output the spec declared (and each declared contributor file), with a
    status from `OutputStatus`; built from the spec, so a file the job named never shows."""
    spec = job.spec.get("spec", {})
    shown = []
    for action in job.spec.get("order", []):
        outputs = spec.get("actions", {}).get(action, {}).get("outputs", {})
        paths = [*outputs, *(o["contributors"] for o in outputs.values() if o.get("contributors"))]
        for path in paths:
            found = [
                OutputStatus(r["status"])
                for r in rows
                if r["action"] == action
                and OutputStatus(r["status"]) in DECLARED_STATUSES
                and (r["path"] == path or (path.endswith("/") and r["path"].startswith(path)))
            ]
            if found:
                status = max(found, key=_SEVERITY.__getitem__)
                shown.append({"action": action, "path": path, "status": status.value})
    return shown
