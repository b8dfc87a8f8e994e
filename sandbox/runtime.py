"""The one job runtime both backends run: a Debian root filesystem with a pinned Python stack.

Built with debootstrap (no registry needed), cached by a hash of its recipe, and built
atomically: a temporary folder is renamed into place only after a successful self-check, so a
crash never leaves a half-built runtime that looks valid. DuckDB inside is pinned to the host's
version so jobs can always read the workspace files the platform writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from shuyu.errors import PlatformError

from .hardening import (
    ANALYST_GID,
    ANALYST_UID,
    ANALYST_USER,
    CALL_TIMEOUT_S,
    CODE_PATH,
    OUTPUT_PATH,
    SANDBOX_PATH_VAR,
    VENV,
    WORKSPACE_PATH,
)
from .hostfs import remove_tree, run_logged

RECIPE_VERSION = 1  # bump when the build steps below change
DEFAULT_CACHE_DIR = Path("/var/cache/shuyu/runtime")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
DEB_PACKAGES = ("python3", "python3-venv", "ca-certificates")
PY_PACKAGES = ("duckdb", "pandas", "pyarrow", "numpy")  # pinned to the host's versions
IMAGE_REPOSITORY = "shuyu-job-runtime"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
LOCK_WAIT_S = 1800.0
STEP_TIMEOUT_S = {"debootstrap": 900.0, "pip": 1200.0, "verify": 120.0, "import": 600.0}


@dataclass(frozen=True)
class Runtime:
    rootfs: Path  # host path of the read-only root filesystem
    python: str = f"{VENV}/bin/python"  # path of the interpreter inside
    image_id: str | None = None  # Docker image ID (sha256:...) once imported
    recipe_hash: str = ""
    duckdb_version: str = ""


@dataclass(frozen=True)
class BuildProgress:
    step: str  # "debootstrap", "pip", "configure", "verify", "commit", "import", "done"
    done: int  # steps finished so far
    total: int
    detail: str = ""  # the last output line of the running step


ProgressFn = Callable[[BuildProgress], None]


def recipe() -> dict[str, Any]:
    """Everything that determines the runtime's content; its hash names the cache entry."""
    pins = {}
    for name in PY_PACKAGES:
        try:
            pins[name] = metadata.version(name)
        except metadata.PackageNotFoundError as exc:
            raise PlatformError(
                f"{name} is not installed on the host, so it cannot be pinned",
                fix="pip install -e '.[dev]'",
            ) from exc
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "variant": "minbase",
        "deb": sorted(DEB_PACKAGES),
        "pip": pins,
        "user": [ANALYST_USER, ANALYST_UID, ANALYST_GID],
        "venv": VENV,
    }


def recipe_hash(rec: dict[str, Any] | None = None) -> str:
    blob = json.dumps(rec or recipe(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def ensure_runtime(
    cache_dir: Path | None = None,
    progress: ProgressFn | None = None,
    *,
    mirror: str = DEFAULT_MIRROR,
) -> Runtime:
    """The cached runtime for the current recipe, building it first if needed (about a minute).

    Safe to call from several processes at once: one builds, the others wait on a lock.
    """
    cache_dir = Path(cache_dir or DEFAULT_CACHE_DIR)
    rec = recipe()
    rhash = recipe_hash(rec)
    final = cache_dir / rhash
    runtime = _load(final, rhash)
    if runtime:
        _report(progress, "done", 1, 1, "cached")
        return runtime
    # The runtime is the sandbox user's root filesystem: built world-readable whatever the
    # platform's own (private) umask is.
    previous = os.umask(0o022)
    try:
        return _ensure(cache_dir, final, rec, rhash, mirror, progress)
    finally:
        os.umask(previous)


def _ensure(
    cache_dir: Path,
    final: Path,
    rec: dict[str, Any],
    rhash: str,
    mirror: str,
    progress: ProgressFn | None,
) -> Runtime:
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cache_dir, 0o755)
    with _locked(cache_dir / f".{rhash}.lock"):
        runtime = _load(final, rhash)  # built by another process while we waited
        if runtime:
            return runtime
        for stale in cache_dir.glob(f".{rhash}.tmp-*"):
            remove_tree(stale)  # a crashed build: never trusted, never reused
        work = cache_dir / f".{rhash}.tmp-{secrets.token_hex(4)}"
        work.mkdir(mode=0o755)
        try:
            _build(work, rec, rhash, mirror, progress)
            os.rename(work, final)
        except BaseException:
            remove_tree(work)
            raise
    runtime = _load(final, rhash)
    if runtime is None:
        raise PlatformError(f"the runtime built in {final} does not pass its own check")
    _report(progress, "done", 1, 1, str(final))
    return runtime


def _load(folder: Path, rhash: str) -> Runtime | None:
    try:
        info = json.loads((folder / "runtime.json").read_text())
    except (OSError, ValueError):
        return None
    if info.get("recipe_hash") != rhash or not (folder / "rootfs" / VENV.lstrip("/")).is_dir():
        return None
    image_id = None
    with contextlib.suppress(OSError, ValueError):
        image_id = json.loads((folder / "image.json").read_text()).get("image_id")
    return Runtime(
        rootfs=folder / "rootfs",
        image_id=image_id,
        recipe_hash=rhash,
        duckdb_version=info["recipe"]["pip"]["duckdb"],
    )


class _locked:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.fh = open(self.path, "w")  # noqa: SIM115 - released in __exit__
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PlatformError(
                        f"another runtime build holds {self.path} too long"
                    ) from None
                time.sleep(1.0)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def _report(
    progress: ProgressFn | None, step: str, done: int, total: int, detail: str = ""
) -> None:
    if progress:
        progress(BuildProgress(step, done, total, detail[:200]))


def _build(
    work: Path, rec: dict[str, Any], rhash: str, mirror: str, progress: ProgressFn | None
) -> None:
    steps = ["debootstrap", "pip", "configure", "verify", "commit"]
    total = len(steps)
    root = work / "rootfs"
    log = work / "build.log"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}

    def line(step: str, i: int) -> Callable[[str], None]:
        return lambda text: _report(progress, step, i, total, text)

    # 1. Base system. A private mount namespace makes debootstrap's /proc and /sys mounts
    #    vanish with it, even if it crashes.
    _report(progress, "debootstrap", 0, total, f"debootstrap {SUITE} from {mirror}")
    run_logged(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(DEB_PACKAGES)}",
            SUITE,
            str(root),
            mirror,
        ],
        timeout_s=STEP_TIMEOUT_S["debootstrap"],
        label="debootstrap",
        log_path=log,
        env=env,
        on_line=line("debootstrap", 0),
    )

    # 2. The pinned Python stack in a venv. pip needs the host's CA bundle to reach PyPI
    #    through this site's TLS setup; it is removed again afterwards.
    pins = [f"{name}=={version}" for name, version in sorted(rec["pip"].items())]
    _report(progress, "pip", 1, total, " ".join(pins))
    ca = root / "tmp" / "host-ca.crt"
    if HOST_CA_BUNDLE.is_file():
        ca.write_bytes(HOST_CA_BUNDLE.read_bytes())
    pip_env = ["PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_CACHE_DIR=1", "PIP_DEFAULT_TIMEOUT=120"]
    if ca.exists():
        pip_env.append("PIP_CERT=/tmp/host-ca.crt")
    script = (
        f"python3 -m venv {VENV} && {VENV}/bin/pip install --no-input "
        f"--only-binary=:all: {' '.join(pins)}"
    )
    _chroot(
        root,
        [
            "env",
            "-i",
            "PATH=/usr/bin:/bin",
            "HOME=/root",
            "LANG=C.UTF-8",
            *pip_env,
            "sh",
            "-c",
            script,
        ],
        timeout_s=STEP_TIMEOUT_S["pip"],
        label="pip install",
        log=log,
        env=env,
        on_line=line("pip", 1),
    )
    ca.unlink(missing_ok=True)

    # 3. Harden and shape the filesystem the jobs will see.
    _report(progress, "configure", 2, total, "analyst user, mount points, no setuid")
    _configure(root)

    # 4. Self-check: the pinned stack imports and DuckDB matches the host.
    _report(progress, "verify", 3, total, "import duckdb, pandas, pyarrow, numpy")
    check = (
        "import duckdb, pandas, pyarrow, numpy, sys; "
        f"v = duckdb.__version__; sys.exit(0 if v == {rec['pip']['duckdb']!r} else 3)"
    )
    _chroot(
        root,
        ["env", "-i", "PATH=/usr/bin:/bin", f"{VENV}/bin/python", "-c", check],
        timeout_s=STEP_TIMEOUT_S["verify"],
        label="runtime self-check",
        log=log,
        env=env,
    )

    # 5. Record what was built; the caller renames the folder into place.
    _report(progress, "commit", 4, total, str(work))
    meta = {"recipe_hash": rhash, "recipe": rec, "built_at": time.time()}
    with open(work / "runtime.json", "w") as fh:
        json.dump(meta, fh, indent=2, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    _report(progress, "commit", 5, total, "built")


def _chroot(
    root: Path,
    argv: list[str],
    *,
    timeout_s: float,
    label: str,
    log: Path,
    env: dict[str, str],
    on_line: Callable[[str], None] | None = None,
) -> None:
    """Run a command inside the rootfs with /proc mounted in a throwaway mount namespace."""
    inner = 'mount -t proc proc "$1/proc" && root="$1" && shift && exec chroot "$root" "$@"'
    run_logged(
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            inner,
            "sh",
            str(root),
            *argv,
        ],
        timeout_s=timeout_s,
        label=label,
        log_path=log,
        env=env,
        on_line=on_line,
    )


def _configure(root: Path) -> None:
    # The analyst identity exists inside, so tools print a name and HOME resolves.
    with open(root / "etc/passwd", "a") as fh:
        fh.write(f"{ANALYST_USER}:x:{ANALYST_UID}:{ANALYST_GID}::/tmp:/usr/sbin/nologin\n")
    with open(root / "etc/group", "a") as fh:
        fh.write(f"{ANALYST_USER}:x:{ANALYST_GID}:\n")
    # Mount points must exist: the root filesystem is read-only in both backends.
    for folder in (Path(WORKSPACE_PATH).parent, Path(CODE_PATH), Path(OUTPUT_PATH)):
        (root / folder.relative_to("/")).mkdir(mode=0o755, exist_ok=True)
    (root / WORKSPACE_PATH.lstrip("/")).touch(mode=0o644)
    # Nothing of the build host leaks in: resolver, hostname.
    (root / "etc/resolv.conf").write_text("")
    (root / "etc/hostname").write_text("sandbox\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost sandbox\n::1 localhost\n")
    # Defence in depth: no setuid/setgid programs at all (mounts are nosuid and jobs run with
    # no_new_privs anyway).
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
    # Caches and package lists are dead weight in a runtime that never installs anything.
    for junk in (
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "root/.cache",
    ):
        target = root / junk
        if target.is_dir():
            remove_tree(target)
            target.mkdir(mode=0o755)
    os.chmod(root, 0o755)


def build_image(runtime: Runtime, client: Any = None) -> str:
    """Import the runtime rootfs as `shuyu-job-runtime:<recipe-hash>`; return its image ID.

    Idempotent: an image already tagged for this recipe is reused. Nothing is ever pulled.
    """
    import docker  # type: ignore[import-untyped]
    import docker.errors  # type: ignore[import-untyped]

    client = client or docker.from_env(timeout=int(STEP_TIMEOUT_S["import"]))
    tag = f"{IMAGE_REPOSITORY}:{runtime.recipe_hash}"
    try:
        image = client.images.get(tag)
        if image.labels.get("shuyu.runtime") == runtime.recipe_hash:
            _record_image(runtime, image.id)
            return str(image.id)
    except docker.errors.ImageNotFound:
        pass
    changes = [
        f"LABEL shuyu.runtime={runtime.recipe_hash}",
        f"USER {ANALYST_UID}:{ANALYST_GID}",
        "WORKDIR /tmp",
        f"ENV PATH={SANDBOX_PATH_VAR}",
        'CMD ["python"]',
    ]
    tar = subprocess.Popen(
        ["tar", "-C", str(runtime.rootfs), "--numeric-owner", "--one-file-system", "-c", "."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        client.api.import_image_from_stream(
            tar.stdout, repository=IMAGE_REPOSITORY, tag=runtime.recipe_hash, changes=changes
        )
        _, err = tar.communicate(timeout=CALL_TIMEOUT_S)
    finally:
        if tar.poll() is None:
            tar.kill()
            tar.wait()
    if tar.returncode != 0:
        raise PlatformError(f"tar of the runtime failed: {err.decode(errors='replace')[-500:]}")
    image = client.images.get(tag)
    _record_image(runtime, image.id)
    return str(image.id)


def _record_image(runtime: Runtime, image_id: str) -> None:
    path = runtime.rootfs.parent / "image.json"
    try:
        if json.loads(path.read_text()).get("image_id") == image_id:
            return
    except (OSError, ValueError):
        pass
    tmp = path.with_suffix(f".tmp-{secrets.token_hex(4)}")
    tmp.write_text(
        json.dumps({"image_id": image_id, "tag": f"{IMAGE_REPOSITORY}:{runtime.recipe_hash}"})
    )
    os.rename(tmp, path)
