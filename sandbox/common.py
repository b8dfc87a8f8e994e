"""What both backends share: input checks, the capped /output mount, log capture, verdicts.

Keeping these in one place means the two backends refuse the same requests, cap the same
things and name the same failure for the same kernel evidence.
"""

from __future__ import annotations

import os
import select
import signal
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import Failure, Limits, SandboxRefused, SandboxRequest, SandboxResult
from .hardening import (
    ANALYST_GID,
    ANALYST_UID,
    KILL_GRACE_S,
    OUTPUT_FULL_SLACK_BYTES,
    OUTPUT_MOUNT_SOURCE_PREFIX,
    OUTPUT_TMPFS_FLAGS,
    OUTPUT_TMPFS_MODE,
    OWNERS_DIR,
)
from .hostfs import (
    check_tree_readable,
    free_bytes,
    is_readable_by,
    mount_table,
    mount_tmpfs,
    unmount,
)
from .stage import neutral_name, owned_run_ids

# ---------------------------------------------------------------------------------------------
# Inputs


def _existing(path: Path, what: str, want_dir: bool) -> os.stat_result:
    """lstat `path` and insist on a real file or folder: links are refused, never followed."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise SandboxRefused(f"{what} not found: {exc.strerror}", file=str(path)) from exc
    if not (stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)):
        kind = "a directory" if want_dir else "a regular file"
        raise SandboxRefused(f"{what} must be {kind} (not a link)", file=str(path))
    return st


def check_request(req: SandboxRequest) -> None:
    """Refuse a request whose inputs the sandbox user could not read or whose /output is unsafe."""
    st = _existing(req.workspace, "workspace", want_dir=False)
    if not is_readable_by(st, ANALYST_UID, ANALYST_GID):
        raise SandboxRefused(
            f"workspace is not readable by the sandbox user (uid {ANALYST_UID})",
            file=str(req.workspace),
            fix="make it mode 0644 (or group 10001)",
        )
    _existing(req.code_dir, "code folder", want_dir=True)
    unreadable = check_tree_readable(req.code_dir, ANALYST_UID, ANALYST_GID)
    if unreadable:
        raise SandboxRefused(
            f"not readable by the sandbox user (uid {ANALYST_UID})",
            file=unreadable,
            fix="make code files 0644 and folders 0755",
        )
    _existing(req.output_dir, "output folder", want_dir=True)


# ---------------------------------------------------------------------------------------------
# /output: a size-capped tmpfs mounted by the platform on the caller's folder


def output_source(run_id: str) -> str:
    """The tmpfs's source name, seen by the job in its mount table: neutral, not the run id."""
    return f"{OUTPUT_MOUNT_SOURCE_PREFIX}{neutral_name(run_id)}"


def output_mounted(req: SandboxRequest) -> bool:
    target = os.path.realpath(req.output_dir)
    mine = [m for m in mount_table() if str(m.mount_point) == target]
    if not mine:
        return False
    if mine[-1].source != output_source(req.run_id):
        raise SandboxRefused(
            f"output folder is already a mount point ({mine[-1].source})", file=str(req.output_dir)
        )
    return True


def mount_output(req: SandboxRequest) -> None:
    """Cap /output on the host (tmpfs, owned by the analyst, nosuid/nodev/noexec); idempotent."""
    if output_mounted(req):
        return
    if any(os.scandir(req.output_dir)):
        raise SandboxRefused("output folder must be empty", file=str(req.output_dir))
    mount_tmpfs(
        req.output_dir,
        output_source(req.run_id),
        req.limits.output_bytes,
        uid=ANALYST_UID,
        gid=ANALYST_GID,
        mode=OUTPUT_TMPFS_MODE,
        flags=OUTPUT_TMPFS_FLAGS,
    )


def unmount_output(run_id: str) -> None:
    """Unmount every /output tmpfs of the run (wherever it is mounted); idempotent."""
    source = output_source(run_id)
    for entry in reversed(mount_table()):
        if entry.fstype == "tmpfs" and entry.source == source:
            unmount(entry.mount_point)


def output_mount_run_ids() -> set[str]:
    """Runs with an /output still mounted (found through their owner records: a mount's
    neutral source name cannot be turned back into a run id)."""
    mounted = {
        m.source
        for m in mount_table()
        if m.fstype == "tmpfs" and m.source.startswith(OUTPUT_MOUNT_SOURCE_PREFIX)
    }
    return {run_id for run_id in owned_run_ids() if output_source(run_id) in mounted}


def output_full(req: SandboxRequest) -> bool:
    try:
        return output_mounted(req) and free_bytes(req.output_dir) < OUTPUT_FULL_SLACK_BYTES
    except (OSError, SandboxRefused):
        return False


def file_at_size_cap(req: SandboxRequest, max_entries: int = 100_000) -> bool:
    """Whether some file in /output reached RLIMIT_FSIZE (a write was cut short by the kernel)."""
    cap = req.limits.file_size_bytes
    seen = 0
    for dirpath, dirnames, filenames in os.walk(req.output_dir):
        for name in filenames:
            seen += 1
            if seen > max_entries:
                return False
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size >= cap:
                return True
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return False


# ---------------------------------------------------------------------------------------------
# Ownership: several platform processes (workers, test sessions) may share one machine; crash
# recovery must only reclaim runs whose owner is gone, never a neighbour's live sandbox.


def _start_time(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()[19]  # field 22: start time since boot, in ticks


def claim_run(run_id: str, backend: str) -> None:
    """Record this process as the owner of the run (before anything else is created)."""
    OWNERS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    pid = os.getpid()
    tmp = OWNERS_DIR / f".{run_id}.{pid}.tmp"
    tmp.write_text(f"{pid} {_start_time(pid)} {backend}\n")
    os.replace(tmp, OWNERS_DIR / run_id)


def release_run(run_id: str) -> None:
    (OWNERS_DIR / run_id).unlink(missing_ok=True)


def _owner(run_id: str) -> tuple[bool, str | None]:
    """(owner process alive, backend name) of a run; (False, None) when unrecorded."""
    try:
        pid, start, backend = (OWNERS_DIR / run_id).read_text().split()
    except (OSError, ValueError):
        return False, None
    return _start_time(int(pid)) == start, backend


def leftovers(candidates: set[str], backend: str) -> list[str]:
    """Runs of `backend` still on the machine whose owning platform process is gone."""
    found = []
    for run_id in candidates | owned_run_ids():
        alive, owner_backend = _owner(run_id)
        if run_id and not alive and owner_backend in (None, backend):
            found.append(run_id)
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Logs


class LogCapture:
    """Keeps the first `cap` bytes; everything after is read and dropped so the job never blocks."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buf = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.buf)
        if room > 0:
            self.buf += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > self.cap


class FrameDecoder:
    """Docker's multiplexed attach stream: 8-byte header (stream, 0, 0, 0, big-endian size)."""

    def __init__(self) -> None:
        self.pending = b""

    def __call__(self, chunk: bytes) -> bytes:
        self.pending += chunk
        out = bytearray()
        while len(self.pending) >= 8:
            size = int.from_bytes(self.pending[4:8], "big")
            if len(self.pending) < 8 + size:
                break
            out += self.pending[8 : 8 + size]
            self.pending = self.pending[8 + size :]
        return bytes(out)


def pump(
    fd: int,
    capture: LogCapture,
    deadline: float,
    *,
    on_deadline: Callable[[], None],
    is_finished: Callable[[], bool],
    decode: Callable[[bytes], bytes] | None = None,
) -> bool:
    """Read the job's output until EOF; at the deadline call `on_deadline` once (the kill).

    Returns True if the deadline was reached. Once the job has finished (or was killed) the
    stream gets KILL_GRACE_S more to reach EOF, so a leaked descriptor cannot hang the platform.
    """
    timed_out = False
    finished_at: float | None = None
    while True:
        now = time.monotonic()
        if not timed_out and now >= deadline:
            timed_out = True
            on_deadline()
            finished_at = now
        if finished_at is None and is_finished():
            finished_at = now
        if finished_at is not None and now - finished_at > KILL_GRACE_S:
            return timed_out
        wait = 0.2 if timed_out or finished_at is not None else min(max(deadline - now, 0.0), 0.2)
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        except OSError:
            return timed_out
        if not chunk:
            return timed_out
        capture.feed(decode(chunk) if decode else chunk)


# ---------------------------------------------------------------------------------------------
# Verdicts


@dataclass(frozen=True)
class Evidence:
    """What the platform observed about a finished run, from the kernel or the engine."""

    exit_code: int | None
    timed_out: bool = False
    oom_killed: bool = False
    pids_exhausted: bool = False
    output_full: bool = False
    file_size_hit: bool = False
    terminated: bool = False
    internal: str | None = None


def _mib(n: int) -> str:
    return f"{n / 1024**2:g} MiB"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "did not exit by itself"
    if code > 128:
        try:
            return f"killed by signal {signal.Signals(code - 128).name} (exit code {code})"
        except ValueError:
            pass
    return f"exited with code {code}"


def verdict(ev: Evidence, limits: Limits) -> tuple[Failure | None, str]:
    """Which limit ended the run, most specific cause first; None when the job succeeded."""
    if ev.internal:
        return Failure.INTERNAL, ev.internal
    if ev.terminated:
        return Failure.INTERNAL, "terminated by the platform before it finished"
    if ev.exit_code == 0 and not ev.timed_out:
        return None, "exited with code 0"
    if ev.oom_killed:
        return Failure.MEMORY, (
            f"killed by the kernel: memory limit of {_mib(limits.memory_bytes)}"
            f" reached ({describe_exit(ev.exit_code)})"
        )
    if ev.pids_exhausted:
        return Failure.PIDS, (
            f"process/thread limit of {limits.pids} reached "
            f"({describe_exit(ev.exit_code) if not ev.timed_out else 'then timed out'})"
        )
    if ev.timed_out:
        return Failure.TIMEOUT, f"killed after {limits.wall_seconds:g} s wall-time limit"
    if ev.file_size_hit or ev.exit_code == 128 + signal.SIGXFSZ:
        return Failure.FILE_SIZE, (
            f"a file reached the single-file limit of "
            f"{_mib(limits.file_size_bytes)} ({describe_exit(ev.exit_code)})"
        )
    if ev.output_full:
        return Failure.OUTPUT_LIMIT, (
            f"/output is full: limit of {_mib(limits.output_bytes)} "
            f"reached ({describe_exit(ev.exit_code)})"
        )
    return Failure.NONZERO_EXIT, describe_exit(ev.exit_code)


def result(
    ev: Evidence, limits: Limits, capture: LogCapture | None, started: float
) -> SandboxResult:
    failure, reason = verdict(ev, limits)
    return SandboxResult(
        exit_code=None if ev.timed_out or ev.internal else ev.exit_code,
        failure=failure,
        reason=reason,
        log=bytes(capture.buf) if capture else b"",
        log_truncated=capture.truncated if capture else False,
        duration_s=round(time.monotonic() - started, 3),
    )


def internal_result(
    reason: str, limits: Limits, started: float, capture: LogCapture | None = None
) -> SandboxResult:
    return result(Evidence(exit_code=None, internal=reason), limits, capture, started)
