"""Host-side filesystem plumbing: size-capped tmpfs mounts, mount table, safe removal, commands.

Mounts are made with the mount(2) syscall (no shell, no parsing of user input) and carry a
source name ("shuyu-run-<neutral name of the run>") so that a crashed platform finds and
removes them again.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import selectors
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shuyu.errors import PlatformError

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
_FLAG_BITS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


@dataclass(frozen=True)
class MountEntry:
    mount_point: Path
    fstype: str
    source: str


def _unescape(field: str) -> str:
    """Mountinfo escapes space, tab, newline and backslash as \\ooo octal."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field) >= i + 4 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mount_table() -> list[MountEntry]:
    """The mounts of this process's mount namespace, in mount order."""
    entries = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if len(fields) < 5 or len(rfields) < 2:
                continue
            entries.append(
                MountEntry(Path(_unescape(fields[4])), rfields[0], _unescape(rfields[1]))
            )
    return entries


def mounts_under(path: Path) -> list[MountEntry]:
    """Mounts at or below `path` (deepest last, so unmount in reverse)."""
    root = os.path.realpath(path)
    return [
        m
        for m in mount_table()
        if str(m.mount_point) == root or str(m.mount_point).startswith(root.rstrip("/") + "/")
    ]


def mount_tmpfs(
    target: Path,
    source: str,
    size_bytes: int,
    *,
    uid: int,
    gid: int,
    mode: str,
    flags: Sequence[str] = (),
) -> None:
    """Mount a size-capped tmpfs on `target`; the cap is enforced by the kernel (ENOSPC)."""
    bits = 0
    for flag in flags:
        bits |= _FLAG_BITS[flag]
    data = f"size={size_bytes},mode={mode},uid={uid},gid={gid},nr_inodes=65536"
    if _libc.mount(source.encode(), os.fsencode(target), b"tmpfs", bits, data.encode()) != 0:
        err = ctypes.get_errno()
        raise PlatformError(
            f"cannot mount a tmpfs on {target}: {os.strerror(err)}",
            fix="the platform must run as root to cap /output",
        )


def unmount(target: Path) -> None:
    """Unmount `target` (lazily if still busy); no error if it is not mounted."""
    raw = os.fsencode(target)
    if _libc.umount2(raw, UMOUNT_NOFOLLOW) == 0:
        return
    err = ctypes.get_errno()
    if err in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
        return
    if _libc.umount2(raw, MNT_DETACH | UMOUNT_NOFOLLOW) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):
            raise PlatformError(f"cannot unmount {target}: {os.strerror(err)}")


def remove_tree(path: Path) -> None:
    """Delete a folder the platform built, never following into a mount (e.g. a leftover /proc)."""
    if not os.path.lexists(path):
        return
    for entry in reversed(mounts_under(path)):
        unmount(entry.mount_point)
    if mounts_under(path):
        raise PlatformError(f"refusing to delete {path}: something is still mounted below it")
    shutil.rmtree(path)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def is_readable_by(st: os.stat_result, uid: int, gid: int, *, need_exec: bool = False) -> bool:
    """Whether `uid`/`gid` (no supplementary groups) may read (and enter) a file with `st`."""
    want = 0o5 if need_exec else 0o4
    if st.st_uid == uid:
        bits = (st.st_mode >> 6) & 0o7
    elif st.st_gid == gid:
        bits = (st.st_mode >> 3) & 0o7
    else:
        bits = st.st_mode & 0o7
    return bits & want == want


def check_tree_readable(root: Path, uid: int, gid: int, max_entries: int = 20000) -> str | None:
    """The first path below `root` the sandbox user could not read, or None if all are readable."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        st = os.lstat(dirpath)
        if not is_readable_by(st, uid, gid, need_exec=True):
            return dirpath
        for name in filenames:
            count += 1
            if count > max_entries:
                return None
            full = os.path.join(dirpath, name)
            fst = os.lstat(full)
            if stat.S_ISREG(fst.st_mode) and not is_readable_by(fst, uid, gid):
                return full
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the platform dies (no orphan builds)."""
    pr_set_pdeathsig = 1
    _libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def run_logged(
    cmd: Sequence[str],
    *,
    timeout_s: float,
    label: str,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    on_line: Callable[[str], None] | None = None,
    stdin: int | None = subprocess.DEVNULL,
) -> None:
    """Run a platform command with a deadline; its output goes to `log_path` and `on_line`.

    The command runs in its own process group so a timeout kills everything it started.
    Raises PlatformError naming `label` with the last output lines on failure.
    """
    tail: list[str] = []
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed below
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            env=env,
            process_group=0,
            preexec_fn=_die_with_parent,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        buf = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)
                    raise PlatformError(
                        f"{label}: timed out after {timeout_s:.0f} s: " + " | ".join(tail[-5:])
                    )
                if not sel.select(min(remaining, 1.0)):
                    continue
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                if log:
                    log.write(chunk)
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    line = raw.decode("utf-8", "replace").rstrip()
                    if line:
                        tail = (tail + [line])[-20:]
                        if on_line:
                            on_line(line)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        if rc != 0:
            raise PlatformError(f"{label}: failed with exit code {rc}: " + " | ".join(tail[-5:]))
    finally:
        if log:
            log.close()
