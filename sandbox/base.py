"""The sandbox interface the job runner calls: typed requests in, typed results out.

A backend runs one untrusted command over a read-only workspace with exactly one writable
place (/output), under kernel-enforced limits, and says which limit (if any) ended the run.
Every method is idempotent so the runner can retry or recover after a crash without bookkeeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from shuyu.errors import PlatformError, ValidationError

from .hardening import ENV_NAME_RE, FIXED_ENV, RUN_ID_RE

if TYPE_CHECKING:
    from .runtime import Runtime


@dataclass(frozen=True)
class Limits:
    wall_seconds: float = 300.0
    memory_bytes: int = 2 * 1024**3
    pids: int = 128
    open_files: int = 256
    file_size_bytes: int = 256 * 1024**2  # largest single file (RLIMIT_FSIZE)
    output_bytes: int = 512 * 1024**2  # size cap of the writable /output
    tmp_bytes: int = 256 * 1024**2  # size cap of /tmp
    log_bytes: int = 1024**2  # stdout+stderr captured up to this
    cpus: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "memory_bytes",
            "pids",
            "open_files",
            "file_size_bytes",
            "output_bytes",
            "tmp_bytes",
            "log_bytes",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValidationError(f"must be a positive integer, got {value!r}", field=name)
        for name in ("wall_seconds", "cpus"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValidationError(f"must be a positive number, got {value!r}", field=name)
        if self.pids < 8:
            raise ValidationError(
                "at least 8 processes/threads are needed to start Python", field="pids"
            )
        if self.memory_bytes < 32 * 1024**2:
            raise ValidationError("at least 32 MiB of memory is needed", field="memory_bytes")


@dataclass(frozen=True)
class SandboxRequest:
    run_id: str  # unique, [a-z0-9-]; used for labels/cgroup names
    argv: list[str]  # e.g. ["python", "/code/analysis.py"]
    workspace: Path  # host DuckDB file -> read-only at /workspace/workspace.duckdb
    code_dir: Path  # host folder -> read-only at /code
    output_dir: Path  # host folder (must exist, empty) -> the only writable place, at /output
    limits: Limits = field(default_factory=Limits)
    env: Mapping[str, str] = field(
        default_factory=dict
    )  # extra env; FIXED_ENV cannot be overridden

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not RUN_ID_RE.match(self.run_id):
            raise ValidationError(
                f"invalid run id {self.run_id!r}",
                field="run_id",
                fix="use 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
            )
        if not self.argv or not all(isinstance(a, str) and "\0" not in a for a in self.argv):
            raise ValidationError(
                "argv must be a non-empty list of strings without NUL", field="argv"
            )
        for name, value in self.env.items():
            if not ENV_NAME_RE.match(name) or "\0" in value:
                raise ValidationError(f"invalid environment variable {name!r}", field="env")
            if name in FIXED_ENV:
                raise ValidationError(
                    f"{name} is set by the platform and cannot be overridden", field="env"
                )
        for name in ("workspace", "code_dir", "output_dir"):
            value = getattr(self, name)
            if not isinstance(value, Path) or not value.is_absolute():
                raise ValidationError(f"must be an absolute Path, got {value!r}", field=name)

    def sandbox_env(self) -> dict[str, str]:
        """The complete environment of the job: the fixed variables plus the caller's extras."""
        return {**dict(self.env), **FIXED_ENV}


class Failure(StrEnum):
    NONZERO_EXIT = "nonzero_exit"
    TIMEOUT = "timeout"
    MEMORY = "memory"
    PIDS = "pids"
    OUTPUT_LIMIT = "output_limit"
    FILE_SIZE = "file_size"
    INTERNAL = "internal"


@dataclass(frozen=True)
class SandboxResult:
    exit_code: int | None  # shell convention: 128+N when killed by signal N; None if never ran
    failure: Failure | None  # None = success (exit 0)
    reason: str  # human-readable, e.g. "killed after 300 s wall-time limit"
    log: bytes  # combined stdout+stderr, capped at limits.log_bytes
    log_truncated: bool
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.failure is None


class SandboxUnavailable(PlatformError):
    """The backend cannot run sandboxes on this machine (tool, engine or kernel feature missing)."""

    code = "sandbox_unavailable"


class SandboxRefused(ValidationError):
    """The request cannot be run safely as given (e.g. output folder not empty)."""

    code = "sandbox_refused"


@runtime_checkable
class SandboxBackend(Protocol):
    name: str

    def available(self) -> tuple[bool, str]: ...
    def prepare(self, req: SandboxRequest) -> None: ...
    def execute(self, req: SandboxRequest) -> SandboxResult: ...  # blocks until done or deadline
    def terminate(self, run_id: str) -> None: ...
    def cleanup(self, run_id: str) -> None: ...  # removes containers/cgroups/mounts
    def list_leftovers(self) -> list[str]: ...  # run_ids still present (crash recovery)


BACKENDS = ("local", "docker")


def get_backend(name: str, runtime: Runtime, **options: Any) -> SandboxBackend:
    """The backend called `name` ("local" = bubblewrap, "docker"), bound to one job runtime.

    Options are backend-specific, e.g. `oci_runtime="runsc"` (gVisor) for docker.
    """
    if name == "local":
        from .local_bwrap import LocalBwrapBackend

        return LocalBwrapBackend(runtime, **options)
    if name == "docker":
        from .docker_backend import DockerBackend

        return DockerBackend(runtime, **options)
    raise ValidationError(
        f"unknown sandbox backend {name!r}",
        field="backend",
        fix=f"use one of: {', '.join(BACKENDS)}",
    )
