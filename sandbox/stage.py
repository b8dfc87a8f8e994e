"""Neutral names for everything a sandbox can see of the host: its mount table is a channel.

Inside a sandbox, /proc/self/mountinfo shows for each bind mount the path of its source within
the host's file system, and for each tmpfs its source name. Bound straight from the platform
home, that would tell the job the host's home folder, the workspace id and the job id. So
each run's inputs are staged under a per-run folder with a name nobody outside the platform
can link to the run (`/run/shuyu/<keyed digest of the run id>/`): the workspace hardlinked
(copied when it lies on another file system), the code copied (it is small), and the /output
tmpfs and the run's cgroups named with the same digest. The key is created once per machine, readable by root only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import os
import shutil
import stat
from pathlib import Path

from .base import SandboxRefused, SandboxRequest
from .hardening import OWNERS_DIR, RUN_STAGE_ROOT

SALT_FILE = OWNERS_DIR / ".stage-key"
COMPLETE = ".staged"


def _key() -> bytes:
    OWNERS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(SALT_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(os.urandom(32))
    return SALT_FILE.read_bytes()


def neutral_name(run_id: str) -> str:
    """A name for the run that reveals neither it nor its job (stable on this machine)."""
    return hmac.new(_key(), run_id.encode(), hashlib.sha256).hexdigest()[:20]


def owned_run_ids() -> set[str]:
    """Runs with an owner record (sandbox/common.py `claim_run`): the only way back from a
    neutral name to its run."""
    try:
        return {p.name for p in OWNERS_DIR.iterdir() if not p.name.startswith(".")}
    except FileNotFoundError:
        return set()


def stage_dir(run_id: str) -> Path:
    return RUN_STAGE_ROOT / neutral_name(run_id)


def stage_inputs(req: SandboxRequest) -> tuple[Path, Path]:
    """(workspace, code folder) under the run's neutral folder; idempotent."""
    folder = stage_dir(req.run_id)
    workspace, code = folder / "workspace.duckdb", folder / "code"
    if (folder / COMPLETE).exists():
        return workspace, code
    RUN_STAGE_ROOT.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(RUN_STAGE_ROOT, 0o700)
    shutil.rmtree(folder, ignore_errors=True)  # a half-staged run: start again
    folder.mkdir(mode=0o700)
    try:
        _link_or_copy(req.workspace, workspace)
        _copy_tree(req.code_dir, code)
    except OSError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise SandboxRefused(f"cannot stage the run's inputs: {exc.strerror}") from exc
    (folder / COMPLETE).touch()
    return workspace, code


def unstage(run_id: str) -> None:
    shutil.rmtree(stage_dir(run_id), ignore_errors=True)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hardlink shares the inode (no copy, same mode); across file systems, a copy."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copyfile(source, target, follow_symlinks=False)
        os.chmod(target, stat.S_IMODE(os.lstat(source).st_mode) | 0o444)


def _copy_tree(source: Path, target: Path) -> None:
    """Copy the code folder (links are refused by `check_request` before this runs)."""
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    for entry in os.scandir(source):
        dest = target / entry.name
        if entry.is_dir(follow_symlinks=False):
            _copy_tree(Path(entry.path), dest)
        elif entry.is_file(follow_symlinks=False):
            shutil.copyfile(entry.path, dest, follow_symlinks=False)
            # readable by the sandbox user, executable if it was; never setuid or setgid
            os.chmod(dest, (os.lstat(entry.path).st_mode & 0o755) | 0o444)
        else:
            raise SandboxRefused("the code folder holds something other than files and folders")
