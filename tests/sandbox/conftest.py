"""Fixtures for the sandbox tests: the real job runtime, real bubblewrap, a real Docker engine.

The runtime is built once and cached (default /var/cache/shuyu/runtime, override with
SHUYU_RUNTIME_CACHE); the Docker engine is started by scripts/start-dockerd.sh if needed.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from sandbox import Limits, SandboxRequest, SandboxResult, ensure_runtime, get_backend
from sandbox.base import SandboxBackend
from sandbox.hardening import CGROUP_PARENT
from sandbox.runtime import DEFAULT_CACHE_DIR, Runtime, build_image
from sandbox.stage import neutral_name

REPO = Path(__file__).resolve().parents[2]
CANARY = "shuyu-canary-" + secrets.token_hex(8)


@pytest.fixture
def canary() -> str:
    return CANARY


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    if os.geteuid() != 0:
        pytest.skip("sandbox tests need root (tmpfs caps, cgroups, uid drop)")
    cache = Path(os.environ.get("SHUYU_RUNTIME_CACHE") or DEFAULT_CACHE_DIR)
    return ensure_runtime(cache)


@pytest.fixture(scope="session")
def docker_runtime(runtime: Runtime) -> Runtime:
    done = subprocess.run(
        ["sh", str(REPO / "scripts/start-dockerd.sh")], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        pytest.fail(f"Docker engine could not be started: {done.stderr.strip()}")
    from dataclasses import replace

    return replace(runtime, image_id=build_image(runtime))


@pytest.fixture(scope="session")
def backends(request: pytest.FixtureRequest) -> dict[str, SandboxBackend]:
    return {}


@pytest.fixture(
    params=[
        pytest.param("local", marks=pytest.mark.bwrap),
        pytest.param("docker", marks=pytest.mark.docker),
    ]
)
def backend(
    request: pytest.FixtureRequest, runtime: Runtime, backends: dict[str, SandboxBackend]
) -> SandboxBackend:
    name = request.param
    if name not in backends:
        rt = request.getfixturevalue("docker_runtime") if name == "docker" else runtime
        b = get_backend(name, rt)
        ok, why = b.available()
        assert ok, why
        backends[name] = b
    return backends[name]


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """These tests stand in for the platform, which opens a job's code to the sandbox user
    itself (jobs/runner.make_readable): the platform's private umask, set by any platform an
    earlier test opened in this process, must not make their hand-written code unreadable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@dataclass
class Layout:
    """A fake platform home: our workspace, another project's, a secret key, a job folder."""

    home: Path
    workspace: Path
    other_workspace: Path
    secret: Path
    code: Path
    output: Path
    runs: list[str] = field(default_factory=list)


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    home = tmp_path / "platform-home"
    ws_dir = home / "workspaces"
    keys = home / ".shuyu" / "keys"
    job = home / "jobs" / "j1"
    for d in (ws_dir, keys, job / "code", job / "output"):
        d.mkdir(parents=True)
    home.chmod(0o700)  # private, like a real platform home: the sandbox must still get its inputs
    keys.chmod(0o700)
    workspace = ws_dir / "workspace.duckdb"
    con = duckdb.connect(str(workspace))
    con.execute("CREATE TABLE trips AS SELECT range AS id, range % 7 AS district FROM range(1000)")
    con.close()
    workspace.chmod(0o644)
    other = ws_dir / "other-project.duckdb"
    con = duckdb.connect(str(other))
    con.execute(f"CREATE TABLE secret AS SELECT '{CANARY}' AS s")
    con.close()
    other.chmod(0o644)
    secret = keys / "platform.key"
    secret.write_text(CANARY + "\n")
    secret.chmod(0o644)  # even world-readable host files must stay invisible
    return Layout(home, workspace, other, secret, job / "code", job / "output")


@dataclass
class Job:
    backend: SandboxBackend
    layout: Layout
    req: SandboxRequest | None = None

    def run(
        self,
        code: str,
        *,
        limits: Limits | None = None,
        argv: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> SandboxResult:
        (self.layout.code / "x.py").write_text(code)
        run_id = f"t-{secrets.token_hex(6)}"
        self.layout.runs.append(run_id)
        self.req = SandboxRequest(
            run_id=run_id,
            argv=argv or ["python", "/code/x.py"],
            workspace=self.layout.workspace,
            code_dir=self.layout.code,
            output_dir=self.layout.output,
            limits=limits or SMALL,
            env=env or {},
        )
        self.backend.prepare(self.req)
        return self.backend.execute(self.req)


SMALL = Limits(
    wall_seconds=30,
    memory_bytes=512 * 1024**2,
    pids=64,
    open_files=128,
    file_size_bytes=16 * 1024**2,
    output_bytes=32 * 1024**2,
    tmp_bytes=32 * 1024**2,
    log_bytes=256 * 1024,
    cpus=1.0,
)


@pytest.fixture
def job(backend: SandboxBackend, layout: Layout) -> Iterator[Job]:
    j = Job(backend, layout)
    yield j
    for run_id in layout.runs:
        backend.cleanup(run_id)
        backend.cleanup(run_id)  # idempotent
        assert run_id not in backend.list_leftovers()
        assert not _processes_in_run(run_id), "processes of the run survived cleanup"
    assert not any(layout.output.iterdir()), "outputs leaked onto the host folder under the tmpfs"


def _processes_in_run(run_id: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if (
                f"/{CGROUP_PARENT}/{neutral_name(run_id)}"
                in Path(f"/proc/{pid}/cgroup").read_text()
            ):
                found.append(int(pid))
        except OSError:
            continue
    return found
