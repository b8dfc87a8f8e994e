"""cgroup v1 groups for local sandboxes: kernel-enforced pids, memory and CPU limits.

One folder per run under /sys/fs/cgroup/<controller>/shuyu-runs/<neutral name of the run>, so
that the platform can read which limit was hit (pids.events, memory.oom_control) and kill every
process of a run, however it forked, and a crashed platform finds its leftovers (through its
owner records: a job sees its cgroup's path, so the name is neutral, see sandbox/stage.py).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from shuyu.errors import PlatformError

from .hardening import CGROUP_PARENT
from .hostfs import mount_table
from .stage import neutral_name, owned_run_ids

CGROUP_ROOT = Path("/sys/fs/cgroup")
_PROBES = ("pids", "memory", "cpu")  # the v1 controllers the local backend uses
CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class CgroupCounters:
    oom_kills: int = 0  # processes the kernel OOM killer ended in this group
    memory_failcnt: int = 0  # times the memory limit was reached (reclaim may have succeeded)
    pids_max_events: int = 0  # forks refused because pids.max was reached (forking group only)
    pids_peak: int = 0  # most processes+threads at once, counted over the whole subtree


def controllers() -> dict[str, Path]:
    """The v1 controllers usable here (root needed to create groups), by name."""
    found: dict[str, Path] = {}
    if os.geteuid() != 0:
        return found
    for entry in mount_table():
        if entry.fstype != "cgroup":
            continue
        for name in entry.mount_point.name.split(","):
            if name in _PROBES and name not in found:
                found[name] = entry.mount_point
    # memsw files exist only with swap accounting; without them memory could spill to swap.
    if "memory" in found and not (found["memory"] / "memory.memsw.limit_in_bytes").exists():
        del found["memory"]
    return found


class RunCgroups:
    """The cgroup folders of one run (possibly none when cgroups are unavailable)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        name_ = neutral_name(run_id)
        self.paths = {name: base / CGROUP_PARENT / name_ for name, base in controllers().items()}

    @property
    def enforced(self) -> set[str]:
        return {name for name, path in self.paths.items() if path.is_dir()}

    def create(self, *, memory_bytes: int, pids: int, cpus: float) -> None:
        """Create the groups and write the limits (idempotent: rewriting is harmless)."""
        for name, path in self.paths.items():
            path.parent.mkdir(exist_ok=True)
            path.mkdir(exist_ok=True)
            if name == "pids":
                _write(path / "pids.max", str(pids))
            elif name == "memory":
                # memsw (memory+swap) equal to the limit: no escape into swap. The order of the
                # two writes matters (memsw >= limit at every moment), so try both orders.
                try:
                    _write(path / "memory.limit_in_bytes", str(memory_bytes))
                    _write(path / "memory.memsw.limit_in_bytes", str(memory_bytes))
                except OSError:
                    _write(path / "memory.memsw.limit_in_bytes", str(memory_bytes))
                    _write(path / "memory.limit_in_bytes", str(memory_bytes))
                with contextlib.suppress(OSError):
                    _write(path / "memory.swappiness", "0")
            elif name == "cpu":
                _write(path / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                _write(path / "cpu.cfs_quota_us", str(max(1000, int(cpus * CFS_PERIOD_US))))

    def create_parent(self, *, pids: int) -> None:
        """A parent group for an engine that nests its own groups below (Docker's
        cgroup_parent): only the pids group carries a limit, as a second fence."""
        path = self.paths.get("pids")
        if path:
            path.parent.mkdir(exist_ok=True)
            path.mkdir(exist_ok=True)
            _write(path / "pids.max", str(pids))

    def procs_files(self) -> list[Path]:
        """The cgroup.procs files a starting job must write its pid into."""
        return [path / "cgroup.procs" for path in self.paths.values()]

    def pids(self) -> set[int]:
        """Every process in the run's groups, including nested groups (an engine's)."""
        found: set[int] = set()
        for path in self.paths.values():
            for dirpath, _dirs, files in os.walk(path):
                if "cgroup.procs" in files:
                    with contextlib.suppress(OSError):
                        found.update(
                            int(x) for x in Path(dirpath, "cgroup.procs").read_text().split()
                        )
        return found

    def kill_all(self, timeout_s: float = 5.0) -> bool:
        """SIGKILL every process of the run until none is left; True if the groups are empty."""
        deadline = time.monotonic() + timeout_s
        while True:
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def counters(self) -> CgroupCounters:
        oom = failcnt = pids_max = 0
        mem = self.paths.get("memory")
        if mem:
            oom = _field(mem / "memory.oom_control", "oom_kill")
            failcnt = _int(mem / "memory.failcnt")
        peak = 0
        pid_dir = self.paths.get("pids")
        if pid_dir:
            pids_max = _field(pid_dir / "pids.events", "max")
            peak = _int(pid_dir / "pids.peak")
        return CgroupCounters(
            oom_kills=oom, memory_failcnt=failcnt, pids_max_events=pids_max, pids_peak=peak
        )

    def pids_exhausted(self, limit: int) -> bool:
        """A fork was refused, or the subtree reached the limit (nested groups such as Docker's
        record the refusal in a child group that is gone by now; the peak survives)."""
        c = self.counters()
        return c.pids_max_events > 0 or c.pids_peak >= limit

    def remove(self) -> None:
        """Kill what is left and delete the groups in every hierarchy (idempotent)."""
        if not self.kill_all():
            raise PlatformError(f"processes of run {self.run_id} survive SIGKILL")
        for path in _all_hierarchies(self.run_id):
            _rmdir_tree(path)


def _rmdir_tree(path: Path) -> None:
    """rmdir a cgroup and its child groups, deepest first (their control files go with them)."""
    try:
        children = [p for p in path.iterdir() if p.is_dir()]
    except FileNotFoundError:
        return
    for child in children:
        _rmdir_tree(child)
    for _ in range(100):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY while the last exits are reaped
            time.sleep(0.02)
    raise PlatformError(f"cannot remove cgroup {path}")


def _all_hierarchies(run_id: str | None = None) -> list[Path]:
    """/<hierarchy>/shuyu-runs[/<neutral name>] in every v1 hierarchy (Docker creates groups
    in all)."""
    if os.geteuid() != 0:
        return []
    found = []
    for entry in mount_table():
        if entry.fstype == "cgroup":
            path = entry.mount_point / CGROUP_PARENT
            found.append(path / neutral_name(run_id) if run_id else path)
    return found


def leftover_run_ids() -> set[str]:
    """Runs (with an owner record) whose cgroup folders still exist."""
    names: set[str] = set()
    for parent in _all_hierarchies():
        if parent.is_dir():
            names.update(p.name for p in parent.iterdir() if p.is_dir())
    return {run_id for run_id in owned_run_ids() if neutral_name(run_id) in names}


def _write(path: Path, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def _int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _field(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
