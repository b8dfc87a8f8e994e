"""The local backend: bubblewrap over the job runtime, with cgroup v1 limits. The default.

Launch chain, each step an exec in the same process (no shell sees user input):

    unshare --mount (root, private mount namespace)
      -> sh: join the run's cgroups, bind the inputs into a private stage folder
      -> prlimit: RLIMIT_NOFILE, RLIMIT_FSIZE (+ RLIMIT_AS/NPROC when cgroups are missing)
      -> setpriv: become uid/gid 10001, no groups, no_new_privs, no capabilities
      -> bwrap (unprivileged): new user/pid/net/ipc/uts/cgroup namespaces, runtime rootfs as /

So the job is uid 10001 both inside and outside, and even an escape from bubblewrap is an
unprivileged process in a memory/pids-capped cgroup. The stage folder exists so that bubblewrap
(no longer root) can reach inputs kept in private platform folders; its mounts live only in
the run's own mount namespace and vanish with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from shuyu.errors import ShuyuError

from .base import SandboxRequest, SandboxResult, SandboxUnavailable
from .cgroups import RunCgroups, controllers, leftover_run_ids
from .common import (
    Evidence,
    LogCapture,
    check_request,
    claim_run,
    file_at_size_cap,
    internal_result,
    leftovers,
    mount_output,
    output_full,
    output_mount_run_ids,
    pump,
    release_run,
    result,
    unmount_output,
)
from .hardening import (
    ANALYST_GID,
    ANALYST_UID,
    BWRAP_FLAGS,
    CALL_TIMEOUT_S,
    CODE_PATH,
    KILL_GRACE_S,
    OUTPUT_PATH,
    SHM_BYTES,
    STAGE_DIR,
    TMP_PATH,
    TMP_TMPFS_MODE,
    WORKSPACE_PATH,
)
from .runtime import Runtime
from .seccomp import denylist_program, supported
from .stage import stage_inputs, unstage

HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
TOOLS = ("bwrap", "setpriv", "prlimit", "unshare", "mount")

# Runs as root in the run's private mount namespace. Arguments only, never interpolated.
_STAGE_SCRIPT = r"""
set -eu
stage=$1 rootfs=$2 ws=$3 code=$4 out=$5 ids=$6 n=$7
shift 7
while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done
mount -t tmpfs -o size=1m,mode=0750,uid=0,gid={gid},nosuid,nodev shuyu-stage "$stage"
mkdir -m 0755 "$stage/root" "$stage/code" "$stage/output"
: > "$stage/workspace.duckdb"
mount --bind "$rootfs" "$stage/root"
mount --bind "$ws" "$stage/workspace.duckdb"
mount --bind "$code" "$stage/code"
mount --bind "$out" "$stage/output"
# Exactly the files the platform checked (no path swapped in between), or nothing at all.
got=$(stat -c %d:%i "$stage/workspace.duckdb" "$stage/code" "$stage/output" | tr '\n' ' ')
[ "$got" = "$ids " ] || { echo "sandbox inputs changed after the check" >&2; exit 124; }
exec "$@"
""".replace("{gid}", str(ANALYST_GID))


def _ids(*paths: Path) -> str:
    """The "dev:inode" of each path, as stat(1) prints them, to pin what the stage binds."""
    return " ".join(f"{st.st_dev}:{st.st_ino}" for st in (os.stat(p) for p in paths))


class LocalBwrapBackend:
    """Runs jobs with bubblewrap on this machine (needs root to cap, account and drop)."""

    name = "local"

    def __init__(self, runtime: Runtime, *, seccomp: bool = True) -> None:
        self.runtime = runtime
        self.seccomp = seccomp and supported()
        self._lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._results: dict[str, SandboxResult] = {}
        self._terminated: set[str] = set()
        self._probe: tuple[bool, str] | None = None

    # -- interface -------------------------------------------------------------------------

    def available(self) -> tuple[bool, str]:
        if self._probe is None:
            self._probe = self._check()
        return self._probe

    def prepare(self, req: SandboxRequest) -> None:
        ok, why = self.available()
        if not ok:
            raise SandboxUnavailable(f"local sandbox unavailable: {why}")
        check_request(req)
        claim_run(req.run_id, self.name)
        STAGE_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
        RunCgroups(req.run_id).create(
            memory_bytes=req.limits.memory_bytes, pids=req.limits.pids, cpus=req.limits.cpus
        )
        mount_output(req)

    def execute(self, req: SandboxRequest) -> SandboxResult:
        with self._lock:
            if req.run_id in self._results:
                return self._results[req.run_id]
        started = time.monotonic()
        try:
            self.prepare(req)
        except ShuyuError as exc:
            return internal_result(f"sandbox not prepared: {exc}", req.limits, started)
        res = self._run(req, started)
        with self._lock:
            self._results[req.run_id] = res
        return res

    def terminate(self, run_id: str) -> None:
        with self._lock:
            self._terminated.add(run_id)
            proc = self._procs.get(run_id)
        self._kill(run_id, proc)

    def cleanup(self, run_id: str) -> None:
        self.terminate(run_id)
        RunCgroups(run_id).remove()
        unmount_output(run_id)
        unstage(run_id)
        release_run(run_id)
        with self._lock:
            self._procs.pop(run_id, None)
            self._results.pop(run_id, None)
            self._terminated.discard(run_id)

    def list_leftovers(self) -> list[str]:
        """Runs still present whose owning platform process is gone (crash recovery)."""
        return leftovers(leftover_run_ids() | output_mount_run_ids(), self.name)

    # -- internals -------------------------------------------------------------------------

    def _check(self) -> tuple[bool, str]:
        if os.geteuid() != 0:
            return (
                False,
                "the platform must run as root (to cap /output, use cgroups, drop to uid 10001)",
            )
        missing = [t for t in TOOLS if shutil.which(t, path=HOST_ENV["PATH"]) is None]
        if missing:
            return (
                False,
                f"missing tools: {', '.join(missing)} (apt-get install bubblewrap util-linux)",
            )
        if not (self.runtime.rootfs / self.runtime.python.lstrip("/")).exists():
            return False, f"job runtime not built at {self.runtime.rootfs} (run ensure_runtime)"
        probe = [
            "setpriv",
            f"--reuid={ANALYST_UID}",
            f"--regid={ANALYST_GID}",
            "--clear-groups",
            "--no-new-privs",
            "bwrap",
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--ro-bind",
            "/",
            "/",
            "--size",
            "4096",
            "--tmpfs",
            "/tmp",
            "true",
        ]
        try:
            done = subprocess.run(probe, env=HOST_ENV, capture_output=True, timeout=CALL_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"bubblewrap probe failed: {exc}"
        if done.returncode != 0:
            return False, (
                "bubblewrap cannot create an unprivileged user namespace here: "
                + done.stderr.decode(errors="replace").strip()[-300:]
            )
        have = set(controllers())
        lacking = {"pids", "memory"} - have
        if lacking:
            return True, f"bubblewrap ok; cgroups {sorted(lacking)} missing: rlimit fallback"
        return True, f"bubblewrap ok; cgroup v1 {', '.join(sorted(have))}"

    def _command(
        self,
        req: SandboxRequest,
        cg: RunCgroups,
        status_fd: int,
        seccomp_fd: int | None,
        args_fd: int,
    ) -> list[str]:
        """The launch chain; bubblewrap's own options are written to `args_fd` (--args), so
        the job's view of its pid 1 (/proc/1/cmdline) shows no paths or variables."""
        lim = req.limits
        procs_files = [str(p) for p in cg.procs_files()]
        rlimits = [
            f"--nofile={lim.open_files}:{lim.open_files}",
            f"--fsize={lim.file_size_bytes}:{lim.file_size_bytes}",
        ]
        if "memory" not in cg.enforced:
            rlimits.append(f"--as={lim.memory_bytes}:{lim.memory_bytes}")
        if "pids" not in cg.enforced:
            rlimits.append(f"--nproc={lim.pids}:{lim.pids}")
        stage = str(STAGE_DIR)
        workspace, code = stage_inputs(req)  # neutral paths: the job's mount table shows them
        bwrap = [
            "bwrap",
            *BWRAP_FLAGS,
            "--uid",
            str(ANALYST_UID),
            "--gid",
            str(ANALYST_GID),
            "--ro-bind",
            f"{stage}/root",
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            # /dev itself read-only; only a capped /dev/shm (multiprocessing) is writable.
            "--perms",
            TMP_TMPFS_MODE,
            "--size",
            str(min(SHM_BYTES, lim.tmp_bytes)),
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--perms",
            TMP_TMPFS_MODE,
            "--size",
            str(lim.tmp_bytes),
            "--tmpfs",
            TMP_PATH,
            "--ro-bind",
            f"{stage}/workspace.duckdb",
            WORKSPACE_PATH,
            "--ro-bind",
            f"{stage}/code",
            CODE_PATH,
            "--bind",
            f"{stage}/output",
            OUTPUT_PATH,
            "--chdir",
            TMP_PATH,
            "--json-status-fd",
            str(status_fd),
        ]
        if seccomp_fd is not None:
            bwrap += ["--seccomp", str(seccomp_fd)]
        for name, value in sorted(req.sandbox_env().items()):
            bwrap += ["--setenv", name, value]
        os.write(args_fd, b"".join(os.fsencode(a) + b"\0" for a in bwrap[1:]))
        os.lseek(args_fd, 0, os.SEEK_SET)
        bwrap = ["bwrap", "--args", str(args_fd), "--", *req.argv]
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            _STAGE_SCRIPT,
            "shuyu-stage",
            stage,
            str(self.runtime.rootfs),
            str(workspace),
            str(code),
            str(req.output_dir),
            _ids(workspace, code, req.output_dir),
            str(len(procs_files)),
            *procs_files,
            "prlimit",
            *rlimits,
            "--",
            "setpriv",
            f"--reuid={ANALYST_UID}",
            f"--regid={ANALYST_GID}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--",
            *bwrap,
        ]

    def _run(self, req: SandboxRequest, started: float) -> SandboxResult:
        with self._lock:
            if req.run_id in self._terminated:
                return internal_result(
                    "terminated by the platform before it started", req.limits, started
                )
        cg = RunCgroups(req.run_id)
        capture = LogCapture(req.limits.log_bytes)
        log_r, log_w = os.pipe()
        st_r, st_w = os.pipe()
        seccomp_fd = None
        if self.seccomp:
            seccomp_fd = os.memfd_create("shuyu-seccomp", 0)
            os.write(seccomp_fd, denylist_program())
            os.lseek(seccomp_fd, 0, os.SEEK_SET)
        args_fd = os.memfd_create("shuyu-bwrap-args", 0)
        fds = (st_w, args_fd) if seccomp_fd is None else (st_w, args_fd, seccomp_fd)
        try:
            try:
                proc = subprocess.Popen(
                    self._command(req, cg, st_w, seccomp_fd, args_fd),
                    stdin=subprocess.DEVNULL,
                    stdout=log_w,
                    stderr=log_w,
                    pass_fds=fds,
                    env=HOST_ENV,
                    cwd="/",
                    process_group=0,
                )
            except OSError as exc:
                return internal_result(f"cannot start bubblewrap: {exc}", req.limits, started)
            finally:
                os.close(log_w)
                os.close(st_w)
                os.close(args_fd)
                if seccomp_fd is not None:
                    os.close(seccomp_fd)
            with self._lock:
                self._procs[req.run_id] = proc
                cancelled = req.run_id in self._terminated
            if cancelled:  # terminate() came before the process existed
                self._kill(req.run_id, proc)
            deadline = started + req.limits.wall_seconds
            timed_out = pump(
                log_r,
                capture,
                deadline,
                on_deadline=lambda: self._kill(req.run_id, proc),
                is_finished=lambda: proc.poll() is not None,
            )
            # The stream can end before the process does (it closed its stdout): the wall
            # deadline still applies.
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.0) + 0.5)
            except subprocess.TimeoutExpired:
                timed_out = True
                self._kill(req.run_id, proc)
                proc.wait(timeout=KILL_GRACE_S)
            cg.kill_all()  # stragglers, if the pid namespace did not take them all
            status = _read_status(st_r)
        finally:
            os.close(log_r)
            os.close(st_r)
            with self._lock:
                self._procs.pop(req.run_id, None)

        if "child-pid" not in status:
            tail = bytes(capture.buf[-600:]).decode(errors="replace").strip()
            return internal_result(
                f"sandbox failed to start: {tail or 'no message'}", req.limits, started, capture
            )
        exit_code = status.get("exit-code")
        if exit_code is None:
            exit_code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        counters = cg.counters()
        with self._lock:
            terminated = req.run_id in self._terminated
        evidence = Evidence(
            exit_code=exit_code,
            timed_out=timed_out,
            oom_killed=counters.oom_kills > 0,
            pids_exhausted=cg.pids_exhausted(req.limits.pids),
            output_full=output_full(req),
            file_size_hit=exit_code != 0 and file_at_size_cap(req),
            terminated=terminated and not timed_out,
        )
        return result(evidence, req.limits, capture, started)

    def _kill(self, run_id: str, proc: subprocess.Popen[bytes] | None) -> None:
        """SIGKILL the whole run: the launcher's process group, then the cgroups."""
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        RunCgroups(run_id).kill_all(timeout_s=KILL_GRACE_S)


def _read_status(fd: int) -> dict[str, int]:
    """bubblewrap's --json-status-fd documents: {"child-pid": N, ...} then {"exit-code": N}."""
    os.set_blocking(fd, False)
    raw = b""
    with contextlib.suppress(BlockingIOError, OSError):
        while chunk := os.read(fd, 65536):
            raw += chunk
    status: dict[str, int] = {}
    decoder = json.JSONDecoder()
    text, pos = raw.decode(errors="replace"), 0
    while pos < len(text):
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError:
            break
        if isinstance(doc, dict):
            status.update({k: v for k, v in doc.items() if isinstance(v, int)})
    return status
