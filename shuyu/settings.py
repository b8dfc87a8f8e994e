"""Every setting declared once: name, default and help, read at start-up and passed in.

Nothing reads the environment at import time; `Settings.from_env()` is called by the shells.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _setting(default: Any, env: str, help: str) -> Any:
    return field(default=default, metadata={"env": env, "help": help})


@dataclass(frozen=True)
class Settings:
    home: Path = _setting(Path(".shuyu"), "SHUYU_HOME", "platform home: store, data, keys")
    db_url: str = _setting(
        "", "SHUYU_DB_URL", "SQLAlchemy URL of the metadata store (default: SQLite in the home)"
    )
    actor: str = _setting(
        "", "SHUYU_USER", "who is acting, recorded in the ledger (default: the OS user)"
    )
    backend: str = _setting(
        "local", "SHUYU_BACKEND", "sandbox backend: local (bubblewrap) or docker"
    )
    docker_runtime: str = _setting(
        "", "SHUYU_DOCKER_RUNTIME", "OCI runtime for the docker backend, e.g. runsc (gVisor)"
    )
    runtime_cache: Path = _setting(
        Path("/var/cache/shuyu/runtime"),
        "SHUYU_RUNTIME_CACHE",
        "where the job runtime rootfs is cached",
    )
    synthetic_rows: int = _setting(
        2000, "SHUYU_SYNTHETIC_ROWS", "rows per dataset in synthetic-twin workspaces"
    )
    job_wall_seconds: int = _setting(
        600, "SHUYU_JOB_WALL_SECONDS", "wall-time limit of one job action"
    )
    job_memory_mb: int = _setting(
        2048, "SHUYU_JOB_MEMORY_MB", "memory (and memory+swap) limit of a job"
    )
    job_pids: int = _setting(128, "SHUYU_JOB_PIDS", "process/thread limit of a job")
    job_output_mb: int = _setting(512, "SHUYU_JOB_OUTPUT_MB", "size cap of a job's output folder")
    job_max_outputs: int = _setting(
        100, "SHUYU_JOB_MAX_OUTPUTS", "most files a job action may output"
    )
    job_log_kb: int = _setting(1024, "SHUYU_JOB_LOG_KB", "log bytes kept per action")
    worker_lease_seconds: int = _setting(
        30, "SHUYU_WORKER_LEASE_SECONDS", "a job whose worker is silent this long is failed"
    )
    grant_years: int = _setting(5, "SHUYU_GRANT_YEARS", "default validity of a grant, in years")
    analyst_runs_per_day: int = _setting(
        50,
        "SHUYU_ANALYST_RUNS_PER_DAY",
        "production runs one submitter may queue in any 24 hours (each run's outcome is a bit)",
    )
    max_body_kb: int = _setting(
        1024, "SHUYU_MAX_BODY_KB", "largest HTTP request body the API reads, in KiB"
    )
    check_memory_mb: int = _setting(
        2048, "SHUYU_CHECK_MEMORY_MB", "memory limit of the process checking one output"
    )
    check_seconds: int = _setting(
        300, "SHUYU_CHECK_SECONDS", "time limit of the process checking one output"
    )
    check_max_rows: int = _setting(
        500_000, "SHUYU_CHECK_MAX_ROWS", "most rows an output may have; more is blocked unread"
    )
    check_max_mb: int = _setting(
        512,
        "SHUYU_CHECK_MAX_MB",
        "most bytes an output may expand to (Parquet pages, PNG pixels); more is blocked unread",
    )

    trusted_proxy: bool = _setting(
        False,
        "SHUYU_TRUSTED_PROXY",
        "accept X-Shuyu-User from the authenticating proxy (single sign-on); off: ignored",
    )
    proxy_addresses: str = _setting(
        "127.0.0.1,::1",
        "SHUYU_PROXY_ADDRESSES",
        "comma-separated addresses of the trusted proxy; the header from any other is refused",
    )
    login_attempts: int = _setting(
        5, "SHUYU_LOGIN_ATTEMPTS", "failed sign-ins in a row before the account is locked"
    )
    lockout_minutes: int = _setting(
        15, "SHUYU_LOCKOUT_MINUTES", "how long a locked account stays locked"
    )
    session_hours: int = _setting(8, "SHUYU_SESSION_HOURS", "lifetime of a web session cookie")
    token_days: int = _setting(90, "SHUYU_TOKEN_DAYS", "default lifetime of an API token")
    cookie_secure: bool = _setting(
        False, "SHUYU_COOKIE_SECURE", "mark the session cookie Secure (on behind HTTPS)"
    )

    def __post_init__(self) -> None:
        # Paths are handed to sandboxes and stored in the metadata store: always absolute.
        object.__setattr__(self, "home", Path(self.home).absolute())
        object.__setattr__(self, "runtime_cache", Path(self.runtime_cache).absolute())

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.default, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if not settings.actor:
            settings = cls(**{**values, "actor": _os_user()})
        return settings

    @property
    def resolved_db_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.home / 'shuyu.db').resolve()}"

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(environment variable, default, help) for the README and `shuyu settings`."""
        return [(f.metadata["env"], str(f.default), f.metadata["help"]) for f in fields(cls)]


def _coerce(default: Any, raw: str) -> Any:
    if isinstance(default, Path):
        return Path(raw)
    if isinstance(default, bool):
        return raw.lower() in {"1", "true", "yes"}
    if isinstance(default, int):
        return int(raw)
    return raw


def _os_user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, ImportError):
        return f"uid-{os.getuid()}"
